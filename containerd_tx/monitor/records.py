# -*- test-case-name: tests.unit.test_monitor_records -*-
"""
The monitor's exit records: the record of a registered process that exited, written before the daemon hears
of the exit (L{ExitRecords}, a mixin of the monitor), by a thread of its own in batches (L{RecordWriter}) with
L{containerd_tx.layout.write_atomically}; a record the disk refuses is kept in memory and retried.

Standard library only (see C{monitord.py}).
"""

import errno
import json
import os
import queue
import threading
import time
from collections import namedtuple

from containerd_tx import layout
from containerd_tx.monitor.loop import Loop, log


#: An exit record the disk refused, kept in memory (the monitor's C{unwritten}) with the folder it belongs in.
KeptRecord = namedtuple("KeptRecord", "record_dir record")

#: Seconds between attempts to write the exit records that could not be written (ENOSPC, EIO).
RECORD_RETRY = 1.0


class RecordWriter:
    """
    Writes exit records on a thread of its own, so that a slow fsync never
    stalls the loop that pumps every container's stdio.

    What is queued while a batch is written forms the next batch: each file
    is written and fsynced, renamed into place, and each folder of the batch
    is fsynced once.  C{done(error)} (None on success, else the OSError) is
    called in the loop's thread, once the record is on disk or has failed.
    """

    def __init__(self, loop):
        self.loop = loop
        self.queue = queue.SimpleQueue()
        self.results = queue.SimpleQueue()
        self.pending = 0
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        loop.add_reader(self.wake_r, self._on_results)
        self.thread = threading.Thread(target=self._run, name="records", daemon=True)
        self.thread.start()

    def submit(self, directory, name, record, done):
        self.pending += 1
        self.queue.put((directory, name, record, done))

    def _run(self):
        while True:
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            synced = {}
            outcomes = []
            for directory, name, record, done in batch:
                try:
                    write_record(directory, name, record, sync_dir=False)
                except OSError as e:
                    outcomes.append((done, e))
                    continue
                outcomes.append((done, directory))
                synced[directory] = None
            for directory in synced:
                synced[directory] = layout.fsync_dir(directory)
            for done, outcome in outcomes:
                if isinstance(outcome, OSError):
                    self.results.put((done, outcome))
                else:
                    self.results.put((done, synced[outcome]))
            try:
                os.write(self.wake_w, b"x")
            except BlockingIOError:
                pass  # the loop has a wake-up pending already

    def _on_results(self):
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                done, error = self.results.get_nowait()
            except queue.Empty:
                return
            self.pending -= 1
            Loop._call(lambda: done(error))


def write_record(directory, name, record, sync_dir=True):
    """
    Write C{record} as JSON to C{directory/name} with L{layout.write_atomically} (the folder fsynced too,
    unless C{sync_dir} is false: the caller does it).
    """
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    layout.write_atomically(os.path.join(directory, name), data, sync_dir=sync_dir)


class ExitRecords:
    """
    Writing the exit records of the L{containerd_tx.monitor.server.Monitor}'s processes (a mixin: it uses the
    monitor's records writer, C{unwritten}, C{retrying}, C{retry_at}, and its registry).
    """

    def proc_exited(self, proc, status, time_ns, unknown=False, zombie=False):
        """
        Drain and close its stdio, write the exit record, then (C{zombie}: reap it, then) notify.
        """
        self.unregister(proc)
        proc.proxies.close(drain=True)
        self._set_exited(proc.proxies)
        record = {
            "container": proc.container,
            "process": proc.process,
            "pid": proc.pid,
            "status": status,
            "time_ns": time_ns,
        }
        if unknown:
            record["unknown"] = True
        key = proc.key
        record_dir = proc.record_dir

        def written(error):
            if error is not None:
                log(
                    "cannot write exit record of %s/%s in %s: %s; kept in memory for the daemon"
                    % (key[0], key[1], record_dir, error)
                )
                self.unwritten[key] = KeptRecord(record_dir, record)
                self.unwritten.move_to_end(key)
                if self.retry_at is None:
                    self.retry_at = time.monotonic() + RECORD_RETRY
            elif zombie:
                self.release_zombie(record["pid"])
            # The record is on disk (or kept here) before the daemon hears of the exit.
            if error is not None:
                self.notify(dict(event="exit", unwritten=True, **record))
            else:
                self.notify(dict(event="exit", **record))

        self.records.submit(record_dir, layout.exit_record_name(proc.process), record, written)

    def retry_unwritten(self):
        """
        Try again to write the records kept in memory; return seconds until the next attempt (None: none).
        """
        if not self.unwritten:
            self.retry_at = None
            return None
        now = time.monotonic()
        if self.retry_at is not None and now < self.retry_at:
            return self.retry_at - now
        self.retry_at = now + RECORD_RETRY
        for key, (record_dir, record) in list(self.unwritten.items()):
            if key in self.retrying:
                continue
            self.retrying.add(key)

            def written(error, key=key, record=record, record_dir=record_dir):
                self.retrying.discard(key)
                entry = self.unwritten.get(key)
                if entry is None or entry.record is not record:
                    return
                if error is None:
                    log("exit record of %s/%s written at last" % key)
                    del self.unwritten[key]
                    self.release_zombie(record["pid"])
                elif error.errno == errno.ENOENT:
                    # Its folder is gone: the daemon handled the exit and removed the container.
                    log("exit record of %s/%s dropped: %s is gone" % (key[0], key[1], record_dir))
                    del self.unwritten[key]
                    self.release_zombie(record["pid"])

            self.records.submit(record_dir, layout.exit_record_name(record["process"]), record, written)
        return RECORD_RETRY
