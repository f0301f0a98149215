"""
Collecting a daemon's events in a background thread, for assertions.
"""

import threading
import time

import grpc

from containerd_tx.api import containerd_pb2 as pb


class EventCollector:
    """
    Reads an Events stream in a thread; L{wait} finds events as they arrive.

    Start it before the actions whose events you expect. A request without a timestamp is sent with the time
    the collector was made: on a busy machine the daemon may take the subscription only after the test's first
    actions, and the daemon's replay of the events since then fills that gap (a stream without a timestamp
    would only see what comes after the daemon took it).
    """

    def __init__(self, stub, request=None):
        self.events = []
        self.error = None
        self._cond = threading.Condition()
        request = pb.EventsRequest() if request is None else request
        if not request.HasField("timestamp"):
            since = pb.EventsRequest()
            since.CopyFrom(request)
            since.timestamp.FromNanoseconds(time.time_ns())
            request = since
        self._call = stub.Events(request)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for event in self._call:
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            self.error = e
        with self._cond:
            self._cond.notify_all()

    def wait(self, type, id=None, pid=None, timeout=20.0):
        """Return the first event matching (type, id, pid) or fail after C{timeout} seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.type == type and (id is None or event.id == id) and (pid is None or event.pid == pid):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {type} event for {id}/{pid} within {timeout}s; got "
                        f"{[(e.type, e.id, e.pid, e.status) for e in self.events]}"
                    )
                self._cond.wait(min(left, 0.5))

    def matching(self, type=None, id=None):
        """The events seen so far matching C{type} and C{id}."""
        with self._cond:
            return [e for e in self.events if (type is None or e.type == type) and (id is None or e.id == id)]

    def close(self):
        """Cancel the stream."""
        self._call.cancel()
        self._thread.join(5)
