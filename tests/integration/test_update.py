"""
Pause, resume and live resource updates on real runc containers: every value is read back from the kernel's
cgroup files, so an update that drops a field (or a check that lets nonsense through) fails here.
"""

import os

import grpc

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import processes
from tests.support.daemon import wait_for
from tests.support.ids import unique_id
from tests.support.processes import read_counter

COUNTER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done")
#: An init that never forks: a fork failing under a pids limit can only be the exec's, never the init's.
IDLE = ("sleep", "100000")




class UpdateTestCase(LifecycleTestCase):

    #: What the container under test runs.
    init = COUNTER

    def setUp(self):
        super().setUp()
        self.cid = unique_id("box")
        self.pid = self.start(self.cid, *self.init).processes[0].systemPid

    def counter(self):
        return read_counter(self.pid)

    def update(self, **kw):
        return self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=self.cid, **kw), timeout=30)

    def status(self):
        return self.daemon.stub.State(pb.StateRequest(id=self.cid), timeout=10).containers[0].status

    def cgroup_file(self, subsystem, name):
        return processes.cgroup_file(self.pid, subsystem, name)


class PauseTests(UpdateTestCase):

    def test_pause_freezes_and_resume_thaws(self):
        # A second counter, never paused, is the clock: "the paused one did not move while the clock moved
        # five ticks" holds however slowly a loaded machine runs both.
        clock = self.start(unique_id("clock"), *COUNTER).processes[0].systemPid
        first = self.counter()
        wait_for(lambda: self.counter() > first, message="the counter to advance")
        self.update(status="paused")
        self.events.wait("pause", self.cid)
        self.assertEqual(self.status(), "paused")
        self.assertEqual(self.cgroup_file("freezer", "freezer.state"), "FROZEN")
        frozen = self.counter()
        start = read_counter(clock)
        wait_for(lambda: read_counter(clock) >= start + 5, message="the clock container to count 5 ticks")
        self.assertEqual(self.counter(), frozen)
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.AddProcess(pb.AddProcessRequest(id=self.cid, pid="p", args=["true"]), timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.update(status="running")
        self.events.wait("resume", self.cid)
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
            self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=unique_id("ghost"), status="paused"),
                                             timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)


class ResourceTests(UpdateTestCase):

    init = IDLE

    def test_memory_limit_applied_and_enforced(self):
        self.update(resources=pb.UpdateResource(memoryLimit=32 * 1024 * 1024))
        self.assertEqual(int(self.cgroup_file("memory", "memory.limit_in_bytes")), 32 * 1024 * 1024)
        # Filling the container's tmpfs is charged to its memory cgroup: it cannot go far past the limit.
        self.daemon.stub.AddProcess(pb.AddProcessRequest(
            id=self.cid, pid="hog", args=["sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=100"]), timeout=30)
        status = self.events.wait("exit", self.cid, "hog").status
        self.assertNotEqual(status, 0)
        self.assertLessEqual(int(self.cgroup_file("memory", "memory.max_usage_in_bytes")), 32 * 1024 * 1024)

    def test_memory_swap_applied(self):
        if not os.path.exists(os.path.join(processes.cgroup_path(self.pid, "memory"), "memory.memsw.limit_in_bytes")):
            self.skipTest("no swap accounting on this kernel (memory.memsw.* missing)")
        self.update(resources=pb.UpdateResource(memoryLimit=64 << 20, memorySwap=96 << 20))
        self.assertEqual(int(self.cgroup_file("memory", "memory.limit_in_bytes")), 64 << 20)
        self.assertEqual(int(self.cgroup_file("memory", "memory.memsw.limit_in_bytes")), 96 << 20)

    def test_pids_limit_caps_forks(self):
        self.update(resources=pb.UpdateResource(pidsLimit=6))
        self.assertEqual(self.cgroup_file("pids", "pids.max"), "6")
        out = os.path.join(self.daemon.workdir, "forks.txt")
        # The init (1) and the forker (1) leave room for 4 of its 10 children: a fork fails, and busybox sh
        # says so and exits 2 (nothing else here forks, so nothing else can fail first).
        self.daemon.stub.AddProcess(pb.AddProcessRequest(
            id=self.cid, pid="forker",
            args=["sh", "-c", "n=0; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 100 & n=$((n+1)); done; echo $n"],
            stdout=out, stderr=out), timeout=30)
        status = self.events.wait("exit", self.cid, "forker").status
        with open(out) as f:
            text = f.read()
        self.assertIn("can't fork", text)
        self.assertEqual(status, 2, text)
        self.assertLessEqual(int(self.cgroup_file("pids", "pids.current")), 6)
        self.assertEqual(self.status(), "running")

    def test_cpu_settings_applied(self):
        # Not the kernel's defaults (period 100000, quota -1, shares 1024): each value read back was written.
        self.update(resources=pb.UpdateResource(cpuShares=512, cpuPeriod=250000, cpuQuota=50000,
                                                cpusetCpus="0"))
        self.assertEqual(self.cgroup_file("cpu", "cpu.shares"), "512")
        self.assertEqual(self.cgroup_file("cpu", "cpu.cfs_period_us"), "250000")
        self.assertEqual(self.cgroup_file("cpu", "cpu.cfs_quota_us"), "50000")
        self.assertEqual(self.cgroup_file("cpuset", "cpuset.cpus"), "0")

    def test_cpu_period_alone(self):
        self.update(resources=pb.UpdateResource(cpuPeriod=50000))
        self.assertEqual(self.cgroup_file("cpu", "cpu.cfs_period_us"), "50000")

    def test_cpu_quota_floor_is_1000(self):
        self.update(resources=pb.UpdateResource(cpuQuota=1000))
        self.assertEqual(self.cgroup_file("cpu", "cpu.cfs_quota_us"), "1000")
        for quota in (999, 1):
            with self.assertRaises(grpc.RpcError) as raised:
                self.update(resources=pb.UpdateResource(cpuQuota=quota))
            self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, raised.exception.details())
            self.assertIn("cpuQuota", raised.exception.details())
        self.assertEqual(self.cgroup_file("cpu", "cpu.cfs_quota_us"), "1000")
        self.assertEqual(self.status(), "running")

    def test_blkio_weight_applied(self):
        directory = processes.cgroup_path(self.pid, "blkio")
        # runc writes blkio.weight (CFQ kernels) or else blkio.bfq.weight (BFQ, as here); "default N" or "N".
        name = next((n for n in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(os.path.join(directory, n))),
                    None)
        if name is None:
            self.skipTest("this kernel has neither blkio.weight nor blkio.bfq.weight")
        self.update(resources=pb.UpdateResource(blkioWeight=300))
        self.assertEqual(self.cgroup_file("blkio", name).split()[-1], "300")
        self.update(resources=pb.UpdateResource(blkioWeight=700))
        self.assertEqual(self.cgroup_file("blkio", name).split()[-1], "700")

    def test_nonsense_rejected(self):
        # An UpdateResource with every field zero is not nonsense: 0.2.9 answers it with success (Docker sends it),
        # see test_dropin_semantics.UpdateResourceTests.
        for resources in (pb.UpdateResource(cpuPeriod=5),
                          pb.UpdateResource(memoryLimit=1), pb.UpdateResource(memoryLimit=2 ** 64 - 1),
                          pb.UpdateResource(cpuShares=1), pb.UpdateResource(cpusetCpus="zero"),
                          pb.UpdateResource(blkioWeight=5000),
                          pb.UpdateResource(memoryLimit=64 << 20, memorySwap=32 << 20)):
            with self.assertRaises(grpc.RpcError) as raised:
                self.update(resources=resources)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, str(resources))
        self.assertEqual(self.status(), "running")
