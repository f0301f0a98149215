# -*- test-case-name: tests.unit.test_ctr_checkpoints -*-
"""
C{ctr checkpoints}: list, create and delete a container's CRIU checkpoints.

C{ctr checkpoints ID} is short for C{ctr checkpoints list ID}. Restoring is C{ctr containers start
--checkpoint NAME}.
"""

import os

import click
from click.shell_completion import CompletionItem

from ctr import cli, output

#: The columns of C{ctr checkpoints list}, as the original ctr printed them.
HEADERS = ["NAME", "TCP", "UNIX SOCKETS", "SHELL"]

#: Namespaces C{--empty-ns} takes.
NAMESPACES = ("network", "pid", "ipc", "uts", "mount", "user", "cgroup")


def _bool(value):
    return "true" if value else "false"


def checkpoint_dict(checkpoint):
    """@return: a C{Checkpoint} as the JSON object C{ctr checkpoints list --format json} prints."""
    return {
        "name": checkpoint.name,
        "exit": checkpoint.exit,
        "tcp": checkpoint.tcp,
        "unixSockets": checkpoint.unixSockets,
        "shell": checkpoint.shell,
        "emptyNS": list(checkpoint.emptyNS),
    }


def checkpoint_row(checkpoint):
    """@return: a C{Checkpoint} as a row of the checkpoints table."""
    return [checkpoint.name, _bool(checkpoint.tcp), _bool(checkpoint.unixSockets), _bool(checkpoint.shell)]


def _absolute(directory):
    return os.path.abspath(directory) if directory else ""


def _checkpoint_dir_option(function):
    return click.option("--checkpoint-dir", default=None, metavar="DIR",
                        help="Where checkpoints are kept (default: the container's BUNDLE/checkpoints).")(function)


def _inherited(ctx, name, value, default=None):
    """A subcommand's option, else the same option given to the group (C{ctr checkpoints --x V list})."""
    if value is not None:
        return value
    parent = ctx.parent.params.get(name) if ctx.parent is not None else None
    return parent if parent is not None else default


def complete_checkpoint_name(ctx, param, incomplete):
    """A C{shell_complete} callback: the names of the checkpoints of the container already given."""
    container_id = ctx.params.get("container_id")
    if not container_id:
        return []
    directory = _absolute(_inherited(ctx, "checkpoint_dir", ctx.params.get("checkpoint_dir"), ""))

    def call(api):
        from containerd_tx.api import containerd_pb2

        return api.ListCheckpoint(containerd_pb2.ListCheckpointRequest(id=container_id, checkpointDir=directory),
                                  timeout=cli.COMPLETION_TIMEOUT)

    reply = cli.quiet_call(ctx, call)
    if reply is None:
        return []
    return sorted(c.name for c in reply.checkpoints if c.name.startswith(incomplete))


class _CheckpointsGroup(cli.AliasGroup):
    """The group: C{ctr checkpoints ID} (an argument that is no command) means C{ctr checkpoints list ID}."""

    aliases = {"ls": "list", "rm": "delete"}

    def resolve_command(self, ctx, args):
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            return "list", self.get_command(ctx, "list"), args
        return super().resolve_command(ctx, args)

    def shell_complete(self, ctx, incomplete):
        """The commands, and (for the C{ctr checkpoints ID} shorthand) container ids."""
        items = super().shell_complete(ctx, incomplete)
        if not incomplete.startswith("-"):
            items += [CompletionItem(i) for i in cli.complete_container_id(ctx, None, incomplete)]
        return items


@click.group(
    cls=_CheckpointsGroup,
    epilog="""\b
Examples:
  ctr checkpoints web                           # same as: ctr checkpoints list web
  ctr checkpoints create --exit web before-upgrade
  ctr checkpoints list --checkpoint-dir /var/lib/ckpt -o json web
  ctr containers start -c before-upgrade web2 /srv/bundles/web    # restore as a new container
  ctr checkpoints delete web before-upgrade
""",
)
@_checkpoint_dir_option
@click.option("--format", "-o", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Output format of the list.  [default: table]")
def checkpoints(checkpoint_dir, fmt):
    """List, create and delete checkpoints (ID alone: list them)."""


@checkpoints.command(
    "list",
    epilog="""\b
Examples:
  ctr checkpoints list web
  ctr checkpoints ls --checkpoint-dir /var/lib/ckpt web
  ctr checkpoints list -o json web
""",
)
@_checkpoint_dir_option
@click.option("--format", "-o", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Output format.  [default: table]")
@cli.container_id_argument()
@click.pass_context
def list_checkpoints(ctx, checkpoint_dir, fmt, container_id):
    """List the checkpoints of container ID (alias: ls)."""
    from containerd_tx.api import containerd_pb2

    directory = _inherited(ctx, "checkpoint_dir", checkpoint_dir, "")
    fmt = _inherited(ctx, "fmt", fmt, "table")
    reply = cli.api().ListCheckpoint(containerd_pb2.ListCheckpointRequest(
        id=container_id, checkpointDir=_absolute(directory)))
    found = sorted(reply.checkpoints, key=lambda c: c.name)
    if fmt == "json":
        for checkpoint in found:
            output.print_json(checkpoint_dict(checkpoint))
    else:
        output.print_table(HEADERS, [checkpoint_row(c) for c in found])


def _no_format(ctx):
    if ctx.parent is not None and ctx.parent.params.get("fmt") is not None:
        raise click.UsageError(f"--format only applies to 'list', not '{ctx.info_name}'", ctx)


@checkpoints.command(
    epilog="""\b
Examples:
  ctr checkpoints create web snap
  ctr checkpoints create --exit web before-migration          # stops web afterwards
  ctr checkpoints create --tcp --unix-sockets --checkpoint-dir /var/lib/ckpt web snap

CRIU may take several seconds; on a terminal, a progress line is shown on stderr meanwhile. Prints nothing
on success.
""",
)
@click.option("--tcp", is_flag=True, help="Checkpoint established TCP connections.")
@click.option("--unix-sockets", is_flag=True, help="Checkpoint external unix sockets.")
@click.option("--shell", is_flag=True, help="Allow a shell job (a process attached to a terminal).")
@click.option("--exit", "exit_", is_flag=True, help="Stop the container after the checkpoint.")
@click.option("--empty-ns", "empty_ns", multiple=True, type=click.Choice(NAMESPACES), metavar="NS",
              help=f"Do not checkpoint this namespace; restore into a fresh one ({', '.join(NAMESPACES)}; "
                   "repeatable).")
@_checkpoint_dir_option
@cli.container_id_argument()
@click.argument("name")
@click.pass_context
def create(ctx, tcp, unix_sockets, shell, exit_, empty_ns, checkpoint_dir, container_id, name):
    """Checkpoint container ID as NAME."""
    from containerd_tx.api import containerd_pb2

    _no_format(ctx)
    directory = _inherited(ctx, "checkpoint_dir", checkpoint_dir, "")
    request = containerd_pb2.CreateCheckpointRequest(
        id=container_id,
        checkpoint=containerd_pb2.Checkpoint(name=name, exit=exit_, tcp=tcp, unixSockets=unix_sockets,
                                             shell=shell, emptyNS=list(empty_ns)),
        checkpointDir=_absolute(directory),
    )
    stub = cli.api()
    with output.progress(f"checkpointing {container_id}…"):
        stub.CreateCheckpoint(request)


@checkpoints.command(
    epilog="""\b
Examples:
  ctr checkpoints delete web snap
  ctr checkpoints rm --checkpoint-dir /var/lib/ckpt web snap
""",
)
@_checkpoint_dir_option
@cli.container_id_argument()
@click.argument("name", shell_complete=complete_checkpoint_name)
@click.pass_context
def delete(ctx, checkpoint_dir, container_id, name):
    """Delete checkpoint NAME of container ID (alias: rm)."""
    from containerd_tx.api import containerd_pb2

    _no_format(ctx)
    directory = _inherited(ctx, "checkpoint_dir", checkpoint_dir, "")
    cli.api().DeleteCheckpoint(containerd_pb2.DeleteCheckpointRequest(
        id=container_id, name=name, checkpointDir=_absolute(directory)))
