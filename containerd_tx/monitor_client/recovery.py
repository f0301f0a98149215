# -*- test-case-name: tests.unit.test_monitor_takeover -*-
"""
The monitor's death, survived, and its upgrade: what the L{containerd_tx.monitor_client.client.MonitorClient}
does when its monitor dies (foster its processes, start a new monitor, hand it every fd set) or speaks an
older protocol (have it re-execute itself in place).  See L{containerd_tx.monitor_client.takeover}.
"""

import os
import time

from twisted.internet import defer
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from containerd_tx import layout
from containerd_tx.monitor_client import takeover
from containerd_tx.monitor_client.errors import MonitorError, MonitorLost
from containerd_tx.monitor_client.protocol import PROTOCOL
from containerd_tx.monitor_client.spawn import Spawn


log = Logger()


class Recovery:
    """
    Surviving the monitor's death and upgrading an older monitor (a mixin of
    L{containerd_tx.monitor_client.client.MonitorClient}).
    """

    def _start_recovery(self):
        self.recovering = True
        self._lost_at = self._reactor.seconds()
        d = defer.ensureDeferred(self._recover())
        d.addErrback(self._recovery_failed)

    async def _recover(self):
        old = self.monitor_pid
        reexec = self._reexec
        gone = False if reexec else await self._monitor_gone(2.0)
        if reexec:
            log.info("the container monitor (pid {pid}) re-executes itself: connecting again", pid=old)
            self.fdstore.close_all()
        elif gone:
            log.warn("the container monitor (pid {pid}) died: its processes are now the daemon's children; "
                     "starting a new monitor", pid=old)
            self._foster_orphans()
        else:
            # It lives (it dropped this connection): its hello hands every fd again.
            log.warn("the container monitor (pid {pid}) closed the connection: connecting again", pid=old)
            self.fdstore.close_all()
        python, idle_exit, timeout, monitor_args = self._connect_args
        await type(self)._connect(self._reactor, self.state_dir, python, idle_exit, timeout, monitor_args,
                                   into=self, start=not reexec)
        self._reexec = False
        handed = 0
        if gone:
            handed = await self._hand_over()
        self.recovering = False
        elapsed = self._reactor.seconds() - self._lost_at
        self.takeovers.append((elapsed, handed))
        log.info("monitor {pid} took over {n} fd sets {t:.3f}s after the old one was lost",
                 pid=self.monitor_pid, n=handed, t=elapsed)
        queued, self._queued = self._queued, []
        for message, waiter in queued:
            if isinstance(waiter, Spawn):
                self._send_spawn(message, waiter)
            else:
                self._pending[self._send(message)] = waiter
        waiters, self._recovered_waiters = self._recovered_waiters, []
        for d in waiters:
            d.callback(None)

    def _recovery_failed(self, failure):
        log.failure("no monitor could take over", failure)
        self.recovering = False
        self._reexec = False
        waiters, self._recovered_waiters = self._recovered_waiters, []
        for d in waiters:
            d.errback(MonitorLost("no monitor could take over"))
        queued, self._queued = self._queued, []
        for message, waiter in queued:
            if isinstance(waiter, Spawn):
                waiter._lost(Failure(MonitorLost("no monitor could take over")))
            else:
                waiter.errback(MonitorLost("no monitor could take over"))
        if self.on_lost is not None:
            self.on_lost(failure)

    async def _monitor_gone(self, timeout):
        """Wait until the monitor has exited (then its orphans are re-parented); False if it lives on."""
        if self._monitor_pidfd is None:
            stat = takeover.proc_stat(self.monitor_pid) if self.monitor_pid else None
            return stat is None or stat.state in "ZX"
        pidfd, self._monitor_pidfd = self._monitor_pidfd, None
        d = defer.Deferred()
        reader = takeover.PidfdReader(self._reactor, os.dup(pidfd), lambda: d.called or d.callback(True))
        os.close(pidfd)
        timer = self._reactor.callLater(timeout, lambda: d.called or d.callback(False))
        try:
            return await d
        finally:
            reader.stop()
            if timer.active():
                timer.cancel()

    def _deliver_exit(self, record):
        self.fdstore.exited(record["container"], record["process"], record["pid"])
        if self.on_exit is not None:
            try:
                self.on_exit(record)
            except Exception:
                log.failure("on_exit handler failed")

    def _foster_orphans(self):
        """
        The monitor is gone: watch each process it had (now the daemon's children), report those that ended
        meanwhile (from their record), and reap the strays.
        """
        me = os.getpid()
        for entry in list(self.fdstore.sets.values()):
            entry.adopt = False
            if entry.exited:
                continue
            stat = takeover.proc_stat(entry.pid)
            if stat is not None and stat.ppid == me:
                log.info("fostering {c}/{p} (pid {pid})", c=entry.container, p=entry.process, pid=entry.pid)
                self.foster.watch(entry.pid, lambda status, t, entry=entry: defer.ensureDeferred(
                    self._fostered_exit(entry, status, t)))
            elif stat is None or stat.state in "ZX":
                record = takeover.read_record(entry.record_dir, entry.process, entry.pid)
                if record is None:
                    log.warn("{c}/{p} (pid {pid}) ended with the monitor, its status unrecorded: 255",
                             c=entry.container, p=entry.process, pid=entry.pid)
                    record = {"container": entry.container, "process": entry.process, "pid": entry.pid,
                              "status": takeover.UNKNOWN_STATUS, "time_ns": time.time_ns(), "unknown": True}
                entry.exited = True
                self._deliver_exit(record)
            else:
                # Alive but not ours (this daemon did not start that monitor): watched by pidfd, status unknown.
                entry.adopt = True
        self.foster.reap_strays()

    async def _fostered_exit(self, entry, status, time_ns):
        """A fostered process ended: its output flushed by the monitor, its record written, then reported."""
        entry.exited = True
        if self._connected and not self.recovering:
            try:
                await self._request({"op": "ended", "container": entry.container, "process": entry.process,
                                     "pid": entry.pid})
            except Exception as e:
                log.info("ended {c}/{p}: {e}", c=entry.container, p=entry.process, e=e)
        record = await takeover.write_exit_record(self._reactor, entry, status, time_ns)
        self.fdstore._maybe_drop(entry)
        self._deliver_exit(record)

    async def _hand_over(self):
        """Give the new monitor every fd set (with the fds, over SCM_RIGHTS) and the pids it must watch."""
        entries, fds, adopt = [], [], []
        for entry in self.fdstore.sets.values():
            described = entry.describe()
            entries.append(described)
            fds.extend(entry.fds[name] for name in described["names"])
            if getattr(entry, "adopt", False) and not entry.exited:
                adopt.append(entry)
        for fd in fds:
            self._connection.transport.sendFileDescriptor(fd)
        await self._request({"op": "takeover", "sets": entries}, force=True)
        for entry in adopt:
            try:
                await self._request({"op": "adopt", "container": entry.container, "process": entry.process,
                                     "pid": entry.pid, "record_dir": entry.record_dir}, force=True)
            except MonitorError as e:
                log.warn("cannot watch {c}/{p}: {e}", c=entry.container, p=entry.process, e=e)
        return len(entries)

    async def upgrade(self):
        """
        A monitor older than this daemon (its hello says a lower protocol) is asked to re-execute itself in
        place (C{reexec}: same pid, children and fds; its registry goes through a memfd), so it runs this
        daemon's monitor code and nothing is lost.  A monitor too old to know C{reexec} is used as it is,
        with the exact instructions to replace it logged.

        @return: True when the monitor speaks this daemon's protocol (now).
        """
        if not isinstance(self.protocol, int) or self.protocol >= PROTOCOL:
            return True
        old = self.protocol
        for _ in range(100):
            d = defer.Deferred()
            self._recovered_waiters.append(d)
            self._reexec = True
            try:
                await self._request({"op": "reexec"}, force=True)
            except MonitorLost:
                pass  # the exec closed the connection first
            except MonitorError as e:
                self._reexec = False
                self._recovered_waiters.remove(d)
                if str(e).startswith("busy"):
                    await deferLater(self._reactor, 0.1, lambda: None)
                    continue
                log.warn("the container monitor (pid {pid}) speaks protocol {old} and cannot re-execute itself "
                         "({e}): it goes on serving, but its death is not survivable and its processes' stdio "
                         "is not held by the daemon. To replace it: stop the daemon, stop every container, "
                         "`kill {pid}` (it removes {sock}), then start the daemon",
                         pid=self.monitor_pid, old=old, e=e, sock=layout.StateDirLayout(self.state_dir).monitor_socket)
                return False
            await d
            log.info("the container monitor (pid {pid}) was upgraded in place from protocol {old} to {new}",
                     pid=self.monitor_pid, old=old, new=self.protocol)
            return self.protocol >= PROTOCOL
        return False
