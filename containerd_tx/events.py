# -*- test-case-name: tests.unit.test_events -*-
"""
The event log: every event timestamped, the last C{retain} kept in order (in memory and on disk), and fanned
out to subscribers.

Timestamps are unique and strictly increasing, also across daemon restarts (the log on disk remembers the
last one), so a subscriber that resumes from the timestamp of the last event it saw misses nothing and sees
nothing twice.
"""

import collections
import json
import os
import time
from dataclasses import dataclass

from twisted.logger import Logger

from containerd_tx.layout import write_atomically

log = Logger()

START_CONTAINER = "start-container"
START_PROCESS = "start-process"
EXIT = "exit"
OOM = "oom"
PAUSE = "pause"
RESUME = "resume"


@dataclass(frozen=True)
class Event:
    """
    One event as the wire contract carries it, plus the host pid (kept on disk to recognise an exit that
    was already reported).
    """

    type: str
    id: str
    pid: str = ""
    status: int = 0
    timestamp_ns: int = 0
    system_pid: int = 0


class EventLog:
    """
    Keeps the newest events and hands them to subscribers.

    Subscribers are objects with C{push(event) -> bool} (False once they want no more), C{finish()} and a
    C{closed} attribute, such as L{containerd_tx.bridge.StreamFeed}.

    @param path: the log file (JSON lines); C{None} keeps events in memory only.
    @param retain: how many events to keep.
    @param clock: returns the time in nanoseconds.
    @param counter: a metrics counter incremented per event (the original's C{events}), or None.
    """

    def __init__(self, path, retain, clock=time.time_ns, counter=None):
        self._path = path
        self._counter = counter
        self.retain = retain
        self._retain = retain
        self._clock = clock
        self._events = collections.deque(maxlen=retain)
        #: (type, id, pid, system_pid) -> how many retained events have it, so that L{has} is one lookup.
        self._keys = collections.Counter()
        self._subscribers = set()
        self._last_ns = 0
        self._lines_on_disk = 0
        self._fd = None
        if path is not None:
            damaged = self._load()
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if damaged:
                # Rewrite the good events, or the next append would be glued to a torn last line and lost.
                self._compact()

    @property
    def subscriber_count(self):
        """How many subscribers are listening now."""
        return len(self._subscribers)

    def stored(self):
        """The retained events, oldest first."""
        return list(self._events)

    def emit(self, type, container_id, pid="", status=0, system_pid=0):
        """
        Record an event and deliver it to every live subscriber interested in it.

        @return: the L{Event}.
        """
        now = max(self._clock(), self._last_ns + 1)
        self._last_ns = now
        event = Event(type, container_id, pid, status, now, system_pid)
        self._retain_event(event)
        if self._counter is not None:
            self._counter.inc()
        if self._fd is not None:
            self._append(event)
        for subscriber in list(self._subscribers):
            container_filter = subscriber.container_filter
            if container_filter and container_filter != container_id:
                continue
            if not subscriber.feed.push(event):
                self._subscribers.discard(subscriber)
        return event

    def subscribe(self, feed, since_ns=None, container_id="", stored_only=False):
        """
        Start delivering events to C{feed}.

        With C{since_ns}, the retained events newer than it are pushed first, then live ones follow, all in one
        reactor turn so that nothing falls between replay and live delivery.

        @return: an object with C{cancel()} to stop delivery.
        """
        subscription = _Subscription(self, feed, container_id)
        if since_ns is not None:
            for event in self._events:
                if event.timestamp_ns > since_ns and (not container_id or event.id == container_id):
                    if not feed.push(event):
                        return subscription
        if stored_only:
            feed.finish()
            return subscription
        self._subscribers.add(subscription)
        return subscription

    def has(self, type, container_id, process_id, system_pid):
        """
        Whether an event of this type for this exact process (host pid included) is already in the log.
        """
        return (type, container_id, process_id, system_pid) in self._keys

    def _retain_event(self, event):
        if len(self._events) == self._events.maxlen:
            oldest = _key(self._events[0])
            self._keys[oldest] -= 1
            if not self._keys[oldest]:
                del self._keys[oldest]
        self._events.append(event)
        self._keys[_key(event)] += 1

    def has_exit(self, container_id, process_id, system_pid):
        """Whether the exit of this exact process is already in the log."""
        return self.has(EXIT, container_id, process_id, system_pid)

    def close(self, error=None):
        """
        End every subscriber's stream and close the file.

        @param error: when given, each stream ends with it (passed to the feed's C{finish}) instead of
            normally.
        """
        for subscription in list(self._subscribers):
            if error is None:
                subscription.feed.finish()
            else:
                subscription.feed.finish(error)
        self._subscribers.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _append(self, event):
        line = _line(event)
        try:
            os.write(self._fd, line)
        except OSError as e:
            log.error("cannot append to the event log {path}: {e}", path=self._path, e=e)
            return
        self._lines_on_disk += 1
        if self._lines_on_disk > 2 * self._retain:
            self._compact()

    def _compact(self):
        data = b"".join(_line(e) for e in self._events)
        write_atomically(self._path, data)
        os.close(self._fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._lines_on_disk = len(self._events)

    def _load(self):
        """
        Read the events on disk; return whether the file has unreadable lines or lacks its last newline.
        """
        try:
            with open(self._path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return False
        lines = data.splitlines()
        damaged = not data.endswith(b"\n") and bool(data)
        for line in lines:
            try:
                event = Event(**json.loads(line))
                if not isinstance(event.timestamp_ns, int) or not isinstance(event.status, int):
                    raise TypeError("event fields of the wrong type")
            except (ValueError, TypeError):
                # A torn last line after a crash, or garbage: skip it, the rest is good.
                damaged = True
                continue
            self._retain_event(event)
            self._last_ns = max(self._last_ns, event.timestamp_ns)
        self._lines_on_disk = len(lines)
        return damaged


class _Subscription:
    def __init__(self, log, feed, container_filter):
        self._log = log
        self.feed = feed
        self.container_filter = container_filter

    def cancel(self):
        """Stop delivering events to this subscriber."""
        self._log._subscribers.discard(self)


def _key(event):
    """What L{EventLog.has} matches an event by."""
    return (event.type, event.id, event.pid, event.system_pid)


def _line(event):
    """One event as a line of the event log file."""
    record = {"type": event.type, "id": event.id, "pid": event.pid, "status": event.status,
              "timestamp_ns": event.timestamp_ns, "system_pid": event.system_pid}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"
