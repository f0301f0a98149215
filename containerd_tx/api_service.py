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
from containerd_tx.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from containerd_tx.supervisor import CreateRequest
from containerd_tx.validation import (
    load_bundle_config,
    validate_id,
    validate_signal,
    validate_stdio_path,
)

MAX_LABELS = 1024
MAX_LABEL_LENGTH = 4096
MAX_RUNTIME_ARGS = 64


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
            raise FailedPrecondition("restoring from a checkpoint is not supported by this daemon yet")
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


def _check_strings(values, name, max_count, max_length):
    if len(values) > max_count:
        raise InvalidArgument(f"too many {name}: {len(values)} (at most {max_count})")
    for value in values:
        if len(value) > max_length or "\0" in value:
            raise InvalidArgument(f"invalid entry in {name}: too long or contains NUL")
