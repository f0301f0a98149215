# -*- test-case-name: tests.unit.test_ctr_output -*-
"""
What ctr prints and the values it parses: aligned tables, JSON, human sizes, sizes and durations, the
"unlimited" sentinels, and a progress line for slow calls.

JSON is one style in every command: one compact object per line per item, keys as protobuf's json_format
names the proto's fields (lowerCamelCase), sorted; a limit that is not set is C{null}.
"""

import contextlib
import json
import os
import re
import threading
import time

import click

from containerd_tx import durations

#: Spaces between two table columns (at least two, like tabwriter's padding).
PADDING = 3

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_HUMAN_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

#: A limit at or above this is no limit: cgroup v1 reports "unlimited" as 0x7FFFFFFFFFFFF000 (and v2 as "max").
UNLIMITED_FROM = 1 << 62

#: How tables show a limit that is not set.
UNLIMITED = "unlimited"


def _cell(value):
    return "" if value is None else str(value)


def column_widths(headers, rows, minimum=None):
    """
    @return: the width of each column: its widest cell (header included), at least C{minimum[i]} when given
        (so that a table redrawn with new rows keeps its columns where they were).
    """
    table = [[_cell(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    if minimum:
        widths = [max(width, least) for width, least in zip(widths, minimum)]
    return widths


def format_table(headers, rows, padding=PADDING, widths=None):
    """
    Lay out a table the way Go's tabwriter does: every column as wide as its widest cell plus C{padding}
    spaces; the last column is not padded and no line has trailing spaces.

    @param headers: the column names.
    @param rows: sequences of cells, one per column (C{None} prints as empty).
    @param widths: minimum column widths (see L{column_widths}).
    @return: the lines, header first, without newlines.
    """
    table = [[_cell(c) for c in headers]] + [[_cell(c) for c in row] for row in rows]
    return [_join(row, column_widths(headers, rows, widths), padding) for row in table]


def _join(cells, widths, padding):
    parts = [cell.ljust(width) + " " * padding for cell, width in zip(cells[:-1], widths)]
    return ("".join(parts) + cells[-1]).rstrip()


def print_table(headers, rows):
    """Print L{format_table} to stdout."""
    for line in format_table(headers, rows):
        click.echo(line)


class StreamTable:
    """
    A table printed one row at a time (for streams, where later rows are unknown): the columns have fixed
    minimum widths and a longer cell pushes the rest of its row to the right.
    """

    def __init__(self, headers, widths, padding=PADDING):
        """
        @param headers: the column names.
        @param widths: the minimum width of each column (the header's width counts too).
        """
        self.headers = [str(h) for h in headers]
        self.widths = [max(w, len(h)) for h, w in zip(self.headers, widths)]
        self.padding = padding

    def format(self, row):
        """
        @return: the line for C{row} (a sequence of cells), without newline. A cell wider than its column
            widens the column for this row and every later one, so that the rows that follow align again.
        """
        cells = [_cell(c) for c in row]
        self.widths = [max(width, len(cell)) for width, cell in zip(self.widths, cells)]
        return _join(cells, self.widths, self.padding)

    def header(self):
        """@return: the header line."""
        return self.format(self.headers)


def to_json(value):
    """@return: C{value} as one line of compact JSON with sorted keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def print_json(value):
    """Print C{value} as one line of JSON on stdout (one item: a command prints one line per item)."""
    click.echo(to_json(value))


def limit_or_none(value):
    """@return: a limit as JSON prints it: C{None} (null) when it is not set (0, or the "unlimited" sentinel)."""
    return None if not value or value >= UNLIMITED_FROM else value


def human_limit(value):
    """@return: a size limit for a table: L{human_size}, or C{"unlimited"} when it is not set."""
    return UNLIMITED if limit_or_none(value) is None else human_size(value)


def human_size(size):
    """
    Format a byte count with binary units: C{1610612736} -> C{"1.5 GiB"}, C{512} -> C{"512 B"}.
    """
    value = float(size)
    for unit in _HUMAN_UNITS:
        if value < 1024 or unit == _HUMAN_UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{int(size)} B"
    return f"{value:.4g} {unit}"


def parse_size(text):
    """
    Parse a size with an optional binary suffix: C{"64m"}, C{"1g"}, C{"512k"}, C{"1.5GiB"}, C{"100"} (bytes).

    k/m/g/t/p are powers of 1024 (as docker's C{--memory}); case does not matter and C{b}/C{ib} may follow.

    @return: the size in bytes (an int).
    @raise ValueError: with a one-line reason when C{text} is not a size.
    """
    match = _SIZE.match(str(text).strip())
    if not match:
        raise ValueError(f"invalid size {text!r} (use forms like 100, 512k, 64m, 1g)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(text):
    """
    Parse a Go duration (C{"5s"}, C{"1m30s"}, C{"250ms"}) or a bare number of seconds (C{"2.5"}), with the
    daemon's rules (L{containerd_tx.durations.parse_duration}).

    @return: seconds as a float (never negative).
    @raise ValueError: with a one-line reason when C{text} is not a duration.
    """
    return durations.parse_duration(text, bare_seconds=True)


class _Parsed(click.ParamType):
    """A click parameter type that parses with a function raising ValueError."""

    def __init__(self, name, parse):
        self.name = name
        self._parse = parse

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


#: click type for sizes (L{parse_size}).
SIZE = _Parsed("size", parse_size)

#: click type for durations in seconds (L{parse_duration}).
DURATION = _Parsed("duration", parse_duration)


def is_terminal(stream):
    """@return: whether a text or binary stream is a terminal (C{False} for anything without a real fd)."""
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def progress(message, stream=None, interval=1.0):
    """
    Show C{message} and the seconds elapsed on one line of C{stream} (default: stderr) while the block runs,
    when that stream is a terminal; the line is erased however the block ends. Elsewhere nothing is shown.
    """
    stream = stream if stream is not None else click.get_text_stream("stderr")
    if not is_terminal(stream):
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def draw():
        try:
            stream.write(f"\r\033[K{message} {int(time.monotonic() - started)}s")
            stream.flush()
        except (OSError, ValueError):
            pass

    def tick():
        while not done.wait(interval):
            draw()

    draw()
    ticker = threading.Thread(target=tick, name="ctr-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        try:
            stream.write("\r\033[K")
            stream.flush()
        except (OSError, ValueError):
            pass
