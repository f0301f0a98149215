# -*- test-case-name: tests.unit.test_ctr_update -*-
"""
C{ctr containers pause}, C{resume} and C{update}: a container's status and its cgroup limits.
"""

import click
import grpc

from containerd_tx.api import containerd_pb2
from ctr import cli, client, output

#: C{update}'s options: (option, UpdateResource field, click type, help). Sizes take 64m, 1g, 512k, bytes.
RESOURCE_OPTIONS = [
    ("--memory", "memoryLimit", "size", "Memory limit (e.g. 64m, 1g)."),
    ("--memory-swap", "memorySwap", "size", "Memory plus swap limit (at least --memory)."),
    ("--memory-reservation", "memoryReservation", "size", "Memory soft limit."),
    ("--kernel-memory", "kernelMemoryLimit", "size", "Kernel memory limit."),
    ("--cpu-shares", "cpuShares", "int", "CPU shares (relative weight, at least 2)."),
    ("--cpu-quota", "cpuQuota", "int", "CPU CFS quota in microseconds per period (at least 1000)."),
    ("--cpu-period", "cpuPeriod", "int", "CPU CFS period in microseconds (1000-1000000)."),
    ("--cpuset-cpus", "cpusetCpus", "list", "CPUs allowed (0-3, 0,1)."),
    ("--cpuset-mems", "cpusetMems", "list", "Memory nodes allowed (0-3, 0,1)."),
    ("--blkio-weight", "blkioWeight", "int", "Block IO weight (10-1000)."),
    ("--pids-limit", "pidsLimit", "int", "Maximum number of processes."),
]


class _PositiveSize(click.ParamType):
    """A size (L{output.parse_size}) above zero: zero would mean "unchanged" on the wire."""

    name = "size"

    def convert(self, value, param, ctx):
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
    stub = cli.api()
    failed = 0
    for container_id in container_ids:
        try:
            stub.UpdateContainer(containerd_pb2.UpdateContainerRequest(id=container_id, status=status))
        except grpc.RpcError as error:
            failed += 1
            if len(container_ids) == 1:
                raise
            cli.Failure(f"{container_id}: {client.describe_rpc_error(error)}").show()
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


def _resource_options(function):
    for flag, field, kind, text in reversed(RESOURCE_OPTIONS):
        metavar = {"size": "SIZE", "int": "N", "list": "LIST"}[kind]
        function = click.option(flag, field, type=_TYPES[kind], default=None, metavar=metavar,
                                help=text)(function)
    return function


@click.command(
    epilog="""\b
Examples:
  ctr containers update --memory 64m web
  ctr containers update --memory 1g --memory-swap 2g --cpu-shares 512 web
  ctr containers update --cpu-quota 50000 --cpu-period 100000 --cpuset-cpus 0,1 web
  ctr containers update --pids-limit 100 --blkio-weight 300 web

Sizes take a binary suffix: 512k, 64m, 1.5g (k=1024); a bare number is bytes. Limits not given are left
as they are.
""",
)
@_resource_options
@cli.container_id_argument()
def update(container_id, **resources):
    """Change the cgroup limits of the running container ID."""
    given = {field: value for field, value in resources.items() if value is not None}
    if not given:
        raise click.UsageError("nothing to update: give at least one limit (see --help)")
    cli.api().UpdateContainer(containerd_pb2.UpdateContainerRequest(
        id=container_id, resources=containerd_pb2.UpdateResource(**given)))
