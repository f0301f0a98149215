# -*- test-case-name: tests.unit.test_state_store -*-
"""
The daemon's records on disk, in the state dir, so that a restarted daemon finds its containers again.

The layout (C{<state-dir>/containers/<id>/container.json}, C{process-<pid>.json}, the monitor's
C{exit-<pid>.json}, ...) and the atomic write (temporary file, fsync, rename) are L{containerd_tx.layout}'s.

On a disk, writes go through a writer (in the daemon: an L{OrderedWriter}, one dedicated thread committing in
batches), so fsync never stalls the reactor, and changes happen in the order they were asked for. On a tmpfs,
where fsync does nothing, the daemon has no writer and writes inline. Records are serialized by the caller, so
the writer thread only ever handles bytes. Every mutating method returns a Deferred that fires once the change
is on disk. Those the daemon must not act before (a record written before the runtime starts a container) are
awaited; the rest are ordered behind them, and their failures are logged.
"""

import ctypes
import json
import os
import queue
import re
import shutil
import threading

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from containerd_tx import layout
from containerd_tx.layout import rewrite_record
from containerd_tx.model import Container, Process

log = Logger()

#: Filesystems whose files live in memory, where fsync does nothing.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def filesystem_type(path, mounts="/proc/mounts"):
    """
    @return: the type of the filesystem C{path} is on (ext4, tmpfs, ...), or C{"unknown"}: the last mount in
        C{mounts} whose mount point contains C{path}, since a later mount hides what it covers.
    """
    path = os.path.realpath(path)
    kind = "unknown"
    try:
        with open(mounts) as f:
            lines = f.readlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        # /proc/mounts writes space, tab, newline and backslash as octal escapes.
        mount_point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        if path == mount_point or path.startswith(mount_point.rstrip("/") + "/"):
            kind = fields[2]
    return kind


_libc = ctypes.CDLL(None, use_errno=True)


def _syncfs(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            os.fsync(fd)
    finally:
        os.close(fd)


class OrderedWriter:
    """
    Runs state dir changes on one thread, in the order they were asked for, committing them in batches.

    What is queued while a batch runs forms the next batch: every file of a batch is written, the filesystem
    is synced once, the files are renamed into place, and it is synced again. Durability is the same as an
    fsync per file; the cost is two syncs per batch instead of two per file, which matters when many
    containers start at once on a disk-backed state dir.

    @param reactor: where results are delivered.
    @param root: a folder on the state dir's filesystem (to sync it).
    """

    def __init__(self, reactor, root):
        self._reactor = reactor
        self._root = root
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)

    def start(self):
        """Start the writer thread."""
        self._thread.start()

    def __call__(self, fn, *args):
        """Queue C{fn(*args)}; returns a Deferred firing (in the reactor) once its changes are on disk."""
        d = defer.Deferred()
        self._queue.put((fn, args, d))
        return d

    def stop(self):
        """Finish what is queued, then end the thread (blocks: call it from a thread)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self):
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch):
        layout.begin_batch()
        outcomes = []
        for fn, args, d in batch:
            try:
                outcomes.append((d, fn(*args)))
            except BaseException:
                outcomes.append((d, Failure()))
        renames = layout.end_batch()
        if renames:
            try:
                _syncfs(self._root)
                renamed = False
                for tmp, path in renames:
                    if tmp is None:
                        continue  # written in place: the sync above made it durable
                    try:
                        os.rename(tmp, path)
                        renamed = True
                    except FileNotFoundError:
                        pass  # its folder was removed later in the same batch
                if renamed:
                    _syncfs(self._root)
            except OSError:
                failure = Failure()
                outcomes = [(d, failure) for d, _ in outcomes]
        for d, outcome in outcomes:
            if isinstance(outcome, Failure):
                self._reactor.callFromThread(d.errback, outcome)
            else:
                self._reactor.callFromThread(d.callback, outcome)


def _dump(record):
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


#: Seconds between attempts to remove a container folder that could not be removed.
REMOVAL_RETRY = 10.0


class StateStore:
    """
    Reads and writes container records under C{<state-dir>/containers}.

    A container folder that cannot be removed (no file descriptor left, a busy mount inside it, EIO) is
    logged and removed later: every L{REMOVAL_RETRY} seconds (with a C{reactor}), at the next removal, and
    before a container of the same id is recorded again.

    @param writer: C{writer(fn, *args) -> Deferred} running disk changes in order off the reactor (an
        L{OrderedWriter}); None runs them inline (tests, tools).
    @param reactor: schedules the retries (None: only at the next removal).
    """

    def __init__(self, state_dir, writer=None, reactor=None):
        self.layout = layout.StateDirLayout(state_dir)
        self.root = self.layout.containers_dir
        self._writer = writer
        self._reactor = reactor
        #: container folders whose removal failed, retried later (only touched in the reactor thread).
        self.leftovers = set()
        self._retry_call = None
        os.makedirs(self.root, mode=0o700, exist_ok=True)

    def _write(self, fn, *args, fail=False):
        if self._writer is None:
            d = defer.maybeDeferred(fn, *args)
        else:
            d = self._writer(fn, *args)
        if not fail:
            d.addErrback(lambda f: log.failure("state dir change failed: {fn}", f, fn=fn.__name__))
        return d

    def save_new(self, container_id, processes, container=None):
        """
        Record processes (and the container itself, when given) before the runtime acts on them; the Deferred
        fails if the disk refuses.
        """
        records = self._records(container_id, container, processes)
        directory = self.container_dir(container_id)
        if container is not None and directory in self.leftovers:
            # What is left of an earlier container of the same id goes first, or its records would be read
            # back as this one's.
            self.leftovers.discard(directory)
            return self._write(_write_records_afresh, directory, records, fail=True)
        return self._write(_write_new_records, records, fail=True)

    def _records(self, container_id, container, processes):
        # Serialized here, in the caller's (the reactor's) thread: the writer thread only ever sees bytes, never
        # the supervisor's objects.
        directory = self.container_dir(container_id)
        records = []
        if container is not None:
            records.append((directory, layout.CONTAINER_RECORD, _dump(container.to_record())))
        for process in processes:
            records.append((directory, layout.process_record_name(process.id), _dump(process.to_record())))
        return records

    def container_dir(self, container_id):
        """The folder of one container's records."""
        return self.layout.container_dir(container_id)

    def save_container(self, container):
        """Write (or rewrite) a container's own record."""
        return self._write(_rewrite_records, self._records(container.id, container, ()))

    def save_process(self, container_id, process):
        """Write (or rewrite) one process record of a container."""
        return self._write(_rewrite_records, self._records(container_id, None, [process]))

    def save_started(self, container, process):
        """Rewrite a container's record and one of its processes (after a start), in one go."""
        return self._write(_rewrite_records, self._records(container.id, container, [process]))

    def remove_process(self, container_id, process_id):
        """Forget one process (its record, pid file and exit record)."""
        return self._write(self._remove_process, container_id, process_id)

    def _remove_process(self, container_id, process_id):
        for path in self.layout.process_files(container_id, process_id):
            _unlink(path)

    def remove_exit_record(self, container_id, process_id):
        """Drop an exit record once its event is in the event log."""
        return self._write(_unlink, self.layout.exit_record(container_id, process_id))

    def remove_container(self, container_id):
        """
        Forget a container and every record of it. Its container.json goes first: a daemon killed half-way
        through leaves a folder without one, which the next start removes, never a container whose process
        records are gone (it would be adopted as running, with no process, forever).
        """
        directory = self.container_dir(container_id)
        self.leftovers.discard(directory)
        self.retry_removals()
        return self._remove_folder(directory)

    def _remove_folder(self, directory, first=True):
        d = self._write(_remove_folder, directory, fail=True)
        if not first:
            d.addCallback(lambda _: log.info("removed container folder {dir} at last", dir=directory))
        d.addCallbacks(lambda _: self.leftovers.discard(directory), self._removal_failed,
                       errbackArgs=(directory, first))
        return d

    def _removal_failed(self, failure, directory, first):
        if first:
            log.warn("cannot remove container folder {dir} ({e}); it is removed later", dir=directory,
                     e=failure.getErrorMessage())
        self.leftovers.add(directory)
        if self._reactor is not None and (self._retry_call is None or not self._retry_call.active()):
            self._retry_call = self._reactor.callLater(REMOVAL_RETRY, self.retry_removals)

    def retry_removals(self):
        """
        Try again to remove the folders whose removal failed (ordered behind the writes already asked for).

        @return: a Deferred firing once done; the folders that still fail stay for later.
        """
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        return defer.gatherResults([self._remove_folder(directory, first=False)
                                    for directory in sorted(self.leftovers)])

    def read_exit_records(self, container_id):
        """
        Exit records the monitor wrote for a container, as dicts, oldest first.
        """
        directory = self.container_dir(container_id)
        records = []
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return records
        for name in names:
            if layout.is_exit_record(name):
                record = _read_json(os.path.join(directory, name))
                if isinstance(record, dict):
                    records.append(record)
        records.sort(key=lambda r: r.get("time_ns", 0))
        return records

    def load(self):
        """
        Read every container back, removing torn temporary files (the daemon's and the monitor's) and folders
        without a container record.

        @return: a list of L{Container}s with their processes.
        """
        containers = []
        for container_id in sorted(os.listdir(self.root)):
            directory = self.container_dir(container_id)
            if not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                if layout.is_temp(name):
                    _unlink(os.path.join(directory, name))
            record = _read_json(os.path.join(directory, layout.CONTAINER_RECORD))
            if record is None:
                log.warn("removing container folder {dir} without a readable record", dir=directory)
                self._remove_folder(directory)
                continue
            processes = {}
            for name in os.listdir(directory):
                if layout.is_process_record(name):
                    process_record = _read_json(os.path.join(directory, name))
                    if process_record is not None:
                        try:
                            process = Process.from_record(process_record)
                        except (TypeError, ValueError) as e:
                            log.warn("skipping unreadable process record {name} of {id} ({e})",
                                     name=name, id=container_id, e=e)
                            continue
                        processes[process.id] = process
            try:
                containers.append(Container.from_record(record, processes))
            except TypeError as e:
                log.warn("removing container {id}: unreadable record ({e})", id=container_id, e=e)
                self._remove_folder(directory)
        return containers


def _write_records(records, write):
    """Write each record with C{write}, in order; a container's own record first makes its folder."""
    for directory, name, _ in records:
        if name == layout.CONTAINER_RECORD:
            # Only a container's own record makes its folder: a late process record of a removed container
            # fails instead of leaving a folder behind.
            os.makedirs(directory, mode=0o700, exist_ok=True)
    for directory, name, data in records:
        write(os.path.join(directory, name), data)


def _write_new_records(records):
    """
    L{_write_records} for records that usually do not exist yet (see L{layout.write_new_record}), the
    container's own record last: a torn one can only be in a folder whose process records are whole.
    """
    _write_records(sorted(records, key=lambda record: record[1] == layout.CONTAINER_RECORD),
                   layout.write_new_record)


def _rewrite_records(records):
    """L{_write_records} for records that usually exist already: changed in place (see L{rewrite_record})."""
    _write_records(records, rewrite_record)


def _write_records_afresh(directory, records):
    if os.path.lexists(directory):
        _remove_folder(directory)
    _write_new_records(records)


def _read_json(path):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def _remove_folder(directory):
    """Remove a container's folder, its record first; raise OSError if anything is left."""
    _unlink(os.path.join(directory, layout.CONTAINER_RECORD))
    try:
        shutil.rmtree(directory)
    except FileNotFoundError:
        if os.path.lexists(directory):
            raise


def _unlink(path):
    pending = layout.pending_renames()
    if pending:
        # A write of this path earlier in the same batch is not renamed into place yet: it must not be, or
        # the file removed here would come back (a process record outliving its process).
        for tmp, target in pending:
            if target == path and tmp is not None:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
        pending[:] = [(tmp, target) for tmp, target in pending if target != path]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
