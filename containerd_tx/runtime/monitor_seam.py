# -*- test-case-name: tests.unit.test_runtime_runc,tests.unit.test_supervisor -*-
"""
The one seam between the daemon and the container monitor: what the runtime driver and the supervisor need of
it, and nothing else.

The runtime driver (L{containerd_tx.runtime.runc}) has the monitor spawn every runtime command; the supervisor
learns of exits through it, resizes terminals, closes stdin and adopts processes on recovery. Both hold an
L{IMonitor} and import only this module, never the monitor's client: the daemon gives them
L{containerd_tx.monitor_client.client.MonitorClient}, unit tests a fake (C{tests.support.fakes.FakeMonitor}).

The seam's failures are L{MonitorError} (the monitor refused or failed a request) and its subclass
L{MonitorLost} (the connection ended before the answer), and a spawn's outcome is a L{SpawnResult}. They are
defined beside the client, which declares that it implements L{IMonitor} (so this module cannot import it
while loading), and are named here on first use.
"""

import importlib

from zope.interface import Attribute, Interface

#: The names this module re-exports from the monitor's client.
_FROM_CLIENT = ("MonitorError", "MonitorLost", "SpawnResult")


def __getattr__(name):
    """L{MonitorError}, L{MonitorLost} and L{SpawnResult}, taken from the client on first use."""
    if name in _FROM_CLIENT:
        value = getattr(importlib.import_module("containerd_tx.monitor_client.client"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ISpawn(Interface):
    """A command the monitor runs for the daemon."""

    started = Attribute("Deferred firing with the command's pid once it runs, or with None if it never ran.")
    result = Attribute(
        "Deferred firing with a SpawnResult (status, stdout, stderr, pid) when the command has exited, or "
        "failing with MonitorError (refused, e.g. a stdio path it cannot open) or MonitorLost."
    )

    def kill(signum=9):
        """
        Signal the running command (e.g. on a start timeout).

        @return: Deferred firing once the signal is sent; fails with MonitorError if the command is gone.
        """


class IMonitor(Interface):
    """
    The container monitor as the daemon uses it: it spawns commands (so that containers are its children,
    never the daemon's), reaps them and reports each registered process's exit once. Use only in the reactor
    thread; every request returns a Deferred failing with L{MonitorError} (L{MonitorLost} when the
    connection ended).
    """

    processes = Attribute(
        "The processes registered when the daemon connected: dicts with container, process, pid (and tty)."
    )
    exits = Attribute(
        "Exit records the monitor could not write to disk and kept in memory, as it said when the daemon "
        "connected (recovery reports them, then calls exit_handled for each)."
    )

    def spawn(argv, *, capture=False, stdin=None, stdout=None, stderr=None, env=None, pid_file=None,
              register=None, console_socket=None, announce=True):
        """
        Run C{argv} (C{argv[0]} an absolute path).

        @param capture: capture stdout/stderr (stdin /dev/null), else use the stdio paths (None: /dev/null).
        @param pid_file: after exit 0, read a pid from this file.
        @param register: C{dict(container=, process=, record_dir=)}: watch the pid from C{pid_file} as that
            process and report its exit.
        @param console_socket: path on which the runtime sends a pty master; then stdin/stdout feed it.
        @param announce: False when nobody waits for C{started} (it then fires with None at the end): the
            monitor sends one message less.
        @return: an L{ISpawn}.
        """

    def resize(container, process, width, height):
        """Set the terminal size of a registered process with a terminal."""

    def close_stdin(container, process):
        """Deliver what the process's stdin FIFO holds, then EOF. Idempotent."""

    def adopt(container, process, pid, record_dir):
        """Watch a live pid that is not the monitor's child; its exit status is unknown (255)."""

    def report_exits_to(handler):
        """
        From now on each exit record (a dict with container, process, pid, status, time_ns and maybe unknown)
        goes to C{handler}; records that arrived before have their records on disk or in L{exits}, which
        recovery reads. Called once, by the supervisor's constructor with its C{handle_exit}: the supervisor
        needs the monitor to be built, and the monitor's exits need the supervisor.
        """

    def exit_handled(record):
        """An exit record from L{exits} has been handled: the monitor may drop it. Best effort, never fails."""
