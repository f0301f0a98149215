# -*- test-case-name: tests.unit.test_durations -*-
"""
Go-style durations ("1m0s", "30s", "1h30m", "250ms"), as the original daemon's and ctr's flags took them.

Shared by the daemon's options and ctr: it imports only the standard library.
"""

import re

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
# Go's time.Duration is an int64 of nanoseconds: about 292 years.
_MAX_SECONDS = (2**63 - 1) / 1e9
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_SECONDS = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)$")


def parse_duration(text, bare_seconds=False):
    """
    Parse a Go duration string into seconds.

    "0" alone is allowed (as in Go); every other value needs units, unless C{bare_seconds}.

    @param text: e.g. C{"1m0s"}, C{"30s"}, C{"1h30m"}, C{"1.5s"}.
    @param bare_seconds: also take a plain number of seconds (C{"2.5"}), as ctr's flags do.
    @return: seconds as a float (never negative).
    @raise ValueError: with a one-line reason when C{text} is not a duration.
    """
    original = text
    text = str(text).strip()
    if text in ("0", "+0"):
        return 0.0
    if text.startswith("-"):
        raise ValueError(f"invalid duration {original!r}: must not be negative")
    text = text.lstrip("+")
    if bare_seconds and _SECONDS.match(text):
        total = float(text)
        if total > _MAX_SECONDS:
            raise ValueError(f"invalid duration {original!r}: too large")
        return total
    if not text:
        raise ValueError(f"invalid duration {original!r}")
    total = 0.0
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(
            f"invalid duration {original!r} (use forms like 30s, 5m, 1h30m, 1m0s)"
        )
    if total > _MAX_SECONDS:
        raise ValueError(f"invalid duration {original!r}: too large")
    return total


def format_duration(seconds):
    """
    Format seconds the way Go prints a time.Duration (C{60} -> C{"1m0s"}).

    @param seconds: a non-negative number of seconds.
    """
    if seconds == 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        if millis >= 1:
            return f"{millis:g}ms"
        return f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs:g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}"
    if minutes:
        return f"{int(minutes)}m{secs_text}"
    return secs_text
