# -*- test-case-name: tests.unit.test_logs -*-
"""
Log output for the daemon: twisted.logger events filtered by level, as text lines or JSON objects.
"""

import sys

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEventAsClassicLogText,
    formatTime,
    jsonFileLogObserver,
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
        observer = FileLogObserver(stream, _TextFormat())
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])
    return FilteringLogObserver(observer, [predicate])


class _TextFormat:
    """
    Twisted's classic text line (what C{textFileLogObserver} writes), with the time text computed once per
    second: Twisted works out the local UTC offset for every event, which cost as much as the rest of the line
    when containers start by the hundred.
    """

    def __init__(self):
        # One attribute, replaced whole: a thread logging at the same time sees an old or a new pair, never
        # a second with another second's text.
        self._cached = (None, "")

    def _time(self, when):
        if when is None:
            return formatTime(when)
        second = int(when)
        cached_second, text = self._cached
        if second != cached_second:
            text = formatTime(second)
            self._cached = (second, text)
        return text

    def __call__(self, event):
        return formatEventAsClassicLogText(event, formatTime=self._time)
