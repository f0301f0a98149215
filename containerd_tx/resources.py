# -*- test-case-name: tests.unit.test_resources -*-
"""
UpdateContainer's resources: checked for sense, then written as the OCI LinuxResources object that
`runc update --resources` reads.
"""

from containerd_tx.errors import InvalidArgument

_MAX = 1 << 62  # uint64 values above this are negative numbers sent as unsigned: nonsense here.
MIN_MEMORY = 4 * 1024 * 1024


def linux_resources(update):
    """
    The LinuxResources dict for an update.

    @param update: a dict of the contract's UpdateResource fields (snake_case, 0/empty meaning unset):
        blkio_weight, cpu_shares, cpu_period, cpu_quota, cpuset_cpus, cpuset_mems, memory_limit, memory_swap,
        memory_reservation, kernel_memory_limit, kernel_tcp_memory_limit, blkio_leaf_weight, pids_limit,
        the blkio device lists (dicts major, minor, weight/leaf_weight or rate), and optionally
        cpu_realtime_period and cpu_realtime_runtime (written as cpu.realtimePeriod and cpu.realtimeRuntime,
        which C{runc update} applies as --cpu-rt-period and --cpu-rt-runtime do).
    @return: the dict, C{{}} when every field is zero (nothing to change).
    @raise InvalidArgument: a value without sense.
    """
    for name, value in update.items():
        if isinstance(value, int) and value > _MAX:
            raise InvalidArgument(f"{name} {value} is out of range (negative values are not accepted)")
    resources = {}
    cpu = {}
    if update["cpu_shares"]:
        _at_least("cpuShares", update["cpu_shares"], 2)
        cpu["shares"] = update["cpu_shares"]
    if update["cpu_period"]:
        if not 1000 <= update["cpu_period"] <= 1000000:
            raise InvalidArgument("cpuPeriod must be between 1000 and 1000000 microseconds")
        cpu["period"] = update["cpu_period"]
    if update["cpu_quota"]:
        _at_least("cpuQuota", update["cpu_quota"], 1000)
        cpu["quota"] = update["cpu_quota"]
    if update.get("cpu_realtime_period"):
        if not 1000 <= update["cpu_realtime_period"] <= 1000000:
            raise InvalidArgument("cpuRealtimePeriod must be between 1000 and 1000000 microseconds")
        cpu["realtimePeriod"] = update["cpu_realtime_period"]
    if update.get("cpu_realtime_runtime"):
        runtime = update["cpu_realtime_runtime"]
        if runtime < -1:
            raise InvalidArgument("cpuRealtimeRuntime must be -1 (no limit) or a number of microseconds")
        period = update.get("cpu_realtime_period")
        if period and runtime > period:
            raise InvalidArgument("cpuRealtimeRuntime must not be above cpuRealtimePeriod")
        cpu["realtimeRuntime"] = runtime
    for key, field in (("cpus", "cpuset_cpus"), ("mems", "cpuset_mems")):
        if update[field]:
            _check_cpuset(field, update[field])
            cpu[key] = update[field]
    if cpu:
        resources["cpu"] = cpu
    memory = {}
    if update["memory_limit"]:
        _at_least("memoryLimit", update["memory_limit"], MIN_MEMORY)
        memory["limit"] = update["memory_limit"]
    if update["memory_reservation"]:
        memory["reservation"] = update["memory_reservation"]
    if update["memory_swap"]:
        limit = update["memory_limit"]
        if limit and update["memory_swap"] < limit:
            raise InvalidArgument("memorySwap (memory + swap) must not be below memoryLimit")
        memory["swap"] = update["memory_swap"]
    if update["kernel_memory_limit"]:
        memory["kernel"] = update["kernel_memory_limit"]
    if update["kernel_tcp_memory_limit"]:
        memory["kernelTCP"] = update["kernel_tcp_memory_limit"]
    if memory:
        resources["memory"] = memory
    block_io = {}
    for key, field in (("weight", "blkio_weight"), ("leafWeight", "blkio_leaf_weight")):
        if update[field]:
            if not 10 <= update[field] <= 1000:
                raise InvalidArgument(f"{field} must be between 10 and 1000")
            block_io[key] = update[field]
    if update["blkio_weight_device"]:
        block_io["weightDevice"] = [
            {"major": d["major"], "minor": d["minor"], "weight": d["weight"], "leafWeight": d["leaf_weight"]}
            for d in update["blkio_weight_device"]
        ]
    for key, field in (("throttleReadBpsDevice", "blkio_throttle_read_bps_device"),
                       ("throttleWriteBpsDevice", "blkio_throttle_write_bps_device"),
                       ("throttleReadIOPSDevice", "blkio_throttle_read_iops_device"),
                       ("throttleWriteIOPSDevice", "blkio_throttle_write_iops_device")):
        if update[field]:
            block_io[key] = [{"major": d["major"], "minor": d["minor"], "rate": d["rate"]} for d in update[field]]
    if block_io:
        resources["blockIO"] = block_io
    if update["pids_limit"]:
        resources["pids"] = {"limit": update["pids_limit"]}
    # Every field zero (Docker 17.0x sends that for `docker update --cpu-rt-*`, which it does not pass on):
    # nothing to change, and containerd 0.2.9 answers such an update with success, so {} is returned.
    return resources


def _at_least(name, value, minimum):
    if value < minimum:
        raise InvalidArgument(f"{name} must be at least {minimum}")


def _check_cpuset(name, text):
    for part in text.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and (not high.isdigit() or int(high) < int(low))):
            raise InvalidArgument(f"invalid {name} {text!r}: use a list like 0-2,4")
