"""
A state dir on a disk: each start's pid file and runtime log are scratch files on a tmpfs, gone once the start
has ended; nothing of them is written to the container's folder, and a refused start still says why.
"""

import os
import shutil
import stat
import tempfile

import grpc
from twisted.trial.unittest import TestCase

from containerd_tx import scratch
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.state_store import MEMORY_FILESYSTEMS, filesystem_type
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import bundles
from tests.support.daemon import Daemon, create_request
from tests.support.ids import unique_id


class ScratchFilesTests(LifecycleTestCase):

    def setUp(self):
        # /var/tmp is on a disk where /tmp may be a tmpfs; short, for the daemon's socket path.
        self.workdir_parent = tempfile.mkdtemp(prefix="ctx-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.workdir_parent, True)
        if filesystem_type(self.workdir_parent) in MEMORY_FILESYSTEMS:
            self.skipTest(f"{self.workdir_parent} is in memory: the files stay beside the records there")
        super().setUp()
        self.folder = scratch.default_directory(self.daemon.state_dir)
        if self.folder is None:
            self.skipTest("no tmpfs for scratch files on this host")

    def container_files(self, container_id):
        return sorted(os.listdir(os.path.join(self.daemon.state_dir, "containers", container_id)))

    def test_start_and_exec_leave_no_scratch_files(self):
        c1 = unique_id("c1")
        container = self.start(c1, "sleep", "1000")
        self.assertGreater(container.processes[0].systemPid, 0)
        self.assertEqual(self.container_files(c1), ["container.json", "process-init.json"])
        self.assertEqual(os.listdir(self.folder), [])
        pid = self.daemon.stub.AddProcess(pb.AddProcessRequest(id=c1, pid="p1", args=["sleep", "1000"]),
                                          timeout=60).systemPid
        self.assertGreater(pid, 0)
        self.assertEqual(os.listdir(self.folder), [])
        self.assertNotIn("runtime.log", self.container_files(c1))

    def test_a_refused_start_still_says_why(self):
        details = self.assertStatus(grpc.StatusCode.INTERNAL, self.daemon.stub.CreateContainer,
                                    create_request(unique_id("broken"), self.bundle("/no/such/binary")),
                                    "runc run failed")
        self.assertIn("no such file", details.lower())
        self.assertEqual(os.listdir(self.folder), [])

    def test_a_stopped_daemon_removes_the_folder(self):
        self.start(unique_id("c2"), "true")
        self.assertTrue(os.path.isdir(self.folder))
        self.events.close()
        self.daemon.stop()
        self.assertFalse(os.path.exists(self.folder))


class UnsafeScratchFolderTests(TestCase):
    """A folder at the scratch name that is not the daemon's alone is never used: the files stay in the state dir."""

    def test_falls_back_to_the_state_dir(self):
        parent = tempfile.mkdtemp(prefix="ctx-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, parent, True)
        if filesystem_type(parent) in MEMORY_FILESYSTEMS:
            self.skipTest(f"{parent} is in memory: no scratch folder is used there")
        daemon = Daemon.for_test(self, parent=parent, start=False)
        folder = scratch.default_directory(daemon.state_dir)
        if folder is None:
            self.skipTest("no tmpfs for scratch files on this host")
        os.mkdir(folder)
        self.addCleanup(shutil.rmtree, folder, True)
        os.chmod(folder, 0o777)  # as another local user could have made it: anybody may write there
        daemon.start()
        self.assertIn("they go to the state dir", daemon.log_text())
        rootfs = bundles.make_rootfs(os.path.join(daemon.workdir, "rootfs"))
        bundle = bundles.make_bundle(os.path.join(daemon.workdir, "bundle"), ("sleep", "1000"), rootfs)
        c1 = unique_id("c1")
        daemon.stub.CreateContainer(create_request(c1, bundle), timeout=60)
        self.assertIn("pid-init", os.listdir(os.path.join(daemon.state_dir, "containers", c1)))
        self.assertEqual(os.listdir(folder), [])
        self.assertEqual(stat.S_IMODE(os.stat(folder).st_mode), 0o777)
