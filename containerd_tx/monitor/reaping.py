# -*- test-case-name: tests.unit.test_monitord -*-
"""
Reaping: every exited child of the monitor, known or not (L{Reaper}, a mixin of the monitor), and the exit
statuses of children nobody registered yet.

Standard library only (see C{monitord.py}).
"""

import os
import signal
import time
from collections import namedtuple

from containerd_tx.monitor.loop import log


#: Exit statuses of reaped unknown pids kept for a later registration.
UNCLAIMED_LIMIT = 4096


def exit_status(wait_status):
    """
    Exit code, or 128 + signal number when killed by a signal.
    """
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def siginfo_status(info):
    """
    Exit code, or 128 + signal number, from an C{os.waitid} result.
    """
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return 128 + info.si_status


#: A process's C{state} letter and parent's pid, from /proc.
ProcStat = namedtuple("ProcStat", "state ppid")


def read_proc_stat(pid):
    """
    Return the L{ProcStat} of C{pid}, or None if it is gone.
    """
    try:
        with open("/proc/%d/stat" % (pid,), "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return ProcStat(fields[0].decode(), int(fields[1]))


class Reaper:
    """
    Signals and reaping of the L{containerd_tx.monitor.server.Monitor} (a mixin: it uses the monitor's registry,
    spawns, C{unclaimed} and C{held_zombies}).
    """

    def _on_signals(self, fd):
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            data = b""
        if signal.SIGTERM in data or signal.SIGINT in data:
            log("terminated by signal: exiting")
            self.stopping = True
        self.reap()

    def _children(self):
        """Our children's pids (every thread's), or None when /proc cannot tell."""
        pids = []
        try:
            tasks = os.listdir("/proc/self/task")
        except OSError:
            return None
        for tid in tasks:
            try:
                with open("/proc/self/task/%s/children" % (tid,), "rb") as f:
                    pids.extend(int(p) for p in f.read().split())
            except FileNotFoundError:
                continue  # that thread ended
            except OSError:
                return None
        return pids

    def reap(self):
        """
        Reap every exited child: spawns and unknown ones (their status is kept
        for a later registration) at once; a registered process's status is
        read without reaping it (WNOWAIT), and it is reaped once its exit record
        is on disk (see L{held_zombies}).
        """
        if not self.held_zombies and self._reap_in_kernel_order():
            return
        for _ in range(3):
            children = self._children()
            if children is None:
                return self._reap_any()
            for pid in children:
                if pid in self.held_zombies:
                    continue
                try:
                    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    continue
                if info is not None:
                    self._exited(pid, siginfo_status(info))
            # The children file can miss an entry that moved while it was read: look once more.
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
            if info is None:
                return
            if info.si_pid in self.held_zombies:
                # The first zombie is one we hold: others behind it are found by the next scan.
                if self.rescan_at is None:
                    self.rescan_at = time.monotonic() + 1.0
                return

    def _reap_in_kernel_order(self):
        """
        The common case, no zombie held: the kernel names the exited children one at a time, each in O(1),
        where a scan asks every child (O(children) system calls per SIGCHLD, the monitor's main cost with a
        thousand containers running).

        @return: False when a zombie this monitor holds (or one it failed to reap) hides the ones behind it
            (then scan).
        """
        seen = set()
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True
            if info is None:
                return True
            if info.si_pid in self.held_zombies or info.si_pid in seen:
                return False
            seen.add(info.si_pid)
            self._exited(info.si_pid, siginfo_status(info))

    def _exited(self, pid, status):
        """One exited child, still a zombie: a registered process is held, anything else reaped."""
        try:
            proc = self.procs_by_pid.get(pid)
            if proc is not None and pid not in self.spawns and not proc.fostered:
                self.held_zombies.add(pid)
                self.proc_exited(proc, status, time.time_ns(), zombie=True)
                return
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            self.child_exited(pid, status, time.time_ns())
        except Exception as e:
            log("internal error handling exit of pid %d: %s: %s" % (pid, type(e).__name__, e))

    def release_zombie(self, pid):
        """Reap a registered child held as a zombie until its record was written."""
        if pid in self.held_zombies:
            self.held_zombies.discard(pid)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def _reap_any(self):
        """Without /proc: reap whatever exited (a monitor killed before a record is written loses it)."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            try:
                self.child_exited(pid, exit_status(wait_status), time.time_ns())
            except Exception as e:
                log("internal error handling exit of pid %d: %s: %s" % (pid, type(e).__name__, e))

    def child_exited(self, pid, status, time_ns):
        job = self.spawns.pop(pid, None)
        if job is not None:
            self.finish_spawn(job, status)
            return
        proc = self.procs_by_pid.get(pid)
        if proc is not None:
            self.proc_exited(proc, status, time_ns)
            return
        self.unclaimed[pid] = (status, time_ns)
        self.unclaimed.move_to_end(pid)
        while len(self.unclaimed) > UNCLAIMED_LIMIT:
            self.unclaimed.popitem(last=False)
