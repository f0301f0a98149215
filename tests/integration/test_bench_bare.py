"""
The bare daemon of the shape-floor benchmark (L{bench.bare}, driven by L{bench.shape_floor.BareDaemon}): its
figures are the least a daemon of this shape spends on a start only if it really starts the container. A
CreateContainer through it leaves a running runc container whose init the bare monitor adopted, a start the
runtime refuses is an error, and the benchmark's clean-up leaves no container behind.
"""

import json
import os
import shutil
import subprocess
import tempfile

import grpc
from twisted.trial.unittest import TestCase

from bench.shape_floor import BareDaemon
from containerd_tx.api import containerd_pb2 as pb
from tests.support import bundles, processes
from tests.support.ids import unique_id
from tests.support.runtime_state import list_containers


class BareDaemonTests(TestCase):
    timeout = 120

    def setUp(self):
        reason = bundles.requirements_missing("runc")
        if reason:
            raise self.skipTest(reason)
        processes.become_subreaper()
        # Short: the bare daemon's sockets are in it.
        self.workdir = tempfile.mkdtemp(prefix="ctx-bare-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        rootfs = bundles.make_rootfs(os.path.join(self.workdir, "rootfs"))
        self.bundle = bundles.make_bundle(os.path.join(self.workdir, "bundle"), ["sleep", "1000"], rootfs)
        self.bare = BareDaemon(os.path.join(self.workdir, "bare"), "runc")
        self.addCleanup(processes.reap_orphans)
        self.addCleanup(self.bare.destroy)

    def test_start_runs_a_container_adopted_by_the_monitor(self):
        container_id = unique_id("bare")
        answer = self.bare.stub.CreateContainer(
            pb.CreateContainerRequest(id=container_id, bundlePath=self.bundle), timeout=60)
        self.assertEqual((answer.container.id, answer.container.status), (container_id, "running"))
        state = json.loads(subprocess.run(["runc", "--root", self.bare.root, "state", container_id],
                                          check=True, capture_output=True, text=True).stdout)
        self.assertEqual(state["status"], "running")
        pid = state["pid"]
        self.assertTrue(processes.alive(pid))
        self.assertEqual(processes.parent(pid), self.bare.monitor_pid)
        # The runtime's pid file and log are removed as the start ends, as the daemon's scratch files are.
        self.assertEqual(os.listdir(os.path.join(self.bare.workdir, "scratch")), [])

    def test_a_refused_start_is_an_error(self):
        with self.assertRaises(grpc.RpcError) as caught:
            self.bare.stub.CreateContainer(
                pb.CreateContainerRequest(id=unique_id("bare"), bundlePath="/no/such/bundle"), timeout=60)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNKNOWN)
        self.assertIn("did not start", caught.exception.details())

    def test_destroy_leaves_no_container(self):
        for _ in range(3):
            self.bare.stub.CreateContainer(
                pb.CreateContainerRequest(id=unique_id("bare"), bundlePath=self.bundle), timeout=60)
        self.assertEqual(len(list_containers("runc", self.bare.root)), 3)
        self.bare.destroy()
        self.assertEqual(list_containers("runc", self.bare.root), {})
        self.assertIsNotNone(self.bare.process.poll())
