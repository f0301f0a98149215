# -*- test-case-name: tests.unit.test_ctr_cli -*-
"""
The C{ctr} command: global options, the command tree, and how errors end the program.

Every error from the daemon or the connection ends as one line on stderr, C{ctr: <message>}, with exit
status 1 (with C{--debug}, the traceback comes first); usage errors are click's, with status 2. A reader
that goes away (C{ctr events | head -2}) ends ctr quietly with status 0, as other Unix tools do.

Importing this module loads click and ctr's own modules only: gRPC and the generated code are imported by
the commands that call the daemon, so C{--help}, C{--version} and completion stay quick.
"""

import os
import sys
import traceback

import click

from containerd_tx import __version__
from ctr import cli, client, errors, output
from ctr.checkpoints import checkpoints
from ctr.completion import completion
from ctr.containers import containers
from ctr.events import events
from ctr.state import state
from ctr.version import version

#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


class _Root(click.Group):
    """The root group: turns errors raised by any command into L{cli.Failure} and Ctrl-C into status 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except errors.ClientError as error:
            raise self._failure(ctx, str(error)) from None
        except BrokenPipeError:
            _quiet_stdout()
            ctx.exit(0)
        except OSError as error:
            where = f": {error.filename}" if error.filename else ""
            raise self._failure(ctx, f"{error.strerror or error}{where}") from None
        except KeyboardInterrupt:
            ctx.exit(INTERRUPTED)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            if errors.is_rpc_error(error):
                raise self._failure(ctx, errors.describe_rpc_error(error)) from None
            raise

    @staticmethod
    def _failure(ctx, message):
        if isinstance(ctx.obj, cli.Settings) and ctx.obj.debug:
            traceback.print_exc()
        return cli.Failure(message)


def _quiet_stdout():
    """The reader of stdout went away: send what is still buffered, and later output, to /dev/null."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _address(ctx, param, value):
    try:
        return client.parse_address(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


def _timeout(ctx, param, value):
    if value <= 0:
        raise click.BadParameter("must be more than zero", ctx, param)
    return value


@click.group(
    cls=_Root,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=f"""\b
Examples:
  ctr containers
  ctr --address unix:///run/containerd-tx.sock containers start -a web /srv/bundles/web
  ctr containers exec -a -t web -- sh
  CONTAINERD_ADDRESS=/tmp/c.sock ctr events --format json
  source <(ctr completion bash)

\b
Exit status:
  0    success
  1    error from the daemon, or no daemon answered (one line on stderr: "ctr: ...")
  2    usage error
  {INTERRUPTED}  interrupted (Ctrl-C; it ends `events` and `containers stats` with 0)
  With --attach (containers start, containers exec): the exit status of the
  process (0-255; a process killed by signal N gives 128+N).
""",
)
@click.option("--address", envvar=client.ADDRESS_ENV, show_envvar=True, default=client.DEFAULT_ADDRESS,
              show_default=True, callback=_address, metavar="ADDR",
              help="Daemon socket: unix:///abs/path, unix://rel/path or a bare path.")
@click.option("--debug", is_flag=True, help="Log calls to stderr, and print tracebacks of errors.")
@click.option("--connect-timeout", "--conn-timeout", "connect_timeout", type=output.DURATION, default="5s", show_default=True, callback=_timeout,
              help="How long to wait for the daemon to answer (5s, 500ms, 1m).")
@click.version_option(__version__, "--version", prog_name="ctr", message="%(prog)s version %(version)s")
@click.pass_context
def ctr(ctx, address, debug, connect_timeout):
    """Control containerd-tx, the container daemon, over its gRPC API."""
    ctx.obj = cli.Settings(address, connect_timeout, debug)


for _command in (checkpoints, completion, containers, events, state, version):
    ctr.add_command(_command)


def main():
    """The console script's entry point (C{ctr = ctr.main:main})."""
    try:
        ctr(prog_name="ctr")
    except BrokenPipeError:  # from click's own output (--help, usage errors) to a closed pipe
        _quiet_stdout()
        sys.exit(0)
    except SystemExit as ending:
        # click ends with status 1 when its own output (--help) meets a closed pipe, and marks that by
        # wrapping stdout; other Unix tools end quietly with 0 there.
        if ending.code == 1 and isinstance(sys.stdout, click.utils.PacifyFlushWrapper):
            _quiet_stdout()
            sys.exit(0)
        raise


if __name__ == "__main__":
    main()
