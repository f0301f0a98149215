# -*- test-case-name: tests.unit.test_stats -*-
"""
One sample of a container's resource usage, read straight from its cgroup files and from
C{/proc/<pid>/net/dev}: no process is spawned (no C{runc events --stats}), a call reads about twenty
small files. A missing file or an unreadable value counts as zero (or empty), never as an error, so a
container whose cgroup lacks a controller still gets the rest.

L{read_stats} returns plain data shaped like the wire contract's C{StatsResponse} (field names as in the
proto); L{containerd_tx.api_convert.stats_to_proto} converts that to the generated message.

Cgroup v1 (one directory per controller) follows runc's libcontainer: C{cpuacct.*} for usage,
C{cpu.stat} for throttling, C{memory.*}, C{memory.memsw.*} (swap_usage) and C{memory.kmem.*}
(kernel_usage), C{blkio.*} (the CFQ files, else the BFQ ones, else the throttle ones), C{hugetlb.*},
C{pids.*}. Cgroup v2 (one directory, key C{"unified"}) maps C{cpu.stat}, C{memory.current} /
C{.peak} / C{.max} / C{.events} / C{.stat}, C{memory.swap.*}, C{io.stat}, C{hugetlb.*} and C{pids.*} to
the same fields: as libcontainer does, swap figures are memory+swap for v1 compatibility, an unlimited
memory limit is 2**64-1, C{io.stat}'s rbytes/wbytes/rios/wios become Read/Write entries of
io_service_bytes/io_serviced, and there is no per-cpu usage. An unlimited pids limit ("max") is 0 on
both. A host with both (this one: v1 controllers plus an empty cgroup2 at .../unified) is read as v1
whenever any v1 controller directory is given.

C{system_usage} is the host's total CPU time from C{/proc/stat} in nanoseconds (user through softirq,
as Docker and containerd 0.2 computed it), so clients can derive CPU percentages from two samples.
"""

import os
import time

V2 = "unified"
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "blkio", "pids", "hugetlb")
UNLIMITED = 2 ** 64 - 1

BLKIO_FIELDS = (
    "io_service_bytes_recursive", "io_serviced_recursive", "io_queued_recursive",
    "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
    "sectors_recursive",
)
HUGETLB_FIELDS = ("usage", "max_usage", "failcnt", "limit")
MEMORY_DATA_FIELDS = ("usage", "max_usage", "failcnt", "limit")
NET_FIELDS = ("rx_bytes", "rx_Packets", "Rx_errors", "Rx_dropped", "Tx_bytes", "Tx_packets", "Tx_errors",
              "Tx_dropped")

try:
    _CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError):  # pragma: no cover
    _CLOCK_TICKS = 100
_NS_PER_TICK = 1_000_000_000 // _CLOCK_TICKS


# --- small readers: every one returns a default instead of raising ---

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("ascii", "replace")
    except OSError:
        return ""


def _int(text, default=0):
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return default


def _read_int(path, default=0, unlimited=0):
    """An integer file; C{unlimited} for "max"; C{default} when missing or unreadable."""
    text = _read(path)
    if not text:
        return default
    value = _int(text, default)
    return unlimited if value is None else value


def _read_keyed(path):
    """A "key value" per line file (memory.stat, cpu.stat, memory.events...) as a dict of ints."""
    values = {}
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return values


def _join(directory, name):
    return os.path.join(directory, name) if directory else ""


# --- empty shapes ---

def _memory_data():
    return dict.fromkeys(MEMORY_DATA_FIELDS, 0)


def empty_cgroup_stats():
    """The cgroup part of a sample with every figure zero."""
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 0, "percpu_usage": [], "usage_in_kernelmode": 0,
                          "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
            "system_usage": 0,
        },
        "memory_stats": {"cache": 0, "usage": _memory_data(), "swap_usage": _memory_data(),
                         "kernel_usage": _memory_data(), "stats": {}},
        "blkio_stats": {field: [] for field in BLKIO_FIELDS},
        "hugetlb_stats": {},
        "pids_stats": {"current": 0, "limit": 0},
    }


# --- host-wide figures ---

def system_cpu_usage(proc_stat="/proc/stat"):
    """
    The host's CPU time in nanoseconds: the first seven fields of the C{cpu} line of /proc/stat (user,
    nice, system, idle, iowait, irq, softirq), converted from clock ticks.
    """
    text = _read(proc_stat)
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = line.split()[1:8]
            try:
                return sum(int(field) for field in fields) * _NS_PER_TICK
            except ValueError:
                return 0
    return 0


def network_stats(pid, proc="/proc", include_loopback=False):
    """
    Per-interface counters of the network namespace process C{pid} is in, from C{/proc/<pid>/net/dev}.

    @param include_loopback: also report C{lo} (left out by default, as Docker does).
    @return: a list of dicts with C{name} and the eight NetworkStats counters; empty when the process
        is gone or C{pid} is falsy.
    """
    if not pid:
        return []
    interfaces = []
    for line in _read(os.path.join(proc, str(pid), "net", "dev")).splitlines()[2:]:
        name, colon, counters = line.partition(":")
        name = name.strip()
        if not colon or (name == "lo" and not include_loopback):
            continue
        fields = counters.split()
        if len(fields) < 16:
            continue
        try:
            rx_bytes, rx_packets, rx_errors, rx_dropped = (int(v) for v in fields[0:4])
            tx_bytes, tx_packets, tx_errors, tx_dropped = (int(v) for v in fields[8:12])
        except ValueError:
            continue
        interfaces.append({
            "name": name, "rx_bytes": rx_bytes, "rx_Packets": rx_packets, "Rx_errors": rx_errors,
            "Rx_dropped": rx_dropped, "Tx_bytes": tx_bytes, "Tx_packets": tx_packets,
            "Tx_errors": tx_errors, "Tx_dropped": tx_dropped,
        })
    return interfaces


# --- cgroup v1 ---

def _v1_cpu(stats, cpuacct, cpu):
    usage = stats["cpu_usage"]
    usage["total_usage"] = _read_int(_join(cpuacct, "cpuacct.usage"))
    percpu = []
    for value in _read(_join(cpuacct, "cpuacct.usage_percpu")).split():
        try:
            percpu.append(int(value))
        except ValueError:
            break
    usage["percpu_usage"] = percpu
    ticks = _read_keyed(_join(cpuacct, "cpuacct.stat"))
    usage["usage_in_usermode"] = ticks.get("user", 0) * _NS_PER_TICK
    usage["usage_in_kernelmode"] = ticks.get("system", 0) * _NS_PER_TICK
    throttling = _read_keyed(_join(cpu, "cpu.stat"))
    stats["throttling_data"] = {
        "periods": throttling.get("nr_periods", 0),
        "throttled_periods": throttling.get("nr_throttled", 0),
        "throttled_time": throttling.get("throttled_time", 0),
    }


def _v1_memory_data(directory, prefix):
    return {
        "usage": _read_int(_join(directory, prefix + "usage_in_bytes")),
        "max_usage": _read_int(_join(directory, prefix + "max_usage_in_bytes")),
        "failcnt": _read_int(_join(directory, prefix + "failcnt")),
        "limit": _read_int(_join(directory, prefix + "limit_in_bytes")),
    }


def _v1_memory(stats, directory):
    if not directory:
        return
    stats["usage"] = _v1_memory_data(directory, "memory.")
    stats["swap_usage"] = _v1_memory_data(directory, "memory.memsw.")
    stats["kernel_usage"] = _v1_memory_data(directory, "memory.kmem.")
    stats["stats"] = _read_keyed(os.path.join(directory, "memory.stat"))
    stats["cache"] = stats["stats"].get("cache", 0)


def _blkio_entries(path):
    """Lines "major:minor op value" (or "major:minor value"), as BlkioStatsEntry dicts; "Total" skipped."""
    entries = []
    for line in _read(path).splitlines():
        fields = line.split()
        if len(fields) == 3:
            device, op, value = fields
        elif len(fields) == 2 and ":" in fields[0]:
            (device, value), op = fields, ""
        else:
            continue
        major, _, minor = device.partition(":")
        try:
            entries.append({"major": int(major), "minor": int(minor), "op": op, "value": int(value)})
        except ValueError:
            continue
    return entries


def _v1_blkio(stats, directory):
    if not directory:
        return
    for prefix in ("blkio.", "blkio.bfq."):
        if _blkio_entries(os.path.join(directory, prefix + "io_serviced_recursive")):
            for field in BLKIO_FIELDS:
                stats[field] = _blkio_entries(os.path.join(directory, prefix + field))
            return
    for field in ("io_service_bytes_recursive", "io_serviced_recursive"):
        stats[field] = _blkio_entries(os.path.join(directory, "blkio.throttle." + field))


def _page_sizes(directory, prefix, suffix):
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(name[len(prefix):-len(suffix)] for name in names
                  if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix + suffix))


def _v1_hugetlb(directory):
    result = {}
    for size in _page_sizes(directory, "hugetlb.", ".usage_in_bytes"):
        base = os.path.join(directory, f"hugetlb.{size}.")
        result[size] = {
            "usage": _read_int(base + "usage_in_bytes"),
            "max_usage": _read_int(base + "max_usage_in_bytes"),
            "failcnt": _read_int(base + "failcnt"),
            "limit": _read_int(base + "limit_in_bytes"),
        }
    return result


def _pids(stats, directory):
    if directory:
        stats["current"] = _read_int(os.path.join(directory, "pids.current"))
        stats["limit"] = _read_int(os.path.join(directory, "pids.max"), unlimited=0)


def _read_v1(cgroups, result):
    _v1_cpu(result["cpu_stats"], cgroups.get("cpuacct") or cgroups.get("cpu"), cgroups.get("cpu"))
    _v1_memory(result["memory_stats"], cgroups.get("memory"))
    _v1_blkio(result["blkio_stats"], cgroups.get("blkio"))
    if cgroups.get("hugetlb"):
        result["hugetlb_stats"] = _v1_hugetlb(cgroups["hugetlb"])
    _pids(result["pids_stats"], cgroups.get("pids"))


# --- cgroup v2 ---

def _v2_cpu(stats, directory):
    usec = _read_keyed(os.path.join(directory, "cpu.stat"))
    stats["cpu_usage"].update({
        "total_usage": usec.get("usage_usec", 0) * 1000,
        "usage_in_usermode": usec.get("user_usec", 0) * 1000,
        "usage_in_kernelmode": usec.get("system_usec", 0) * 1000,
    })
    stats["throttling_data"] = {
        "periods": usec.get("nr_periods", 0),
        "throttled_periods": usec.get("nr_throttled", 0),
        "throttled_time": usec.get("throttled_usec", 0) * 1000,
    }


def _add_limits(a, b):
    return UNLIMITED if UNLIMITED in (a, b) else min(a + b, UNLIMITED)


def _v2_memory(stats, directory):
    path = lambda name: os.path.join(directory, name)  # noqa: E731
    usage = _read_int(path("memory.current"))
    limit = _read_int(path("memory.max"), unlimited=UNLIMITED)
    events = _read_keyed(path("memory.events"))
    stats["usage"] = {"usage": usage, "max_usage": _read_int(path("memory.peak")),
                      "failcnt": events.get("max", 0), "limit": limit}
    swap_usage = _read_int(path("memory.swap.current"))
    swap_limit = _read_int(path("memory.swap.max"), unlimited=UNLIMITED)
    swap_events = _read_keyed(path("memory.swap.events"))
    stats["swap_usage"] = {"usage": usage + swap_usage,
                           "max_usage": _read_int(path("memory.swap.peak")),
                           "failcnt": swap_events.get("fail", 0),
                           "limit": _add_limits(limit, swap_limit)}
    stats["stats"] = _read_keyed(path("memory.stat"))
    stats["cache"] = stats["stats"].get("file", 0)
    stats["kernel_usage"]["usage"] = stats["stats"].get("kernel", 0)


def _v2_io(stats, directory):
    names = {"rbytes": ("io_service_bytes_recursive", "Read"), "wbytes": ("io_service_bytes_recursive", "Write"),
             "rios": ("io_serviced_recursive", "Read"), "wios": ("io_serviced_recursive", "Write")}
    for line in _read(os.path.join(directory, "io.stat")).splitlines():
        fields = line.split()
        if not fields:
            continue
        major, _, minor = fields[0].partition(":")
        try:
            major, minor = int(major), int(minor)
        except ValueError:
            continue
        for pair in fields[1:]:
            key, _, value = pair.partition("=")
            if key in names:
                field, op = names[key]
                try:
                    stats[field].append({"major": major, "minor": minor, "op": op, "value": int(value)})
                except ValueError:
                    continue


def _v2_hugetlb(directory):
    result = {}
    for size in _page_sizes(directory, "hugetlb.", ".current"):
        if "." in size:  # e.g. hugetlb.2MB.rsvd.current
            continue
        base = os.path.join(directory, f"hugetlb.{size}.")
        result[size] = {
            "usage": _read_int(base + "current"),
            "max_usage": 0,
            "failcnt": _read_keyed(base + "events").get("max", 0),
            "limit": _read_int(base + "max", unlimited=UNLIMITED),
        }
    return result


def _read_v2(directory, result):
    _v2_cpu(result["cpu_stats"], directory)
    _v2_memory(result["memory_stats"], directory)
    _v2_io(result["blkio_stats"], directory)
    result["hugetlb_stats"] = _v2_hugetlb(directory)
    _pids(result["pids_stats"], directory)


def is_v2(cgroups):
    """True when C{cgroups} should be read as cgroup v2: a C{"unified"} dir and no v1 controller dir."""
    return bool(cgroups.get(V2)) and not any(cgroups.get(name) for name in V1_CONTROLLERS)


def read_stats(cgroups, pid, proc="/proc", now_ns=None, include_loopback=True):
    """
    One stats sample of a container.

    @param cgroups: its cgroup directories, subsystem -> absolute path (as
        L{containerd_tx.cgroups.process_cgroups} returns them), or C{{"unified": path}} on cgroup v2.
    @param pid: the host pid of the container's init (for its network namespace); may be 0/None.
    @param proc: where procfs is mounted (tests point it at a fake tree).
    @param now_ns: the sample's timestamp (nanoseconds since the epoch; now when omitted).
    @return: a dict shaped like StatsResponse::

        {"network_stats": [{"name", "rx_bytes", "rx_Packets", "Rx_errors", "Rx_dropped", "Tx_bytes",
                            "Tx_packets", "Tx_errors", "Tx_dropped"}, ...],
         "cgroup_stats": {"cpu_stats": {"cpu_usage": {"total_usage", "percpu_usage": [...],
                                                      "usage_in_kernelmode", "usage_in_usermode"},
                                        "throttling_data": {"periods", "throttled_periods",
                                                            "throttled_time"},
                                        "system_usage"},
                          "memory_stats": {"cache", "usage": MemoryData, "swap_usage": MemoryData,
                                           "kernel_usage": MemoryData, "stats": {name: int}},
                          "blkio_stats": {"io_service_bytes_recursive": [{"major", "minor", "op",
                                                                           "value"}, ...], ... 8 lists},
                          "hugetlb_stats": {page size: {"usage", "max_usage", "failcnt", "limit"}},
                          "pids_stats": {"current", "limit"}},
         "timestamp": nanoseconds}

        with MemoryData C{{"usage", "max_usage", "failcnt", "limit"}}; times in nanoseconds, sizes in
        bytes.
    """
    cgroup_stats = empty_cgroup_stats()
    if is_v2(cgroups):
        _read_v2(cgroups[V2], cgroup_stats)
    else:
        _read_v1(cgroups, cgroup_stats)
    cgroup_stats["cpu_stats"]["system_usage"] = system_cpu_usage(os.path.join(proc, "stat"))
    return {
        "network_stats": network_stats(pid, proc, include_loopback),
        "cgroup_stats": cgroup_stats,
        "timestamp": time.time_ns() if now_ns is None else now_ns,
    }

