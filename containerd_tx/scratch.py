# -*- test-case-name: tests.unit.test_scratch -*-
"""
Where the runtime writes a start's pid file and its log: files read once, as the start ends, and never again.

They go beside the container's records when the state dir is on a tmpfs (as C{/run} is on a systemd host).
On a disk they go to a folder of their own on a tmpfs (C{/dev/shm}) instead, and are removed as the start
ends: runc creates both files anew for every start (the pid file through a temporary file and a rename), and
on this project's ext4 test VM those two files cost runc 1.6 ms and the whole machine about 3 ms of CPU per
start (journal work), a tenth of a start through the daemon. Nothing of them is needed after the start: the
monitor reads the pid before it answers, and the daemon reads the log only to explain a failure.
"""

import errno
import hashlib
import os
import stat
import time

from containerd_tx.state_store import MEMORY_FILESYSTEMS, filesystem_type

#: tmpfs mounts where scratch folders may go, in order of preference.
TMPFS_CANDIDATES = ("/dev/shm",)
#: Scratch files older than this (seconds) at start-up are leftovers of a daemon that was killed mid-start.
STALE_AFTER = 3600.0
_PREFIX = "containerd-tx-"


def default_directory(state_dir, candidates=TMPFS_CANDIDATES, fs_type=filesystem_type):
    """
    The scratch folder for a daemon on C{state_dir}: None when the state dir is in memory itself (the files
    then stay beside the records) or when no candidate is; otherwise a folder named after the state dir in the
    first candidate in memory, so that daemons on different state dirs never share one.
    """
    if fs_type(state_dir) in MEMORY_FILESYSTEMS:
        return None
    digest = hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:16]
    for candidate in candidates:
        if os.path.isdir(candidate) and fs_type(candidate) in MEMORY_FILESYSTEMS:
            return os.path.join(candidate, _PREFIX + digest)
    return None


class ScratchFiles:
    """
    Names the pid file and log of each runtime start, and removes them once the start has ended.

    @param directory: the scratch folder (see L{default_directory}), or None to keep the files in the
        container's folder of the state dir, where they stay until the container's records go.
    @param clock: C{time.time}, for the start-up sweep.
    """

    def __init__(self, directory=None, clock=time.time):
        self.directory = directory
        self._clock = clock
        self._count = 0

    def prepare(self):
        """
        Make the folder (mode 0700) and remove what a daemon killed mid-start left in it long ago.

        @raise OSError: the folder cannot be made, or what is there already is not a folder of this user's
            alone. The tmpfs is writable by everybody and the name is predictable: a folder or link put there
            by another user could feed the monitor a false pid, so it is never used (nor changed).
        """
        if self.directory is None:
            return
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise OSError(errno.EPERM, "not a folder of this user's alone (mode 0700)", self.directory)
        now = self._clock()
        for entry in os.scandir(self.directory):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER:
                    os.unlink(entry.path)
            except OSError:
                pass  # gone meanwhile, or a folder someone put here: not ours to remove

    def remove_folder(self):
        """Remove the folder when it is empty (the daemon stops); a start still in flight keeps it."""
        if self.directory is not None:
            try:
                os.rmdir(self.directory)
            except OSError:
                pass

    def for_start(self, registration):
        """
        C{(pid file, runtime log)} for one start of the process C{registration} (a
        L{containerd_tx.layout.Registration}).
        """
        if self.directory is None:
            return registration.pid_file, registration.runtime_log
        # The daemon's pid keeps the names of a restarted daemon apart from a killed one's.
        self._count += 1
        stem = os.path.join(self.directory, f"{os.getpid()}-{self._count}")
        return stem + ".pid", stem + ".log"

    def release(self, pid_file, log_file):
        """
        The start has ended: return what the runtime logged (text, empty when nothing), and remove both files
        when they are scratch files.
        """
        if self.directory is None:
            return ""
        try:
            with open(log_file, "rb") as f:
                text = f.read().decode(errors="replace").strip()
        except OSError:
            text = ""
        for path in (pid_file, log_file):
            try:
                os.unlink(path)
            except OSError:
                pass
        return text
