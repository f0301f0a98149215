# -*- test-case-name: tests.unit.test_console -*-
"""
C{containerd-tx}: the daemon as a console script, the same as C{twistd -n --pidfile= containerd}.

A systemd unit or an init script can name this one executable wherever pip put it, instead of guessing where
C{twistd} went. Every option after the program name is the daemon's own (C{containerd-tx --help} lists them);
twistd's options, such as C{--logfile}, go before a C{--} separator: C{containerd-tx --logfile x -- --debug}.
"""

import os
import sys

#: What twistd is always given: stay in the foreground, write no pid file, run the containerd plugin.
TWISTD_PREFIX = ("--nodaemon", "--pidfile=")
PLUGIN = "containerd"


def twistd_argv(args):
    """
    The twistd command line for C{containerd-tx ARGS}.

    @param args: the arguments after the program name.
    @return: a list for C{sys.argv}, starting with the program name.
    """
    args = list(args)
    if "--" in args:
        split = args.index("--")
        twistd_options, daemon_options = args[:split], args[split + 1:]
    else:
        twistd_options, daemon_options = [], args
    return ["containerd-tx", *TWISTD_PREFIX, *twistd_options, PLUGIN, *daemon_options]


def main(argv=None):
    """
    Run the daemon in the foreground under twistd, with the options given after the program name.

    A bad option ends with one line on stderr and status 1; a closed pipe after C{--help} ends quietly.
    """
    from twisted.python import usage
    from twisted.scripts.twistd import ServerOptions, runApp

    class ConsoleOptions(ServerOptions):
        # --help then reads "Usage: containerd-tx [twistd options --] containerd [options]".
        synopsis = "Usage: containerd-tx [twistd options --]"

    sys.argv = twistd_argv(sys.argv[1:] if argv is None else argv)
    config = ConsoleOptions()
    try:
        config.parseOptions(sys.argv[1:])
    except usage.UsageError as error:
        sys.exit(f"containerd-tx: {error} (see containerd-tx --help)")
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    runApp(config)
