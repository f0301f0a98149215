# -*- test-case-name: tests.unit.test_monitor_takeover -*-
"""
Surviving the monitor's death: the daemon's copy of every stdio fd (the fd store) and its fostering of what a
dead monitor leaves behind.

- The daemon is a child subreaper (L{become_subreaper}), above the monitor it starts: when that monitor dies,
  its children (container inits, exec'd processes, runtime commands half way) are re-parented to the daemon.
  They stay the daemon's children for their lifetime (Linux cannot hand a child to another parent): the
  daemon watches each known one through a pidfd (L{Foster}), reads its true status with
  C{waitid(P_PIDFD)}, writes its exit record as the monitor does, and only then reports the exit.  Twisted
  reaps only the pids it spawned; the daemon reaps the others by pidfd, never with C{waitpid(-1)}.
- The monitor hands the daemon a copy of every fd a process's stdio holds (C{fds} events over SCM_RIGHTS) and
  says when it closes one (C{released}).  A new monitor gets them back (C{takeover}) and goes on moving the
  bytes; since both hold the FIFO write ends and pty masters, a client never sees an EOF or a hang-up.
"""

import ctypes
import fcntl
import os
import time

from twisted.internet import process as twisted_process
from twisted.internet import threads
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from containerd_tx import layout
from containerd_tx.monitor.reaping import read_proc_stat, siginfo_status
from containerd_tx.monitor.records import write_record

log = Logger()

PR_SET_CHILD_SUBREAPER = 36
#: Status reported for an exit whose status nobody could read (as the monitor and containerd say).
UNKNOWN_STATUS = 255


def become_subreaper():
    """Make this process the child subreaper of its descendants; False when the kernel refuses."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warn("prctl(PR_SET_CHILD_SUBREAPER) failed: {e}", e=os.strerror(ctypes.get_errno()))
        return False
    return True


def proc_stat(pid):
    """The L{containerd_tx.monitor.reaping.ProcStat} (state, ppid) of C{pid}, or None when it is gone."""
    return read_proc_stat(pid)


def children():
    """This process's children (every thread's)."""
    found = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            continue
    return found


def read_record(record_dir, process, pid):
    """The exit record of C{process} in C{record_dir} if it is that of C{pid}, else None."""
    import json

    try:
        with open(layout.exit_record_path(record_dir, process), "rb") as f:
            record = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if isinstance(record, dict) and record.get("pid") == pid and isinstance(record.get("status"), int):
        return record
    return None


class FdSet:
    """
    The stdio fds of one process (or of an exited one whose output still flows), as the monitor described
    them: the daemon's copies.
    """

    def __init__(self, message, fds):
        self.set_id = message["set"]
        self.container = message["container"]
        self.process = message["process"]
        self.pid = message["pid"]
        self.record_dir = message["record_dir"]
        self.tty = bool(message.get("tty"))
        self.exited = bool(message.get("exited"))
        self.fds = fds

    def describe(self):
        """The entry of a C{takeover} request (the fds go in the order of C{names})."""
        return {"set": self.set_id, "container": self.container, "process": self.process, "pid": self.pid,
                "record_dir": self.record_dir, "tty": self.tty, "exited": self.exited,
                "names": sorted(self.fds)}

    def close(self, names=None):
        for name in list(self.fds) if names is None else names:
            fd = self.fds.pop(name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


class FdStore:
    """The daemon's copies of the monitor's stdio fds, by set id."""

    def __init__(self):
        self.sets = {}

    def add(self, message, fds):
        """A C{fds} event and the fds that came with it (checked against the identities it names)."""
        names = message.get("names") or []
        ids = message.get("ids") or []
        mine = {}
        for i, (name, fd) in enumerate(zip(names, fds)):
            if i < len(ids):
                st = os.fstat(fd)
                if [st.st_dev, st.st_ino] != list(ids[i]):
                    log.error("monitor fd {name} of {c}/{p} is not the file it named: dropped",
                              name=name, c=message.get("container"), p=message.get("process"))
                    os.close(fd)
                    continue
            mine[name] = fd
        old = self.sets.pop(message["set"], None)
        if old is not None:
            old.close()
        entry = FdSet(message, mine)
        self.sets[entry.set_id] = entry
        return entry

    def released(self, set_id, names):
        entry = self.sets.get(set_id)
        if entry is not None:
            entry.close(names)
            self._maybe_drop(entry)

    def exited(self, container, process, pid):
        for entry in list(self.sets.values()):
            if (entry.container, entry.process, entry.pid) == (container, process, pid):
                entry.exited = True
                self._maybe_drop(entry)

    def _maybe_drop(self, entry):
        if entry.exited and not entry.fds and self.sets.get(entry.set_id) is entry:
            del self.sets[entry.set_id]

    def fd_count(self):
        return sum(len(entry.fds) for entry in self.sets.values())

    def close_all(self):
        for entry in self.sets.values():
            entry.close()
        self.sets.clear()


@implementer(IReadDescriptor)
class PidfdReader:
    """A pidfd in the reactor: C{callback()} once the process has exited."""

    def __init__(self, reactor, pidfd, callback):
        self.reactor = reactor
        self.pidfd = pidfd
        self.callback = callback
        reactor.addReader(self)

    def fileno(self):
        return -1 if self.pidfd is None else self.pidfd

    def doRead(self):
        self.callback()

    def connectionLost(self, reason):
        self.stop()

    def logPrefix(self):
        return "pidfd"

    def stop(self):
        if self.pidfd is not None:
            self.reactor.removeReader(self)
            os.close(self.pidfd)
            self.pidfd = None


class Foster:
    """
    Reaps the processes a dead monitor left to the daemon: the known ones with their true status (reported
    through C{on_exit(entry, status, time_ns)}), the unknown ones (runtime commands half way) just reaped.
    """

    def __init__(self, reactor):
        self.reactor = reactor
        self.watching = {}

    def is_our_child(self, pid):
        stat = proc_stat(pid)
        return stat is not None and stat.ppid == os.getpid()

    def watch(self, pid, on_status):
        """Watch our child C{pid}; C{on_status(status, time_ns)} once it has exited and is reaped."""
        if pid in self.watching:
            return True
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as e:
            log.warn("cannot watch pid {pid}: {e}", pid=pid, e=e)
            return False

        def readable():
            try:
                info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                info = None
                status = UNKNOWN_STATUS
            else:
                if info is None:
                    return  # not yet
                status = siginfo_status(info)
            reader.stop()
            del self.watching[pid]
            on_status(status, time.time_ns())

        reader = PidfdReader(self.reactor, pidfd, readable)
        self.watching[pid] = reader
        return True

    def reap_strays(self, known=()):
        """Reap (by pidfd) every child that neither Twisted nor we watch: e.g. a runc a dead monitor left."""
        ours = set(twisted_process.reapProcessHandlers)
        for pid in children():
            if pid in ours or pid in self.watching or pid in known:
                continue
            log.info("reaping pid {pid} that a dead monitor left", pid=pid)
            self.watch(pid, lambda status, time_ns: self.reap_strays(known))

    def stop(self):
        for reader in self.watching.values():
            reader.stop()
        self.watching.clear()


def write_exit_record(reactor, entry, status, time_ns, unknown=False):
    """
    Write the exit record of a fostered process as the monitor does (same format, atomic), off the reactor.

    @return: Deferred firing with the record (also when it could not be written: logged).
    """
    record = {"container": entry.container, "process": entry.process, "pid": entry.pid, "status": status,
              "time_ns": time_ns}
    if unknown:
        record["unknown"] = True

    def write():
        try:
            write_record(entry.record_dir, layout.exit_record_name(entry.process), record)
        except OSError as e:
            return e
        return None

    def written(error):
        if error is not None:
            log.warn("cannot write the exit record of {c}/{p}: {e}", c=entry.container, p=entry.process, e=error)
        return record

    return threads.deferToThreadPool(reactor, reactor.getThreadPool(), write).addCallback(written)


def set_cloexec(fd):
    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
