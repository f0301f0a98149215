"""
Tests for L{containerd_tx.scratch}: where each runtime start's pid file and log go, and that they are removed
once the start has ended.
"""

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import scratch
from containerd_tx.layout import Registration
from containerd_tx.scratch import STALE_AFTER, ScratchFiles


class DefaultDirectoryTests(SynchronousTestCase):

    def setUp(self):
        self.shm = os.path.abspath(self.mktemp())
        os.makedirs(self.shm)
        self.types = {"/state/on/disk": "ext4", "/state/other": "ext4", "/run/ctx": "tmpfs", self.shm: "tmpfs"}

    def choose(self, state_dir, candidates=None):
        return scratch.default_directory(state_dir, candidates or (self.shm,), fs_type=self.types.get)

    def test_state_dir_on_disk_gets_a_folder_on_the_tmpfs(self):
        chosen = self.choose("/state/on/disk")
        self.assertEqual(os.path.dirname(chosen), self.shm)
        self.assertTrue(os.path.basename(chosen).startswith("containerd-tx-"))
        self.assertEqual(self.choose("/state/on/disk"), chosen)
        self.assertNotEqual(self.choose("/state/other"), chosen)

    def test_state_dir_in_memory_keeps_the_files_beside_the_records(self):
        self.assertIsNone(self.choose("/run/ctx"))

    def test_no_tmpfs_keeps_them_in_the_state_dir(self):
        self.types[self.shm] = "ext4"
        self.assertIsNone(self.choose("/state/on/disk"))
        self.assertIsNone(self.choose("/state/on/disk", candidates=(os.path.join(self.shm, "missing"),)))


class ScratchFilesTests(SynchronousTestCase):

    def setUp(self):
        self.records = os.path.abspath(self.mktemp())
        tmpfs = os.path.abspath(self.mktemp())
        os.makedirs(tmpfs)
        self.folder = os.path.join(tmpfs, "containerd-tx-x")
        self.now = [1000000.0]
        self.files = ScratchFiles(self.folder, clock=lambda: self.now[0])
        self.files.prepare()
        self.registration = Registration("c1", "init", self.records)

    def test_without_a_folder_the_files_are_the_records(self):
        files = ScratchFiles()
        pid_file, log_file = files.for_start(self.registration)
        self.assertEqual((pid_file, log_file), (self.registration.pid_file, self.registration.runtime_log))
        os.makedirs(self.records)
        for path in (pid_file, log_file):
            with open(path, "w") as f:
                f.write("kept")
        self.assertEqual(files.release(pid_file, log_file), "")
        self.assertTrue(os.path.exists(pid_file) and os.path.exists(log_file))

    def test_each_start_gets_its_own_files_in_the_folder(self):
        first = self.files.for_start(self.registration)
        second = self.files.for_start(self.registration)
        self.assertNotEqual(first, second)
        for path in first + second:
            self.assertEqual(os.path.dirname(path), self.folder)
        self.assertEqual(stat.S_IMODE(os.stat(self.folder).st_mode), 0o700)

    def test_release_returns_the_log_and_removes_both(self):
        pid_file, log_file = self.files.for_start(self.registration)
        with open(pid_file, "w") as f:
            f.write("4242")
        with open(log_file, "w") as f:
            f.write('{"level":"warning","msg":"a warning"}\n')
        self.assertEqual(self.files.release(pid_file, log_file), '{"level":"warning","msg":"a warning"}')
        self.assertEqual(os.listdir(self.folder), [])
        # A start that failed before the runtime wrote anything: nothing to remove, nothing said.
        self.assertEqual(self.files.release(*self.files.for_start(self.registration)), "")

    def test_prepare_sweeps_only_old_leftovers(self):
        old, fresh = os.path.join(self.folder, "1-1.pid"), os.path.join(self.folder, "2-1.pid")
        for path in (old, fresh):
            with open(path, "w") as f:
                f.write("1")
        os.utime(old, (self.now[0] - STALE_AFTER - 1,) * 2)
        os.utime(fresh, (self.now[0] - 5,) * 2)
        self.files.prepare()
        self.assertEqual(os.listdir(self.folder), ["2-1.pid"])

    def test_remove_folder_only_when_empty(self):
        pid_file, _ = self.files.for_start(self.registration)
        with open(pid_file, "w") as f:
            f.write("1")
        self.files.remove_folder()
        self.assertTrue(os.path.isdir(self.folder))
        os.unlink(pid_file)
        self.files.remove_folder()
        self.assertFalse(os.path.exists(self.folder))

    def test_a_folder_not_ours_alone_is_refused_and_left_as_it_is(self):
        # The tmpfs is everybody's and the name predictable: a folder others may write to, another user's, a
        # link or a file there could feed the monitor a false pid.
        elsewhere = os.path.abspath(self.mktemp())
        os.makedirs(elsewhere)
        os.chmod(elsewhere, 0o755)

        def writable_by_all(path):
            os.mkdir(path)
            os.chmod(path, 0o777)

        def another_users(path):
            os.mkdir(path, 0o700)
            os.chown(path, os.geteuid() + 1, -1)

        makers = [writable_by_all, lambda path: os.symlink(elsewhere, path), lambda path: open(path, "w").close()]
        if os.geteuid() == 0:  # giving a folder away needs root
            makers.append(another_users)
        for make in makers:
            tmpfs = os.path.abspath(self.mktemp())
            os.makedirs(tmpfs)
            path = os.path.join(tmpfs, "containerd-tx-y")
            make(path)
            with self.assertRaises(OSError) as raised:
                ScratchFiles(path).prepare()
            self.assertIn("alone", str(raised.exception))
        self.assertEqual(stat.S_IMODE(os.stat(elsewhere).st_mode), 0o755)
