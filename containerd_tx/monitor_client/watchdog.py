# -*- test-case-name: tests.unit.test_monitor_hung -*-
"""
A stopped or hung monitor noticed: while requests wait, the L{containerd_tx.monitor_client.client.MonitorClient}
pings the monitor, and fails what waits (L{MonitorTimeout}) once it has been silent for its C{timeout}.
"""

from twisted.logger import Logger
from twisted.python.failure import Failure

from containerd_tx.monitor_client.errors import MonitorTimeout

log = Logger()


class Watchdog:
    """
    The watchdog of the L{containerd_tx.monitor_client.client.MonitorClient} (a mixin).
    """

    def _timeout_error(self):
        return MonitorTimeout(
            "the container monitor (pid %s) has not answered for %gs; is it stopped?"
            % (self.monitor_pid, self.timeout))

    def _interval(self):
        return min(max(self.timeout / 4.0, 0.05), 5.0)

    def _arm(self):
        if self._watchdog is None and self._connected and self.timeout is not None:
            self._watchdog = self._reactor.callLater(self._interval(), self._check)

    def _check(self):
        self._watchdog = None
        if not self._connected or (not self._sent_at and not self.hung):
            return
        now = self._reactor.seconds()
        if self._sent_at and now - max(self._last_heard, min(self._sent_at.values())) >= self.timeout:
            self._give_up()
        if now - self._last_heard >= self._interval() and not self._pings:
            # Ask for a sign of life: a long spawn (a checkpoint) is fine while the monitor answers.
            self._tag += 1
            self._pings.add(self._tag)
            self._connection.send({"op": "ping", "tag": self._tag})
        self._arm()

    def _give_up(self):
        """The monitor is silent: fail every waiting request; the late replies are ignored."""
        if not self.hung:
            log.warn("the container monitor (pid {pid}) has not answered for {t}s: failing what waits for it",
                     pid=self.monitor_pid, t=self.timeout)
        self.hung = True
        error = self._timeout_error()
        self._abandoned.update(self._sent_at)
        self._sent_at.clear()
        pending, self._pending = self._pending, {}
        spawns, self._spawns = self._spawns, {}
        for d in pending.values():
            d.errback(error)
        for spawn in spawns.values():
            spawn._lost(Failure(error))

    def _heard(self):
        self._last_heard = self._reactor.seconds()
        if self.hung:
            self.hung = False
            log.info("the container monitor (pid {pid}) answers again", pid=self.monitor_pid)
