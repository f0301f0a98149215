"""
Tests for L{containerd_tx.stats}: samples read from fake cgroup v1 and v2 trees and a fake /proc, missing
files as zeros, and the conversion to the generated StatsResponse.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import stats
from containerd_tx.api_convert import stats_to_proto
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.cgroups import mount_points, process_cgroups

NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")

PROC_STAT = """\
cpu  100 2 30 400 5 6 7 8 0 0
cpu0 50 1 15 200 2 3 3 4 0 0
intr 1 2 3
"""

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0        0
  eth0:    1500      10    1    2    0     0          0         0     2500      20    3    4    0     0       0        0
"""

V1_FILES = {
    "cpuacct/cpuacct.usage": "123456789\n",
    "cpuacct/cpuacct.usage_percpu": "100000000 23456789 \n",
    "cpuacct/cpuacct.stat": "user 7\nsystem 3\n",
    "cpu/cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 5000\n",
    "memory/memory.usage_in_bytes": "1048576\n",
    "memory/memory.max_usage_in_bytes": "2097152\n",
    "memory/memory.failcnt": "3\n",
    "memory/memory.limit_in_bytes": "33554432\n",
    "memory/memory.memsw.usage_in_bytes": "1148576\n",
    "memory/memory.memsw.max_usage_in_bytes": "2197152\n",
    "memory/memory.memsw.failcnt": "0\n",
    "memory/memory.memsw.limit_in_bytes": "67108864\n",
    "memory/memory.kmem.usage_in_bytes": "4096\n",
    "memory/memory.kmem.max_usage_in_bytes": "8192\n",
    "memory/memory.kmem.failcnt": "0\n",
    "memory/memory.kmem.limit_in_bytes": "9223372036854771712\n",
    "memory/memory.stat": "cache 65536\nrss 983040\nmapped_file 0\ntotal_cache 65536\n",
    "blkio/blkio.io_serviced_recursive": "8:0 Read 4\n8:0 Write 6\n8:0 Sync 10\n8:0 Async 0\n"
                                         "8:0 Total 10\nTotal 10\n",
    "blkio/blkio.io_service_bytes_recursive": "8:0 Read 16384\n8:0 Write 24576\nTotal 40960\n",
    "blkio/blkio.sectors_recursive": "8:0 80\n",
    "blkio/blkio.io_time_recursive": "8:0 12\n",
    "blkio/blkio.throttle.io_serviced_recursive": "8:0 Read 999\n",
    "hugetlb/hugetlb.2MB.usage_in_bytes": "2097152\n",
    "hugetlb/hugetlb.2MB.max_usage_in_bytes": "4194304\n",
    "hugetlb/hugetlb.2MB.failcnt": "1\n",
    "hugetlb/hugetlb.2MB.limit_in_bytes": "9223372036854771712\n",
    "hugetlb/hugetlb.1GB.usage_in_bytes": "0\n",
    "pids/pids.current": "3\n",
    "pids/pids.max": "max\n",
}

V2_FILES = {
    "cpu.stat": "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 7\nnr_throttled 1\n"
                "throttled_usec 250\n",
    "memory.current": "1048576\n",
    "memory.peak": "3145728\n",
    "memory.max": "max\n",
    "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
    "memory.swap.current": "4096\n",
    "memory.swap.max": "max\n",
    "memory.swap.events": "high 0\nmax 0\nfail 2\n",
    "memory.stat": "anon 983040\nfile 65536\nkernel 8192\nsock 0\n",
    "io.stat": "8:0 rbytes=16384 wbytes=24576 rios=4 wios=6 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=2 rios=3 wios=4\n",
    "hugetlb.2MB.current": "2097152\n",
    "hugetlb.2MB.max": "4194304\n",
    "hugetlb.2MB.events": "max 5\n",
    "hugetlb.2MB.rsvd.current": "0\n",
    "pids.current": "2\n",
    "pids.max": "100\n",
}


class FakeTree:
    def __init__(self, case):
        self.root = os.path.abspath(case.mktemp())
        os.makedirs(self.root)

    def write(self, files, under=""):
        for relative, content in files.items():
            path = os.path.join(self.root, under, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(content)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def proc(self, pid=42):
        self.write({"proc/stat": PROC_STAT, f"proc/{pid}/net/dev": NET_DEV})
        return self.path("proc")


class V1Tests(SynchronousTestCase):

    def setUp(self):
        self.tree = FakeTree(self)
        self.tree.write(V1_FILES, "v1")
        self.proc = self.tree.proc()
        self.cgroups = {name: self.tree.path("v1", name)
                        for name in ("cpu", "cpuacct", "memory", "blkio", "hugetlb", "pids", "cpuset")}
        # The hybrid layout: an (empty) cgroup2 directory is present too, and ignored.
        self.cgroups["unified"] = self.tree.path("unified-empty")

    def test_full_sample(self):
        sample = stats.read_stats(self.cgroups, 42, proc=self.proc, now_ns=1234)
        self.assertEqual(sample["timestamp"], 1234)
        cgroup = sample["cgroup_stats"]
        self.assertEqual(cgroup["cpu_stats"], {
            "cpu_usage": {"total_usage": 123456789, "percpu_usage": [100000000, 23456789],
                          "usage_in_kernelmode": 3 * NS, "usage_in_usermode": 7 * NS},
            "throttling_data": {"periods": 10, "throttled_periods": 2, "throttled_time": 5000},
            "system_usage": (100 + 2 + 30 + 400 + 5 + 6 + 7) * NS,
        })
        memory = cgroup["memory_stats"]
        self.assertEqual(memory["usage"], {"usage": 1048576, "max_usage": 2097152, "failcnt": 3,
                                           "limit": 33554432})
        self.assertEqual(memory["swap_usage"], {"usage": 1148576, "max_usage": 2197152, "failcnt": 0,
                                                "limit": 67108864})
        self.assertEqual(memory["kernel_usage"], {"usage": 4096, "max_usage": 8192, "failcnt": 0,
                                                  "limit": 9223372036854771712})
        self.assertEqual(memory["cache"], 65536)
        self.assertEqual(memory["stats"]["rss"], 983040)
        blkio = cgroup["blkio_stats"]
        self.assertEqual(blkio["io_serviced_recursive"][:2], [
            {"major": 8, "minor": 0, "op": "Read", "value": 4},
            {"major": 8, "minor": 0, "op": "Write", "value": 6}])
        self.assertEqual(len(blkio["io_serviced_recursive"]), 5)  # the bare "Total 10" line is skipped
        self.assertEqual(blkio["io_service_bytes_recursive"][1]["value"], 24576)
        self.assertEqual(blkio["sectors_recursive"], [{"major": 8, "minor": 0, "op": "", "value": 80}])
        self.assertEqual(blkio["io_time_recursive"][0]["value"], 12)
        self.assertEqual(blkio["io_queued_recursive"], [])
        self.assertEqual(cgroup["hugetlb_stats"], {
            "2MB": {"usage": 2097152, "max_usage": 4194304, "failcnt": 1, "limit": 9223372036854771712},
            "1GB": {"usage": 0, "max_usage": 0, "failcnt": 0, "limit": 0},
        })
        self.assertEqual(cgroup["pids_stats"], {"current": 3, "limit": 0})
        # The daemon reports every interface of the namespace, loopback included.
        self.assertEqual([i["name"] for i in sample["network_stats"]], ["lo", "eth0"])
        self.assertEqual(sample["network_stats"][1:], [{
            "name": "eth0", "rx_bytes": 1500, "rx_Packets": 10, "Rx_errors": 1, "Rx_dropped": 2,
            "Tx_bytes": 2500, "Tx_packets": 20, "Tx_errors": 3, "Tx_dropped": 4}])

    def test_bfq_then_throttle_fallback(self):
        """Without CFQ files blkio comes from the BFQ ones, and without those from the throttle ones."""
        blkio = self.tree.path("v1", "blkio")
        for name in os.listdir(blkio):
            if not name.startswith("blkio.throttle."):
                os.rename(os.path.join(blkio, name), os.path.join(blkio, name.replace("blkio.", "blkio.bfq.")))
        sample = stats.read_stats(self.cgroups, 42, proc=self.proc)
        self.assertEqual(sample["cgroup_stats"]["blkio_stats"]["sectors_recursive"][0]["value"], 80)
        for name in os.listdir(blkio):
            if name.startswith("blkio.bfq."):
                os.remove(os.path.join(blkio, name))
        sample = stats.read_stats(self.cgroups, 42, proc=self.proc)
        self.assertEqual(sample["cgroup_stats"]["blkio_stats"]["io_serviced_recursive"],
                         [{"major": 8, "minor": 0, "op": "Read", "value": 999}])
        self.assertEqual(sample["cgroup_stats"]["blkio_stats"]["sectors_recursive"], [])

    def test_pids_limit(self):
        self.tree.write({"pids/pids.max": "64\n"}, "v1")
        self.assertEqual(stats.read_stats(self.cgroups, 42, proc=self.proc)["cgroup_stats"]["pids_stats"],
                         {"current": 3, "limit": 64})

    def test_combined_cpu_cpuacct(self):
        """A "cpu,cpuacct" mount gives the same directory for both."""
        self.cgroups["cpu"] = self.cgroups["cpuacct"]
        self.tree.write({"cpuacct/cpu.stat": "nr_periods 1\nnr_throttled 1\nthrottled_time 9\n"}, "v1")
        cpu = stats.read_stats(self.cgroups, 42, proc=self.proc)["cgroup_stats"]["cpu_stats"]
        self.assertEqual(cpu["throttling_data"]["throttled_time"], 9)
        self.assertEqual(cpu["cpu_usage"]["total_usage"], 123456789)

    def test_loopback_on_request(self):
        interfaces = stats.network_stats(42, proc=self.proc, include_loopback=True)
        self.assertEqual([i["name"] for i in interfaces], ["lo", "eth0"])


class MissingTests(SynchronousTestCase):

    def test_everything_missing_is_zero(self):
        tree = FakeTree(self)
        cgroups = {name: tree.path("gone", name) for name in ("cpu", "cpuacct", "memory", "blkio", "pids",
                                                                 "hugetlb")}
        sample = stats.read_stats(cgroups, 999999, proc=tree.path("noproc"), now_ns=1)
        self.assertEqual(sample["cgroup_stats"], stats.empty_cgroup_stats())
        self.assertEqual(sample["network_stats"], [])

    def test_no_cgroups_no_pid(self):
        sample = stats.read_stats({}, None)
        self.assertEqual(sample["network_stats"], [])
        self.assertEqual(sample["cgroup_stats"]["memory_stats"]["usage"]["usage"], 0)
        self.assertGreater(sample["cgroup_stats"]["cpu_stats"]["system_usage"], 0)

    def test_garbage_values(self):
        tree = FakeTree(self)
        tree.write({"memory/memory.usage_in_bytes": "lots\n", "memory/memory.stat": "cache x\nrss 5\nbad\n",
                    "cpuacct/cpuacct.usage_percpu": "1 2 x 4\n"})
        sample = stats.read_stats({"memory": tree.path("memory"), "cpuacct": tree.path("cpuacct")}, None)
        memory = sample["cgroup_stats"]["memory_stats"]
        self.assertEqual(memory["usage"]["usage"], 0)
        self.assertEqual(memory["stats"], {"rss": 5})
        self.assertEqual(sample["cgroup_stats"]["cpu_stats"]["cpu_usage"]["percpu_usage"], [1, 2])


class V2Tests(SynchronousTestCase):

    def setUp(self):
        self.tree = FakeTree(self)
        self.tree.write(V2_FILES, "v2")
        self.proc = self.tree.proc()
        self.cgroups = {"unified": self.tree.path("v2")}

    def test_full_sample(self):
        sample = stats.read_stats(self.cgroups, 42, proc=self.proc, now_ns=5)
        cgroup = sample["cgroup_stats"]
        self.assertEqual(cgroup["cpu_stats"]["cpu_usage"], {
            "total_usage": 5_000_000, "percpu_usage": [], "usage_in_kernelmode": 2_000_000,
            "usage_in_usermode": 3_000_000})
        self.assertEqual(cgroup["cpu_stats"]["throttling_data"],
                         {"periods": 7, "throttled_periods": 1, "throttled_time": 250_000})
        memory = cgroup["memory_stats"]
        self.assertEqual(memory["usage"], {"usage": 1048576, "max_usage": 3145728, "failcnt": 4,
                                           "limit": stats.UNLIMITED})
        self.assertEqual(memory["swap_usage"], {"usage": 1048576 + 4096, "max_usage": 0, "failcnt": 2,
                                                "limit": stats.UNLIMITED})
        self.assertEqual(memory["kernel_usage"]["usage"], 8192)
        self.assertEqual(memory["cache"], 65536)
        self.assertEqual(memory["stats"]["anon"], 983040)
        blkio = cgroup["blkio_stats"]
        self.assertEqual(blkio["io_service_bytes_recursive"], [
            {"major": 8, "minor": 0, "op": "Read", "value": 16384},
            {"major": 8, "minor": 0, "op": "Write", "value": 24576},
            {"major": 253, "minor": 1, "op": "Read", "value": 1},
            {"major": 253, "minor": 1, "op": "Write", "value": 2}])
        self.assertEqual([e["value"] for e in blkio["io_serviced_recursive"]], [4, 6, 3, 4])
        self.assertEqual(cgroup["hugetlb_stats"], {
            "2MB": {"usage": 2097152, "max_usage": 0, "failcnt": 5, "limit": 4194304}})
        self.assertEqual(cgroup["pids_stats"], {"current": 2, "limit": 100})
        self.assertEqual([i["name"] for i in sample["network_stats"]], ["lo", "eth0"])

    def test_limits(self):
        self.tree.write({"memory.max": "33554432\n", "memory.swap.max": "0\n", "pids.max": "max\n"}, "v2")
        cgroup = stats.read_stats(self.cgroups, None, proc=self.proc)["cgroup_stats"]
        self.assertEqual(cgroup["memory_stats"]["usage"]["limit"], 33554432)
        self.assertEqual(cgroup["memory_stats"]["swap_usage"]["limit"], 33554432)
        self.assertEqual(cgroup["pids_stats"]["limit"], 0)

    def test_is_v2(self):
        self.assertTrue(stats.is_v2({"unified": "/x"}))
        self.assertFalse(stats.is_v2({"unified": "/x", "memory": "/y"}))
        self.assertFalse(stats.is_v2({"memory": "/y"}))


class ProtoTests(SynchronousTestCase):

    def test_stats_to_proto(self):
        tree = FakeTree(self)
        tree.write(V1_FILES, "v1")
        cgroups = {name: tree.path("v1", name) for name in ("cpu", "cpuacct", "memory", "blkio", "hugetlb",
                                                             "pids")}
        sample = stats.read_stats(cgroups, 42, proc=tree.proc(), now_ns=1_700_000_000_123_456_789)
        message = stats_to_proto(sample)
        self.assertIsInstance(message, pb.StatsResponse)
        self.assertEqual(message.timestamp.seconds, 1_700_000_000)
        self.assertEqual(message.timestamp.nanos, 123_456_789)
        net = message.network_stats[1]
        self.assertEqual((net.name, net.rx_bytes, net.rx_Packets, net.Rx_errors, net.Rx_dropped, net.Tx_bytes,
                          net.Tx_packets, net.Tx_errors, net.Tx_dropped),
                         ("eth0", 1500, 10, 1, 2, 2500, 20, 3, 4))
        cgroup = message.cgroup_stats
        self.assertEqual(cgroup.cpu_stats.cpu_usage.total_usage, 123456789)
        self.assertEqual(list(cgroup.cpu_stats.cpu_usage.percpu_usage), [100000000, 23456789])
        self.assertEqual(cgroup.cpu_stats.throttling_data.throttled_periods, 2)
        self.assertEqual(cgroup.cpu_stats.system_usage, sample["cgroup_stats"]["cpu_stats"]["system_usage"])
        self.assertEqual(cgroup.memory_stats.usage.limit, 33554432)
        self.assertEqual(cgroup.memory_stats.swap_usage.usage, 1148576)
        self.assertEqual(cgroup.memory_stats.kernel_usage.max_usage, 8192)
        self.assertEqual(cgroup.memory_stats.cache, 65536)
        self.assertEqual(dict(cgroup.memory_stats.stats)["rss"], 983040)
        self.assertEqual(cgroup.blkio_stats.io_serviced_recursive[1].op, "Write")
        self.assertEqual(cgroup.blkio_stats.sectors_recursive[0].value, 80)
        self.assertEqual(cgroup.hugetlb_stats["2MB"].failcnt, 1)
        self.assertEqual((cgroup.pids_stats.current, cgroup.pids_stats.limit), (3, 0))
        # The wire form parses back the same.
        self.assertEqual(pb.StatsResponse.FromString(message.SerializeToString()), message)

    def test_v2_unlimited_fits_uint64(self):
        tree = FakeTree(self)
        tree.write(V2_FILES, "v2")
        message = stats_to_proto(stats.read_stats({"unified": tree.path("v2")}, None))
        self.assertEqual(message.cgroup_stats.memory_stats.usage.limit, 2 ** 64 - 1)
        self.assertEqual(message.cgroup_stats.memory_stats.swap_usage.limit, 2 ** 64 - 1)


class HostTests(SynchronousTestCase):

    def test_own_cgroups(self):
        """This process's real cgroups read without error (no root needed), and convert."""
        try:
            cgroups = process_cgroups(os.getpid(), mount_points())
        except OSError as error:  # pragma: no cover
            raise self.skipTest(f"cannot read this process's cgroups: {error}")
        sample = stats.read_stats(cgroups, os.getpid())
        stats_to_proto(sample)
        self.assertGreater(sample["cgroup_stats"]["cpu_stats"]["system_usage"], 0)
        self.assertGreater(sample["cgroup_stats"]["memory_stats"]["usage"]["usage"]
                           + sample["cgroup_stats"]["cpu_stats"]["cpu_usage"]["total_usage"], 0)
