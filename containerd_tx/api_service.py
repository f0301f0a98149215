# -*- test-case-name: tests.integration.test_lifecycle -*-
"""
The C{types.API} gRPC service: translation only.

Each handler runs in a grpcio worker thread: it validates the request (no daemon state needed), converts it to
plain Python, runs the work in the reactor through the L{containerd_tx.bridge.ReactorBridge}, and converts the
result back. Errors become status codes with one-line messages.
"""

import functools
import threading
import time

from twisted.logger import Logger

from containerd_tx import VERSION_TUPLE
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from containerd_tx.api_convert import container_to_proto, event_to_proto, ns_from_timestamp
from containerd_tx.bridge import ReactorBridge, StreamFeed
from containerd_tx.errors import InvalidArgument, ResourceExhausted
from containerd_tx.model import PAUSED, RUNNING
from containerd_tx.resources import linux_resources
from containerd_tx.revision import revision
from containerd_tx.stats import stats_to_proto
from containerd_tx.supervisor import CreateRequest, ExecRequest
from containerd_tx.validation import (
    load_bundle_config,
    validate_id,
    validate_signal,
    validate_stdio_path,
    validate_terminal_stdin,
)

MAX_LABELS = 1024
MAX_LABEL_LENGTH = 4096
MAX_RUNTIME_ARGS = 64
#: All labels of one container together, in bytes: 256 of them at the 4096-byte limit, or 1000 of 100 bytes.
MAX_LABEL_BYTES = 256 * 1024
#: State answers fit in this (grpc clients receive at most 4 MiB by default; some room for framing).
STATE_LIMIT = 4 * 1024 * 1024 - 64 * 1024
#: Replaces what State trims to fit in L{STATE_LIMIT}.
TRUNCATED_LABEL = "containerd-tx.truncated=true"
#: A subscriber stuck this long with events waiting for it may be evicted for a new one when all slots are taken.
STALLED_SECONDS = 1.0
#: When no subscriber is stuck, one holding its slot this long may be evicted for a new one.
EVICTABLE_AFTER = 10.0
NAMESPACES = ("network", "pid", "ipc", "uts", "mount", "user", "cgroup")

log = Logger()


def _translated(method):
    """Run a unary handler, turning any exception into a status code (never a traceback on the wire)."""

    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except Exception as e:
            error = e
        ReactorBridge.abort_with(context, error)

    return handler


class APIService(pb_grpc.APIServicer):
    """
    The wire contract's service, on top of a L{containerd_tx.supervisor.Supervisor}.

    @param bridge: the L{ReactorBridge} into the reactor thread.
    @param supervisor: the supervisor (touched only through C{bridge}).
    @param reactor: for event stream feeds.
    @param max_subscribers: concurrent Events streams allowed; when all are taken, a subscriber stuck with
        events waiting for it is evicted for a newcomer, else the newcomer gets RESOURCE_EXHAUSTED at once.
    @param feed_limit: how far an events subscriber may fall behind before its stream is ended.
    """

    def __init__(self, bridge, supervisor, reactor, max_subscribers=128, feed_limit=None):
        self._bridge = bridge
        self._supervisor = supervisor
        self._reactor = reactor
        self._max_subscribers = max_subscribers
        self._feed_limit = feed_limit
        #: The L{_Stream}s holding a subscriber slot.
        self._streams = set()
        self._subscribers_lock = threading.Lock()

    @_translated
    def GetServerVersion(self, request, context):
        major, minor, patch = VERSION_TUPLE
        return pb.GetServerVersionResponse(major=major, minor=minor, patch=patch, revision=revision())

    @_translated
    def CreateContainer(self, request, context):
        validate_id(request.id)
        if request.checkpoint:
            validate_id(request.checkpoint, "checkpoint name")
        _check_dir(request.checkpointDir, "checkpointDir")
        config = load_bundle_config(request.bundlePath)
        stdio = (
            validate_stdio_path(request.stdin, "stdin") or "",
            validate_stdio_path(request.stdout, "stdout") or "",
            validate_stdio_path(request.stderr, "stderr") or "",
        )
        _check_strings(request.labels, "labels", MAX_LABELS, MAX_LABEL_LENGTH)
        label_bytes = sum(len(label.encode()) for label in request.labels)
        if label_bytes > MAX_LABEL_BYTES:
            raise InvalidArgument(f"labels too large: {label_bytes} bytes in all (at most {MAX_LABEL_BYTES} per "
                                  f"container, so that State answers clients with grpc's default 4 MiB limit)")
        terminal = config["process"].get("terminal") is True
        if terminal and stdio[0]:
            validate_terminal_stdin(stdio[0])
        _check_strings(request.runtimeArgs, "runtimeArgs", MAX_RUNTIME_ARGS, MAX_LABEL_LENGTH)
        if request.runtime and ("\0" in request.runtime or len(request.runtime) > 4096):
            raise InvalidArgument("invalid runtime name")
        create = CreateRequest(
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
        container = self._bridge.call(self._create, create)
        return pb.CreateContainerResponse(container=container)

    async def _create(self, create):
        container = await self._supervisor.create(create)
        # Converted in the reactor thread: a snapshot taken before any later change of the container.
        return container_to_proto(container, self._supervisor.pids(container))

    @_translated
    def Signal(self, request, context):
        validate_id(request.id)
        validate_id(request.pid or "", "process id")
        signal = validate_signal(request.signal)
        self._bridge.call(self._supervisor.signal, request.id, request.pid, signal)
        return pb.SignalResponse()

    @_translated
    def State(self, request, context):
        if request.id:
            validate_id(request.id)
        return self._bridge.call(self._state, request.id)

    def _state(self, container_id):
        machine = self._supervisor.machine
        response = pb.StateResponse(
            containers=[container_to_proto(c, pids) for c, pids in self._supervisor.list(container_id)],
            machine=pb.Machine(cpus=machine.cpus, memory=machine.memory),
        )
        fit_state(response, STATE_LIMIT)
        return response

    @_translated
    def AddProcess(self, request, context):
        validate_id(request.id)
        validate_id(request.pid, "process id")
        if not request.args:
            raise InvalidArgument("args must not be empty")
        for name, values in (("args", request.args), ("env", request.env),
                             ("capabilities", request.capabilities)):
            _check_strings(values, name, MAX_LABELS, MAX_LABEL_LENGTH)
        if request.terminal and request.stdin:
            validate_terminal_stdin(request.stdin)
        exec_request = ExecRequest(
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
            stdio=(
                validate_stdio_path(request.stdin, "stdin") or "",
                validate_stdio_path(request.stdout, "stdout") or "",
                validate_stdio_path(request.stderr, "stderr") or "",
            ),
        )
        pid = self._bridge.call(self._supervisor.add_process, exec_request)
        return pb.AddProcessResponse(systemPid=pid)

    @_translated
    def UpdateProcess(self, request, context):
        validate_id(request.id)
        validate_id(request.pid, "process id")
        if bool(request.width) != bool(request.height):
            raise InvalidArgument("width and height must be given together")
        if request.width > 65535 or request.height > 65535:
            raise InvalidArgument("width and height must be at most 65535")
        self._bridge.call(self._supervisor.update_process, request.id, request.pid,
                          close_stdin=request.closeStdin, width=request.width, height=request.height)
        return pb.UpdateProcessResponse()

    @_translated
    def UpdateContainer(self, request, context):
        validate_id(request.id)
        if request.pid and request.pid != "init":
            validate_id(request.pid, "process id")
        resources = None
        if request.HasField("resources"):
            resources = linux_resources(_resource_fields(request.resources))
        if not request.status and resources is None:
            raise InvalidArgument("nothing to update: give a status or resources")
        if request.status and request.status not in (PAUSED, RUNNING):
            raise InvalidArgument(f"invalid status {request.status!r}: use \"paused\" or \"running\"")
        self._bridge.call(self._update, request.id, request.status, resources)
        return pb.UpdateContainerResponse()

    async def _update(self, container_id, status, resources):
        if resources is not None:
            await self._supervisor.update_resources(container_id, resources)
        if status:
            await self._supervisor.set_status(container_id, status)

    @_translated
    def CreateCheckpoint(self, request, context):
        validate_id(request.id)
        checkpoint = request.checkpoint
        validate_id(checkpoint.name, "checkpoint name")
        _check_dir(request.checkpointDir, "checkpointDir")
        for namespace in checkpoint.emptyNS:
            if namespace not in NAMESPACES:
                raise InvalidArgument(f"invalid emptyNS entry {namespace!r}: use one of {', '.join(NAMESPACES)}")
        options = {
            "name": checkpoint.name,
            "exit": checkpoint.exit,
            "tcp": checkpoint.tcp,
            "unix_sockets": checkpoint.unixSockets,
            "shell": checkpoint.shell,
            "empty_ns": list(checkpoint.emptyNS),
        }
        self._bridge.call(self._supervisor.create_checkpoint, request.id, options, request.checkpointDir)
        return pb.CreateCheckpointResponse()

    @_translated
    def ListCheckpoint(self, request, context):
        validate_id(request.id)
        _check_dir(request.checkpointDir, "checkpointDir")
        found = self._bridge.call(self._supervisor.list_checkpoints, request.id, request.checkpointDir)
        return pb.ListCheckpointResponse(checkpoints=[
            pb.Checkpoint(name=c.get("name", ""), exit=bool(c.get("exit")), tcp=bool(c.get("tcp")),
                          unixSockets=bool(c.get("unix_sockets")), shell=bool(c.get("shell")),
                          emptyNS=list(c.get("empty_ns") or []))
            for c in found
        ])

    @_translated
    def DeleteCheckpoint(self, request, context):
        validate_id(request.id)
        validate_id(request.name, "checkpoint name")
        _check_dir(request.checkpointDir, "checkpointDir")
        self._bridge.call(self._supervisor.delete_checkpoint, request.id, request.name, request.checkpointDir)
        return pb.DeleteCheckpointResponse()

    @_translated
    def Stats(self, request, context):
        validate_id(request.id)
        return stats_to_proto(self._bridge.call(self._supervisor.stats, request.id))

    def Events(self, request, context):
        stream = _Stream(context)
        try:
            since = ns_from_timestamp(request.timestamp) if request.HasField("timestamp") else None
            if request.storedOnly and since is None:
                raise InvalidArgument("storedOnly needs a timestamp")
            if request.id:
                validate_id(request.id)
            self._admit_subscriber(stream)
        except Exception as e:
            ReactorBridge.abort_with(context, e)
        error = None
        try:
            feed = self._bridge.call(self._open_feed, since, request.id, request.storedOnly)
            stream.feed = feed
            context.add_callback(feed.cancel_from_thread)
            for event in feed.items(context):
                yield event_to_proto(event)
        except Exception as e:
            error = e
        finally:
            self._release_subscriber(stream)
        if error is not None:
            ReactorBridge.abort_with(context, error)

    def _admit_subscriber(self, stream):
        """
        Take a slot for a new Events stream. When every slot is taken, the subscriber that has been stuck
        longest with events waiting for it (a client that stopped reading) is evicted to make room; only when
        every subscriber keeps up is the newcomer refused.

        @raise ResourceExhausted: every slot is held by a subscriber that keeps up.
        """
        with self._subscribers_lock:
            if len(self._streams) >= self._max_subscribers:
                victim = self._laggiest()
                if victim is None:
                    raise ResourceExhausted(
                        f"too many event subscribers (limit {self._max_subscribers}), all of them reading"
                    )
                self._evict(victim)
            self._streams.add(stream)

    def _laggiest(self):
        """
        The subscriber to evict for a newcomer: the one stuck longest with events waiting for it (its client
        stopped reading and its transport window is full); else the one holding its slot longest, if that is
        more than L{EVICTABLE_AFTER} seconds (a client that never reads cannot be told from a quiet one
        before its window fills). None when every subscriber is younger: the newcomer is refused.
        """
        now = time.monotonic()
        open_streams = [s for s in self._streams if s.feed is not None]
        stuck = [(s.feed.stalled_for(now), s.feed.backlog, id(s), s) for s in open_streams]
        stuck = [entry for entry in stuck if entry[0] >= STALLED_SECONDS]
        if stuck:
            return max(stuck)[3]
        old = [(s.admitted, id(s), s) for s in open_streams if now - s.admitted >= EVICTABLE_AFTER]
        return min(old)[2] if old else None

    def _evict(self, stream):
        """
        End another subscriber's stream to free its slot now: it ends with RESOURCE_EXHAUSTED (resubscribe
        with the last timestamp seen), or is cancelled when its thread is blocked sending to a client that
        does not read.
        """
        self._streams.discard(stream)
        stalled = stream.feed.stalled_for()
        log.info("events subscriber evicted for a new one (stuck {s:.1f}s, {n} events waiting)",
                 s=stalled, n=stream.feed.backlog)
        self._reactor.callFromThread(
            stream.feed.finish,
            ResourceExhausted("events subscriber evicted: every slot was taken and this one was the longest "
                              "behind or oldest; resubscribe with the last timestamp seen"))
        if stalled:
            # Wakes a send blocked on the client's full window; the client sees CANCELLED.
            stream.context.cancel()

    def _release_subscriber(self, stream):
        with self._subscribers_lock:
            self._streams.discard(stream)

    @property
    def subscriber_slots_taken(self):
        """How many Events streams hold a slot now."""
        with self._subscribers_lock:
            return len(self._streams)

    def _open_feed(self, since, container_id, stored_only):
        events = self._supervisor.events
        subscription = []
        limit = self._feed_limit or (events.retain + 1024)
        feed = StreamFeed(self._reactor, limit, on_close=lambda: subscription and subscription[0].cancel())
        subscription.append(events.subscribe(feed, since, container_id, stored_only))
        return feed


class _Stream:
    """One Events call holding a subscriber slot: its gRPC context and, once open, its feed."""

    def __init__(self, context):
        self.context = context
        self.feed = None
        self.admitted = time.monotonic()


def _resource_fields(resources):
    """The UpdateResource message as the plain dict L{linux_resources} takes."""
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


def _check_dir(path, name):
    if path and (not path.startswith("/") or "\0" in path or len(path) > 4096):
        raise InvalidArgument(f"{name} {path!r} must be an absolute path")


def _check_strings(values, name, max_count, max_length):
    if len(values) > max_count:
        raise InvalidArgument(f"too many {name}: {len(values)} (at most {max_count})")
    for value in values:
        if len(value) > max_length or "\0" in value:
            raise InvalidArgument(f"invalid entry in {name}: too long or contains NUL")
