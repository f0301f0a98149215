# -*- test-case-name: tests.unit.test_ctr_cli -*-
"""
C{ctr events} and C{ctr containers watch}: follow the daemon's events; the timestamps they carry.
"""

import re
import time

import click

from ctr import cli, errors, output

_UNIX = re.compile(r"^(\d+)(?:\.(\d*))?$")
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the end of protobuf's Timestamp range

#: The events table's columns and their minimum widths (TIME fits RFC 3339 with nanoseconds).
EVENT_HEADERS = ["TIME", "TYPE", "ID", "PID", "STATUS"]
EVENT_WIDTHS = [30, 15, 12, 8, 6]


def _timestamp(seconds=0, nanos=0):
    from google.protobuf import timestamp_pb2

    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def parse_timestamp(text):
    """
    Parse RFC 3339 (C{2026-11-29T13:00:00Z}, C{2026-11-29T14:00:00.123456789+01:00}), as protobuf's
    C{Timestamp.FromJsonString} reads it, or unix seconds with an optional fraction (C{1764421200.123456789}),
    exactly, to the nanosecond.

    @return: a C{google.protobuf.Timestamp}.
    @raise ValueError: with a one-line reason when C{text} is neither.
    """
    value = str(text).strip()
    unix = _UNIX.match(value)
    if unix:
        seconds = int(unix.group(1))
        if seconds > _MAX_SECONDS:
            raise ValueError(f"timestamp {text!r} is out of range")
        return _timestamp(seconds, int((unix.group(2) or "").ljust(9, "0")[:9]))
    timestamp = _timestamp()
    try:
        timestamp.FromJsonString(value)
    except ValueError as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"invalid timestamp {text!r}: {reason} (use RFC 3339 like 2026-11-29T13:00:00Z or "
                         "unix seconds like 1764421200.5)") from None
    if not 0 <= timestamp.seconds <= _MAX_SECONDS:
        raise ValueError(f"timestamp {text!r} is out of range")
    return timestamp


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
    return _timestamp(seconds, nanos)


def event_dict(event):
    """@return: an C{Event} as the JSON object C{ctr events --format json} prints (the proto's JSON names)."""
    return {
        "type": event.type,
        "id": event.id,
        "pid": event.pid,
        "status": event.status,
        "timestamp": format_timestamp(event.timestamp),
        "timestampNs": timestamp_ns(event.timestamp),
    }


def event_row(event):
    """@return: an C{Event} as a row of the events table; STATUS is shown for C{exit} events only."""
    status = event.status if event.type == "exit" else ""
    return [format_timestamp(event.timestamp), event.type, event.id, event.pid, status]


class _TimestampType(click.ParamType):
    name = "timestamp"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return parse_timestamp(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def follow(request, fmt, keep=lambda event: True):
    """
    Print the events of an C{EventsRequest}: a table (stored events only: aligned as a whole; else a row as
    each comes, columns widening for wider values) or JSON lines.

    @param keep: which events to print.
    @raise errors.ClientError: when a stream that should go on ends (the daemon went away).
    """
    stream = cli.api().Events(request)
    table = output.StreamTable(EVENT_HEADERS, EVENT_WIDTHS)
    rows = []
    try:
        if fmt == "table" and not request.storedOnly:
            click.echo(table.header())
        for event in stream:
            if not keep(event):
                continue
            if fmt == "json":
                output.print_json(event_dict(event))
            elif request.storedOnly:
                rows.append(event_row(event))
            else:
                click.echo(table.format(event_row(event)))
    except KeyboardInterrupt:
        stream.cancel()
        return
    except Exception as error:
        if errors.is_rpc_error(error) and errors.rpc_code(error) == "UNAVAILABLE":
            raise errors.ClientError(f"lost the connection to containerd at {cli.settings().address.display}: "
                                     f"{errors.describe_rpc_error(error)}") from None
        raise
    if request.storedOnly:
        if fmt == "table":
            for line in output.format_table(EVENT_HEADERS, rows, widths=EVENT_WIDTHS):
                click.echo(line)
        return
    raise errors.ClientError(f"the event stream ended: containerd at {cli.settings().address.display} "
                             "went away")


@click.command(
    epilog="""\b
Examples:
  ctr events                                   # follow all events
  ctr events --id web                          # only container web's
  ctr events --since 2026-11-29T13:00:00Z --stored-only
  ctr events --format json --since 2026-11-29T13:00:00.123456789Z

With --format json each line is one event; pass its "timestamp" back to --since to resume exactly after it.
If the daemon goes away, ctr says so in one line and exits with status 1.
"""
)
@click.option("--since", "--timestamp", "-t", "since", type=_TimestampType(),
              help="First replay the stored events newer than this (RFC 3339, or unix seconds with a fraction).")
@click.option("--id", "container_id", default="", shell_complete=cli.complete_container_id,
              help="Only this container's events.")
@click.option("--stored-only", is_flag=True, help="End after the stored events (needs --since).")
@cli.format_option()
def events(since, container_id, stored_only, fmt):
    """Print events as they happen, one line each (Ctrl-C ends)."""
    from containerd_tx.api import containerd_pb2

    if stored_only and since is None:
        raise click.UsageError("--stored-only needs --since")
    request = containerd_pb2.EventsRequest(id=container_id, storedOnly=stored_only)
    if since is not None:
        request.timestamp.CopyFrom(since)
    follow(request, fmt)


@click.command(
    epilog="""\b
Examples:
  ctr containers watch                 # every container's events from now on
  ctr containers watch web             # web's only
  ctr containers watch -o json web

As containerd 0.2's `ctr containers watch`: new events only, until Ctrl-C (see also `ctr events`).
""",
)
@cli.format_option()
@cli.container_id_argument(required=False)
def watch(fmt, container_id):
    """Print the events of container ID (of all containers without ID) as they happen."""
    from containerd_tx.api import containerd_pb2

    container_id = container_id or ""
    if container_id:
        cli.api().State(containerd_pb2.StateRequest(id=container_id))  # an unknown id fails here (NOT_FOUND)
    follow(containerd_pb2.EventsRequest(id=container_id), fmt)
