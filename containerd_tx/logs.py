# -*- test-case-name: tests.unit.test_logs -*-
"""
Log output for the daemon: twisted.logger events filtered by level, as text lines or JSON objects.
"""

import sys

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    jsonFileLogObserver,
    textFileLogObserver,
)

_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


def make_observer(level="info", fmt="text", stream=None):
    """
    A log observer that writes events at C{level} and above to C{stream} (stdout by default).

    @param fmt: C{"text"} (one human line per event) or C{"json"} (one JSON object per line, for shippers).
    """
    stream = stream if stream is not None else sys.stdout
    if fmt == "json":
        observer = jsonFileLogObserver(stream, recordSeparator="")
    else:
        observer = textFileLogObserver(stream)
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])
    return FilteringLogObserver(observer, [predicate])
