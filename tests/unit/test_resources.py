"""
Tests for L{containerd_tx.resources}: UpdateContainer's resources checked and written as OCI LinuxResources.
"""

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.errors import InvalidArgument
from containerd_tx.resources import MIN_MEMORY, linux_resources

UNSET = {
    "blkio_weight": 0, "cpu_shares": 0, "cpu_period": 0, "cpu_quota": 0, "cpuset_cpus": "", "cpuset_mems": "",
    "memory_limit": 0, "memory_swap": 0, "memory_reservation": 0, "kernel_memory_limit": 0,
    "kernel_tcp_memory_limit": 0, "blkio_leaf_weight": 0, "blkio_weight_device": [],
    "blkio_throttle_read_bps_device": [], "blkio_throttle_write_bps_device": [],
    "blkio_throttle_read_iops_device": [], "blkio_throttle_write_iops_device": [], "pids_limit": 0,
}


def update(**fields):
    """An update dict with every field unset but these."""
    return dict(UNSET, **fields)


class LinuxResourcesTests(SynchronousTestCase):
    """
    Each field lands where runc update reads it; nonsense is refused with one line.
    """

    def assertRefused(self, message, **fields):
        with self.assertRaises(InvalidArgument) as caught:
            linux_resources(update(**fields))
        self.assertEqual(caught.exception.message, message)

    def test_every_field(self):
        device = {"major": 8, "minor": 0}
        resources = linux_resources(update(
            cpu_shares=512, cpu_period=100000, cpu_quota=50000, cpuset_cpus="0-1,3", cpuset_mems="0",
            cpu_realtime_period=1000000, cpu_realtime_runtime=950000,
            memory_limit=MIN_MEMORY * 2, memory_reservation=MIN_MEMORY, memory_swap=MIN_MEMORY * 4,
            kernel_memory_limit=MIN_MEMORY, kernel_tcp_memory_limit=MIN_MEMORY,
            blkio_weight=500, blkio_leaf_weight=300,
            blkio_weight_device=[dict(device, weight=100, leaf_weight=50)],
            blkio_throttle_read_bps_device=[dict(device, rate=1)], blkio_throttle_write_bps_device=[dict(device, rate=2)],
            blkio_throttle_read_iops_device=[dict(device, rate=3)],
            blkio_throttle_write_iops_device=[dict(device, rate=4)],
            pids_limit=64,
        ))
        self.assertEqual(resources, {
            "cpu": {"shares": 512, "period": 100000, "quota": 50000, "cpus": "0-1,3", "mems": "0",
                    "realtimePeriod": 1000000, "realtimeRuntime": 950000},
            "memory": {"limit": MIN_MEMORY * 2, "reservation": MIN_MEMORY, "swap": MIN_MEMORY * 4,
                       "kernel": MIN_MEMORY, "kernelTCP": MIN_MEMORY},
            "blockIO": {"weight": 500, "leafWeight": 300,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 100, "leafWeight": 50}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}],
                        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2}],
                        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 3}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 4}]},
            "pids": {"limit": 64},
        })

    def test_only_given_fields(self):
        """Unset fields are left out, and whole sections with them."""
        self.assertEqual(linux_resources(update(pids_limit=10)), {"pids": {"limit": 10}})
        self.assertEqual(linux_resources(update(memory_limit=MIN_MEMORY)), {"memory": {"limit": MIN_MEMORY}})

    def test_realtime_fields_optional(self):
        """An update without the real-time fields (an older client's) is fine."""
        self.assertEqual(linux_resources(update(cpu_shares=2)), {"cpu": {"shares": 2}})

    def test_realtime_runtime_unlimited(self):
        self.assertEqual(linux_resources(update(cpu_realtime_runtime=-1)), {"cpu": {"realtimeRuntime": -1}})

    def test_nothing(self):
        """Every field zero (Docker's `update --cpu-rt-*`) is nothing to change, as containerd 0.2.9 takes it."""
        self.assertEqual(linux_resources(update()), {})

    def test_out_of_range(self):
        """A value above 2**62 is a negative number sent as unsigned."""
        self.assertRefused(f"memory_limit {2 ** 64 - 1} is out of range (negative values are not accepted)",
                           memory_limit=2 ** 64 - 1)

    def test_nonsense(self):
        self.assertRefused("cpuShares must be at least 2", cpu_shares=1)
        self.assertRefused("cpuPeriod must be between 1000 and 1000000 microseconds", cpu_period=999)
        self.assertRefused("cpuQuota must be at least 1000", cpu_quota=10)
        self.assertRefused("cpuRealtimePeriod must be between 1000 and 1000000 microseconds",
                           cpu_realtime_period=2000000)
        self.assertRefused("cpuRealtimeRuntime must be -1 (no limit) or a number of microseconds",
                           cpu_realtime_runtime=-2)
        self.assertRefused("cpuRealtimeRuntime must not be above cpuRealtimePeriod",
                           cpu_realtime_period=1000, cpu_realtime_runtime=2000)
        self.assertRefused(f"memoryLimit must be at least {MIN_MEMORY}", memory_limit=MIN_MEMORY - 1)
        self.assertRefused("memorySwap (memory + swap) must not be below memoryLimit",
                           memory_limit=MIN_MEMORY * 2, memory_swap=MIN_MEMORY)
        self.assertRefused("blkio_weight must be between 10 and 1000", blkio_weight=5)
        self.assertRefused("blkio_leaf_weight must be between 10 and 1000", blkio_leaf_weight=2000)
        self.assertRefused("invalid cpuset_cpus '3-1': use a list like 0-2,4", cpuset_cpus="3-1")
        self.assertRefused("invalid cpuset_mems 'a': use a list like 0-2,4", cpuset_mems="a")
