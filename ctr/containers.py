# -*- test-case-name: tests.unit.test_ctr_cli -*-
"""
C{ctr containers}: list, start, signal, exec into, pause, resume, update and watch containers.
"""

import json
import os

import click

from containerd_tx.api import containerd_pb2
from ctr import cli, output, stdio
from ctr.execute import exec_command
from ctr.signals import SIGNAL
from ctr.stats import stats
from ctr.update import pause, resume, update
from ctr.wait import wait

#: The columns of C{ctr containers list}; C{--verbose} adds LABELS.
HEADERS = ["ID", "PATH", "STATUS", "PID1"]


def pid1(container):
    """@return: the host pid of the container's C{init} process, or C{None} if it has none."""
    for process in container.processes:
        if process.pid == "init":
            return process.systemPid
    return None


def process_dict(process):
    """@return: a C{Process} as JSON."""
    return {
        "pid": process.pid,
        "systemPid": process.systemPid,
        "args": list(process.args),
        "terminal": process.terminal,
        "cwd": process.cwd,
    }


def container_dict(container):
    """@return: a C{Container} as the JSON object C{ctr containers list --format json} prints."""
    return {
        "id": container.id,
        "bundlePath": container.bundlePath,
        "status": container.status,
        "pid1": pid1(container),
        "labels": list(container.labels),
        "runtime": container.runtime,
        "processes": [process_dict(p) for p in container.processes],
    }


def container_row(container, verbose=False):
    """@return: a C{Container} as a row of the containers table."""
    found = pid1(container)
    row = [container.id, container.bundlePath, container.status, "-" if found is None else found]
    if verbose:
        row.append(",".join(container.labels))
    return row


def sorted_containers(state):
    """@return: the containers of a C{StateResponse}, by id."""
    return sorted(state.containers, key=lambda c: c.id)


def _list_options(function):
    function = cli.format_option()(function)
    function = click.option("--quiet", "-q", is_flag=True, help="Print container ids only.")(function)
    return click.option("--verbose", "-v", is_flag=True, help="Add a LABELS column.")(function)


class _ContainersGroup(cli.AliasGroup):
    aliases = {"ls": "list"}


@click.group(
    cls=_ContainersGroup,
    invoke_without_command=True,
    epilog="""\b
Examples:
  ctr containers                      # same as: ctr containers list
  ctr containers start -a web /srv/bundles/web
  ctr containers exec --id web -a -t -- sh
  ctr containers kill -s KILL web
  ctr containers stats web
  ctr containers wait web
""",
)
@_list_options
@click.pass_context
def containers(ctx, verbose, quiet, fmt):
    """List, start, exec into, pause and watch containers."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_containers, verbose=verbose, quiet=quiet, fmt=fmt)
    elif verbose or quiet or fmt != "table":
        raise click.UsageError("list options go after 'list': ctr containers list [OPTIONS]")


@containers.command(
    "list",
    epilog="""\b
Examples:
  ctr containers list
  ctr containers ls -q
  ctr containers list -o json
""",
)
@_list_options
def list_containers(verbose, quiet, fmt):
    """List containers: ID, PATH, STATUS, PID1 (alias: ls)."""
    found = sorted_containers(cli.api().State(containerd_pb2.StateRequest()))
    if quiet:
        for container in found:
            click.echo(container.id)
    elif fmt == "json":
        output.print_json([container_dict(c) for c in found])
    else:
        headers = HEADERS + (["LABELS"] if verbose else [])
        output.print_table(headers, [container_row(c, verbose) for c in found])


def bundle_terminal(bundle):
    """
    @return: whether the bundle's config.json asks for a terminal (C{process.terminal}); C{False} if it
        cannot be read (the daemon then reports what is wrong with the bundle).
    """
    try:
        with open(os.path.join(bundle, "config.json"), encoding="utf-8") as config:
            return bool(json.load(config).get("process", {}).get("terminal", False))
    except (OSError, ValueError, AttributeError):
        return False


@containers.command(
    epilog="""\b
Examples:
  ctr containers start web /srv/bundles/web
  ctr containers start --attach --label app=web web ./bundle
  ctr containers start -c before-upgrade --checkpoint-dir /var/lib/ckpt web ./bundle

Without --attach the command returns once the container runs and prints nothing; with --attach it exits
with the container's exit status.
""",
)
@click.option("--attach", "-a", is_flag=True, help="Connect stdio and wait for the container to exit.")
@click.option("--label", "labels", multiple=True, callback=cli.key_values, metavar="KEY=VALUE", help="Add a label.")
@click.option("--runtime", default="", help="OCI runtime binary (default: the daemon's).")
@click.option("--runtime-args", "runtime_args", multiple=True, metavar="ARG",
              help="Global runtime flag, before the subcommand (repeatable).")
@click.option("--no-pivot", is_flag=True, help="Do not use pivot_root (for ramdisks).")
@click.option("--checkpoint", "-c", default="", metavar="NAME", help="Restore from this checkpoint.")
@click.option("--checkpoint-dir", default="", metavar="DIR",
              help="Where the checkpoint is (default: BUNDLE/checkpoints).")
@click.argument("container_id", metavar="ID")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.pass_context
def start(ctx, attach, labels, runtime, runtime_args, no_pivot, checkpoint, checkpoint_dir, container_id, bundle):
    """Create and start container ID from the OCI bundle directory BUNDLE."""
    request = containerd_pb2.CreateContainerRequest(
        id=container_id,
        bundlePath=os.path.abspath(bundle),
        checkpoint=checkpoint,
        checkpointDir=os.path.abspath(checkpoint_dir) if checkpoint_dir else "",
        labels=labels,
        noPivotRoot=no_pivot,
        runtime=runtime,
        runtimeArgs=runtime_args,
    )
    stub = cli.api()
    if not attach:
        stub.CreateContainer(request)
        return

    def create(stdin, stdout, stderr):
        request.stdin, request.stdout, request.stderr = stdin, stdout, stderr
        stub.CreateContainer(request)

    status = stdio.attach(stub, container_id, "init", create, tty=bundle_terminal(request.bundlePath))
    ctx.exit(status if status <= 255 else 255)


@containers.command(
    epilog="""\b
Examples:
  ctr containers kill web               # SIGTERM to init
  ctr containers kill -s KILL web
  ctr containers kill -s 1 -p worker web
""",
)
@click.option("--signal", "-s", "signum", type=SIGNAL, default="TERM", show_default=True,
              help="Signal name (KILL, SIGKILL, kill) or number (9).")
@click.option("--pid", "-p", default="init", show_default=True, help="Process id in the container.")
@cli.container_id_argument()
def kill(signum, pid, container_id):
    """Send a signal to a process of container ID."""
    cli.api().Signal(containerd_pb2.SignalRequest(id=container_id, pid=pid, signal=signum))


for _command in (exec_command, pause, resume, update, stats, wait):
    containers.add_command(_command)
