# -*- test-case-name: tests.unit.test_bridge -*-
"""
The only door between grpcio's worker threads and the reactor thread.

gRPC handlers call L{ReactorBridge.call} to run work in the reactor and wait for its result; errors come back
as L{containerd_tx.errors.ContainerdError}s (which the API layer turns into status codes, see
L{containerd_tx.api_status}).
Streams are fed from the reactor through L{StreamFeed}, a bounded hand-off that never blocks the reactor.
"""

import inspect
import queue
import threading
import time

from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.python import threadable

from containerd_tx.errors import ResourceExhausted, Unavailable

_END = object()
_OVERFLOW = object()


class _Failed:
    """The end of a stream with an error, as a queue item."""

    def __init__(self, error):
        self.error = error


class ReactorBridge:
    """
    Runs callables in the reactor thread on behalf of other threads.

    @param reactor: the reactor that owns all daemon state.
    @param timeout: seconds a caller waits for the reactor before giving up with UNAVAILABLE; a safety net for
        a reactor that is shutting down, not a request deadline.
    """

    def __init__(self, reactor, timeout=600.0):
        self._reactor = reactor
        self._timeout = timeout
        self._closed = False
        self._lock = threading.Lock()
        #: Calls waiting on the reactor now (the original's "tasks" gauge).
        self.in_flight = 0

    def close(self):
        """
        Refuse new calls from now on (the daemon is stopping).
        """
        self._closed = True

    def call(self, fn, *args, **kwargs):
        """
        Run C{fn(*args, **kwargs)} in the reactor thread and wait for its result.

        C{fn} may return a Deferred or a coroutine; its result or failure is what this returns or raises.

        @raise RuntimeError: when called from the reactor thread itself (it would deadlock).
        @raise Unavailable: when the daemon is stopping or the reactor does not answer in time.
        """
        if threadable.isInIOThread():
            raise RuntimeError("ReactorBridge.call from the reactor thread would deadlock")
        if self._closed:
            raise Unavailable("daemon is shutting down")
        answer = queue.SimpleQueue()

        def run():
            d = maybeDeferred(_call_maybe_coroutine, fn, args, kwargs)
            d.addBoth(answer.put)

        with self._lock:
            self.in_flight += 1
        try:
            self._reactor.callFromThread(run)
            result = answer.get(timeout=self._timeout)
        except queue.Empty:
            raise Unavailable("daemon did not answer in time (shutting down?)")
        finally:
            with self._lock:
                self.in_flight -= 1
        if hasattr(result, "raiseException") and hasattr(result, "value"):
            result.raiseException()
        return result


def _call_maybe_coroutine(fn, args, kwargs):
    result = fn(*args, **kwargs)
    if inspect.iscoroutine(result):
        return ensureDeferred(result)
    return result


class StreamFeed:
    """
    A bounded, one-way hand-off from the reactor (producer) to one gRPC stream thread (consumer).

    The reactor side never blocks: when the consumer falls C{limit} items behind, the feed is marked
    overflowed and the stream ends with RESOURCE_EXHAUSTED, so one slow client can neither grow memory
    without bound nor delay anybody else.

    @param limit: how many undelivered items a consumer may fall behind.
    @param on_close: called (in the reactor thread) once when the feed ends for any reason.
    """

    def __init__(self, reactor, limit, on_close=None):
        self._reactor = reactor
        self._queue = queue.Queue(maxsize=limit + 1)
        self._limit = limit
        self._on_close = on_close
        self._closed = False
        self._lock = threading.Lock()
        #: time.monotonic() when the consumer last took an item (or the feed was made).
        self.last_taken = time.monotonic()

    @property
    def closed(self):
        """True once the feed has ended (finished, overflowed or cancelled)."""
        return self._closed

    @property
    def backlog(self):
        """How many pushed items the consumer has not taken yet (safe to read from any thread)."""
        return self._queue.qsize()

    def stalled_for(self, now=None):
        """
        Seconds the consumer has been stuck with items waiting for it (0 when it has taken everything): a
        client that stopped reading keeps its stream thread blocked in a send, and this grows.
        """
        if not self._queue.qsize():
            return 0.0
        return (time.monotonic() if now is None else now) - self.last_taken

    # Reactor side.

    def push(self, item):
        """
        Offer an item; never blocks. Returns False when the feed is closed or just overflowed.
        """
        if self._closed:
            return False
        try:
            if self._queue.qsize() >= self._limit:
                self._queue.put_nowait(_OVERFLOW)
                self._close()
                return False
            self._queue.put_nowait(item)
        except queue.Full:
            # cancel_from_thread (client gone) took the spare slot before its _close reached the reactor.
            self._close()
            return False
        return True

    def finish(self, error=None):
        """
        End the stream after what was already pushed: normally, or with C{error} (a
        L{containerd_tx.errors.ContainerdError}, e.g. UNAVAILABLE when the daemon stops, so that a client
        does not take the end of its stream for the end of a replay).
        """
        if not self._closed:
            try:
                self._queue.put_nowait(_END if error is None else _Failed(error))
            except queue.Full:
                pass
            self._close()

    def _close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._on_close is not None:
            self._on_close()

    # gRPC thread side.

    def cancel_from_thread(self):
        """
        The client went away: end the feed from a non-reactor thread (wakes the consumer, unsubscribes).
        """
        try:
            self._queue.put_nowait(_END)
        except queue.Full:
            pass
        self._reactor.callFromThread(self._close)

    def items(self, context, poll=1.0):
        """
        Yield pushed items until the feed ends or the client goes away.

        @raise ResourceExhausted: when the consumer fell too far behind.
        """
        while True:
            if not self._queue.qsize():
                self.last_taken = time.monotonic()
            try:
                item = self._queue.get(timeout=poll)
                self.last_taken = time.monotonic()
            except queue.Empty:
                if not context.is_active():
                    self.cancel_from_thread()
                    return
                continue
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            if item is _OVERFLOW:
                raise ResourceExhausted(
                    "events subscriber too slow: stream ended, resubscribe with the last timestamp seen"
                )
            yield item
