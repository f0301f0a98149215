# -*- test-case-name: tests.unit.test_logs,tests.unit.test_log_schema -*-
"""
Log output for the daemon: twisted.logger events filtered by level, as text lines or JSON objects.

JSON (C{--log-format json}) writes one object per line with a fixed schema, for log shippers whose field
mappings break when a field changes type::

    {"time": "2025-03-01T12:00:00.250000Z", "level": "info", "message": "container web started (pid 4242)",
     "namespace": "containerd_tx.supervisor.core", "id": "web", "pid": "4242"}

  - C{time}: RFC 3339, UTC, microseconds; C{level}: C{debug}, C{info}, C{warn}, C{error} or C{critical};
    C{message}: the event rendered as in the text log; C{namespace}: the logger's namespace (C{log_legacy}
    for Twisted's old-style C{log.msg});
  - every other field is the event's own, and always a B{string}: numbers, booleans, exceptions and
    objects are written as their text (C{"pid": "4242"} and C{"pid": "init"} alike); a field whose value is
    None is left out; C{traceback} holds the traceback of a C{log.failure};
  - a field named like one of the above is written as C{event_<name>}; Twisted's bookkeeping (C{log_*},
    old-style C{message}/C{time}/C{isError}/C{format}/...) is not written, nor anything like
    C{log_flattened} or C{__class_uuid__}.
"""

import datetime
import json
import sys

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)

_LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}

#: The fields every JSON record has, in this order.
JSON_FIELDS = ("time", "level", "message", "namespace")
_RESERVED = frozenset(JSON_FIELDS + ("traceback",))
#: What Twisted's old-style log (twisted.python.log) adds to an event, beside the log_* keys.
_LEGACY_KEYS = frozenset(("message", "time", "isError", "format", "why", "failure", "logLevel", "printed"))


def make_observer(level="info", fmt="text", stream=None):
    """
    A log observer that writes events at C{level} and above to C{stream} (stdout by default).

    @param fmt: C{"text"} (one human line per event) or C{"json"} (one JSON object per line, for shippers;
        see the module docstring).
    """
    stream = stream if stream is not None else sys.stdout
    if fmt == "json":
        observer = FileLogObserver(stream, format_json)
    else:
        observer = FileLogObserver(stream, _TextFormat())
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])
    return FilteringLogObserver(observer, [predicate])


def rfc3339(when):
    """C{1700000000.25} -> C{"2023-11-14T22:13:20.250000Z"} (UTC)."""
    moment = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def json_record(event):
    """
    The JSON record of one twisted.logger C{event} as a dict of strings (see the module docstring).
    """
    level = event.get("log_level")
    when = event.get("log_time")
    record = {
        "time": rfc3339(when if when is not None else 0.0),
        "level": level.name if isinstance(level, type(LogLevel.info)) else "info",
        "message": (formatEvent(event) or "").rstrip("\n"),
        "namespace": _text(event.get("log_namespace") or "unknown"),
    }
    legacy = record["namespace"] == "log_legacy" or "isError" in event
    for key in sorted(event):
        if key.startswith("log_") or (legacy and key in _LEGACY_KEYS):
            continue
        value = event[key]
        if value is None:
            continue
        name = f"event_{key}" if key in _RESERVED else key
        record[name] = _text(value)
    failure = event.get("log_failure")
    if failure is None and legacy and event.get("failure") is not None:
        failure = event["failure"]
    if failure is not None:
        try:
            record["traceback"] = failure.getTraceback()
        except Exception:
            record["traceback"] = _text(failure)
    return record


def format_json(event):
    """One JSON line (with its newline) for C{event}."""
    return json.dumps(json_record(event), ensure_ascii=False, separators=(",", ":")) + "\n"


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
