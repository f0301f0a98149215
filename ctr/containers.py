# -*- test-case-name: tests.unit.test_ctr_cli -*-
"""
C{ctr containers}: list, start, signal, exec into, pause, resume, update and watch containers.
"""

import json
import os

import click

from ctr import cli, output
from ctr.events import watch
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


#: What C{--filter} takes: KEY=VALUE with these keys.
FILTER_KEYS = ("id", "label", "status")

#: The statuses a container may have.
STATUSES = ("running", "paused", "stopped")


def parse_filters(ctx, param, values):
    """
    Click callback for C{--filter KEY=VALUE} (docker's): C{label=KEY}, C{label=KEY=VALUE}, C{status=STATUS},
    C{id=PREFIX}. @return: a dict of key -> list of values.
    """
    filters = {}
    for value in values:
        key, equals, wanted = value.partition("=")
        if not equals or key not in FILTER_KEYS or not wanted:
            raise click.BadParameter(
                f"{value!r} is not a filter (use {', '.join(k + '=...' for k in FILTER_KEYS)})", ctx, param)
        if key == "status" and wanted not in STATUSES:
            raise click.BadParameter(f"unknown status {wanted!r} (use {', '.join(STATUSES)})", ctx, param)
        filters.setdefault(key, []).append(wanted)
    return filters


def _label_matches(container, wanted):
    if "=" in wanted:
        return wanted in container.labels
    return any(label.split("=", 1)[0] == wanted for label in container.labels)


def matches(container, filters):
    """
    @return: whether a C{Container} passes C{filters} (L{parse_filters}): values of one key are alternatives,
        different keys must all match (as docker's --filter).
    """
    tests = {
        "id": lambda wanted: container.id.startswith(wanted),
        "label": lambda wanted: _label_matches(container, wanted),
        "status": lambda wanted: container.status == wanted,
    }
    return all(any(tests[key](wanted) for wanted in values) for key, values in filters.items())


def _complete_filter(ctx, param, incomplete):
    return [f"{key}=" for key in FILTER_KEYS if f"{key}=".startswith(incomplete)] + [
        f"status={status}" for status in STATUSES if f"status={status}".startswith(incomplete)]


def _list_options(function):
    function = cli.format_option()(function)
    function = click.option("--filter", "-f", "filters", multiple=True, callback=parse_filters,
                            metavar="KEY=VALUE", shell_complete=_complete_filter,
                            help="Only containers with label=KEY[=VALUE], status=running|paused|stopped or "
                                 "id=PREFIX (repeatable: values of one key are alternatives, keys must all "
                                 "match).")(function)
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
  ctr containers exec -a -t web -- sh
  ctr containers kill -s KILL web
  ctr containers stats
  ctr containers wait web
  ctr containers --filter label=app=web -q
""",
)
@_list_options
@click.pass_context
def containers(ctx, verbose, quiet, filters, fmt):
    """List, start, exec into, pause and watch containers."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_containers, verbose=verbose, quiet=quiet, filters=filters, fmt=fmt)
    elif verbose or quiet or filters or fmt != "table":
        raise click.UsageError("list options go after 'list': ctr containers list [OPTIONS]")


@containers.command(
    "list",
    epilog="""\b
Examples:
  ctr containers list
  ctr containers ls -q
  ctr containers list -o json                      # one JSON object per line, one line per container
  ctr containers list --filter status=running --filter label=app=web
""",
)
@_list_options
def list_containers(verbose, quiet, filters, fmt):
    """List containers: ID, PATH, STATUS, PID1 (alias: ls)."""
    from containerd_tx.api import containerd_pb2

    found = [c for c in sorted_containers(cli.api().State(containerd_pb2.StateRequest())) if matches(c, filters)]
    if quiet:
        for container in found:
            click.echo(container.id)
    elif fmt == "json":
        for container in found:
            output.print_json(container_dict(container))
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
@click.option("--label", "-l", "labels", multiple=True, callback=cli.key_values, metavar="KEY=VALUE",
              help="Add a label.")
@click.option("--runtime", "-r", default="", help="OCI runtime binary (default: the daemon's).")
@click.option("--runtime-args", "runtime_args", multiple=True, metavar="ARG",
              help="Global runtime flag, before the subcommand (repeatable).")
@click.option("--no-pivot", is_flag=True, help="Do not use pivot_root (for ramdisks).")
@click.option("--checkpoint", "-c", default="", metavar="NAME", help="Restore from this checkpoint.",
              shell_complete=lambda ctx, param, incomplete: local_checkpoints(ctx, incomplete))
@click.option("--checkpoint-dir", default="", metavar="DIR",
              help="Where the checkpoint is (default: BUNDLE/checkpoints).")
@click.argument("container_id", metavar="ID")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.pass_context
def start(ctx, attach, labels, runtime, runtime_args, no_pivot, checkpoint, checkpoint_dir, container_id, bundle):
    """Create and start container ID from the OCI bundle directory BUNDLE."""
    from containerd_tx.api import containerd_pb2

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

    from ctr import stdio

    status = stdio.attach(stub, container_id, "init", create, tty=bundle_terminal(request.bundlePath))
    ctx.exit(stdio.exit_status(status))


def local_checkpoints(ctx, incomplete):
    """
    Completion of C{start --checkpoint}: the checkpoints in C{--checkpoint-dir}, else in BUNDLE/checkpoints
    (read from the directory: the container does not exist yet, so the daemon cannot be asked).
    """
    params = dict(ctx.params)
    if not params.get("bundle"):
        params.update(cli.typed_params(ctx))
    directory = params.get("checkpoint_dir")
    if not directory and params.get("bundle"):
        directory = os.path.join(params["bundle"], "checkpoints")
    if not directory:
        return []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(name for name in names
                  if name.startswith(incomplete) and os.path.isdir(os.path.join(directory, name)))


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
@click.option("--pid", "-p", default="init", show_default=True, shell_complete=cli.complete_process_id,
              help="Process id in the container.")
@cli.container_id_argument()
def kill(signum, pid, container_id):
    """Send a signal to a process of container ID."""
    from containerd_tx.api import containerd_pb2

    cli.api().Signal(containerd_pb2.SignalRequest(id=container_id, pid=pid, signal=signum))


for _command in (exec_command, pause, resume, update, stats, wait, watch):
    containers.add_command(_command)
