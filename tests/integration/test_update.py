"""
Pause, resume and live resource updates on real runc containers.
"""

import os
import time

import grpc

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import processes
from tests.support.daemon import wait_for

COUNTER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done")


class UpdateTestCase(LifecycleTestCase):

    def setUp(self):
        super().setUp()
        self.pid = self.start("box", *COUNTER).processes[0].systemPid

    def counter(self):
        def read():
            try:
                with open(f"/proc/{self.pid}/root/tmp/counter") as f:
                    text = f.read().strip()
                return int(text) if text else None
            except (OSError, ValueError):
                return None
        return wait_for(read, message="the counter file")

    def update(self, **kw):
        return self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id="box", **kw), timeout=30)

    def status(self):
        return self.daemon.stub.State(pb.StateRequest(id="box"), timeout=10).containers[0].status

    def cgroup_file(self, subsystem, name):
        return processes.cgroup_file(self.pid, subsystem, name)


class PauseTests(UpdateTestCase):

    def test_pause_freezes_and_resume_thaws(self):
        first = self.counter()
        wait_for(lambda: self.counter() > first, message="the counter to advance")
        self.update(status="paused")
        self.events.wait("pause", "box")
        self.assertEqual(self.status(), "paused")
        frozen = self.counter()
        time.sleep(0.5)
        self.assertEqual(self.counter(), frozen)
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.AddProcess(pb.AddProcessRequest(id="box", pid="p", args=["true"]), timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.update(status="running")
        self.events.wait("resume", "box")
        self.assertEqual(self.status(), "running")
        wait_for(lambda: self.counter() > frozen + 2, message="the counter to advance after resume")

    def test_paused_state_survives_restart(self):
        self.update(status="paused")
        self.daemon.stop()
        self.daemon.start()
        self.assertEqual(self.status(), "paused")
        self.update(status="running")
        self.assertEqual(self.status(), "running")

    def test_bad_status_changes(self):
        for status, code in (("frozen", grpc.StatusCode.INVALID_ARGUMENT),
                             ("running", grpc.StatusCode.FAILED_PRECONDITION)):
            with self.assertRaises(grpc.RpcError) as raised:
                self.update(status=status)
            self.assertEqual(raised.exception.code(), code, raised.exception.details())
        self.update(status="paused")
        with self.assertRaises(grpc.RpcError) as raised:
            self.update(status="paused")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id="ghost", status="paused"), timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)


class ResourceTests(UpdateTestCase):

    def test_memory_limit_applied_and_enforced(self):
        self.update(resources=pb.UpdateResource(memoryLimit=32 * 1024 * 1024))
        self.assertEqual(int(self.cgroup_file("memory", "memory.limit_in_bytes")), 32 * 1024 * 1024)
        # Filling the container's tmpfs is charged to its memory cgroup: it cannot go far past the limit.
        self.daemon.stub.AddProcess(pb.AddProcessRequest(
            id="box", pid="hog", args=["sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=100"]), timeout=30)
        status = self.events.wait("exit", "box", "hog").status
        self.assertNotEqual(status, 0)
        self.assertLessEqual(int(self.cgroup_file("memory", "memory.max_usage_in_bytes")), 32 * 1024 * 1024)

    def test_pids_limit_caps_forks(self):
        self.update(resources=pb.UpdateResource(pidsLimit=6))
        self.assertEqual(self.cgroup_file("pids", "pids.max"), "6")
        out = os.path.join(self.daemon.workdir, "forks.txt")
        self.daemon.stub.AddProcess(pb.AddProcessRequest(
            id="box", pid="forker",
            args=["sh", "-c", "n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & n=$((n+1)); done; echo $n"],
            stdout=out, stderr=out), timeout=30)
        self.events.wait("exit", "box", "forker")
        with open(out) as f:
            text = f.read()
        self.assertIn("can't fork", text)
        self.assertLessEqual(int(self.cgroup_file("pids", "pids.current")), 6)

    def test_cpu_settings_applied(self):
        self.update(resources=pb.UpdateResource(cpuShares=512, cpuPeriod=100000, cpuQuota=50000,
                                                cpusetCpus="0"))
        self.assertEqual(self.cgroup_file("cpu", "cpu.shares"), "512")
        self.assertEqual(self.cgroup_file("cpu", "cpu.cfs_quota_us"), "50000")
        self.assertEqual(self.cgroup_file("cpuset", "cpuset.cpus"), "0")

    def test_nonsense_rejected(self):
        for resources in (pb.UpdateResource(), pb.UpdateResource(cpuPeriod=5),
                          pb.UpdateResource(memoryLimit=1), pb.UpdateResource(memoryLimit=2 ** 64 - 1),
                          pb.UpdateResource(cpuShares=1), pb.UpdateResource(cpusetCpus="zero"),
                          pb.UpdateResource(blkioWeight=5000),
                          pb.UpdateResource(memoryLimit=64 << 20, memorySwap=32 << 20)):
            with self.assertRaises(grpc.RpcError) as raised:
                self.update(resources=resources)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, str(resources))
        self.assertEqual(self.status(), "running")
