"""
Tests for L{containerd_tx.layout}: the state dir's paths and the one atomic write.
"""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import containerd_tx
from containerd_tx import layout
from containerd_tx.layout import Registration, StateDirLayout, write_atomically


class StateDirLayoutTests(SynchronousTestCase):
    """
    L{StateDirLayout} names every path of a state dir.
    """

    def setUp(self):
        self.layout = StateDirLayout("/state")

    def test_state_dir_files(self):
        self.assertEqual(
            [self.layout.daemon_lock, self.layout.events_log, self.layout.sockets_dir, self.layout.runtimes_dir,
             self.layout.monitor_socket, self.layout.monitor_pid, self.layout.monitor_lock,
             self.layout.monitor_log, self.layout.containers_dir],
            ["/state/containerd.lock", "/state/events.log", "/state/sockets", "/state/runtime",
             "/state/monitor.sock", "/state/monitor.pid", "/state/monitor.lock", "/state/monitor.log",
             "/state/containers"])

    def test_runtime_root(self):
        """A runtime's root is named after the last component of its name or path."""
        self.assertEqual(self.layout.runtime_root("runc"), "/state/runtime/runc")
        self.assertEqual(self.layout.runtime_root("/usr/local/bin/crun"), "/state/runtime/crun")

    def test_container_files(self):
        self.assertEqual(
            [self.layout.container_dir("c1"), self.layout.container_record("c1"),
             self.layout.process_record("c1", "p1"), self.layout.exit_record("c1", "p1"),
             self.layout.pid_file("c1", "p1"), self.layout.runtime_log("c1"), self.layout.exec_spec("c1", "p1")],
            ["/state/containers/c1", "/state/containers/c1/container.json", "/state/containers/c1/process-p1.json",
             "/state/containers/c1/exit-p1.json", "/state/containers/c1/pid-p1", "/state/containers/c1/runtime.log",
             "/state/containers/c1/exec-p1.json"])

    def test_process_files(self):
        """What is removed with a process: its record, exit record and pid file."""
        self.assertEqual(self.layout.process_files("c1", "init"),
                         ["/state/containers/c1/process-init.json", "/state/containers/c1/exit-init.json",
                          "/state/containers/c1/pid-init"])

    def test_names_recognised(self):
        self.assertTrue(layout.is_process_record(layout.process_record_name("init")))
        self.assertTrue(layout.is_exit_record(layout.exit_record_name("init")))
        self.assertFalse(layout.is_exit_record(layout.process_record_name("init")))
        self.assertFalse(layout.is_process_record("exit-init.json"))
        self.assertFalse(layout.is_exit_record("exit-notes.txt"))

    def test_temporary_names(self):
        """
        The sweep's pattern covers what L{write_atomically} writes and what monitors before the shared layout
        wrote (C{.<name>.<pid>.tmp}); no record is mistaken for one.
        """
        self.assertEqual(layout.temp_name("exit-init.json"), ".tmp-exit-init.json")
        for name in (".tmp-container.json", ".tmp-exit-init.json", ".exit-init.json.123.tmp"):
            self.assertTrue(layout.is_temp(name), name)
        for name in ("container.json", "process-init.json", "exit-init.json", "pid-init", "runtime.log",
                     "exec-p1.json", "resources-update.json", "criu-restore", "x.tmp"):
            self.assertFalse(layout.is_temp(name), name)


class RegistrationTests(SynchronousTestCase):
    """
    L{Registration} is a process's place for the monitor: named fields, its files, and its wire form.
    """

    def test_fields_and_tuple(self):
        registration = Registration("c1", "init", "/state/containers/c1")
        self.assertEqual((registration.container, registration.process, registration.record_dir),
                         ("c1", "init", "/state/containers/c1"))
        self.assertEqual(registration, ("c1", "init", "/state/containers/c1"))
        self.assertEqual(Registration(*("c1", "init", "/r")), registration._replace(record_dir="/r"))

    def test_files(self):
        registration = StateDirLayout("/state").registration("c1", "p1")
        self.assertEqual(registration.record_dir, "/state/containers/c1")
        self.assertEqual(registration.pid_file, "/state/containers/c1/pid-p1")
        self.assertEqual(registration.runtime_log, "/state/containers/c1/runtime.log")
        self.assertEqual(registration.exit_record, "/state/containers/c1/exit-p1.json")

    def test_wire(self):
        self.assertEqual(Registration("c1", "init", "/r").to_wire(),
                         {"container": "c1", "process": "init", "record_dir": "/r"})


class SyncRecordingCase(SynchronousTestCase):
    """A temp folder with C{self.path} (named C{record_name}) in it; C{self.calls} lists the paths fsynced."""

    record_name = "exit-init.json"

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, self.record_name)
        self.calls = []
        real_fsync = os.fsync

        def fsync(fd):
            self.calls.append(os.readlink(f"/proc/self/fd/{fd}"))
            return real_fsync(fd)

        self.patch(os, "fsync", fsync)


class WriteAtomicallyTests(SyncRecordingCase):
    """
    L{write_atomically}: mode, temporary name, durability and clean-up (the daemon's batches are tested with
    L{containerd_tx.state_store.OrderedWriter}).
    """

    def test_private_file_synced(self):
        """The file is the owner's only; its data is synced under the temporary name, then renamed."""
        write_atomically(self.path, b"data")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, layout.FILE_MODE)
        self.assertEqual(self.calls, [os.path.join(self.dir, ".tmp-exit-init.json")])
        self.assertEqual(os.listdir(self.dir), ["exit-init.json"])

    def test_sync_dir(self):
        """With C{sync_dir} the folder is synced after the rename."""
        write_atomically(self.path, b"data", sync_dir=True)
        self.assertEqual(self.calls, [os.path.join(self.dir, ".tmp-exit-init.json"), self.dir])

    def test_not_durable(self):
        """C{durable=False}: renamed into place without a sync."""
        write_atomically(self.path, b"123\n", durable=False, sync_dir=True)
        self.assertEqual(self.calls, [])
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"123\n")

    def test_failed_write_leaves_nothing(self):
        """A temporary file that cannot be written is removed; the old file stays."""
        write_atomically(self.path, b"old")

        def fail(fd):
            raise OSError(28, "No space left on device")

        self.patch(os, "fsync", fail)
        self.assertRaises(OSError, write_atomically, self.path, b"new")
        self.assertEqual(os.listdir(self.dir), ["exit-init.json"])
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"old")

    def test_batch(self):
        """In a batch the renames are left to the caller, in order, and nothing is synced."""
        layout.begin_batch()
        try:
            write_atomically(self.path, b"a")
            write_atomically(self.path + "2", b"b")
        finally:
            renames = layout.end_batch()
        tmp = os.path.join(self.dir, ".tmp-exit-init.json")
        self.assertEqual(renames, [(tmp, self.path), (tmp + "2", self.path + "2")])
        self.assertEqual(self.calls, [])
        self.assertIsNone(layout.pending_renames())


class RewriteRecordTests(SyncRecordingCase):
    """
    L{layout.rewrite_record}: an existing record of at most a page is changed in place (no new inode), padded
    so that it still parses; anything else is replaced atomically.
    """

    record_name = "container.json"

    def read(self):
        with open(self.path, "rb") as f:
            return f.read()

    def test_in_place_and_synced(self):
        """Same inode, the new record readable, synced (outside a batch), no temporary file made."""
        write_atomically(self.path, json.dumps({"status": "creating", "pid": 0}).encode())
        inode = os.stat(self.path).st_ino
        del self.calls[:]
        layout.rewrite_record(self.path, json.dumps({"status": "running", "pid": 1234}).encode())
        self.assertEqual(os.stat(self.path).st_ino, inode)
        self.assertEqual(json.loads(self.read()), {"status": "running", "pid": 1234})
        self.assertEqual(self.calls, [self.path])
        self.assertEqual(os.listdir(self.dir), ["container.json"])

    def test_shorter_record_padded(self):
        """A shorter record is padded with spaces: no stale tail of the old one, and it still parses."""
        write_atomically(self.path, json.dumps({"labels": ["x" * 100]}).encode())
        layout.rewrite_record(self.path, b'{"labels":[]}')
        data = self.read()
        self.assertEqual(json.loads(data), {"labels": []})
        self.assertEqual(data.rstrip(b" "), b'{"labels":[]}')

    def test_large_record_replaced(self):
        """A record over a page is replaced through a new file (one write could be cut by a signal)."""
        write_atomically(self.path, b"{}")
        inode = os.stat(self.path).st_ino
        big = json.dumps({"labels": ["y" * (layout.PAGE_SIZE + 1)]}).encode()
        layout.rewrite_record(self.path, big)
        self.assertNotEqual(os.stat(self.path).st_ino, inode)
        self.assertEqual(self.read(), big)

    def test_missing_record_created(self):
        layout.rewrite_record(self.path, b'{"a":1}')
        self.assertEqual(self.read(), b'{"a":1}')

    def test_batch_syncs_in_place_and_keeps_order(self):
        """
        In a batch an in-place rewrite is left to the batch's sync (C{(None, path)}); a rewrite of a path whose
        rename is still pending goes behind that rename, so the newest data wins.
        """
        write_atomically(self.path, b'{"v":0}')
        other = os.path.join(self.dir, "process-init.json")
        layout.begin_batch()
        try:
            layout.rewrite_record(self.path, b'{"v":1}')
            write_atomically(other, b'{"p":1}')
            layout.rewrite_record(other, b'{"p":2}')
        finally:
            renames = layout.end_batch()
        tmp = os.path.join(self.dir, ".tmp-process-init.json")
        self.assertEqual(renames, [(None, self.path), (tmp, other), (tmp, other)])
        self.assertEqual(json.loads(self.read()), {"v": 1})
        for source, target in renames:
            if source is not None and os.path.exists(source):
                os.rename(source, target)
        with open(other, "rb") as f:
            self.assertEqual(json.loads(f.read()), {"p": 2})


class StandardLibraryOnlyTests(SynchronousTestCase):
    """
    The monitor (C{python -S}) imports the layout: it needs nothing outside the standard library.
    """

    def test_imports_under_dash_S(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(containerd_tx.__file__)))
        code = ("import sys; sys.path.insert(0, %r); import containerd_tx.layout; "
                "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in "
                "('twisted', 'zope', 'grpc', 'google')))" % (root,))
        out = subprocess.run([sys.executable, "-S", "-c", code], check=True, capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "[]")
