# -*- test-case-name: tests.unit.test_monitor_client -*-
"""
Starting the monitor process (L{start_monitor}) and watching it (L{MonitorProcess}).
"""

import os
import sys

from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

import containerd_tx.monitor as monitor_program
from containerd_tx import layout
from containerd_tx.monitor_client.errors import MonitorError


#: Path of the monitor script, run as C{python -S MONITORD_PATH}.
MONITORD_PATH = os.path.join(os.path.dirname(os.path.abspath(monitor_program.__file__)), "monitord.py")

log = Logger()


class MonitorProcess(ProcessProtocol):
    """
    Watches a monitor this daemon started: waits for C{ready <pid>}, reaps
    it, logs its exit.
    """

    def __init__(self, reactor, state_dir):
        self._reactor = reactor
        self.state_dir = state_dir
        self.pid = None
        self.ready = defer.Deferred()
        self.ended = False
        self.end_reason = None
        self._output = b""
        self._waiters = []

    def outReceived(self, data):
        if self.ready.called:
            return
        self._output += data
        if b"\n" in self._output:
            line = self._output.split(b"\n", 1)[0]
            words = line.split()
            if len(words) == 2 and words[0] == b"ready" and words[1].isdigit():
                self.pid = int(words[1])
                self.ready.callback(self.pid)
            else:
                self.ready.errback(MonitorError("monitor said %r instead of ready" % (line[:200],)))
        elif len(self._output) > 4096:
            self.ready.errback(MonitorError("monitor printed no ready line"))

    def processEnded(self, reason):
        self.ended = True
        self.end_reason = reason.value
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        if code == 0:
            log.info("container monitor for {dir} exited", dir=self.state_dir)
        else:
            log.warn(
                "container monitor for {dir} ended: exit code {code}, signal {sig} (see monitor.log)",
                dir=self.state_dir,
                code=code,
                sig=sig,
            )
        if not self.ready.called:
            self.ready.errback(
                MonitorError("monitor exited before it was ready (exit code %s, signal %s)" % (code, sig))
            )
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(reason.value)

    def whenEnded(self):
        """
        @return: Deferred firing with the exit reason (a L{twisted.internet.error.ProcessDone} or
            L{twisted.internet.error.ProcessTerminated} instance) once the monitor has exited and
            been reaped (at once if it has).
        """
        if self.ended:
            return defer.succeed(self.end_reason)
        d = defer.Deferred()
        self._waiters.append(d)
        return d


def start_monitor(reactor, state_dir, python=sys.executable, idle_exit=None, extra_args=()):
    """
    Start C{monitord.py} for C{state_dir} with C{reactor.spawnProcess}
    (posix_spawn: no uid/gid/usePTY/path), stdin /dev/null, stderr appended
    to C{state_dir/monitor.log}.

    @return: the L{MonitorProcess}; its C{ready} fires with the monitor's pid.
    """
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    args = [python, "-S", MONITORD_PATH, "--state-dir", state_dir]
    if idle_exit is not None:
        args += ["--idle-exit", repr(float(idle_exit))]
    args += list(extra_args)
    watcher = MonitorProcess(reactor, state_dir)
    logfd = os.open(
        layout.StateDirLayout(state_dir).monitor_log,
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
        0o640,
    )
    try:
        nullfd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            reactor.spawnProcess(
                watcher, python, args, env=dict(os.environ), childFDs={0: nullfd, 1: "r", 2: logfd}
            )
        finally:
            os.close(nullfd)
    finally:
        os.close(logfd)
    return watcher
