"""
A slow Events subscriber cannot hold the daemon back: its queue is bounded (the retained events + 1024, see
C{APIService._open_feed} and L{containerd_tx.bridge.StreamFeed}); once it overflows, its stream ends with
RESOURCE_EXHAUSTED, while a subscriber that keeps up gets every event in order, and the slow client can
resume from the last timestamp it saw.

The slow client is a raw stream that is never iterated, on a channel with a small HTTP/2 window (no BDP
probing), so that grpc buffers only a few dozen events on its side: with grpc's defaults the client's
transport itself soaks up well over 1,500 events, and the daemon's bound would take a minute to reach.
Events are made cheaply: 60 short containers plus pause/resume cycles on 8 sleepers (2 events each).
"""

import threading
import time

import grpc

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from tests.support.net import free_port
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import create_request, metric_value, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id

RETAIN = 50
#: The daemon's bound on a subscriber's queue (api_service.APIService._open_feed).
QUEUE_LIMIT = RETAIN + 1024
SLEEPERS = 8
SHORT = 60
#: Pause/resume cycles after the overflow: more than RETAIN events, so the resumed replay is all retained.
AFTER_CYCLES = 40
#: Give up making events after this many seconds.
BUDGET = 90
SMALL_WINDOW = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]


def _key(event):
    return (event.type, event.id, event.pid, event.status, event.timestamp.seconds, event.timestamp.nanos)


def _stamp(event):
    return event.timestamp.seconds * 1_000_000_000 + event.timestamp.nanos


class SlowConsumerTests(LifecycleTestCase):

    def setUp(self):
        self.port = free_port()
        self.daemon_args = ("--retain-count", str(RETAIN), "--metrics-address",
                            f"tcp:{self.port}:interface=127.0.0.1")
        super().setUp()

    def subscribers(self):
        return metric_value(self.port, "containerd_tx_event_subscribers")

    def test_slow_subscriber_cut_off_fast_one_complete(self):
        stub = self.daemon.stub
        names = [unique_id(f"s{i}") for i in range(SLEEPERS)]
        s0, s1 = names[0], names[1]
        sleeper = self.bundle("sleep", "1000")
        for name in names:
            stub.CreateContainer(create_request(name, sleeper), timeout=60)
        first = self.events.wait("start-container", s0)
        self.events.wait("start-container", names[-1])

        # The slow client: everything after s0's start, never read until the end.
        channel = grpc.insecure_channel(self.daemon.address, options=SMALL_WINDOW)
        self.addCleanup(channel.close)
        slow = pb_grpc.APIStub(channel).Events(pb.EventsRequest(timestamp=first.timestamp))
        self.addCleanup(slow.cancel)
        wait_for(lambda: self.subscribers() == 2, message="the slow subscriber to be registered")

        started = time.monotonic()
        statuses = {unique_id(f"x{i}"): (i * 37) % 101 for i in range(SHORT)}
        short_bundles = {status: self.bundle("sh", "-c", f"exit {status}") for status in set(statuses.values())}
        errors = []
        cycles = {name: 0 for name in names}
        overflowed = threading.Event()
        stop = threading.Event()

        def guarded(fn, *args):
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - reported by the test thread
                errors.append(f"{fn.__name__}{args}: {e!r}")
                stop.set()

        def make_short(ids):
            for container_id in ids:
                stub.CreateContainer(create_request(container_id, short_bundles[statuses[container_id]]),
                                     timeout=60)

        def cycle(container_id, until):
            while not until():
                stub.UpdateContainer(pb.UpdateContainerRequest(id=container_id, status="paused"), timeout=30)
                stub.UpdateContainer(pb.UpdateContainerRequest(id=container_id, status="running"), timeout=30)
                cycles[container_id] += 1

        def watch_overflow():
            while not stop.is_set() and time.monotonic() - started < BUDGET:
                if self.subscribers() == 1:
                    overflowed.set()
                    return
                time.sleep(0.2)
            stop.set()  # out of time: the workers stop, the test fails below

        ids = sorted(statuses)  # x0, x1, x10, ...: creation order is mixed
        threads = [threading.Thread(target=guarded, args=(make_short, ids[k::6])) for k in range(6)]
        threads += [threading.Thread(target=guarded, args=(cycle, c, lambda: overflowed.is_set() or stop.is_set()))
                    for c in cycles]
        watcher = threading.Thread(target=guarded, args=(watch_overflow,))
        for t in threads + [watcher]:
            t.start()
        try:
            for t in threads + [watcher]:
                t.join(BUDGET + 60)
        finally:
            stop.set()
        self.assertEqual(errors, [])
        self.assertTrue(overflowed.is_set(),
                        f"the slow subscriber was never cut off after {sum(cycles.values()) * 2 + 2 * SHORT} events")
        overflow_at = sum(cycles.values())
        # The fast subscriber is still served after the cut-off.
        before_after = dict(cycles)
        for container_id in list(cycles)[:2]:
            target = cycles[container_id] + AFTER_CYCLES // 2
            cycle(container_id, lambda c=container_id, t=target: cycles[c] >= t)
        for container_id in statuses:
            self.events.wait("exit", container_id, "init", timeout=60)
        made = time.monotonic() - started

        # The fast subscriber: every event, once, in order.
        expected_count = (SLEEPERS - 1) + 2 * SHORT + 2 * sum(cycles.values())

        def after_first():
            return [e for e in list(self.events.events) if _stamp(e) > _stamp(first)]

        try:
            wait_for(lambda: len(after_first()) >= expected_count, timeout=20, message="every event")
        except AssertionError:
            pass  # reported precisely below
        # And nothing more than expected arrives: whatever would has come before the barrier's events.
        barrier = self.barrier()
        fast = [e for e in after_first() if e.id != barrier]
        stamps = [_stamp(e) for e in self.events.events]
        self.assertEqual(stamps, sorted(set(stamps)), "fast subscriber: timestamps not strictly increasing")
        self.assertEqual(len(fast), expected_count,
                         f"fast subscriber got {len(fast)} events after s0 started, expected {expected_count}")
        self.assertIsNone(self.events.error)
        for container_id, status in statuses.items():
            own = [(e.type, e.pid, e.status) for e in fast if e.id == container_id]
            self.assertEqual(own, [("start-container", "", 0), ("exit", "init", status)], container_id)
        for container_id, count in cycles.items():
            own = [e.type for e in fast if e.id == container_id]
            if container_id != s0:
                self.assertEqual(own[0], "start-container")
                own = own[1:]
            self.assertEqual(own, ["pause", "resume"] * count, container_id)

        # The slow subscriber: what it got is the same sequence, then RESOURCE_EXHAUSTED.
        got, ended = [], []

        def drain():
            try:
                for event in slow:
                    got.append(event)
            except grpc.RpcError as e:
                ended.append(e)
            else:
                ended.append(None)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        reader.join(30)
        if reader.is_alive():
            slow.cancel()
            reader.join(10)
            self.fail(f"the slow stream neither ended nor delivered more after {len(got)} events")
        self.assertIsNotNone(ended[0], f"the slow stream ended normally after {len(got)} events")
        self.assertEqual(ended[0].code(), grpc.StatusCode.RESOURCE_EXHAUSTED, ended[0].details())
        self.assertIn("resubscribe with the last timestamp", ended[0].details())
        self.assertGreaterEqual(len(got), QUEUE_LIMIT)
        self.assertLess(len(got), len(fast))
        self.assertEqual([_key(e) for e in got], [_key(e) for e in fast[:len(got)]],
                         "the slow subscriber's events differ from the fast one's")

        # It resumes from the last timestamp it saw: the retained events newer than it, then live ones.
        resumed = EventCollector(stub, pb.EventsRequest(timestamp=got[-1].timestamp))
        self.addCleanup(resumed.close)
        # (The log retains the barrier's events too.)
        retained = [e for e in after_first()[-RETAIN:] if _stamp(e) > _stamp(got[-1])]
        self.assertEqual(len(retained), RETAIN, "fewer events after the cut-off than the log retains")
        wait_for(lambda: len(resumed.events) >= len(retained), timeout=20, message="the retained replay")
        stub.UpdateContainer(pb.UpdateContainerRequest(id=s1, status="paused"), timeout=30)
        wait_for(lambda: len(resumed.events) > len(retained), timeout=20, message="a live event after the replay")
        self.assertEqual([_key(e) for e in resumed.events[:len(retained)]], [_key(e) for e in retained])
        live = resumed.events[len(retained)]
        self.assertEqual((live.type, live.id), ("pause", s1))
        self.assertGreater(_stamp(live), _stamp(fast[-1]))
        self.assertIsNone(resumed.error)
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=s1, status="running"), timeout=30)

        print(f"\nslow consumer: cut off after {len(got)} delivered events (queue limit {QUEUE_LIMIT}); "
              f"{overflow_at} pause/resume cycles + {SHORT} containers before the cut-off, "
              f"{sum(cycles.values()) - sum(before_after.values())} cycles after; "
              f"{len(fast)} events in {made:.1f}s to the fast subscriber")
