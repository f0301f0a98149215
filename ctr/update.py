# -*- test-case-name: tests.unit.test_ctr_update -*-
"""
C{ctr containers pause}, C{resume} and C{update}: a container's status and its cgroup limits.
"""

import re

import click

from ctr import cli, errors, output

#: C{update}'s options: (options, UpdateResource field, click type, help). Sizes take 64m, 1g, 512k, bytes.
#: The second name of an option, where there is one, is containerd 0.2's ctr's.
RESOURCE_OPTIONS = [
    (("--memory", "--memory-limit"), "memoryLimit", "size", "Memory limit (e.g. 64m, 1g)."),
    ("--memory-swap", "memorySwap", "size", "Memory plus swap limit (at least --memory)."),
    ("--memory-reservation", "memoryReservation", "size", "Memory soft limit."),
    (("--kernel-memory", "--kernel-limit"), "kernelMemoryLimit", "size", "Kernel memory limit."),
    (("--kernel-memory-tcp", "--kernel-tcp-limit"), "kernelTCPMemoryLimit", "size",
     "Kernel TCP buffer memory limit."),
    ("--cpu-shares", "cpuShares", "int", "CPU shares (relative weight, at least 2)."),
    ("--cpu-quota", "cpuQuota", "int", "CPU CFS quota in microseconds per period (at least 1000)."),
    ("--cpu-period", "cpuPeriod", "int", "CPU CFS period in microseconds (1000-1000000)."),
    ("--cpuset-cpus", "cpusetCpus", "list", "CPUs allowed (0-3, 0,1)."),
    ("--cpuset-mems", "cpusetMems", "list", "Memory nodes allowed (0-3, 0,1)."),
    ("--blkio-weight", "blkioWeight", "int", "Block IO weight (10-1000)."),
    ("--pids-limit", "pidsLimit", "int", "Maximum number of processes."),
]


class _PositiveSize(click.ParamType):
    """
    A size (L{output.parse_size}) above zero: zero would mean "unchanged" on the wire. What the user typed
    is kept in C{ctx.meta["typed"]}, so that the daemon's errors can be told in the user's units.
    """

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and ctx is not None and param is not None:
            ctx.meta.setdefault("typed", {})[param.name] = value
        size = output.SIZE.convert(value, param, ctx)
        if size <= 0:
            self.fail("must be more than zero", param, ctx)
        return size


class _PositiveInt(click.ParamType):
    """An integer above zero (zero would mean "unchanged" on the wire)."""

    name = "integer"

    def convert(self, value, param, ctx):
        number = click.INT.convert(value, param, ctx)
        if not 0 < number <= 2 ** 62:
            self.fail(f"{number} is not a positive number", param, ctx)
        return number


_TYPES = {
    "size": _PositiveSize(),
    "int": _PositiveInt(),
    "list": click.STRING,
}


def _set_status(container_ids, status):
    """
    UpdateContainer(status) for each id in turn. A failure is printed as one line and the others are still
    tried; the command then fails (exit 1).
    """
    from containerd_tx.api import containerd_pb2

    stub = cli.api()
    failed = 0
    for container_id in container_ids:
        try:
            stub.UpdateContainer(containerd_pb2.UpdateContainerRequest(id=container_id, status=status))
        except Exception as error:
            if not errors.is_rpc_error(error):
                raise
            failed += 1
            if len(container_ids) == 1:
                raise
            cli.Failure(f"{container_id}: {errors.describe_rpc_error(error)}").show()
    if failed:
        raise click.exceptions.Exit(1)


@click.command(
    epilog="""\b
Examples:
  ctr containers pause web
  ctr containers pause web db

Every process of the container is frozen (its status becomes "paused") until `ctr containers resume`.
""",
)
@cli.container_id_argument("container_ids", nargs=-1, required=True, metavar="ID...")
def pause(container_ids):
    """Pause containers: freeze all their processes."""
    _set_status(container_ids, "paused")


@click.command(
    epilog="""\b
Examples:
  ctr containers resume web
""",
)
@cli.container_id_argument("container_ids", nargs=-1, required=True, metavar="ID...")
def resume(container_ids):
    """Resume paused containers."""
    _set_status(container_ids, "running")


def _flags(flags):
    return (flags,) if isinstance(flags, str) else tuple(flags)


def _resource_options(function):
    for flags, field, kind, text in reversed(RESOURCE_OPTIONS):
        metavar = {"size": "SIZE", "int": "N", "list": "LIST"}[kind]
        function = click.option(*_flags(flags), field, type=_TYPES[kind], default=None, metavar=metavar,
                                help=text)(function)
    return function


class _UpdateCommand(click.Command):
    """Keeps the arguments as typed (C{ctx.meta["args"]}), so that errors can name the flags the user used."""

    def parse_args(self, ctx, args):
        ctx.meta["args"] = list(args)
        return super().parse_args(ctx, args)


def _snake(name):
    return re.sub(r"(?<=[a-z])([A-Z]+)", lambda m: "_" + m.group(1).lower(), name)


def typed_flag(args, flags):
    """@return: the one of C{flags} that C{args} (as typed) used last, else the first."""
    used = [a.split("=", 1)[0] for a in args if a.split("=", 1)[0] in flags]
    return used[-1] if used else flags[0]


def size_like(number, typed):
    """
    Write a byte count in the unit of a size as the user typed it: C{4194304} like C{"1m"} is C{"4m"}; like
    C{"1000"} (bytes) it stays C{"4194304"}. When the number is no whole count of that unit, the largest unit
    it is a whole count of is used.
    """
    match = re.match(r"^\s*[\d.]+\s*([kmgtp]?)(i?b)?\s*$", typed or "", re.IGNORECASE)
    suffix = match.group(1) if match else ""
    units = [(s, output._SIZE_UNITS[s.lower()]) for s in "PTGMK" if s.lower() in output._SIZE_UNITS]
    unit = output._SIZE_UNITS[suffix.lower()]
    if not suffix or number % unit == 0:
        return f"{number // unit}{suffix}" if suffix else str(number)
    for name, size in units:
        if number % size == 0 and size < unit:
            return f"{number // size}{name.lower() if suffix.islower() else name}"
    return str(number)


def in_user_words(message, given, args, typed):
    """
    Rewrite the daemon's error about an update in the user's words: wire names (C{memoryLimit},
    C{cpuset_cpus}) become the flags typed (C{--memory}, or containerd 0.2's C{--memory-limit}), and byte
    counts are written in the unit the user gave the size in.

    @param given: the UpdateResource fields sent.
    @param args: the command's arguments as typed.
    @param typed: option name -> the text typed, for sizes.
    """
    flags = {field: typed_flag(args, _flags(option)) for option, field, _, _ in RESOURCE_OPTIONS}
    kinds = {field: kind for _, field, kind, _ in RESOURCE_OPTIONS}
    named = [field for field in flags if re.search(rf"\b({field}|{_snake(field)})\b", message)]
    for field in sorted(named, key=len, reverse=True):
        message = re.sub(rf"\b({field}|{_snake(field)})\b", flags[field], message)
    sizes = [field for field in named if kinds[field] == "size"]
    if sizes and all(kinds[field] == "size" for field in named):
        like = typed.get(sizes[0]) or next((typed[f] for f in sizes if typed.get(f)), "")
        message = re.sub(r"\b\d{4,}\b", lambda m: size_like(int(m.group(0)), like), message)
    return message


@click.command(
    cls=_UpdateCommand,
    epilog="""\b
Examples:
  ctr containers update --memory 64m web
  ctr containers update --memory 1g --memory-swap 2g --cpu-shares 512 web
  ctr containers update --cpu-quota 50000 --cpu-period 100000 --cpuset-cpus 0,1 web
  ctr containers update --pids-limit 100 --blkio-weight 300 web

Sizes take a binary suffix: 512k, 64m, 1.5g (k=1024); a bare number is bytes. Limits not given are left
as they are. containerd 0.2's names are taken too: --memory-limit, --kernel-limit, --kernel-tcp-limit.
""",
)
@_resource_options
@cli.container_id_argument()
@click.pass_context
def update(ctx, container_id, **resources):
    """Change the cgroup limits of the running container ID."""
    from containerd_tx.api import containerd_pb2

    given = {field: value for field, value in resources.items() if value is not None}
    if not given:
        raise click.UsageError("nothing to update: give at least one limit (see --help)")
    stub = cli.api()
    try:
        stub.UpdateContainer(containerd_pb2.UpdateContainerRequest(
            id=container_id, resources=containerd_pb2.UpdateResource(**given)))
    except Exception as error:
        if errors.is_rpc_error(error) and errors.rpc_code(error) == "INVALID_ARGUMENT":
            message = in_user_words(errors.describe_rpc_error(error), given, ctx.meta.get("args", []),
                                    ctx.meta.get("typed", {}))
            raise errors.ClientError(message) from None
        raise
