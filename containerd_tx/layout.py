# -*- test-case-name: tests.unit.test_layout -*-
"""
The state dir's layout, and the one way a file in it is replaced: every path name in the state dir is built
here, and only here, by the daemon and by the monitor process alike.

Standard library only: the monitor (C{containerd_tx/monitor/monitord.py}, run as C{python -S}) imports this
module too.

Layout::

    <state-dir>/containerd.lock                      held by the running daemon
    <state-dir>/events.log                           the event log
    <state-dir>/sockets/                             console sockets
    <state-dir>/runtime/<name>/                      each runtime's --root
    <state-dir>/monitor.sock                         the monitor's socket (0600)
    <state-dir>/monitor.pid, monitor.lock            the running monitor's pid, its lock
    <state-dir>/monitor.log                          the monitor's stderr
    <state-dir>/containers/<id>/container.json       the container (bundle, runtime, labels, cgroups, ...)
    <state-dir>/containers/<id>/process-<pid>.json   each process (init and exec'd), with its host pid
    <state-dir>/containers/<id>/exit-<pid>.json      exit records, written by the monitor process
    <state-dir>/containers/<id>/pid-<pid>            where the runtime writes a process's host pid (*)
    <state-dir>/containers/<id>/exec-<pid>.json      an exec'd process's spec, read once by the runtime
    <state-dir>/containers/<id>/runtime.log          the runtime's own log (errors of run/exec) (*)
    <dir>/.tmp-<name>                                a file being replaced (L{write_atomically})

(*) Only when the state dir is in memory; on a disk each start's pid file and log are scratch files on a tmpfs
instead, removed as the start ends (see L{containerd_tx.scratch}).

New records are written straight under their names (L{write_new_record}), existing ones replaced through a
temporary file (L{write_atomically}) or changed in place (L{rewrite_record}).

Ids are validated before they reach here, so a path built from one never leaves its folder.
"""

import errno
import os
import threading
from collections import namedtuple

CONTAINERS = "containers"
CONTAINER_RECORD = "container.json"
RUNTIME_LOG = "runtime.log"
EVENTS_LOG = "events.log"
DAEMON_LOCK = "containerd.lock"
SOCKETS = "sockets"
RUNTIMES = "runtime"
MONITOR_SOCKET = "monitor.sock"
MONITOR_PID = "monitor.pid"
MONITOR_LOCK = "monitor.lock"
MONITOR_LOG = "monitor.log"

_PROCESS_RECORD = ("process-", ".json")
_EXIT_RECORD = ("exit-", ".json")
_EXEC_SPEC = ("exec-", ".json")
_PID_FILE = "pid-"

#: What the name of a file being replaced starts with (L{write_atomically}); the start-up sweep removes them.
TEMP_PREFIX = ".tmp-"
#: Files of an atomic write are created with this mode (the state dir itself is 0700).
FILE_MODE = 0o600


def process_record_name(process_id):
    """C{process-<id>.json}: a process's record in its container's folder."""
    return "%s%s%s" % (_PROCESS_RECORD[0], process_id, _PROCESS_RECORD[1])


def exit_record_name(process_id):
    """C{exit-<id>.json}: a process's exit record, written by the monitor in its record folder."""
    return "%s%s%s" % (_EXIT_RECORD[0], process_id, _EXIT_RECORD[1])


def pid_file_name(process_id):
    """C{pid-<id>}: where the runtime writes a process's host pid."""
    return _PID_FILE + process_id


def exec_spec_name(process_id):
    """C{exec-<id>.json}: an exec'd process's spec for the runtime."""
    return "%s%s%s" % (_EXEC_SPEC[0], process_id, _EXEC_SPEC[1])


def is_process_record(name):
    """Whether C{name} (in a container's folder) is a process record."""
    return name.startswith(_PROCESS_RECORD[0]) and name.endswith(_PROCESS_RECORD[1])


def is_exit_record(name):
    """Whether C{name} (in a container's folder) is an exit record."""
    return name.startswith(_EXIT_RECORD[0]) and name.endswith(_EXIT_RECORD[1])


def temp_name(name):
    """The name under which C{name} is written before it is renamed into place."""
    return TEMP_PREFIX + name


def is_temp(name):
    """
    Whether C{name} is a file being replaced, or one left torn by a crash (what the start-up sweep removes):
    L{temp_name}'s, and C{.<name>.<pid>.tmp} that monitors before this layout wrote.
    """
    return name.startswith(TEMP_PREFIX) or (name.startswith(".") and name.endswith(".tmp"))


def exit_record_path(record_dir, process_id):
    return os.path.join(record_dir, exit_record_name(process_id))


class Registration(namedtuple("Registration", "container process record_dir")):
    """
    Who a started process is to the monitor: its C{container}, its C{process} id, and the C{record_dir} where
    its pid file, the runtime's log and its exit record go (its container's folder).

    (A C{collections.namedtuple}, not a C{typing.NamedTuple}: importing typing would cost the monitor's
    start-up a few milliseconds.)
    """

    __slots__ = ()

    @property
    def pid_file(self):
        return os.path.join(self.record_dir, pid_file_name(self.process))

    @property
    def runtime_log(self):
        return os.path.join(self.record_dir, RUNTIME_LOG)

    @property
    def exit_record(self):
        return exit_record_path(self.record_dir, self.process)

    def to_wire(self):
        """The C{register} object of a monitor C{spawn} request."""
        return {"container": self.container, "process": self.process, "record_dir": self.record_dir}


class StateDirLayout:
    """The paths of one state dir."""

    def __init__(self, state_dir):
        self.root = state_dir

    def _path(self, name):
        return os.path.join(self.root, name)

    @property
    def daemon_lock(self):
        return self._path(DAEMON_LOCK)

    @property
    def events_log(self):
        return self._path(EVENTS_LOG)

    @property
    def sockets_dir(self):
        return self._path(SOCKETS)

    @property
    def runtimes_dir(self):
        return self._path(RUNTIMES)

    def runtime_root(self, name):
        """A runtime's C{--root} (C{name} is a runtime's name or path: its last component is used)."""
        return os.path.join(self.runtimes_dir, os.path.basename(name))

    @property
    def monitor_socket(self):
        return self._path(MONITOR_SOCKET)

    @property
    def monitor_pid(self):
        return self._path(MONITOR_PID)

    @property
    def monitor_lock(self):
        return self._path(MONITOR_LOCK)

    @property
    def monitor_log(self):
        return self._path(MONITOR_LOG)

    @property
    def containers_dir(self):
        return self._path(CONTAINERS)

    def container_dir(self, container_id):
        """The folder of one container's records."""
        return os.path.join(self.containers_dir, container_id)

    def container_record(self, container_id):
        return os.path.join(self.container_dir(container_id), CONTAINER_RECORD)

    def process_record(self, container_id, process_id):
        return os.path.join(self.container_dir(container_id), process_record_name(process_id))

    def exit_record(self, container_id, process_id):
        return exit_record_path(self.container_dir(container_id), process_id)

    def pid_file(self, container_id, process_id):
        return self.registration(container_id, process_id).pid_file

    def runtime_log(self, container_id):
        return os.path.join(self.container_dir(container_id), RUNTIME_LOG)

    def exec_spec(self, container_id, process_id):
        return os.path.join(self.container_dir(container_id), exec_spec_name(process_id))

    def registration(self, container_id, process_id):
        """The L{Registration} of a process of a container."""
        return Registration(container_id, process_id, self.container_dir(container_id))

    def process_files(self, container_id, process_id):
        """Every file of one process in its container's folder (record, exit record, pid file)."""
        directory = self.container_dir(container_id)
        return [os.path.join(directory, name) for name in (
            process_record_name(process_id), exit_record_name(process_id), pid_file_name(process_id))]


# The one atomic write --------------------------------------------------------------------------------------

_batch = threading.local()


def begin_batch():
    """
    From now on this thread's L{write_atomically} calls write and close their temporary files but leave the
    fsync and the rename to the caller (see L{end_batch}): one filesystem sync for a whole batch.
    """
    _batch.renames = []


def end_batch():
    """
    End this thread's batch; the C{(temporary path, path)} renames it left to the caller, in order (a
    temporary path of None: a record L{rewrite_record} changed in place, to be synced with the rest).
    """
    renames, _batch.renames = _batch.renames, None
    return renames


def pending_renames():
    """This thread's batch's pending renames (a list the caller may change), or None outside a batch."""
    return getattr(_batch, "renames", None)


def _fill(fd, path, data, sync):
    """Write all of C{data} to the new file C{fd} at C{path}, fsync it with C{sync}, close it; remove it on failure."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    os.close(fd)


def write_atomically(path, data, durable=True, sync_dir=False):
    """
    Replace C{path} with C{data} (bytes) so that readers see either the old or the new file, never a torn one:
    the data goes to L{temp_name} in the same folder (mode L{FILE_MODE}), is fsynced, and is renamed over the
    final name; the folder is fsynced too with C{sync_dir}, best effort (without: the caller syncs it, or need
    not).
    C{durable=False} skips both fsyncs (a file nobody needs after a crash).  A temporary file that cannot be
    written is removed.

    Inside a batch (L{begin_batch}) the fsync and rename are the batch's: done for all its files at once.

    @raise OSError: the file could not be written or renamed (the old one, if any, is intact).
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, temp_name(name))
    pending = pending_renames()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOCTTY, FILE_MODE)
    _fill(fd, tmp, data, sync=pending is None and durable)
    if pending is not None:
        pending.append((tmp, path))
        return
    os.rename(tmp, path)
    if sync_dir and durable:
        fsync_dir(directory or ".")


def write_new_record(path, data):
    """
    Write a record that does not exist yet straight under its name: no temporary file and no rename, so inside
    a batch it needs the batch's one filesystem sync and nothing after it (a start's records on a disk were
    half the syncs a start waited for). An existing C{path} is replaced by L{write_atomically} instead.

    Safe because nobody reads a new record before it is synced and acted on: a daemon killed while writing one
    has not started what it records, and a container folder whose C{container.json} is missing or torn is
    removed at the next start (write the container's own record last). A file that cannot be written is
    removed.

    A rename to C{path} still pending in this thread's batch also goes through L{write_atomically}, so that the
    later write lands last.

    @raise OSError: the file could not be written (no file is left), or its folder is missing.
    """
    pending = pending_renames()
    if pending and any(tmp is not None and target == path for tmp, target in pending):
        write_atomically(path, data)
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOCTTY, FILE_MODE)
    except FileExistsError:
        write_atomically(path, data)
        return
    _fill(fd, path, data, sync=pending is None)
    if pending is not None:
        pending.append((None, path))  # nothing to rename; the batch syncs it


#: A record rewritten in place must fit in one page, old and new: the kernel copies one page into the page
#: cache without stopping for a signal, so a writer killed mid-write leaves the old or the new record.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rewrite_record(path, data):
    """
    Replace an existing small JSON record in place: one C{pwrite} at offset 0, padded with spaces (which JSON
    ignores) to at least the old length, so no truncate is needed. No file is created: on some filesystems
    (ext4 on this project's test machine) making an inode costs a millisecond of CPU, a start rewrote two
    records, and a rewrite this way costs a few microseconds. Anything else (a missing file, a record over a
    page, a rename of the same path still pending in this thread's batch) goes through L{write_atomically}.

    Inside a batch the rewrite is synced by the batch's filesystem sync, like the batch's renames.
    """
    pending = pending_renames()
    if len(data) <= PAGE_SIZE and not (pending and any(target == path for _, target in pending)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except FileNotFoundError:
            fd = None
        if fd is not None:
            try:
                size = os.fstat(fd).st_size
                if size <= PAGE_SIZE:
                    if size > len(data):
                        data = data + b" " * (size - len(data))
                    if os.pwrite(fd, data, 0) == len(data):
                        if pending is None:
                            os.fsync(fd)
                        else:
                            pending.append((None, path))  # nothing to rename; the batch syncs it
                        return
            finally:
                os.close(fd)
    write_atomically(path, data)


def fsync_dir(directory):
    """fsync a folder (the renames in it); the OSError, or None (a filesystem that cannot sync one is fine)."""
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        return e
    try:
        os.fsync(dfd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EROFS):
            return e
    finally:
        os.close(dfd)
    return None
