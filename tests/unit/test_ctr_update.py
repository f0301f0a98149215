"""
Tests for C{ctr containers pause}, C{resume} and C{update} (L{ctr.update}) against the fake daemon of
L{tests.unit.test_ctr_cli}.
"""

import grpc
from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from tests.unit.test_ctr_cli import DaemonTestCase, _container, invoke


class PauseResumeTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.api.containers = [_container("web", "/b/web"), _container("db", "/b/db")]

    def test_pause(self):
        result = self.run_ctr("containers", "pause", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.api.requests_of("UpdateContainer"),
                         [pb.UpdateContainerRequest(id="web", status="paused")])

    def test_resume(self):
        self.assertOK(self.run_ctr("containers", "resume", "web"))
        self.assertEqual(self.api.requests_of("UpdateContainer"),
                         [pb.UpdateContainerRequest(id="web", status="running")])

    def test_several(self):
        self.assertOK(self.run_ctr("containers", "pause", "web", "db"))
        self.assertEqual([r.id for r in self.api.requests_of("UpdateContainer")], ["web", "db"])

    def test_unknownIsOneLine(self):
        result = self.run_ctr("containers", "pause", "ghost")
        self.assertEqual((result.exit_code, result.stdout, result.stderr), (1, "", "ctr: container ghost not found\n"))

    def test_oneOfSeveralFails(self):
        """Every id is tried; each failure is one line naming its container; the exit status is 1."""
        result = self.run_ctr("containers", "resume", "ghost", "web")
        self.assertEqual(result.exit_code, 1)
        self.assertEqual(result.stderr, "ctr: ghost: container ghost not found\n")
        self.assertEqual([r.id for r in self.api.requests_of("UpdateContainer")], ["ghost", "web"])

    def test_idRequired(self):
        result = invoke(["--address", "/nonexistent/ctr.sock", "containers", "pause"])
        self.assertEqual(result.exit_code, 2)
        self.assertIn("Missing argument 'ID...'", result.stderr)


class UpdateTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.api.containers = [_container("web", "/b/web")]

    def update(self, *args):
        result = self.run_ctr("containers", "update", *args, "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "")
        [request] = self.api.requests_of("UpdateContainer")
        self.assertEqual((request.id, request.status), ("web", ""))
        self.assertTrue(request.HasField("resources"))
        return request.resources

    def test_memory(self):
        self.assertEqual(self.update("--memory", "64m"), pb.UpdateResource(memoryLimit=67108864))

    def test_everyOption(self):
        resources = self.update(
            "--memory", "1g", "--memory-swap", "2G", "--memory-reservation", "512MiB", "--kernel-memory", "100m",
            "--cpu-shares", "512", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpuset-cpus", "0-1",
            "--cpuset-mems", "0", "--blkio-weight", "300", "--pids-limit", "100")
        self.assertEqual(resources, pb.UpdateResource(
            memoryLimit=1 << 30, memorySwap=2 << 30, memoryReservation=512 << 20, kernelMemoryLimit=100 << 20,
            cpuShares=512, cpuQuota=50000, cpuPeriod=100000, cpusetCpus="0-1", cpusetMems="0", blkioWeight=300,
            pidsLimit=100))

    def test_sizes(self):
        for text, size in (("512k", 512 * 1024), ("1.5g", 3 << 29), ("4194304", 4194304), ("64MB", 64 << 20)):
            self.api.requests = []
            self.assertEqual(self.update("--memory", text).memoryLimit, size, text)

    def test_daemonRefusal(self):
        """The daemon's refusal is told in the user's words: the flag typed, and the unit the size was in."""
        self.api.fail = (grpc.StatusCode.INVALID_ARGUMENT, "memoryLimit must be at least 4194304")
        result = self.run_ctr("containers", "update", "--memory", "1m", "web")
        self.assertEqual((result.exit_code, result.stderr), (1, "ctr: --memory must be at least 4m\n"))
        result = self.run_ctr("containers", "update", "--memory-limit=1000", "web")
        self.assertEqual((result.exit_code, result.stderr), (1, "ctr: --memory-limit must be at least 4194304\n"))
        result = self.run_ctr("containers", "update", "--memory", "2K", "web")
        self.assertEqual((result.exit_code, result.stderr), (1, "ctr: --memory must be at least 4096K\n"))

    def test_daemonRefusalNames(self):
        cases = [
            ("memorySwap (memory + swap) must not be below memoryLimit",
             ["--memory-limit", "2g", "--memory-swap", "1g"],
             "--memory-swap (memory + swap) must not be below --memory-limit"),
            ("invalid cpuset_cpus '0-a': use a list like 0-2,4", ["--cpuset-cpus", "0-a"],
             "invalid --cpuset-cpus '0-a': use a list like 0-2,4"),
            ("cpuPeriod must be between 1000 and 1000000 microseconds", ["--cpu-period", "10"],
             "--cpu-period must be between 1000 and 1000000 microseconds"),
            ("blkio_weight must be between 10 and 1000", ["--blkio-weight", "5"],
             "--blkio-weight must be between 10 and 1000"),
        ]
        for refusal, args, said in cases:
            self.api.fail = (grpc.StatusCode.INVALID_ARGUMENT, refusal)
            result = self.run_ctr("containers", "update", *args, "web")
            self.assertEqual((result.exit_code, result.stderr), (1, f"ctr: {said}\n"), args)

    def test_goAliases(self):
        """containerd 0.2's ctr names: --memory-limit, --kernel-limit, --kernel-tcp-limit."""
        request = self.update("--memory-limit", "64m", "--kernel-limit", "32m", "--kernel-tcp-limit", "1m")
        self.assertEqual((request.memoryLimit, request.kernelMemoryLimit, request.kernelTCPMemoryLimit),
                         (64 << 20, 32 << 20, 1 << 20))


class UpdateUsageTests(TestCase):
    def assertUsage(self, args, fragment):
        result = invoke(["--address", "/nonexistent/ctr.sock", "containers", "update"] + args)
        self.assertEqual(result.exit_code, 2, result.output)
        self.assertIn(fragment, result.stderr)
        self.assertNotIn("cannot connect", result.stderr)

    def test_nothingGiven(self):
        self.assertUsage(["web"], "nothing to update")

    def test_badSize(self):
        self.assertUsage(["--memory", "lots", "web"], "invalid size 'lots'")

    def test_zero(self):
        self.assertUsage(["--memory", "0", "web"], "must be more than zero")
        self.assertUsage(["--cpu-shares", "0", "web"], "0 is not a positive number")

    def test_notANumber(self):
        self.assertUsage(["--pids-limit", "many", "web"], "'many' is not a valid integer")
