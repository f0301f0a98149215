# -*- test-case-name: tests.unit.test_ctr_cli -*-
"""
click plumbing shared by the commands: the global settings, the lazy connection, the --format option, the
one-line failure, groups whose commands have aliases, and the shell completion of container ids, process ids
and signal names.

Nothing here imports gRPC or the generated code at import time: commands import them when they call the
daemon (C{--help}, C{--version} and completion of commands and options never load them).
"""

import click

from ctr import client

#: How long the completion of a container id waits for the daemon (seconds): a shell must not hang.
COMPLETION_TIMEOUT = 1.0


class Failure(click.ClickException):
    """An error shown as one line, C{ctr: <message>}, on stderr; exit status 1."""

    exit_code = 1

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))

    def show(self, file=None):
        click.echo(f"ctr: {self.format_message()}", file=file, err=file is None)


class Settings:
    """
    The global options (the root context's C{obj}) and the connection made from them on first use.

    @ivar address: the L{client.Address} to dial.
    @ivar connect_timeout: seconds to wait for the daemon.
    @ivar debug: whether --debug was given.
    """

    def __init__(self, address, connect_timeout, debug):
        self.address = address
        self.connect_timeout = connect_timeout
        self.debug = debug
        self._client = None

    def log(self, line):
        """Print a debug line on stderr when --debug was given."""
        if self.debug:
            click.echo(f"ctr: debug: {line}", err=True)

    def client(self, ctx):
        """
        @return: the L{client.Client}, connecting on first use; it is closed when C{ctx} closes.
        @raise client.ConnectError: when no daemon answers.
        """
        if self._client is None:
            self._client = client.connect(
                self.address, self.connect_timeout, log=self.log if self.debug else None
            )
            ctx.call_on_close(self._client.close)
        return self._client


def api():
    """
    The C{types.API} stub of the current command's connection (connecting on first use).

    @raise client.ConnectError: when no daemon answers.
    """
    root = click.get_current_context().find_root()
    return root.obj.client(root).api


def settings():
    """@return: the L{Settings} of the current command."""
    return click.get_current_context().find_root().obj


def format_option(plain="table"):
    """
    The C{--format/-o} option, stored as C{fmt}: C{plain} (the default, for people) or C{json} (for scripts:
    one JSON object per line per item).
    """
    return click.option(
        "--format", "-o", "fmt", type=click.Choice([plain, "json"]), default=plain, show_default=True,
        help="Output format.",
    )


class AliasGroup(click.Group):
    """A group whose commands may also be called by short aliases (C{aliases = {"ls": "list"}})."""

    aliases = {}

    def get_command(self, ctx, cmd_name):
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else name), command, rest


def quiet_call(ctx, call):
    """
    For shell completion: dial the address the command line (or C{CONTAINERD_ADDRESS}) gives, and return
    C{call(api_stub)}; C{None} on any error, since completion must never print an error or hang the shell.
    """
    try:
        address = ctx.find_root().params.get("address")
        if not isinstance(address, client.Address):
            address = client.parse_address(address or client.DEFAULT_ADDRESS)
        connection = client.connect(address, COMPLETION_TIMEOUT)
        try:
            return call(connection.api)
        finally:
            connection.close()
    except Exception:  # noqa: BLE001 - completion stays quiet whatever happens
        return None


def key_values(ctx, param, values):
    """Click callback for repeatable KEY=VALUE options (--label, --env): each must have a key and a "="."""
    for value in values:
        if "=" not in value or value.startswith("="):
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
    return list(values)


def quiet_state(ctx, container_id=""):
    """For completion: the daemon's C{StateResponse} (of one container when given), or C{None}."""
    def call(api):
        from containerd_tx.api import containerd_pb2

        return api.State(containerd_pb2.StateRequest(id=container_id), timeout=COMPLETION_TIMEOUT)

    return quiet_call(ctx, call)


def typed_params(ctx):
    """
    For completion: the current command's parameters as the words being completed give them (the shell's
    C{COMP_WORDS}), for when click could not parse them (an option still waiting for its value, as in
    C{start ID BUNDLE -c <Tab>}). Options' values are kept as typed; arguments are matched in order.

    @return: a dict of parameter name -> value, for what was found.
    """
    import os

    from click.parser import split_arg_string

    try:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
    except ValueError:
        return {}
    cword = os.environ.get("COMP_CWORD", "")
    if cword.isdigit() and int(cword) < len(words):
        words[int(cword)] = None  # the word being completed is no value yet
    if ctx.info_name not in words:
        return {}
    words = words[words.index(ctx.info_name) + 1:]
    options = {opt: param for param in ctx.command.params if isinstance(param, click.Option) for opt in param.opts}
    arguments = [param for param in ctx.command.params if isinstance(param, click.Argument)]
    found, position = {}, 0
    while words:
        word = words.pop(0)
        if word is None:
            continue
        name, equals, value = word.partition("=")
        option = options.get(name if word.startswith("-") else None)
        if option is not None:
            if not option.is_flag and not equals:
                value = words.pop(0) if words else None
            if value is not None and not option.is_flag:
                found[option.name] = value
        elif not word.startswith("-") and position < len(arguments):
            found[arguments[position].name] = word
            position += 1
    return found


def complete_container_id(ctx, param, incomplete):
    """A C{shell_complete} callback: the ids of the daemon's containers that start with C{incomplete}."""
    reply = quiet_state(ctx)
    if reply is None:
        return []
    return sorted(c.id for c in reply.containers if c.id.startswith(incomplete))


def complete_process_id(ctx, param, incomplete):
    """
    A C{shell_complete} callback: the process ids (C{init}, exec'd ones) of the container given on the
    command line, or of every container when none is given yet.
    """
    container_id = ctx.params.get("container_id") or typed_params(ctx).get("container_id") or ""
    reply = quiet_state(ctx, container_id)
    if reply is None:
        return ["init"] if "init".startswith(incomplete) else []
    found = {p.pid for c in reply.containers if not container_id or c.id == container_id for p in c.processes}
    return sorted(pid for pid in found | {"init"} if pid.startswith(incomplete))


def container_id_argument(name="container_id", **kwargs):
    """A C{ID} argument whose values the shell completes from the daemon's containers."""
    return click.argument(name, metavar=kwargs.pop("metavar", "ID"), shell_complete=complete_container_id,
                          **kwargs)
