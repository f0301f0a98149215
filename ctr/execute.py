# -*- test-case-name: tests.unit.test_ctr_exec -*-
"""
C{ctr containers exec}: run a new process in a running container, detached or attached.
"""

import json
import os
import secrets

import click

from ctr import cli


def generated_process_id():
    """@return: a fresh process id, C{exec-} and six hex digits (e.g. C{exec-3fa91c})."""
    return f"exec-{secrets.token_hex(3)}"


class _IdType(click.ParamType):
    """A user or group id: 0 to 2**32-1."""

    name = "id"

    def convert(self, value, param, ctx):
        number = click.INT.convert(value, param, ctx)
        if not 0 <= number < 2 ** 32:
            self.fail(f"{number} is not a user or group id (0-4294967295)", param, ctx)
        return number


_ID = _IdType()


def bundle_env(bundle):
    """
    @return: C{process.env} of the bundle's config.json, or C{None} if it cannot be read.
    """
    try:
        with open(os.path.join(bundle, "config.json"), encoding="utf-8") as config:
            env = json.load(config)["process"].get("env") or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return [entry for entry in env if isinstance(entry, str)]


def merge_env(base, extra):
    """
    @return: C{base} (KEY=VALUE entries) with C{extra}'s entries added; an C{extra} entry replaces the
        C{base} entry of the same KEY in place, and new keys follow in their order.
    """
    merged = {}
    for entry in list(base) + list(extra):
        merged[entry.split("=", 1)[0]] = entry
    return list(merged.values())


def exec_env(stub, container_id, extra):
    """
    The environment to send: none (the daemon then uses the container's) when C{extra} is empty, else the
    container's environment, read from its bundle, with C{extra} on top. (AddProcess replaces the
    container's environment with the one it is given, which would lose C{PATH}.) When the bundle cannot be
    read, C{extra} alone is sent.
    """
    if not extra:
        return []
    from containerd_tx.api import containerd_pb2

    found = stub.State(containerd_pb2.StateRequest(id=container_id)).containers
    base = bundle_env(found[0].bundlePath) if found else None
    return merge_env(base or [], extra)


def split_args(container_id, args):
    """
    The container and the command of C{exec}: C{--id ID ARGS...}, or C{ID [--] ARGS...}.

    @return: C{(container_id, args)}.
    @raise click.UsageError: when the container or the command is missing.
    """
    args = list(args)
    if container_id is None:
        if args[:1] == ["--"]:
            args.pop(0)
        if args[1:2] == ["--"]:
            del args[1]
        if len(args) < 2:
            raise click.UsageError("missing the container or the command: ctr containers exec ID -- ARGS... "
                                   "(or --id ID -- ARGS...)")
        return args[0], args[1:]
    if args[:1] == ["--"]:
        args.pop(0)
    if not args:
        raise click.UsageError("missing the command to run: ctr containers exec --id ID -- ARGS...")
    return container_id, args


def _complete_args(ctx, param, incomplete):
    """The container id, when it is the first argument still to come (no --id)."""
    if ctx.params.get("container_id") is None and not ctx.params.get("args"):
        return cli.complete_container_id(ctx, param, incomplete)
    return []


@click.command(
    "exec",
    context_settings={"allow_interspersed_args": False},
    epilog="""\b
Examples:
  ctr containers exec web -- ls -l /
  ctr containers exec -a web -- sh -c 'id -u; exit 4'; echo $?      # 0, then 4
  ctr containers exec -a -t web -- sh                            # an interactive shell
  ctr containers exec --id web --pid backup -u 1000 --cwd /tmp --env FOO=bar -- tar cf x.tar .

The container is the first argument, or --id ID (containerd 0.2's form) with ARGS alone.

Without --attach the process runs in the background with its stdio on /dev/null, and its process id is
printed (for `ctr containers kill -p`): the --pid given, else a generated one like "exec-3fa91c". With --attach, stdin,
stdout and stderr are connected and ctr exits with the process's exit status; with --tty as well, a local
terminal is put in raw mode (restored on exit) and the process's terminal follows its size.
--env entries are added to the container's environment (the bundle's process.env).
""",
)
@click.option("--id", "container_id", default=None, metavar="ID", shell_complete=cli.complete_container_id,
              help="The container to run the process in (else the first argument).")
@click.option("--pid", "process_id", default=None, metavar="NAME",
              help="Process id in the container (default: exec-<6 hex digits>).")
@click.option("--attach", "-a", is_flag=True, help="Connect stdio and wait for the process to exit.")
@click.option("--tty", "-t", is_flag=True, help="Give the process a terminal.")
@click.option("--cwd", default="", metavar="DIR", help="Working directory (absolute; default: the container's).")
@click.option("--env", "-e", "env", multiple=True, callback=cli.key_values, metavar="KEY=VALUE",
              help="Set an environment variable (repeatable).")
@click.option("--uid", "-u", type=_ID, default=0, show_default=True, metavar="N", help="User id.")
@click.option("--gid", "-g", type=_ID, default=0, show_default=True, metavar="N", help="Group id.")
@click.argument("args", nargs=-1, metavar="[ID] -- ARGS...", shell_complete=_complete_args)
@click.pass_context
def exec_command(ctx, container_id, process_id, attach, tty, cwd, env, uid, gid, args):
    """Run ARGS as a new process in the running container ID."""
    container_id, args = split_args(container_id, args)
    from containerd_tx.api import containerd_pb2

    process_id = process_id or generated_process_id()
    stub = cli.api()
    request = containerd_pb2.AddProcessRequest(
        id=container_id,
        pid=process_id,
        args=list(args),
        env=exec_env(stub, container_id, env),
        cwd=cwd,
        terminal=tty,
        user=containerd_pb2.User(uid=uid, gid=gid),
    )
    if not attach:
        stub.AddProcess(request)
        click.echo(process_id)
        return

    def add(stdin, stdout, stderr):
        request.stdin, request.stdout, request.stderr = stdin, stdout, stderr
        stub.AddProcess(request)

    from ctr import stdio

    status = stdio.attach(stub, container_id, process_id, add, tty=tty)
    ctx.exit(stdio.exit_status(status))
