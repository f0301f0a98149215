# -*- test-case-name: tests.unit.test_ctr_events -*-
"""
C{ctr events}: follow the daemon's events, and the RFC 3339 timestamps they carry.
"""

import calendar
import datetime
import re
import time

import click
from google.protobuf import timestamp_pb2

from containerd_tx.api import containerd_pb2
from ctr import cli, output

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_UNIX = re.compile(r"^(\d+)(?:\.(\d*))?$")
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the end of protobuf's Timestamp range

#: The events table's columns and their minimum widths (TIME fits RFC 3339 with nanoseconds).
EVENT_TABLE = output.StreamTable(["TIME", "TYPE", "ID", "PID", "STATUS"], [30, 15, 12, 8, 6])


def _nanos(fraction):
    """Nanoseconds of a decimal fraction's digits ("5" -> 500000000); digits past the ninth are cut."""
    return int((fraction or "").ljust(9, "0")[:9])


def parse_timestamp(text):
    """
    Parse RFC 3339 (C{2026-11-29T13:00:00Z}, C{2026-11-29T14:00:00.123456789+01:00}) or unix seconds with an
    optional fraction (C{1764421200.123456789}), exactly, to the nanosecond.

    @return: a C{google.protobuf.Timestamp}.
    @raise ValueError: with a one-line reason when C{text} is neither.
    """
    value = str(text).strip()
    unix = _UNIX.match(value)
    if unix:
        seconds, nanos = int(unix.group(1)), _nanos(unix.group(2))
    else:
        match = _RFC3339.match(value)
        if not match:
            raise ValueError(
                f"invalid timestamp {text!r} (use RFC 3339 like 2026-11-29T13:00:00Z or unix seconds like 1764421200.5)"
            )
        year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
        try:
            moment = datetime.datetime(year, month, day, hour, minute, second)
        except ValueError as error:
            raise ValueError(f"invalid timestamp {text!r}: {error}") from None
        seconds = calendar.timegm(moment.timetuple())
        nanos = _nanos(match.group(7))
        if match.group(9):
            offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
            seconds -= offset if match.group(9) == "+" else -offset
    if not 0 <= seconds <= _MAX_SECONDS:
        raise ValueError(f"timestamp {text!r} is out of range")
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def format_timestamp(timestamp):
    """
    Format a C{google.protobuf.Timestamp} as RFC 3339 in UTC with all nine digits of nanoseconds, e.g.
    C{2026-11-29T13:00:00.000000042Z} (fixed width, so it sorts and aligns).
    """
    date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp.seconds))
    return f"{date}.{timestamp.nanos:09d}Z"


def timestamp_ns(timestamp):
    """@return: a C{google.protobuf.Timestamp} as integer nanoseconds since the epoch."""
    return timestamp.seconds * 1_000_000_000 + timestamp.nanos


def now():
    """@return: the current time as a C{google.protobuf.Timestamp}, to the nanosecond."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def event_dict(event):
    """@return: an C{Event} as the JSON object C{ctr events --format json} prints."""
    return {
        "type": event.type,
        "id": event.id,
        "pid": event.pid,
        "status": event.status,
        "timestamp": format_timestamp(event.timestamp),
        "timestamp_ns": timestamp_ns(event.timestamp),
    }


def event_row(event):
    """@return: an C{Event} as a row of the events table; STATUS is shown for C{exit} events only."""
    status = event.status if event.type == "exit" else ""
    return [format_timestamp(event.timestamp), event.type, event.id, event.pid, status]


class _TimestampType(click.ParamType):
    name = "timestamp"

    def convert(self, value, param, ctx):
        if isinstance(value, timestamp_pb2.Timestamp):
            return value
        try:
            return parse_timestamp(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


@click.command(
    epilog="""\b
Examples:
  ctr events                                   # follow all events
  ctr events --id web                          # only container web's
  ctr events --since 2026-11-29T13:00:00Z --stored-only
  ctr events --format json --since 2026-11-29T13:00:00.123456789Z

With --format json each line is one event; pass its "timestamp" back to --since to resume exactly after it.
"""
)
@click.option("--since", type=_TimestampType(), help="First replay the stored events newer than this "
              "(RFC 3339, or unix seconds with a fraction).")
@click.option("--id", "container_id", default="", shell_complete=cli.complete_container_id,
              help="Only this container's events.")
@click.option("--stored-only", is_flag=True, help="End after the stored events (needs --since).")
@cli.format_option()
def events(since, container_id, stored_only, fmt):
    """Print events as they happen, one line each (Ctrl-C ends)."""
    if stored_only and since is None:
        raise click.UsageError("--stored-only needs --since")
    request = containerd_pb2.EventsRequest(id=container_id, storedOnly=stored_only)
    if since is not None:
        request.timestamp.CopyFrom(since)
    stream = cli.api().Events(request)
    try:
        if fmt == "table":
            click.echo(EVENT_TABLE.header())
        for event in stream:
            if fmt == "json":
                output.print_json(event_dict(event), lines=True)
            else:
                click.echo(EVENT_TABLE.format(event_row(event)))
    except KeyboardInterrupt:
        stream.cancel()
