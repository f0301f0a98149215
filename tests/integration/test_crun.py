"""
crun as the daemon's runtime (through contrib/crun-hybrid, which hides this machine's cgroup2 mount from crun).
"""

import os
import re
import shutil

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase, _read_until_eof
from tests.support.daemon import wait_for
from tests.support.ids import unique_id

WRAPPER = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "crun-hybrid")


class CrunTests(LifecycleTestCase):

    runtime = os.path.abspath(WRAPPER)

    def setUp(self):
        if shutil.which("crun") is None:
            self.skipTest("crun is not installed (run scripts/setup-system)")
        super().setUp()

    def test_lifecycle_on_crun(self):
        stdout = self.fifo("out")
        reader = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        c1 = unique_id("c1")
        container = self.start(c1, "sh", "-c", "echo from-crun; exit 7", stdout=stdout)
        self.assertEqual(container.runtime, "crun-hybrid")
        self.assertEqual(self.events.wait("exit", c1, "init").status, 7)
        self.assertEqual(_read_until_eof(reader), b"from-crun\n")
        wait_for(lambda: not self.daemon.runtime_containers(), message="crun to forget c1")

    def test_exec_pause_signal_on_crun(self):
        c2 = unique_id("c2")
        self.start(c2, "sleep", "1000")
        self.daemon.stub.AddProcess(pb.AddProcessRequest(id=c2, pid="e", args=["sh", "-c", "exit 4"]), timeout=60)
        self.assertEqual(self.events.wait("exit", c2, "e").status, 4)
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=c2, status="paused"), timeout=30)
        self.events.wait("pause", c2)
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=c2, status="running"), timeout=30)
        self.events.wait("resume", c2)
        self.daemon.stub.Signal(pb.SignalRequest(id=c2, pid="init", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", c2, "init").status, 137)
        wait_for(lambda: c2 not in self.state_ids(), message="c2 to leave State")


class CrunOneStepTests(LifecycleTestCase):
    """
    Through contrib/crun-hybrid a container starts in one step (`run -d`), and the exit status of a container
    that exits at once still reaches the client exactly: the monitor waits for crun's short-lived helper to
    leave the init to it (the wrapper only hides the cgroup2 mount).
    """

    runtime = os.path.abspath(WRAPPER)
    daemon_args = ("--debug",)

    def setUp(self):
        if shutil.which("crun") is None:
            self.skipTest("crun is not installed (run scripts/setup-system)")
        super().setUp()

    def test_fast_exits_keep_their_status(self):
        bundle = self.bundle("sh", "-c", "exit 7")
        ids = [unique_id(f"fast{i}") for i in range(int(os.environ.get("CTX_CRUN_FAST_EXITS", "12")))]
        for container_id in ids:
            self.daemon.stub.CreateContainer(pb.CreateContainerRequest(id=container_id, bundlePath=bundle),
                                             timeout=60)
        for container_id in ids:
            self.assertEqual(self.events.wait("exit", container_id, "init").status, 7)
        log = self.daemon.log_text()
        # --debug logs every runtime command line: one `run -d` per container, no `create` nor `start`.
        self.assertEqual(len(re.findall(r"runtime: \S+ .* run -d .*fast", log)), len(ids))
        self.assertNotRegex(log, r"runtime: \S+ .* (create|start) .*fast")
        # The monitor found each init among its own children, not under a helper of crun's (status unknown).
        monitor_log = os.path.join(self.daemon.state_dir, "monitor.log")
        if os.path.exists(monitor_log):
            with open(monitor_log, errors="replace") as f:
                text = f.read()
            self.assertNotIn("is not our child", text)
            self.assertNotIn("vanished before registration", text)
