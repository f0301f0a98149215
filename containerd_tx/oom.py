# -*- test-case-name: tests.unit.test_oom,tests.integration.test_oom_real -*-
"""
Notices when the kernel's OOM killer strikes inside a container's memory cgroup, without a polling loop:
the kernel wakes the reactor through a file descriptor.

Cgroup v1: an eventfd registered in the memory cgroup's C{cgroup.event_control} against
C{memory.oom_control} (one eventfd per container, a reactor reader each). The kernel signals it when the
cgroup goes under OOM, I{before} the victim is killed, and also when the cgroup is removed. So a signal
is only reported once C{memory.oom_control}'s C{oom_kill} counter has gone past the last value seen; if
it has not moved yet the counter is re-read a few times over half a second (the kill follows the
notification within microseconds, but in another thread); if the cgroup directory is gone the container
is unwatched silently. With C{oom_kill_disable 1} nothing is ever killed, and C{under_oom 1} is
reported instead, once per episode.

Cgroup v2: one inotify instance for the whole watcher (so that many containers do not exhaust the
per-user limit on inotify instances), an C{IN_MODIFY} watch on each container's C{memory.events}; on a
change its C{oom_kill} counter is re-read and an increase reported (the kernel bumps the counter before it
notifies, so no re-reading is needed).

Either way the callback C{on_oom(container_id)} runs in the reactor thread, once per confirmed wake-up
(several kills folded into one wake-up give one call). C{unwatch} closes the container's eventfd (v1) or
removes its inotify watch (v2); C{close} ends everything.
"""

import ctypes
import errno
import os
import struct

from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from zope.interface import implementer

V2 = "unified"

IN_MODIFY = 0x00000002
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")

#: Seconds after a v1 notification at which oom_kill is read again when it has not moved yet.
RECHECK_DELAYS = (0.005, 0.02, 0.05, 0.1, 0.2, 0.5)

log = Logger()


def read_counters(path):
    """A "key value" per line cgroup file as a dict of ints. Raises OSError when unreadable."""
    values = {}
    with open(path, "rb") as f:
        text = f.read().decode("ascii", "replace")
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return values


class _Libc:
    """The three inotify calls, through ctypes (loaded on first use)."""

    _lib = None

    @classmethod
    def get(cls):
        if cls._lib is None:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.inotify_init1.argtypes = [ctypes.c_int]
            lib.inotify_init1.restype = ctypes.c_int
            lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            lib.inotify_add_watch.restype = ctypes.c_int
            lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.inotify_rm_watch.restype = ctypes.c_int
            cls._lib = lib
        return cls._lib


def _check(result):
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


@implementer(IReadDescriptor)
class _Reader:
    """A reactor reader calling C{on_readable()} for a file descriptor this module owns."""

    def __init__(self, fd, on_readable, on_lost, prefix):
        self.fd = fd
        self._on_readable = on_readable
        self._on_lost = on_lost
        self._prefix = prefix

    def fileno(self):
        return self.fd

    def doRead(self):
        self._on_readable()

    def connectionLost(self, reason):
        self._on_lost()

    def logPrefix(self):
        return self._prefix


class _V1Watch:
    """One container on cgroup v1: its eventfd, reader and the last oom_kill value seen."""

    def __init__(self, container_id, directory, efd, kills):
        self.container_id = container_id
        self.directory = directory
        self.control = os.path.join(directory, "memory.oom_control")
        self.efd = efd
        self.kills = kills
        self.under_oom = False
        self.reader = None
        self.recheck = None


class _V2Watch:
    """One container on cgroup v2: its inotify watch descriptor and the last oom_kill value seen."""

    def __init__(self, container_id, directory, wd, kills):
        self.container_id = container_id
        self.directory = directory
        self.events = os.path.join(directory, "memory.events")
        self.wd = wd
        self.kills = kills


class OomWatcher:
    """
    Calls C{on_oom(container_id)} when a watched container's memory cgroup has an OOM kill.

    Use it from the reactor thread only.
    """

    def __init__(self, reactor, on_oom, recheck_delays=RECHECK_DELAYS):
        """
        @param reactor: provides L{IReactorFDSet} and L{IReactorTime}.
        @param on_oom: called with the container id of each confirmed OOM.
        @param recheck_delays: see L{RECHECK_DELAYS}.
        """
        self.reactor = reactor
        self.on_oom = on_oom
        self.recheck_delays = tuple(recheck_delays)
        self._watches = {}
        self._by_wd = {}
        self._inotify_fd = None
        self._inotify_reader = None

    # --- public ---

    def watch(self, container_id, cgroups, fresh=False):
        """
        Start watching C{container_id}, replacing any earlier watch of it.

        With C{fresh} (a container just started in a cgroup of its own) every OOM kill its cgroup has counted
        is its own, including one that happened before this watch: those are reported at once.

        @param cgroups: its cgroup directories, subsystem -> absolute path (C{"memory"} on v1, else
            C{"unified"} on v2), as L{containerd_tx.cgroups.process_cgroups} gives them.
        @return: True when watching; False (logged) when the memory cgroup cannot be watched.
        """
        self.unwatch(container_id)
        try:
            if cgroups.get("memory"):
                entry = self._watch_v1(container_id, cgroups["memory"], fresh)
            elif cgroups.get(V2):
                entry = self._watch_v2(container_id, cgroups[V2], fresh)
            else:
                log.warn("No memory cgroup to watch for OOM in container {id}", id=container_id)
                return False
        except OSError as error:
            log.warn("Cannot watch container {id} for OOM: {error}", id=container_id, error=error)
            return False
        self._watches[container_id] = entry
        if fresh:
            self.check(container_id)
        return True

    def unwatch(self, container_id):
        """Stop watching C{container_id} and release its file descriptor or watch (no error if unknown)."""
        entry = self._watches.pop(container_id, None)
        if entry is None:
            return
        if isinstance(entry, _V1Watch):
            if entry.recheck is not None and entry.recheck.active():
                entry.recheck.cancel()
            entry.recheck = None
            if entry.reader is not None:
                self.reactor.removeReader(entry.reader)
                entry.reader = None
            if entry.efd is not None:
                os.close(entry.efd)
                entry.efd = None
        else:
            if self._by_wd.get(entry.wd) is entry:
                del self._by_wd[entry.wd]
                if self._inotify_fd is not None and entry.wd is not None:
                    try:
                        _check(_Libc.get().inotify_rm_watch(self._inotify_fd, entry.wd))
                    except OSError:
                        pass  # already gone with its file

    def check(self, container_id):
        """
        Read the container's OOM kill counter now and report an increase not reported yet.

        The daemon calls this when the container's init has exited, so that an OOM kill is reported before
        the exit it caused even when the kernel's notification is still on its way.

        @return: True when an OOM kill was reported by this call.
        """
        entry = self._watches.get(container_id)
        if entry is None:
            return False
        path = entry.control if isinstance(entry, _V1Watch) else entry.events
        try:
            kills = read_counters(path).get("oom_kill", 0)
        except OSError:
            return False  # the cgroup is gone
        if kills > entry.kills:
            entry.kills = kills
            self._report(container_id)
            return True
        return False

    def watching(self):
        """The ids of the containers being watched."""
        return sorted(self._watches)

    def close(self):
        """Unwatch everything and close the inotify instance."""
        for container_id in list(self._watches):
            self.unwatch(container_id)
        if self._inotify_reader is not None:
            self.reactor.removeReader(self._inotify_reader)
            self._inotify_reader = None
        if self._inotify_fd is not None:
            os.close(self._inotify_fd)
            self._inotify_fd = None

    # --- cgroup v1 ---

    def _watch_v1(self, container_id, directory, fresh=False):
        control = os.path.join(directory, "memory.oom_control")
        # A fresh cgroup's kills are all its own: no baseline to read, and L{watch}'s check after registering
        # sees a kill that came before (one read per start instead of three).
        kills = 0 if fresh else read_counters(control).get("oom_kill", 0)
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            cfd = os.open(control, os.O_RDONLY | os.O_CLOEXEC)
            try:
                with open(os.path.join(directory, "cgroup.event_control"), "w") as f:
                    f.write(f"{efd} {cfd}")
            finally:
                os.close(cfd)  # the kernel keeps no reference to it once registered
        except OSError:
            os.close(efd)
            raise
        entry = _V1Watch(container_id, directory, efd, kills)
        entry.reader = _Reader(efd, lambda: self._v1_fired(entry), lambda: self._lost(entry),
                               f"oom-eventfd {container_id}")
        self.reactor.addReader(entry.reader)
        if not fresh:
            # An OOM between reading the baseline and registering would signal nothing: look once more.
            entry.recheck = self.reactor.callLater(0, self._v1_check, entry, 0, False)
        return entry

    def _v1_fired(self, entry):
        if self._watches.get(entry.container_id) is not entry or entry.efd is None:
            return
        try:
            os.eventfd_read(entry.efd)
        except BlockingIOError:
            return
        if entry.recheck is not None and entry.recheck.active():
            entry.recheck.cancel()
        entry.recheck = None
        self._v1_check(entry, 0, True)

    def _v1_check(self, entry, attempt, fired):
        entry.recheck = None
        if self._watches.get(entry.container_id) is not entry:
            return
        try:
            counters = read_counters(entry.control)
        except OSError:
            if not os.path.isdir(entry.directory):
                log.debug("memory cgroup of {id} is gone; no longer watching for OOM", id=entry.container_id)
                self.unwatch(entry.container_id)
            return
        under_oom = counters.get("under_oom", 0) == 1
        if "oom_kill" in counters and counters["oom_kill"] > entry.kills:
            entry.kills = counters["oom_kill"]
            self._report(entry.container_id)
        elif under_oom and counters.get("oom_kill_disable", 0) == 1 and not entry.under_oom:
            entry.under_oom = True
            self._report(entry.container_id)
        elif "oom_kill" not in counters and fired and attempt == 0:
            # A kernel without the counter (< 4.13): the cgroup still exists, so this was an OOM.
            self._report(entry.container_id)
        elif fired and attempt < len(self.recheck_delays):
            entry.recheck = self.reactor.callLater(self.recheck_delays[attempt], self._v1_check, entry,
                                                   attempt + 1, True)
        if not under_oom:
            entry.under_oom = False

    def _lost(self, entry):
        if self._watches.get(entry.container_id) is entry:
            entry.reader = None  # the reactor has already dropped it
            self.unwatch(entry.container_id)

    # --- cgroup v2 ---

    def _inotify(self):
        if self._inotify_fd is None:
            self._inotify_fd = _check(_Libc.get().inotify_init1(IN_NONBLOCK | IN_CLOEXEC))
            self._inotify_reader = _Reader(self._inotify_fd, self._v2_readable, self._inotify_lost,
                                           "oom-inotify")
            self.reactor.addReader(self._inotify_reader)
        return self._inotify_fd

    def _watch_v2(self, container_id, directory, fresh=False):
        events = os.path.join(directory, "memory.events")
        kills = 0 if fresh else read_counters(events).get("oom_kill", 0)
        fd = self._inotify()
        wd = _check(_Libc.get().inotify_add_watch(fd, os.fsencode(events), IN_MODIFY))
        entry = _V2Watch(container_id, directory, wd, kills)
        self._by_wd[wd] = entry
        if not fresh:
            # A kill between reading the baseline and adding the watch would notify nothing: look once more.
            self.reactor.callLater(0, self._v2_check, entry)
        return entry

    def _v2_readable(self):
        changed = []
        while self._inotify_fd is not None:
            try:
                data = os.read(self._inotify_fd, 65536)
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                raise
            if not data:
                break
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    changed.extend(self._by_wd.values())
                    continue
                entry = self._by_wd.get(wd)
                if entry is None:
                    continue
                if mask & IN_IGNORED:
                    # The file (so the cgroup) is gone: the kernel dropped the watch.
                    del self._by_wd[wd]
                    entry.wd = None
                    if self._watches.get(entry.container_id) is entry:
                        self.unwatch(entry.container_id)
                elif entry not in changed:
                    changed.append(entry)
        for entry in changed:
            self._v2_check(entry)

    def _v2_check(self, entry):
        if self._watches.get(entry.container_id) is not entry:
            return
        try:
            kills = read_counters(entry.events).get("oom_kill", 0)
        except OSError:
            if not os.path.isdir(entry.directory):
                self.unwatch(entry.container_id)
            return
        if kills > entry.kills:
            entry.kills = kills
            self._report(entry.container_id)

    def _inotify_lost(self):
        self._inotify_reader = None
        for container_id in [cid for cid, entry in self._watches.items() if isinstance(entry, _V2Watch)]:
            self.unwatch(container_id)
        if self._inotify_fd is not None:
            os.close(self._inotify_fd)
            self._inotify_fd = None

    # --- both ---

    def _report(self, container_id):
        log.debug("OOM kill in container {id}", id=container_id)
        try:
            self.on_oom(container_id)
        except Exception:
            log.failure("on_oom failed for container {id}", id=container_id)
