# -*- test-case-name: tests.unit.test_ctr_stats -*-
"""
C{ctr containers stats}: live resource usage of containers, as C{docker stats} shows it.

Each frame compares two samples (StatsRequest → StatsResponse) taken L{INTERVAL} apart, so CPU % is known
from the first frame on:

  - CPU % = Δ cpu_usage.total_usage / Δ system_usage × online cpus × 100 (docker's formula), where online
    cpus is the number of per-cpu counters, else the machine's cpus from State. A daemon that sends no
    system_usage gets the wall-clock time between the samples × cpus instead.
  - MEM USAGE is the memory cgroup's usage without the inactive page cache (C{total_inactive_file}, or
    C{inactive_file} on cgroup v2), as docker shows it; LIMIT is the cgroup's limit, or the machine's memory
    when the cgroup has none (or a larger one).
  - NET I/O sums rx/tx bytes of every interface; BLOCK I/O sums the Read/Write entries of
    C{io_service_bytes_recursive}; PIDS is C{pids_stats.current}.
"""

import time

import click

from ctr import cli, errors, events, output

#: Seconds between two samples (and between two frames).
INTERVAL = 1.0

#: The columns of the table.
HEADERS = ["CONTAINER", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]

#: Cursor home, and clear the screen (the first frame on a terminal clears it all).
_HOME = "\033[H"
_CLEAR_SCREEN = "\033[2J"
_CLEAR_LINE = "\033[K"
_CLEAR_BELOW = "\033[J"


def online_cpus(response, machine_cpus=0):
    """@return: the cpus the container could use: its per-cpu counters, else the machine's, at least 1."""
    return len(response.cgroup_stats.cpu_stats.cpu_usage.percpu_usage) or machine_cpus or 1


def _stamped(response):
    return bool(response.timestamp.seconds or response.timestamp.nanos)


def cpu_percent(previous, current, cpus, elapsed_ns=0):
    """
    CPU % between two C{StatsResponse}s (docker's formula): Δ total_usage / Δ system_usage × cpus × 100;
    0.0 when a delta is not positive. When both samples lack system_usage, C{elapsed_ns} (wall-clock time
    between them) × cpus stands in for Δ system_usage.
    """
    before, after = previous.cgroup_stats.cpu_stats, current.cgroup_stats.cpu_stats
    cpu_delta = after.cpu_usage.total_usage - before.cpu_usage.total_usage
    if before.system_usage or after.system_usage:
        system_delta = after.system_usage - before.system_usage
    else:
        system_delta = elapsed_ns * cpus
    if system_delta <= 0 or cpu_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * cpus * 100.0


def memory_usage(response):
    """@return: the memory usage as docker shows it: usage less the inactive page cache."""
    memory = response.cgroup_stats.memory_stats
    usage = memory.usage.usage
    for key in ("total_inactive_file", "inactive_file"):
        if key in memory.stats:
            inactive = memory.stats[key]
            return usage - inactive if inactive < usage else usage
    return usage


def memory_limit(response, machine_memory=0):
    """@return: the cgroup's memory limit, or the machine's memory when it has none or a larger one."""
    limit = response.cgroup_stats.memory_stats.usage.limit
    if machine_memory and (limit == 0 or limit > machine_memory):
        return machine_memory
    return limit


def block_io(response):
    """@return: (read, written) bytes: the Read and Write entries of io_service_bytes_recursive, summed."""
    read = written = 0
    for entry in response.cgroup_stats.blkio_stats.io_service_bytes_recursive:
        op = entry.op.lower()
        if op == "read":
            read += entry.value
        elif op == "write":
            written += entry.value
    return read, written


def network_io(response):
    """@return: (received, sent) bytes summed over every interface."""
    return (sum(n.rx_bytes for n in response.network_stats), sum(n.Tx_bytes for n in response.network_stats))


def summarize(container_id, previous, current, machine=None, elapsed_ns=0):
    """
    One frame's numbers for one container: what the table shows and C{--format json} prints (keys as
    protobuf's json_format names the proto's fields; a limit that is not set is C{None}).

    @param previous: the earlier C{StatsResponse}, or C{None} (CPU % is then C{None}).
    @param current: the later C{StatsResponse}.
    @param machine: State's C{Machine} (cpus and memory), for the fallbacks.
    @param elapsed_ns: nanoseconds between the samples, used when they do not both carry timestamps.
    @return: a dict of plain numbers.
    """
    machine_cpus = machine.cpus if machine is not None else 0
    machine_memory = machine.memory if machine is not None else 0
    cpus = online_cpus(current, machine_cpus)
    taken_ns = events.timestamp_ns(current.timestamp) if _stamped(current) else time.time_ns()
    percent = None
    if previous is not None:
        if _stamped(previous) and _stamped(current):
            elapsed_ns = taken_ns - events.timestamp_ns(previous.timestamp)
        percent = cpu_percent(previous, current, cpus, elapsed_ns)
    cpu = current.cgroup_stats.cpu_stats
    memory = current.cgroup_stats.memory_stats
    usage, limit = memory_usage(current), memory_limit(current, machine_memory)
    rx, tx = network_io(current)
    read, written = block_io(current)
    pids = current.cgroup_stats.pids_stats
    seconds, nanos = divmod(taken_ns, 1_000_000_000)
    limit = output.limit_or_none(limit)
    return {
        "id": container_id,
        "timestamp": events.format_timestamp(_Stamp(seconds, nanos)),
        "timestampNs": taken_ns,
        "cpuPercent": percent,
        "cpu": {
            "totalUsage": cpu.cpu_usage.total_usage,
            "usageInKernelmode": cpu.cpu_usage.usage_in_kernelmode,
            "usageInUsermode": cpu.cpu_usage.usage_in_usermode,
            "systemUsage": cpu.system_usage,
            "onlineCpus": cpus,
            "throttledPeriods": cpu.throttling_data.throttled_periods,
            "throttledTime": cpu.throttling_data.throttled_time,
        },
        "memory": {
            "usage": usage,
            "limit": limit,
            "percent": usage / limit * 100.0 if limit else None,
            "rawUsage": memory.usage.usage,
            "maxUsage": memory.usage.max_usage,
            "cgroupLimit": output.limit_or_none(memory.usage.limit),
            "cache": memory.cache,
            "failcnt": memory.usage.failcnt,
        },
        "network": {
            "rxBytes": rx,
            "txBytes": tx,
            "interfaces": {n.name: {"rxBytes": n.rx_bytes, "txBytes": n.Tx_bytes} for n in current.network_stats},
        },
        "blockIo": {"read": read, "write": written},
        "pids": {"current": pids.current, "limit": output.limit_or_none(pids.limit)},
    }


class _Stamp:
    """A time as L{events.format_timestamp} reads it (seconds and nanos), without loading protobuf."""

    def __init__(self, seconds, nanos):
        self.seconds, self.nanos = seconds, nanos


def _percent(value):
    return "--" if value is None else f"{value:.2f}%"


def stats_row(summary):
    """@return: a L{summarize} dict as a row of the table ("unlimited" for a limit that is not set)."""
    memory, network, disk = summary["memory"], summary["network"], summary["blockIo"]
    return [
        summary["id"],
        _percent(summary["cpuPercent"]),
        f"{output.human_size(memory['usage'])} / {output.human_limit(memory['limit'])}",
        _percent(memory["percent"]),
        f"{output.human_size(network['rxBytes'])} / {output.human_size(network['txBytes'])}",
        f"{output.human_size(disk['read'])} / {output.human_size(disk['write'])}",
        summary["pids"]["current"],
    ]


class _Screen:
    """Where frames go: redrawn in place on a terminal, else one block after another (blank line between)."""

    def __init__(self, terminal):
        self.terminal = terminal
        self.frames = 0

    def show(self, lines):
        if self.terminal:
            start = _CLEAR_SCREEN + _HOME if self.frames == 0 else _HOME
            text = start + "".join(line + _CLEAR_LINE + "\n" for line in lines) + _CLEAR_BELOW
            click.echo(text, nl=False, color=True)  # color: click would strip the escapes off a non-tty
        else:
            if self.frames:
                click.echo("")
            for line in lines:
                click.echo(line)
        self.frames += 1


def _stats(stub, container_id):
    from containerd_tx.api import containerd_pb2

    try:
        return stub.Stats(containerd_pb2.StatsRequest(id=container_id))
    except Exception as error:
        if errors.is_rpc_error(error) and errors.rpc_code(error) == "UNIMPLEMENTED":
            raise errors.ClientError("the daemon does not serve Stats (UNIMPLEMENTED)") from None
        raise


def _gone(error):
    return errors.is_rpc_error(error) and errors.rpc_code(error) == "NOT_FOUND"


def running_ids(state):
    """@return: the ids of the running containers of a C{StateResponse}, sorted."""
    return sorted(c.id for c in state.containers if c.status == "running")


def watch(stub, container_ids, stream=True, fmt="table", terminal=False, sleep=time.sleep):
    """
    Sample the containers, then print a frame every L{INTERVAL} seconds (one frame unless C{stream}).

    With ids, an error on the first samples (an unknown container) is raised; a container that is gone
    later (NOT_FOUND) leaves the frames, and the command ends when none is left. Without ids (docker's
    C{stats}), every running container is shown: the list is read again for each frame, so containers that
    start join (from their second sample on) and containers that stop leave, and the command goes on.

    @param terminal: redraw in place (stdout is a terminal).
    @param sleep: C{time.sleep}, for tests.
    """
    from containerd_tx.api import containerd_pb2

    every = not container_ids
    state = stub.State(containerd_pb2.StateRequest())
    machine = state.machine
    ids = running_ids(state) if every else list(dict.fromkeys(container_ids))
    previous = {}
    for container_id in ids:
        try:
            previous[container_id] = (_stats(stub, container_id), time.monotonic_ns())
        except Exception as error:
            if not (every and _gone(error)):
                raise
    screen = _Screen(terminal and fmt == "table")
    widths = None  # columns only grow from frame to frame, so that they do not jump about
    while previous or every:
        sleep(INTERVAL)
        frame = []
        current = {}
        if every:
            ids = running_ids(stub.State(containerd_pb2.StateRequest()))
            previous.update({i: None for i in ids if i not in previous})
        for container_id, sampled in previous.items():
            if every and container_id not in ids:
                continue
            try:
                after = _stats(stub, container_id)
            except Exception as error:
                if _gone(error):
                    continue
                raise
            after_ns = time.monotonic_ns()
            current[container_id] = (after, after_ns)
            if sampled is not None:
                before, before_ns = sampled
                frame.append(summarize(container_id, before, after, machine, after_ns - before_ns))
        if fmt == "json":
            for summary in frame:
                output.print_json(summary)
        elif frame or every:
            rows = [stats_row(s) for s in frame]
            widths = output.column_widths(HEADERS, rows, widths)
            screen.show(output.format_table(HEADERS, rows, widths=widths))
        if not stream:
            return
        previous = current


@click.command(
    epilog="""\b
Examples:
  ctr containers stats                  # every running container
  ctr containers stats web db
  ctr containers stats --no-stream web
  ctr containers stats --format json web | jq .cpuPercent

CPU % compares two samples taken a second apart (docker's formula: Δ container cpu time / Δ host cpu time
× cpus × 100), so the first frame appears after a second; --no-stream prints that one frame. On a terminal
the table is redrawn in place (its columns only grow); otherwise each frame follows the last after a blank
line. --format json
prints one object per container per frame with the raw numbers (a limit not set is null). MEM USAGE
leaves out the inactive page cache; LIMIT is the machine's memory when the container has no lower limit.
Without ids, every running container is shown, and containers that start or stop join or leave. Ctrl-C
ends.
""",
)
@click.option("--no-stream", is_flag=True, help="Print one frame and exit.")
@cli.format_option()
@cli.container_id_argument("container_ids", nargs=-1, required=False, metavar="[ID...]")
def stats(no_stream, fmt, container_ids):
    """Show live resource usage of running containers (all of them without ids)."""
    stub = cli.api()
    try:
        watch(stub, container_ids, stream=not no_stream, fmt=fmt,
              terminal=output.is_terminal(click.get_text_stream("stdout")))
    except KeyboardInterrupt:
        pass
