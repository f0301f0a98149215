"""
Tests for L{containerd_tx.events}: the event log, its file and its subscribers.
"""

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import events
from containerd_tx.events import Event, EventLog


class FakeClock:
    """
    A nanosecond clock that returns the given readings in turn (then repeats the last one).
    """

    def __init__(self, *readings):
        self.readings = list(readings) or [1000]

    def __call__(self):
        if len(self.readings) > 1:
            return self.readings.pop(0)
        return self.readings[0]


class FakeFeed:
    """
    A subscriber: records what it gets; refuses items once closed or after C{accept} items.
    """

    def __init__(self, accept=None):
        self.items = []
        self.finished = 0
        self.closed = False
        self.accept = accept

    def push(self, item):
        if self.closed:
            return False
        if self.accept is not None and len(self.items) >= self.accept:
            self.closed = True
            return False
        self.items.append(item)
        return True

    def finish(self):
        self.finished += 1
        self.closed = True


class TimestampTests(SynchronousTestCase):
    """
    Every event gets a unique, strictly increasing timestamp, whatever the clock does.
    """

    def test_from_clock(self):
        """
        When the clock moves forward, events carry its readings.
        """
        log = EventLog(None, 10, clock=FakeClock(100, 200, 300))
        stamps = [log.emit(events.START_CONTAINER, "c").timestamp_ns for _ in range(3)]
        self.assertEqual(stamps, [100, 200, 300])

    def test_clock_repeats_or_goes_backwards(self):
        """
        A clock that stands still or goes backwards still yields strictly increasing timestamps.
        """
        log = EventLog(None, 100, clock=FakeClock(1000, 1000, 999, 500, 1000, 2000, 2000, 1))
        stamps = [log.emit(events.EXIT, "c", "init").timestamp_ns for _ in range(8)]
        self.assertEqual(stamps, [1000, 1001, 1002, 1003, 1004, 2000, 2001, 2002])
        self.assertEqual([e.timestamp_ns for e in log.stored()], stamps)

    def test_event_fields(self):
        """
        emit() records the type, container id, process id, status and host pid it is given.
        """
        log = EventLog(None, 10, clock=FakeClock(42))
        event = log.emit(events.EXIT, "c1", pid="p1", status=137, system_pid=4242)
        self.assertEqual(event, Event(events.EXIT, "c1", "p1", 137, 42, 4242))
        self.assertEqual(log.stored(), [event])

    def test_event_types(self):
        """
        The event types are spelled as the wire contract spells them.
        """
        self.assertEqual(
            (events.START_CONTAINER, events.START_PROCESS, events.EXIT, events.OOM, events.PAUSE, events.RESUME),
            ("start-container", "start-process", "exit", "oom", "pause", "resume"),
        )


class RetainTests(SynchronousTestCase):
    """
    Only the newest C{retain} events are kept.
    """

    def test_retain_in_memory(self):
        """
        stored() holds the last C{retain} events, oldest first.
        """
        log = EventLog(None, 3, clock=FakeClock(*range(1, 11)))
        emitted = [log.emit(events.START_PROCESS, "c", str(i)) for i in range(10)]
        self.assertEqual(log.stored(), emitted[-3:])
        self.assertEqual(log.retain, 3)

    def test_stored_is_a_copy(self):
        """
        stored() returns a list the caller may change without changing the log.
        """
        log = EventLog(None, 3)
        log.emit(events.OOM, "c")
        log.stored().clear()
        self.assertEqual(len(log.stored()), 1)


def _lines(path):
    with open(path, "rb") as f:
        return f.read().splitlines()


class PersistenceTests(SynchronousTestCase):
    """
    With a path, the log survives a restart.
    """

    def setUp(self):
        self.path = os.path.abspath(self.mktemp())

    def test_file_is_json_lines(self):
        """
        Each event is one JSON object on its own line, with every field.
        """
        log = EventLog(self.path, 10, clock=FakeClock(5))
        self.addCleanup(log.close)
        log.emit(events.EXIT, "c", "init", 3, system_pid=99)
        self.assertEqual(
            [json.loads(line) for line in _lines(self.path)],
            [{"type": "exit", "id": "c", "pid": "init", "status": 3, "timestamp_ns": 5, "system_pid": 99}],
        )
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_reload(self):
        """
        A new log on the same path sees the stored events and continues with larger timestamps, even when the
        clock is behind the stored ones.
        """
        first = EventLog(self.path, 10, clock=FakeClock(1000, 2000, 3000))
        emitted = [first.emit(events.START_CONTAINER, f"c{i}") for i in range(3)]
        first.close()

        second = EventLog(self.path, 10, clock=FakeClock(10))
        self.addCleanup(second.close)
        self.assertEqual(second.stored(), emitted)
        later = second.emit(events.EXIT, "c0", "init", 0)
        self.assertEqual(later.timestamp_ns, 3001)
        self.assertEqual(second.stored(), emitted + [later])

    def test_reload_twice(self):
        """
        Events emitted after a reload are themselves found by the next reload.
        """
        first = EventLog(self.path, 10, clock=FakeClock(1, 2))
        a = first.emit(events.START_CONTAINER, "c")
        first.close()
        second = EventLog(self.path, 10, clock=FakeClock(5))
        b = second.emit(events.EXIT, "c", "init", 1)
        second.close()
        third = EventLog(self.path, 10, clock=FakeClock(1))
        self.addCleanup(third.close)
        self.assertEqual(third.stored(), [a, b])

    def test_reload_keeps_retain(self):
        """
        A reload keeps only the newest C{retain} events, but still continues after the newest timestamp.
        """
        first = EventLog(self.path, 100, clock=FakeClock(*range(1, 11)))
        emitted = [first.emit(events.OOM, "c") for _ in range(10)]
        first.close()
        second = EventLog(self.path, 4, clock=FakeClock(1))
        self.addCleanup(second.close)
        self.assertEqual(second.stored(), emitted[-4:])
        self.assertEqual(second.emit(events.OOM, "c").timestamp_ns, 11)

    def test_torn_last_line(self):
        """
        A torn last line (a crash mid-write) is skipped; the good events before it are kept.
        """
        first = EventLog(self.path, 10, clock=FakeClock(1, 2))
        emitted = [first.emit(events.START_CONTAINER, "c"), first.emit(events.EXIT, "c", "init", 2)]
        first.close()
        with open(self.path, "ab") as f:
            f.write(b'{"type":"exit","id":"c","pid":"init","status":0,"timest')
        second = EventLog(self.path, 10, clock=FakeClock(1))
        self.addCleanup(second.close)
        self.assertEqual(second.stored(), emitted)

    def test_event_after_torn_line_survives(self):
        """
        The first event written after a torn last line is not glued to it: the next reload finds it.
        """
        first = EventLog(self.path, 10, clock=FakeClock(1))
        a = first.emit(events.START_CONTAINER, "c")
        first.close()
        with open(self.path, "ab") as f:
            f.write(b'{"type":"exit","id":"c","pi')
        second = EventLog(self.path, 10, clock=FakeClock(1))
        b = second.emit(events.EXIT, "c", "init", 7)
        second.close()
        third = EventLog(self.path, 10, clock=FakeClock(1))
        self.addCleanup(third.close)
        self.assertEqual(third.stored(), [a, b])

    def test_event_after_missing_last_newline_survives(self):
        """
        A complete last event whose newline was never written is kept, and the next event is not glued to it.
        """
        first = EventLog(self.path, 10, clock=FakeClock(1))
        a = first.emit(events.START_CONTAINER, "c")
        first.close()
        with open(self.path, "rb+") as f:
            f.truncate(os.path.getsize(self.path) - 1)
        second = EventLog(self.path, 10, clock=FakeClock(1))
        self.assertEqual(second.stored(), [a])
        b = second.emit(events.EXIT, "c", "init", 7)
        second.close()
        third = EventLog(self.path, 10, clock=FakeClock(1))
        self.addCleanup(third.close)
        self.assertEqual(third.stored(), [a, b])

    def test_garbage_lines_skipped(self):
        """
        Lines that are not events (blank, other JSON, unknown fields) are skipped.
        """
        good = {"type": "oom", "id": "c", "pid": "", "status": 0, "timestamp_ns": 50, "system_pid": 0}
        with open(self.path, "wb") as f:
            f.write(b"\n[1,2]\n5\n" + json.dumps(good).encode() + b'\n{"type":"oom","bogus":1}\nnot json\n')
        log = EventLog(self.path, 10, clock=FakeClock(1))
        self.addCleanup(log.close)
        self.assertEqual(log.stored(), [Event(**good)])
        later = log.emit(events.OOM, "c")
        self.assertEqual(later.timestamp_ns, 51)
        self.assertEqual([Event(**json.loads(line)) for line in _lines(self.path)], [Event(**good), later])

    def test_compaction(self):
        """
        After more than 2*retain appends the file is rewritten with the last C{retain} events, and appends
        continue after them.
        """
        retain = 3
        log = EventLog(self.path, retain, clock=FakeClock(*range(1, 100)))
        self.addCleanup(log.close)
        emitted = [log.emit(events.START_PROCESS, "c", str(i)) for i in range(2 * retain)]
        self.assertEqual(len(_lines(self.path)), 2 * retain)
        emitted.append(log.emit(events.START_PROCESS, "c", "x"))
        lines = _lines(self.path)
        self.assertEqual(len(lines), retain)
        self.assertEqual([Event(**json.loads(line)) for line in lines], emitted[-retain:])
        self.assertEqual([n for n in os.listdir(os.path.dirname(self.path)) if n.startswith(".tmp-")], [])
        emitted.append(log.emit(events.START_PROCESS, "c", "y"))
        self.assertEqual([Event(**json.loads(line)) for line in _lines(self.path)], emitted[-retain - 1:])
        reloaded = EventLog(self.path, retain, clock=FakeClock(1))
        self.addCleanup(reloaded.close)
        self.assertEqual(reloaded.stored(), emitted[-retain:])

    def test_compaction_keeps_file_bounded(self):
        """
        However many events are appended, the file never holds more than 2*retain + 1 lines.
        """
        retain = 4
        log = EventLog(self.path, retain)
        self.addCleanup(log.close)
        for i in range(100):
            log.emit(events.OOM, "c")
            self.assertLessEqual(len(_lines(self.path)), 2 * retain)

    def test_close_stops_writing(self):
        """
        After close(), the file is not written any more (events stay in memory).
        """
        log = EventLog(self.path, 10)
        log.emit(events.OOM, "c")
        log.close()
        log.emit(events.OOM, "c")
        self.assertEqual(len(_lines(self.path)), 1)
        self.assertEqual(len(log.stored()), 2)
        log.close()  # twice is harmless

    def test_memory_only(self):
        """
        Without a path nothing is written.
        """
        cwd = os.path.abspath(self.mktemp())
        os.makedirs(cwd)
        self.patch(os, "getcwd", lambda: cwd)
        log = EventLog(None, 10)
        log.emit(events.OOM, "c")
        log.close()
        self.assertEqual(os.listdir(cwd), [])


class SubscribeTests(SynchronousTestCase):
    """
    Subscribers get the events they asked for, replayed then live, none twice and none missing.
    """

    def setUp(self):
        self.log = EventLog(None, 100, clock=FakeClock(*range(10, 1000, 10)))

    def test_live_only(self):
        """
        Without since_ns, only events emitted after subscribing are delivered.
        """
        self.log.emit(events.START_CONTAINER, "a")
        feed = FakeFeed()
        self.log.subscribe(feed)
        later = [self.log.emit(events.START_CONTAINER, "b"), self.log.emit(events.EXIT, "b", "init", 0)]
        self.assertEqual(feed.items, later)
        self.assertEqual(self.log.subscriber_count, 1)

    def test_since_replays_newer_then_live(self):
        """
        With since_ns, stored events strictly newer than it are replayed, then live ones follow: no gap and
        no duplicate.
        """
        stored = [self.log.emit(events.START_PROCESS, "a", str(i)) for i in range(5)]
        feed = FakeFeed()
        self.log.subscribe(feed, since_ns=stored[1].timestamp_ns)
        self.assertEqual(feed.items, stored[2:])
        live = [self.log.emit(events.EXIT, "a", str(i), i) for i in range(3)]
        self.assertEqual(feed.items, stored[2:] + live)
        stamps = [e.timestamp_ns for e in feed.items]
        self.assertEqual(stamps, sorted(set(stamps)))

    def test_since_zero_replays_everything(self):
        """
        since_ns=0 replays every stored event.
        """
        stored = [self.log.emit(events.OOM, "a") for _ in range(3)]
        feed = FakeFeed()
        self.log.subscribe(feed, since_ns=0)
        self.assertEqual(feed.items, stored)

    def test_since_newest_replays_nothing(self):
        """
        since_ns equal to the newest timestamp replays nothing.
        """
        stored = [self.log.emit(events.OOM, "a") for _ in range(3)]
        feed = FakeFeed()
        self.log.subscribe(feed, since_ns=stored[-1].timestamp_ns)
        self.assertEqual(feed.items, [])

    def test_resume_from_last_seen(self):
        """
        A subscriber that drops and resubscribes from the last timestamp it saw misses nothing and sees nothing
        twice.
        """
        first = FakeFeed(accept=2)
        subscription = self.log.subscribe(first, since_ns=0)
        emitted = [self.log.emit(events.START_PROCESS, "a", str(i)) for i in range(5)]
        subscription.cancel()
        second = FakeFeed()
        self.log.subscribe(second, since_ns=first.items[-1].timestamp_ns)
        emitted.append(self.log.emit(events.EXIT, "a", "init", 0))
        self.assertEqual(first.items + second.items, emitted)

    def test_container_filter_live(self):
        """
        A subscriber for one container gets only that container's live events.
        """
        feed = FakeFeed()
        self.log.subscribe(feed, container_id="a")
        a1 = self.log.emit(events.START_CONTAINER, "a")
        self.log.emit(events.START_CONTAINER, "b")
        a2 = self.log.emit(events.EXIT, "a", "init", 0)
        self.log.emit(events.EXIT, "ab", "init", 0)
        self.assertEqual(feed.items, [a1, a2])

    def test_container_filter_replay(self):
        """
        The container filter applies to the replay too.
        """
        a1 = self.log.emit(events.START_CONTAINER, "a")
        self.log.emit(events.START_CONTAINER, "b")
        a2 = self.log.emit(events.EXIT, "a", "init", 0)
        feed = FakeFeed()
        self.log.subscribe(feed, since_ns=0, container_id="a")
        self.assertEqual(feed.items, [a1, a2])

    def test_stored_only(self):
        """
        stored_only finishes the feed after the replay and delivers nothing live.
        """
        stored = [self.log.emit(events.OOM, "a") for _ in range(3)]
        feed = FakeFeed()
        self.log.subscribe(feed, since_ns=stored[0].timestamp_ns, stored_only=True)
        self.assertEqual(feed.items, stored[1:])
        self.assertEqual(feed.finished, 1)
        self.assertEqual(self.log.subscriber_count, 0)
        self.log.emit(events.OOM, "a")
        self.assertEqual(feed.items, stored[1:])

    def test_replay_refused(self):
        """
        A feed that refuses an item during the replay gets nothing more and is not subscribed.
        """
        stored = [self.log.emit(events.OOM, "a") for _ in range(5)]
        feed = FakeFeed(accept=2)
        self.log.subscribe(feed, since_ns=0)
        self.assertEqual(feed.items, stored[:2])
        self.assertEqual(self.log.subscriber_count, 0)
        self.log.emit(events.OOM, "a")
        self.assertEqual(feed.items, stored[:2])

    def test_refusing_subscriber_dropped(self):
        """
        A subscriber whose push returns False is dropped; the others keep getting events.
        """
        slow, good = FakeFeed(accept=1), FakeFeed()
        self.log.subscribe(slow)
        self.log.subscribe(good)
        emitted = [self.log.emit(events.OOM, "a") for _ in range(3)]
        self.assertEqual(slow.items, emitted[:1])
        self.assertEqual(good.items, emitted)
        self.assertEqual(self.log.subscriber_count, 1)

    def test_cancel(self):
        """
        A cancelled subscription gets nothing more.
        """
        feed = FakeFeed()
        subscription = self.log.subscribe(feed)
        first = self.log.emit(events.OOM, "a")
        subscription.cancel()
        self.log.emit(events.OOM, "a")
        self.assertEqual(feed.items, [first])
        self.assertEqual(self.log.subscriber_count, 0)
        subscription.cancel()  # twice is harmless

    def test_cancel_during_push(self):
        """
        A subscriber may cancel itself (or another) while an event is being delivered.
        """
        feeds = [FakeFeed(), FakeFeed()]
        subscriptions = []

        class Cancelling(FakeFeed):
            def push(self, item):
                for s in subscriptions:
                    s.cancel()
                return super().push(item)

        canceller = Cancelling()
        subscriptions.append(self.log.subscribe(canceller))
        subscriptions.extend(self.log.subscribe(f) for f in feeds)
        self.log.emit(events.OOM, "a")
        self.assertEqual(len(canceller.items), 1)
        self.assertEqual(self.log.subscriber_count, 0)

    def test_close_finishes_feeds(self):
        """
        close() finishes every live feed once and forgets it.
        """
        feeds = [FakeFeed(), FakeFeed(), FakeFeed()]
        for feed in feeds:
            self.log.subscribe(feed)
        self.log.close()
        self.assertEqual([f.finished for f in feeds], [1, 1, 1])
        self.assertEqual(self.log.subscriber_count, 0)
        self.log.emit(events.OOM, "a")
        self.assertEqual([f.items for f in feeds], [[], [], []])


class HasExitTests(SynchronousTestCase):
    """
    L{EventLog.has_exit} recognises an exit that was already reported.
    """

    def test_has_exit(self):
        """
        Only an exit event of that container, process and host pid counts.
        """
        log = EventLog(None, 10)
        log.emit(events.START_PROCESS, "c", "p", system_pid=10)
        log.emit(events.EXIT, "c", "init", 0, system_pid=20)
        self.assertTrue(log.has_exit("c", "init", 20))
        self.assertFalse(log.has_exit("c", "init", 21))
        self.assertFalse(log.has_exit("c", "p", 10))
        self.assertFalse(log.has_exit("d", "init", 20))
        log.emit(events.EXIT, "c", "p", 1, system_pid=10)
        self.assertTrue(log.has_exit("c", "p", 10))

    def test_has_exit_after_reload(self):
        """
        Exits stored on disk are recognised by a restarted daemon.
        """
        path = os.path.abspath(self.mktemp())
        first = EventLog(path, 10)
        first.emit(events.EXIT, "c", "init", 137, system_pid=4321)
        first.close()
        second = EventLog(path, 10)
        self.addCleanup(second.close)
        self.assertTrue(second.has_exit("c", "init", 4321))

    def test_same_exit_twice_then_one_forgotten(self):
        """
        Two retained copies of the same event: it is still found after the older falls out, not after both.
        """
        log = EventLog(None, 2)
        log.emit(events.EXIT, "c", "init", 0, system_pid=5)
        log.emit(events.EXIT, "c", "init", 0, system_pid=5)
        log.emit(events.OOM, "d")
        self.assertTrue(log.has_exit("c", "init", 5))
        log.emit(events.OOM, "d")
        self.assertFalse(log.has_exit("c", "init", 5))
        self.assertTrue(log.has(events.OOM, "d", "", 0))

    def test_forgotten_exit(self):
        """
        An exit that fell out of the retained events is not found.
        """
        log = EventLog(None, 2)
        log.emit(events.EXIT, "c", "init", 0, system_pid=5)
        log.emit(events.OOM, "d")
        log.emit(events.OOM, "d")
        self.assertFalse(log.has_exit("c", "init", 5))


class WrongTypesOnDiskTests(SynchronousTestCase):
    """A line that is JSON but carries fields of the wrong type is skipped like a torn one."""

    def test_non_integer_timestamp_skipped(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('{"type": "exit", "id": "a", "pid": "init", "status": 1, "timestamp_ns": "soon", "system_pid": 5}\n')
            f.write('{"type": "exit", "id": "b", "pid": "init", "status": 2, "timestamp_ns": 10, "system_pid": 6}\n')
        log = EventLog(path, 10)
        self.addCleanup(log.close)
        self.assertEqual([e.id for e in log.stored()], ["b"])
        self.assertGreater(log.emit("exit", "c").timestamp_ns, 10)
