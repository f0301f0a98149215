# -*- test-case-name: tests.unit.test_monitord -*-
"""
The monitor's registry of live container processes (L{Proc}, by container and process id, and by pid) and
its fd store: the stdio fd sets of which the daemon holds a copy (L{Registry}, a mixin of the monitor).

Standard library only (see C{monitord.py}).
"""

import os
import select
import time

from containerd_tx.monitor.connection import fd_identity
from containerd_tx.monitor.loop import log
from containerd_tx.monitor.reaping import exit_status, read_proc_stat


#: Status reported when a watched (adopted) process's status is unknown.
UNKNOWN_STATUS = 255
#: Seconds a registered process may stay the child of a runtime's helper (see L{Registry.resolve}) before it
#: is watched as a stranger, its status then unknown.
HELPER_WAIT_SECONDS = 10.0
#: How many parents up a registered process's parent may be from the monitor to count as a runtime's helper.
HELPER_DEPTH = 8


class Proc:
    """
    A registered container process.
    """

    def __init__(self, container, process, pid, record_dir, proxies, fostered=False):
        self.container = container
        self.process = process
        self.pid = pid
        self.record_dir = record_dir
        self.proxies = proxies
        self.pidfd = None
        #: a pidfd of the runtime's helper that is still its parent, and when to stop waiting for it.
        self.helper_pidfd = None
        self.helper_deadline = None
        #: when the spawn that started it began: an unclaimed status of its pid from before is another's.
        self.spawned_ns = None
        #: not our child: a process a dead monitor left, reaped by the daemon (its subreaper), which tells us
        #: with C{ended}; we only move its stdio.
        self.fostered = fostered

    @property
    def key(self):
        return (self.container, self.process)

    def describe(self):
        return {
            "container": self.container,
            "process": self.process,
            "pid": self.pid,
            "tty": self.proxies.master is not None,
            "record_dir": self.record_dir,
            "set": self.proxies.set_id,
            "fostered": self.fostered,
        }


class Registry:
    """
    Registering, watching and forgetting processes, and the fd store, of the
    L{containerd_tx.monitor.server.Monitor} (a mixin: it uses the monitor's C{procs}, C{procs_by_pid},
    C{fdsets}, C{unclaimed} and its connection).
    """

    def register(self, container, process, pid, record_dir, proxies, fostered=False, set_id=None):
        """
        Register a live container process; a previous registration of the
        same key or pid is dropped (without a record).  The daemon gets a copy
        of its stdio fds (event C{fds}) unless C{set_id} says it has them.
        """
        for old in (self.procs.get((container, process)), self.procs_by_pid.get(pid)):
            if old is not None and self.procs.get(old.key) is old:
                log("registration of %s/%s (pid %d) replaced" % (old.container, old.process, old.pid))
                self.unregister(old)
                old.proxies.close()
                self._set_exited(old.proxies)
        proc = Proc(container, process, pid, record_dir, proxies, fostered=fostered)
        self.procs[proc.key] = proc
        self.procs_by_pid[pid] = proc
        announce = set_id is None
        if set_id is None:
            self._set_serial += 1
            set_id = "%d.%d.%d" % (self.pid, self.started_ns, self._set_serial)
        self.track(set_id, proxies, proc)
        if announce and self.conn is not None:
            self.send_fdset(self.conn, set_id)
        return proc

    def track(self, set_id, proxies, proc=None, meta=None):
        """Keep C{proxies} as fd set C{set_id} until every fd of it is closed and its process is done."""
        proxies.set_id = set_id
        proxies.meta = meta or {
            "container": proc.container, "process": proc.process, "pid": proc.pid,
            "record_dir": proc.record_dir, "exited": False,
        }
        proxies.on_release = lambda name: self._released(proxies, name)
        self.fdsets[set_id] = proxies
        self._maybe_done(proxies)

    def _released(self, proxies, name):
        self.notify({"event": "released", "set": proxies.set_id, "names": [name]})
        self._maybe_done(proxies)

    def _maybe_done(self, proxies):
        if proxies.meta["exited"] and not proxies.fds() and self.fdsets.get(proxies.set_id) is proxies:
            del self.fdsets[proxies.set_id]

    def _set_exited(self, proxies):
        proxies.meta["exited"] = True
        self._maybe_done(proxies)

    def send_fdset(self, conn, set_id):
        """Hand the daemon a copy of every fd of one set, with what a next monitor needs to go on."""
        proxies = self.fdsets[set_id]
        fds = proxies.fds()
        names = sorted(fds)
        proc = self.procs.get((proxies.meta["container"], proxies.meta["process"]))
        message = dict(proxies.meta, event="fds", set=set_id, tty=proxies.tty, names=names,
                       ids=[fd_identity(fds[n]) for n in names],
                       fostered=bool(proc is not None and proc.proxies is proxies and proc.fostered))
        conn.send(message, [fds[n] for n in names])

    def unregister(self, proc):
        if self.procs.get(proc.key) is proc:
            del self.procs[proc.key]
        if self.procs_by_pid.get(proc.pid) is proc:
            del self.procs_by_pid[proc.pid]
        if proc.pidfd is not None:
            self.loop.close(proc.pidfd)
            proc.pidfd = None
        self._stop_waiting_for_helper(proc)

    def resolve(self, proc):
        """
        After registration from a pid file: the process may be our child
        (alive, or a zombie whose SIGCHLD is pending), already reaped by us
        (its status is in C{unclaimed}, reaped after its spawn began), gone,
        still the child of the runtime's helper (see L{_wait_for_helper}),
        or (unexpectedly) not our child (then it is watched through a pidfd,
        status unknown).
        """
        if self.procs.get(proc.key) is not proc:
            return
        stat = read_proc_stat(proc.pid)
        found = self.unclaimed.pop(proc.pid, None)
        if found is not None and proc.spawned_ns is not None and found[1] < proc.spawned_ns:
            # Reaped before its spawn even began: an earlier process with the same pid (pids wrap around,
            # and a thousand starts use tens of thousands of them).
            found = None
        if stat is not None and stat.ppid == self.pid:
            # Our child, alive or a zombie not reaped yet: an unclaimed status
            # for this pid belongs to an earlier process with the same pid.
            self.reap()
            return
        if found is not None:
            self.proc_exited(proc, *found)
            return
        if stat is None:
            # e.g. its own parent reaped it: the status is lost
            log("%s/%s: pid %d vanished before registration" % (proc.container, proc.process, proc.pid))
            self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)
        elif proc.helper_deadline is None and self._wait_for_helper(proc, stat.ppid):
            return
        else:
            log("%s/%s: pid %d is not our child; watching it" % (proc.container, proc.process, proc.pid))
            try:
                proc.pidfd = os.pidfd_open(proc.pid)
            except OSError:
                self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)
                return
            self.loop.add_reader(proc.pidfd, lambda: self._on_pidfd(proc))

    def _wait_for_helper(self, proc, parent):
        """
        A runtime may leave the process it started with a helper of its own for a moment after it exits:
        crun's C{run -d} forks twice, and the helper that cloned the init can outlive crun. The helper is our
        descendant, so once it is gone the process is our child (alive, or a zombie with its true status): wait
        for that instead of watching a stranger with its status unknown. That is what lets crun start a
        container in one step.

        @return: False when C{parent} is not a descendant of this monitor (or cannot be watched).
        """
        ancestor = parent
        for _ in range(HELPER_DEPTH):
            stat = read_proc_stat(ancestor)
            if stat is None:
                return False
            if stat.ppid == self.pid:
                break
            ancestor = stat.ppid
        else:
            return False
        try:
            proc.helper_pidfd = os.pidfd_open(parent)
        except OSError:
            return False
        proc.helper_deadline = time.monotonic() + HELPER_WAIT_SECONDS
        self.helper_waits.add(proc)
        self.loop.add_reader(proc.helper_pidfd, lambda: self._helper_gone(proc))
        return True

    def _helper_gone(self, proc):
        if proc.helper_pidfd is None or not select.select([proc.helper_pidfd], [], [], 0)[0]:
            return
        self._stop_waiting_for_helper(proc)
        # Its parent exited (or it was our descendant's in turn): look again, with a fresh wait allowed.
        proc.helper_deadline = None
        self.resolve(proc)

    def _stop_waiting_for_helper(self, proc):
        self.helper_waits.discard(proc)
        if proc.helper_pidfd is not None:
            self.loop.close(proc.helper_pidfd)
            proc.helper_pidfd = None

    def expire_helper_waits(self):
        """
        Watch as strangers the processes whose runtime helper outlived L{HELPER_WAIT_SECONDS}.

        @return: seconds until the next deadline, or None.
        """
        now = time.monotonic()
        soonest = None
        for proc in list(self.helper_waits):
            if proc.helper_deadline <= now:
                log("%s/%s: pid %d is still its runtime helper's child after %gs" % (
                    proc.container, proc.process, proc.pid, HELPER_WAIT_SECONDS))
                self._stop_waiting_for_helper(proc)
                self.resolve(proc)
            else:
                wait = proc.helper_deadline - now
                soonest = wait if soonest is None else min(soonest, wait)
        return soonest

    def _on_pidfd(self, proc):
        if proc.pidfd is None or not select.select([proc.pidfd], [], [], 0)[0]:
            return
        try:
            pid, wait_status = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pid = -1
        if pid == 0:
            return  # our child after all: SIGCHLD brings its status
        if pid == proc.pid:
            self.proc_exited(proc, exit_status(wait_status), time.time_ns())
        else:
            self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)
