# -*- test-case-name: tests.integration.test_lifecycle -*-
"""
The C{types.API} gRPC service: translation only.

Each handler runs in a grpcio worker thread: it validates the request (no daemon state needed), converts it to
plain Python, runs the work in the reactor through the L{containerd_tx.bridge.ReactorBridge}, and converts the
result back. Errors become status codes with one-line messages.
"""

import functools
import threading

from containerd_tx import REVISION, VERSION_TUPLE
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from containerd_tx.api_convert import container_to_proto, event_to_proto, ns_from_timestamp
from containerd_tx.bridge import ReactorBridge, StreamFeed
from containerd_tx.errors import InvalidArgument, ResourceExhausted
from containerd_tx.model import PAUSED, RUNNING
from containerd_tx.resources import linux_resources
from containerd_tx.stats import stats_to_proto
from containerd_tx.supervisor import CreateRequest, ExecRequest
from containerd_tx.validation import (
    load_bundle_config,
    validate_id,
    validate_signal,
    validate_stdio_path,
)

MAX_LABELS = 1024
MAX_LABEL_LENGTH = 4096
MAX_RUNTIME_ARGS = 64
NAMESPACES = ("network", "pid", "ipc", "uts", "mount", "user", "cgroup")


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
    @param max_subscribers: concurrent Events streams allowed; more get RESOURCE_EXHAUSTED at once.
    @param feed_limit: how far an events subscriber may fall behind before its stream is ended.
    """

    def __init__(self, bridge, supervisor, reactor, max_subscribers=128, feed_limit=None):
        self._bridge = bridge
        self._supervisor = supervisor
        self._reactor = reactor
        self._max_subscribers = max_subscribers
        self._feed_limit = feed_limit
        self._subscribers = 0
        self._subscribers_lock = threading.Lock()

    @_translated
    def GetServerVersion(self, request, context):
        major, minor, patch = VERSION_TUPLE
        return pb.GetServerVersionResponse(major=major, minor=minor, patch=patch, revision=REVISION)

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
        return pb.StateResponse(
            containers=[container_to_proto(c, pids) for c, pids in self._supervisor.list(container_id)],
            machine=pb.Machine(cpus=machine.cpus, memory=machine.memory),
        )

    @_translated
    def AddProcess(self, request, context):
        validate_id(request.id)
        validate_id(request.pid, "process id")
        if not request.args:
            raise InvalidArgument("args must not be empty")
        for name, values in (("args", request.args), ("env", request.env),
                             ("capabilities", request.capabilities)):
            _check_strings(values, name, MAX_LABELS, MAX_LABEL_LENGTH)
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
        try:
            since = ns_from_timestamp(request.timestamp) if request.HasField("timestamp") else None
            if request.storedOnly and since is None:
                raise InvalidArgument("storedOnly needs a timestamp")
            if request.id:
                validate_id(request.id)
            self._admit_subscriber()
        except Exception as e:
            ReactorBridge.abort_with(context, e)
        error = None
        try:
            feed = self._bridge.call(self._open_feed, since, request.id, request.storedOnly)
            context.add_callback(feed.cancel_from_thread)
            for event in feed.items(context):
                yield event_to_proto(event)
        except Exception as e:
            error = e
        finally:
            with self._subscribers_lock:
                self._subscribers -= 1
        if error is not None:
            ReactorBridge.abort_with(context, error)

    def _admit_subscriber(self):
        with self._subscribers_lock:
            if self._subscribers >= self._max_subscribers:
                raise ResourceExhausted(
                    f"too many event subscribers (limit {self._max_subscribers})"
                )
            self._subscribers += 1

    def _open_feed(self, since, container_id, stored_only):
        events = self._supervisor.events
        subscription = []
        limit = self._feed_limit or (events.retain + 1024)
        feed = StreamFeed(self._reactor, limit, on_close=lambda: subscription and subscription[0].cancel())
        subscription.append(events.subscribe(feed, since, container_id, stored_only))
        return feed


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
    }


def _check_dir(path, name):
    if path and (not path.startswith("/") or "\0" in path or len(path) > 4096):
        raise InvalidArgument(f"{name} {path!r} must be an absolute path")


def _check_strings(values, name, max_count, max_length):
    if len(values) > max_count:
        raise InvalidArgument(f"too many {name}: {len(values)} (at most {max_count})")
    for value in values:
        if len(value) > max_length or "\0" in value:
            raise InvalidArgument(f"invalid entry in {name}: too long or contains NUL")
