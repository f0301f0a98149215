# -*- test-case-name: tests.unit.test_monitor_client -*-
"""
A command the monitor runs for the daemon (L{Spawn}) and its outcome (L{SpawnResult}).
"""

import base64
import signal
from collections import namedtuple

from twisted.internet import defer

from containerd_tx.monitor_client.errors import MonitorError


SpawnResult = namedtuple("SpawnResult", "status stdout stderr pid")
SpawnResult.__doc__ = """
The outcome of a spawned command: exit C{status} (128 + signal number when
killed), captured C{stdout}/C{stderr} bytes (empty unless captured), and the
C{pid} read from the pid file (None without one).
"""


class Spawn:
    """
    A command the monitor runs for us.

    @ivar tag: the request tag (what L{kill} targets).
    @ivar started: Deferred firing with the spawned command's pid once it
        runs, or with None if it never ran (the reason comes through
        C{result}).
    @ivar result: Deferred firing with a L{SpawnResult} when the command has
        exited, or failing with L{MonitorError}/L{MonitorLost}.
    """

    def __init__(self, client, tag):
        self._client = client
        self.tag = tag
        self.started = defer.Deferred()
        self.result = defer.Deferred()

    def kill(self, signum=signal.SIGKILL):
        """
        Signal the running command (e.g. on a start timeout).

        @return: Deferred firing when the monitor has sent the signal; fails
            with L{MonitorError} if the command is no longer running.
        """
        return self._client._request({"op": "kill", "target": self.tag, "signal": int(signum)})

    def _spawned(self, pid):
        if not self.started.called:
            self.started.callback(pid)

    def _replied(self, message):
        self._spawned(None)
        if message.get("ok"):
            self.result.callback(
                SpawnResult(
                    message["status"],
                    base64.b64decode(message.get("stdout") or ""),
                    base64.b64decode(message.get("stderr") or ""),
                    message.get("pid"),
                )
            )
        else:
            self.result.errback(MonitorError(message.get("error", "unknown error")))

    def _lost(self, failure):
        self._spawned(None)
        self.result.errback(failure)
