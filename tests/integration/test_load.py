"""
Sustained load: N running containers, S event subscribers, Stats on random containers from 8 client threads
and an exec every 100 ms, for a fixed time. No call fails, the daemon's memory and file descriptors stay flat
over the second half, and every subscriber gets every event since the test began (replayed and then live), in
the same order as a reference subscriber.

Reduced by default (30 containers, 10 subscribers, 15 s); CTX_LOAD_FULL=1 runs the full size (300
containers, 50 subscribers, 60 s). The figures are printed in one summary line.
"""

import os
import random
import statistics
import threading
import time
from concurrent import futures

import grpc

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import create_request, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id

FULL = os.environ.get("CTX_LOAD_FULL") == "1"
CONTAINERS = 300 if FULL else 30
SUBSCRIBERS = 50 if FULL else 10
DURATION = 60.0 if FULL else 15.0
STATS_THREADS = 8
EXEC_INTERVAL = 0.1
SAMPLE_INTERVAL = 0.25
#: Allowed growth over the second half: RSS (fraction) and file descriptors.
RSS_GROWTH = 0.05
FD_GROWTH = 5


def _key(event):
    return (event.type, event.id, event.pid, event.status, event.timestamp.seconds, event.timestamp.nanos)


def _proc_sample(pid):
    """(RSS in kB, open fds) of a process."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LoadTests(LifecycleTestCase):

    daemon_args = ("--max-subscribers", str(SUBSCRIBERS + 16))

    def test_sustained_load(self):
        names = [unique_id(f"load{i}") for i in range(CONTAINERS)]
        # Every event since now, replayed if the daemon takes a subscription late (see EventCollector).
        since = time.time_ns()
        request = pb.EventsRequest()
        request.timestamp.FromNanoseconds(since)
        subscribers = [EventCollector(self.daemon.stub, request) for _ in range(SUBSCRIBERS)]
        for subscriber in subscribers:
            self.addCleanup(subscriber.close)
        reference = self.events

        # The containers, 10 creates at a time.
        bundle = self.bundle("sleep", "100000")
        with futures.ThreadPoolExecutor(10) as pool:
            created = list(pool.map(
                lambda name: self.daemon.stub.CreateContainer(create_request(name, bundle), timeout=120), names))
        self.assertEqual(len(created), CONTAINERS)
        wait_for(lambda: len(reference.matching("start-container")) == CONTAINERS, timeout=30,
                 message="every start event")

        channel = grpc.insecure_channel(self.daemon.address)
        self.addCleanup(channel.close)
        stub = pb_grpc.APIStub(channel)
        pid = self.daemon.process.pid
        lock = threading.Lock()
        failures = []
        latencies = {"stats": [], "exec": []}
        samples = []
        execs = []
        rng = random.Random(1)
        started = time.monotonic()
        deadline = started + DURATION

        def timed(kind, call, request, timeout):
            t0 = time.monotonic()
            try:
                call(request, timeout=timeout)
            except grpc.RpcError as e:
                with lock:
                    failures.append(f"{kind}: {e.code().name} {e.details()}")
                return
            except Exception as e:  # noqa: BLE001 - a failure like any other
                with lock:
                    failures.append(f"{kind}: {e!r}")
                return
            with lock:
                latencies[kind].append(time.monotonic() - t0)

        def stats_loop(seed):
            choose = random.Random(seed).choice
            while time.monotonic() < deadline:
                timed("stats", stub.Stats, pb.StatsRequest(id=choose(names)), 20)

        def exec_one(number, container_id):
            timed("exec", stub.AddProcess,
                  pb.AddProcessRequest(id=container_id, pid=f"e{number}", args=["true"]), 30)

        def sampler():
            while time.monotonic() < deadline:
                samples.append((time.monotonic() - started, *_proc_sample(pid)))
                time.sleep(SAMPLE_INTERVAL)

        threads = [threading.Thread(target=stats_loop, args=(i,)) for i in range(STATS_THREADS)]
        threads.append(threading.Thread(target=sampler))
        for t in threads:
            t.start()
        with futures.ThreadPoolExecutor(8) as exec_pool:
            tick = started
            while tick < deadline:
                container_id = rng.choice(names)
                execs.append((len(execs), container_id))
                exec_pool.submit(exec_one, len(execs) - 1, container_id)
                tick += EXEC_INTERVAL
                time.sleep(max(0.0, tick - time.monotonic()))
        for t in threads:
            t.join(DURATION + 60)
            self.assertFalse(t.is_alive(), "a load thread did not stop")
        elapsed = time.monotonic() - started

        self.assertEqual(failures[:20], [], f"{len(failures)} calls failed")

        # Every exec started and exited, and the reference subscriber saw all of it.
        expected = CONTAINERS + 2 * len(execs)
        wait_for(lambda: len(reference.events) >= expected, timeout=30,
                 message=f"{expected} events at the reference subscriber")
        # Anything more than expected would arrive before the events of a barrier container.
        barrier = self.barrier()
        seen = [e for e in reference.events if e.id != barrier]
        kinds = {}
        for event in seen:
            kinds.setdefault(event.type, []).append(event)
        self.assertEqual(len(kinds.get("start-process", [])), len(execs))
        self.assertEqual(sorted((e.id, e.pid) for e in kinds["start-process"]),
                         sorted((c, f"e{n}") for n, c in execs))
        self.assertEqual(sorted((e.id, e.pid, e.status) for e in kinds["exit"]),
                         sorted((c, f"e{n}", 0) for n, c in execs))
        self.assertEqual(len(seen), expected)
        stamps = [(e.timestamp.seconds, e.timestamp.nanos) for e in reference.events]
        self.assertEqual(stamps, sorted(set(stamps)))
        # Exited execs leave no records behind.
        records = os.path.join(self.daemon.state_dir, "containers")

        def stale():
            return [f"{c}/{n}" for c in names for n in os.listdir(os.path.join(records, c))
                    if n.startswith(("process-e", "exit-e", "pid-e", "exec-e"))]

        try:
            wait_for(lambda: not stale(), timeout=10, message="no records of exited execs")
        except AssertionError:
            self.fail(f"records of exited execs left behind: {stale()[:10]}")
        # Every subscriber: the same events in the same order.
        want = [_key(e) for e in reference.events if e.timestamp.ToNanoseconds() > since]
        for index, subscriber in enumerate(subscribers):
            try:
                wait_for(lambda s=subscriber: len(s.events) >= len(want) or s.error is not None, timeout=60,
                         message=f"subscriber {index} to catch up")
            except AssertionError:
                got = [_key(e) for e in subscriber.events]
                missing = [key for key in want if key not in set(got)]
                self.fail(f"subscriber {index} has {len(got)} of {len(want)} events after 60s; missing "
                          f"{missing[:5]}; stream error {subscriber.error!r}")
            self.assertIsNone(subscriber.error, f"subscriber {index}'s stream ended")
            self.assertEqual([_key(e) for e in subscriber.events], want, f"subscriber {index} differs")

        # Flat over the second half: the end of the run against its middle (medians, against noise).
        window = max(2, int(DURATION / 8 / SAMPLE_INTERVAL))
        second_half = [s for s in samples if s[0] >= DURATION / 2]
        self.assertGreaterEqual(len(second_half), 2 * window, "too few samples")
        middle, end = second_half[:window], second_half[-window:]
        rss_mid, rss_end = (statistics.median(s[1] for s in part) for part in (middle, end))
        fds_mid, fds_end = (statistics.median(s[2] for s in part) for part in (middle, end))
        calls = len(latencies["stats"]) + len(latencies["exec"])
        all_latencies = latencies["stats"] + latencies["exec"]
        print(f"\nload: {CONTAINERS} containers, {SUBSCRIBERS + 1} subscribers, {elapsed:.1f}s: "
              f"calls/sec {calls / elapsed:.1f} (stats {len(latencies['stats'])}, exec {len(latencies['exec'])}), "
              f"p99 {_percentile(all_latencies, 0.99) * 1000:.1f}ms "
              f"(stats p99 {_percentile(latencies['stats'], 0.99) * 1000:.1f}ms, exec p99 "
              f"{_percentile(latencies['exec'], 0.99) * 1000:.1f}ms), events {len(want)} x {SUBSCRIBERS + 1}, "
              f"RSS {rss_mid / 1024:.1f}->{rss_end / 1024:.1f} MB (max {max(s[1] for s in samples) / 1024:.1f}), "
              f"fds {fds_mid:.0f}->{fds_end:.0f}")
        self.assertLess(rss_end - rss_mid, RSS_GROWTH * rss_mid,
                        f"daemon RSS grew from {rss_mid} kB to {rss_end} kB over the second half")
        self.assertLess(fds_end - fds_mid, FD_GROWTH, f"daemon fds grew from {fds_mid} to {fds_end}")
        self.assertEqual(len(latencies["exec"]), len(execs))
