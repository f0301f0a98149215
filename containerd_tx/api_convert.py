# -*- test-case-name: tests.unit.test_api_convert -*-
"""
Conversions between the daemon's plain objects and the wire contract's protobuf messages.
"""

from google.protobuf.timestamp_pb2 import Timestamp

from containerd_tx.api import containerd_pb2 as pb


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
