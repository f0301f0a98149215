# -*- test-case-name: tests.unit.test_api_convert -*-
"""
Every conversion between the wire contract's protobuf messages and the daemon's plain Python: requests into
the supervisor's request objects and dicts, containers, events, checkpoints and stats samples into messages,
and the trimming that keeps a State answer within a client's limit.

Nothing else in the daemon builds or reads a generated message field by field (the request checks in
L{containerd_tx.validation} only read fields).
"""

from google.protobuf.timestamp_pb2 import Timestamp

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.stats import BLKIO_FIELDS, HUGETLB_FIELDS, MEMORY_DATA_FIELDS, NET_FIELDS, UNLIMITED
from containerd_tx.supervisor import CreateRequest, ExecRequest

#: Replaces what L{fit_state} trims.
TRUNCATED_LABEL = "containerd-tx.truncated=true"


def timestamp_from_ns(ns):
    """A protobuf Timestamp for nanoseconds since the epoch."""
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def ns_from_timestamp(timestamp):
    """Nanoseconds since the epoch for a protobuf Timestamp."""
    return timestamp.seconds * 1_000_000_000 + timestamp.nanos


def process_to_proto(process):
    """The wire form of a L{containerd_tx.model.Process}."""
    return pb.Process(
        pid=process.id,
        terminal=process.terminal,
        user=pb.User(
            uid=process.user.uid,
            gid=process.user.gid,
            additionalGids=process.user.additional_gids,
        ),
        args=process.args,
        env=process.env,
        cwd=process.cwd,
        systemPid=process.system_pid,
        stdin=process.stdin,
        stdout=process.stdout,
        stderr=process.stderr,
        capabilities=process.capabilities,
        apparmorProfile=process.apparmor_profile,
        selinuxLabel=process.selinux_label,
        noNewPrivileges=process.no_new_privileges,
        rlimits=[
            pb.Rlimit(type=r.get("type", ""), soft=int(r.get("soft", 0)), hard=int(r.get("hard", 0)))
            for r in process.rlimits
        ],
    )


def container_to_proto(container, pids):
    """The wire form of a L{containerd_tx.model.Container}, with the host pids in its cgroup."""
    return pb.Container(
        id=container.id,
        bundlePath=container.bundle,
        processes=[process_to_proto(p) for p in container.processes.values() if p.system_pid],
        status=container.status,
        labels=container.labels,
        pids=pids,
        runtime=container.runtime,
    )


def event_to_proto(event):
    """The wire form of a L{containerd_tx.events.Event}."""
    return pb.Event(
        type=event.type,
        id=event.id,
        status=event.status,
        pid=event.pid,
        timestamp=timestamp_from_ns(event.timestamp_ns),
    )


# Requests.


def create_request_from_proto(request, config, stdio):
    """
    The L{CreateRequest} for a checked CreateContainerRequest.

    @param config: the bundle's parsed config.json.
    @param stdio: the checked (stdin, stdout, stderr) paths, "" for /dev/null.
    """
    return CreateRequest(
        id=request.id,
        bundle=request.bundlePath,
        config=config,
        stdio=stdio,
        labels=list(request.labels),
        runtime=request.runtime,
        runtime_args=list(request.runtimeArgs),
        no_pivot_root=request.noPivotRoot,
        checkpoint=request.checkpoint,
        checkpoint_dir=request.checkpointDir,
    )


def exec_request_from_proto(request, stdio):
    """
    The L{ExecRequest} for a checked AddProcessRequest.

    @param stdio: the checked (stdin, stdout, stderr) paths, "" for /dev/null.
    """
    return ExecRequest(
        container_id=request.id,
        process_id=request.pid,
        args=list(request.args),
        env=list(request.env),
        cwd=request.cwd,
        terminal=request.terminal,
        uid=request.user.uid,
        gid=request.user.gid,
        additional_gids=list(request.user.additionalGids),
        capabilities=list(request.capabilities),
        no_new_privileges=request.noNewPrivileges,
        rlimits=[{"type": r.type, "soft": r.soft, "hard": r.hard} for r in request.rlimits],
        apparmor_profile=request.apparmorProfile,
        selinux_label=request.selinuxLabel,
        stdio=stdio,
    )


def resources_from_proto(resources):
    """The UpdateResource message as the plain dict L{containerd_tx.resources.linux_resources} takes."""
    def throttles(devices):
        return [{"major": d.blkIODevice.major, "minor": d.blkIODevice.minor, "rate": d.rate} for d in devices]

    return {
        "blkio_weight": resources.blkioWeight,
        "cpu_shares": resources.cpuShares,
        "cpu_period": resources.cpuPeriod,
        "cpu_quota": resources.cpuQuota,
        "cpuset_cpus": resources.cpusetCpus,
        "cpuset_mems": resources.cpusetMems,
        "memory_limit": resources.memoryLimit,
        "memory_swap": resources.memorySwap,
        "memory_reservation": resources.memoryReservation,
        "kernel_memory_limit": resources.kernelMemoryLimit,
        "kernel_tcp_memory_limit": resources.kernelTCPMemoryLimit,
        "blkio_leaf_weight": resources.blkioLeafWeight,
        "blkio_weight_device": [
            {"major": d.blkIODevice.major, "minor": d.blkIODevice.minor, "weight": d.weight,
             "leaf_weight": d.leafWeight}
            for d in resources.blkioWeightDevice
        ],
        "blkio_throttle_read_bps_device": throttles(resources.blkioThrottleReadBpsDevice),
        "blkio_throttle_write_bps_device": throttles(resources.blkioThrottleWriteBpsDevice),
        "blkio_throttle_read_iops_device": throttles(resources.blkioThrottleReadIopsDevice),
        "blkio_throttle_write_iops_device": throttles(resources.blkioThrottleWriteIopsDevice),
        "pids_limit": resources.pidsLimit,
        "cpu_realtime_period": resources.cpuRealtimePeriod,
        "cpu_realtime_runtime": resources.cpuRealtimeRuntime,
    }


def checkpoint_options_from_proto(checkpoint):
    """The options dict of L{containerd_tx.supervisor.Supervisor.create_checkpoint} for a Checkpoint message."""
    return {
        "name": checkpoint.name,
        "exit": checkpoint.exit,
        "tcp": checkpoint.tcp,
        "unix_sockets": checkpoint.unixSockets,
        "shell": checkpoint.shell,
        "empty_ns": list(checkpoint.emptyNS),
    }


# Answers.


def checkpoint_to_proto(options):
    """The Checkpoint message for the options a checkpoint was taken with (as the supervisor lists them)."""
    return pb.Checkpoint(name=options.get("name", ""), exit=bool(options.get("exit")),
                         tcp=bool(options.get("tcp")), unixSockets=bool(options.get("unix_sockets")),
                         shell=bool(options.get("shell")), emptyNS=list(options.get("empty_ns") or []))


def state_to_proto(listing, machine, limit):
    """
    The StateResponse for the supervisor's listing, trimmed to fit in C{limit} bytes (see L{fit_state}).

    @param listing: (L{containerd_tx.model.Container}, pids) pairs.
    @param machine: a L{containerd_tx.supervisor.Machine}.
    """
    response = pb.StateResponse(
        containers=[container_to_proto(c, pids) for c, pids in listing],
        machine=pb.Machine(cpus=machine.cpus, memory=machine.memory),
    )
    fit_state(response, limit)
    return response


def fit_state(response, limit):
    """
    Make a StateResponse fit in C{limit} bytes, so that every client (grpc's default receive limit is 4 MiB)
    can read it however many containers there are: the biggest containers' labels are replaced by the one
    label L{TRUNCATED_LABEL}, then, if still needed, their processes' env and then args by
    C{[TRUNCATED_LABEL]} too. Ids, statuses, pids and everything else stay.

    @return: whether anything was trimmed.
    """
    if response.ByteSize() <= limit:
        return False
    for trim in (_trim_labels, _trim_env, _trim_args):
        for container in sorted(response.containers, key=lambda c: c.ByteSize(), reverse=True):
            trim(container)
            if response.ByteSize() <= limit:
                return True
    return True


def _trim_labels(container):
    if len(container.labels) > 1 or (container.labels and container.labels[0] != TRUNCATED_LABEL):
        del container.labels[:]
        container.labels.append(TRUNCATED_LABEL)


def _trim_env(container):
    for process in container.processes:
        if process.env:
            del process.env[:]
            process.env.append(TRUNCATED_LABEL)


def _trim_args(container):
    for process in container.processes:
        if len(process.args) > 1:
            del process.args[1:]
            process.args.append(TRUNCATED_LABEL)


def _clamp(value):
    """uint64 fields: negative or oversized values (never expected) are clamped rather than raising."""
    return min(max(int(value), 0), UNLIMITED)


def _memory_data_proto(data):
    return pb.MemoryData(**{field: _clamp(data.get(field, 0)) for field in MEMORY_DATA_FIELDS})


def stats_to_proto(stats):
    """
    The StatsResponse for a sample from L{containerd_tx.stats.read_stats}.
    """
    cgroup = stats["cgroup_stats"]
    cpu = cgroup["cpu_stats"]
    usage = cpu["cpu_usage"]
    throttling = cpu["throttling_data"]
    memory = cgroup["memory_stats"]
    response = pb.StatsResponse(
        network_stats=[pb.NetworkStats(name=net["name"], **{field: _clamp(net[field]) for field in NET_FIELDS})
                       for net in stats["network_stats"]],
        cgroup_stats=pb.CgroupStats(
            cpu_stats=pb.CpuStats(
                cpu_usage=pb.CpuUsage(
                    total_usage=_clamp(usage["total_usage"]),
                    percpu_usage=[_clamp(value) for value in usage["percpu_usage"]],
                    usage_in_kernelmode=_clamp(usage["usage_in_kernelmode"]),
                    usage_in_usermode=_clamp(usage["usage_in_usermode"]),
                ),
                throttling_data=pb.ThrottlingData(
                    periods=_clamp(throttling["periods"]),
                    throttled_periods=_clamp(throttling["throttled_periods"]),
                    throttled_time=_clamp(throttling["throttled_time"]),
                ),
                system_usage=_clamp(cpu["system_usage"]),
            ),
            memory_stats=pb.MemoryStats(
                cache=_clamp(memory["cache"]),
                usage=_memory_data_proto(memory["usage"]),
                swap_usage=_memory_data_proto(memory["swap_usage"]),
                kernel_usage=_memory_data_proto(memory["kernel_usage"]),
                stats={key: _clamp(value) for key, value in memory["stats"].items()},
            ),
            blkio_stats=pb.BlkioStats(**{
                field: [pb.BlkioStatsEntry(major=_clamp(e["major"]), minor=_clamp(e["minor"]), op=e["op"],
                                           value=_clamp(e["value"]))
                        for e in cgroup["blkio_stats"][field]]
                for field in BLKIO_FIELDS
            }),
            hugetlb_stats={size: pb.HugetlbStats(**{field: _clamp(h[field]) for field in HUGETLB_FIELDS})
                           for size, h in cgroup["hugetlb_stats"].items()},
            pids_stats=pb.PidsStats(current=_clamp(cgroup["pids_stats"]["current"]),
                                    limit=_clamp(cgroup["pids_stats"]["limit"])),
        ),
    )
    response.timestamp.FromNanoseconds(int(stats["timestamp"]))
    return response
