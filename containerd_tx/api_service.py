# -*- test-case-name: tests.integration.test_lifecycle -*-
"""
The C{types.API} gRPC service: translation only.

Each handler runs in a grpcio worker thread: it checks the request (L{containerd_tx.validation}, no daemon state
needed), converts it to plain Python (L{containerd_tx.api_convert}), runs the work in the reactor through the
L{containerd_tx.bridge.ReactorBridge}, and converts the result back. Errors become status codes with one-line
messages (L{containerd_tx.api_status}).
"""

import functools
import threading
import time

from twisted.logger import Logger

from containerd_tx import VERSION_TUPLE, validation
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from containerd_tx.api_convert import (
    checkpoint_options_from_proto,
    checkpoint_to_proto,
    container_to_proto,
    create_request_from_proto,
    event_to_proto,
    exec_request_from_proto,
    ns_from_timestamp,
    resources_from_proto,
    state_to_proto,
    stats_to_proto,
)
from containerd_tx.api_status import abort_with
from containerd_tx.bridge import StreamFeed
from containerd_tx.errors import ResourceExhausted
from containerd_tx.resources import linux_resources
from containerd_tx.revision import revision

#: State answers fit in this (grpc clients receive at most 4 MiB by default; some room for framing).
STATE_LIMIT = 4 * 1024 * 1024 - 64 * 1024
#: A subscriber stuck this long with events waiting for it may be evicted for a new one when all slots are taken.
STALLED_SECONDS = 1.0
#: When no subscriber is stuck, one holding its slot this long may be evicted for a new one.
EVICTABLE_AFTER = 10.0

log = Logger()


def _translated(method):
    """Run a unary handler, turning any exception into a status code (never a traceback on the wire)."""

    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except Exception as e:
            error = e
        abort_with(context, error)

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
        config, stdio = validation.check_create_container(request)
        container = self._bridge.call(self._create, create_request_from_proto(request, config, stdio))
        return pb.CreateContainerResponse(container=container)

    async def _create(self, create):
        container = await self._supervisor.create(create)
        # Converted in the reactor thread: a snapshot taken before any later change of the container. No pids,
        # as containerd 0.2.9 answers (createAPIContainer(c, false)): State has them, and reading cgroup.procs
        # here was a tenth of the reactor's time per start.
        return container_to_proto(container, ())

    @_translated
    def Signal(self, request, context):
        signal = validation.check_signal(request)
        self._bridge.call(self._supervisor.signal, request.id, request.pid, signal)
        return pb.SignalResponse()

    @_translated
    def State(self, request, context):
        validation.check_state(request)
        return self._bridge.call(self._state, request.id)

    def _state(self, container_id):
        # Converted in the reactor thread: the containers may change as soon as it moves on.
        return state_to_proto(self._supervisor.list(container_id), self._supervisor.machine, STATE_LIMIT)

    @_translated
    def AddProcess(self, request, context):
        stdio = validation.check_add_process(request)
        pid = self._bridge.call(self._supervisor.add_process, exec_request_from_proto(request, stdio))
        return pb.AddProcessResponse(systemPid=pid)

    @_translated
    def UpdateProcess(self, request, context):
        validation.check_update_process(request)
        self._bridge.call(self._supervisor.update_process, request.id, request.pid,
                          close_stdin=request.closeStdin, width=request.width, height=request.height)
        return pb.UpdateProcessResponse()

    @_translated
    def UpdateContainer(self, request, context):
        validation.check_update_container(request)
        resources = None
        if request.HasField("resources"):
            resources = linux_resources(resources_from_proto(request.resources))
        validation.check_update(request.status, resources)
        self._bridge.call(self._update, request.id, request.status, resources)
        return pb.UpdateContainerResponse()

    async def _update(self, container_id, status, resources):
        if resources is not None:
            await self._supervisor.update_resources(container_id, resources)
        if status:
            await self._supervisor.set_status(container_id, status)

    @_translated
    def CreateCheckpoint(self, request, context):
        validation.check_create_checkpoint(request)
        options = checkpoint_options_from_proto(request.checkpoint)
        self._bridge.call(self._supervisor.create_checkpoint, request.id, options, request.checkpointDir)
        return pb.CreateCheckpointResponse()

    @_translated
    def ListCheckpoint(self, request, context):
        validation.check_list_checkpoint(request)
        found = self._bridge.call(self._supervisor.list_checkpoints, request.id, request.checkpointDir)
        return pb.ListCheckpointResponse(checkpoints=[checkpoint_to_proto(c) for c in found])

    @_translated
    def DeleteCheckpoint(self, request, context):
        validation.check_delete_checkpoint(request)
        self._bridge.call(self._supervisor.delete_checkpoint, request.id, request.name, request.checkpointDir)
        return pb.DeleteCheckpointResponse()

    @_translated
    def Stats(self, request, context):
        validation.check_stats(request)
        return stats_to_proto(self._bridge.call(self._supervisor.stats, request.id))

    def Events(self, request, context):
        stream = _Stream(context)
        try:
            since = ns_from_timestamp(request.timestamp) if request.HasField("timestamp") else None
            validation.check_events(request, since)
            self._admit_subscriber(stream)
        except Exception as e:
            abort_with(context, e)
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
            abort_with(context, error)

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

