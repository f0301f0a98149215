"""
crun as the daemon's runtime (through contrib/crun-hybrid, which hides this machine's cgroup2 mount from crun).
"""

import os
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
