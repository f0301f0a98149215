"""
Tests for L{containerd_tx.metrics.registry}: timer statistics, the decaying reservoir, meter rates driven
by a L{Clock}, counters, gauges and the registry's snapshot.
"""

import math
import os
import random
import threading

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.metrics import registry
from containerd_tx.metrics.registry import (
    EWMA,
    ExpDecayReservoir,
    Metrics,
    percentiles,
    process_gauges,
)


def metrics_with_clock(seed=1):
    clock = Clock()
    return Metrics(clock, rng=random.Random(seed)), clock


class PercentileTests(SynchronousTestCase):

    def test_known_data(self):
        """
        Quantiles use go-metrics' / Dropwizard's position q*(n+1) with linear interpolation, clamped at
        both ends.
        """
        values = list(range(100, 0, -1))
        scores = percentiles(values, [0.5, 0.75, 0.95, 0.99, 0.999])
        for score, expected in zip(scores, [50.5, 75.75, 95.95, 99.99, 100.0]):
            self.assertAlmostEqual(score, expected)
        self.assertEqual(percentiles(values, [0.001]), [1.0])

    def test_small_and_empty(self):
        self.assertEqual(percentiles([], [0.5, 0.99]), [0.0, 0.0])
        self.assertEqual(percentiles([7], [0.5, 0.99]), [7.0, 7.0])
        self.assertEqual(percentiles([1, 3], [0.5]), [2.0])


class TimerTests(SynchronousTestCase):

    def test_snapshot_of_known_data(self):
        """
        A timer fed 1..100 ms reports count, sum, min, max, mean, population stddev and the quantiles.
        """
        metrics, _ = metrics_with_clock()
        timer = metrics.timer("container-start-time")
        for i in range(1, 101):
            timer.update(i / 1000.0)
        snap = timer.snapshot()
        self.assertEqual(snap["count"], 100)
        self.assertAlmostEqual(snap["sum"], 5.050)
        self.assertAlmostEqual(snap["min"], 0.001)
        self.assertAlmostEqual(snap["max"], 0.100)
        self.assertAlmostEqual(snap["mean"], 0.0505)
        self.assertAlmostEqual(snap["stddev"], math.sqrt((100 ** 2 - 1) / 12.0) / 1000.0)
        self.assertAlmostEqual(snap["median"], 0.0505)
        self.assertAlmostEqual(snap["p75"], 0.07575)
        self.assertAlmostEqual(snap["p95"], 0.09595)
        self.assertAlmostEqual(snap["p99"], 0.09999)
        self.assertAlmostEqual(snap["p999"], 0.100)
        self.assertEqual(sorted(snap), sorted([
            "count", "sum", "min", "max", "mean", "stddev", "median", "p75", "p95", "p99", "p999",
            "m1_rate", "m5_rate", "m15_rate", "mean_rate", "buckets"]))

    def test_empty_timer(self):
        metrics, _ = metrics_with_clock()
        snap = metrics.timer("t").snapshot()
        buckets = snap.pop("buckets")
        for key, value in snap.items():
            self.assertEqual(value, 0, key)
        self.assertEqual(buckets, tuple((bound, 0) for bound in registry.BUCKETS))

    def test_buckets_are_cumulative_over_every_update(self):
        """
        Each bucket counts the durations at most its bound, over every update (not the decaying sample):
        a duration equal to a bound is in that bucket, one above the last bound only in the count.
        """
        metrics, clock = metrics_with_clock()
        timer = metrics.timer("t")
        for seconds in (0.0005, 0.001, 0.003, 0.2, 0.2, 7.0, 120.0):
            timer.update(seconds)
            clock.advance(3600)  # the reservoir rescales; the buckets keep everything
        buckets = dict(timer.snapshot()["buckets"])
        self.assertEqual(buckets[0.001], 2)
        self.assertEqual(buckets[0.0025], 2)
        self.assertEqual(buckets[0.005], 3)
        self.assertEqual(buckets[0.25], 5)
        self.assertEqual(buckets[10.0], 6)
        self.assertEqual(buckets[60.0], 6)
        self.assertEqual(timer.snapshot()["count"], 7)
        self.assertEqual(list(buckets), sorted(buckets))

    def test_time_context_manager(self):
        """C{time()} records the block's duration on the reactor's clock, also when the block raises."""
        metrics, clock = metrics_with_clock()
        timer = metrics.timer("container-stats-time")
        with timer.time():
            clock.advance(0.25)
        with self.assertRaises(ZeroDivisionError):
            with timer.time():
                clock.advance(0.75)
                1 / 0
        snap = timer.snapshot()
        self.assertEqual(snap["count"], 2)
        self.assertEqual((snap["min"], snap["max"]), (0.25, 0.75))

    def test_registry_time(self):
        """
        C{Metrics.time(name)} records the block's duration in the timer of that name, also when the block
        raises; with C{failures=False} only blocks that complete are recorded.
        """
        metrics, clock = metrics_with_clock()
        with metrics.time(registry.CONTAINER_START_TIME) as timer:
            clock.advance(0.5)
        self.assertIs(timer, metrics.timer(registry.CONTAINER_START_TIME))
        with self.assertRaises(ZeroDivisionError):
            with metrics.time(registry.CONTAINER_START_TIME):
                clock.advance(1.5)
                1 / 0
        with self.assertRaises(ZeroDivisionError):
            with metrics.time(registry.EXEC_PROCESS_TIME, failures=False):
                clock.advance(2)
                1 / 0
        with metrics.time(registry.EXEC_PROCESS_TIME, failures=False):
            clock.advance(0.25)
        start = metrics.timer(registry.CONTAINER_START_TIME).snapshot()
        self.assertEqual((start["count"], start["min"], start["max"]), (2, 0.5, 1.5))
        execs = metrics.timer(registry.EXEC_PROCESS_TIME).snapshot()
        self.assertEqual((execs["count"], execs["max"]), (1, 0.25))

    def test_time_deferred(self):
        metrics, clock = metrics_with_clock()
        timer = metrics.timer("exec-process-time")
        d = defer.Deferred()
        self.assertIs(timer.time_deferred(d), d)
        clock.advance(2)
        d.callback("result")
        self.assertEqual(self.successResultOf(d), "result")
        self.assertEqual(timer.snapshot()["max"], 2)

    def test_negative_duration_is_zero(self):
        metrics, _ = metrics_with_clock()
        timer = metrics.timer("t")
        timer.update(-1)
        self.assertEqual(timer.snapshot()["min"], 0.0)


class ReservoirTests(SynchronousTestCase):

    def test_bounded(self):
        """The reservoir never holds more than its size, however many updates."""
        clock = Clock()
        reservoir = ExpDecayReservoir(clock.seconds, size=1028, rng=random.Random(3))
        for i in range(10000):
            reservoir.update(i)
            if i % 100 == 0:
                clock.advance(0.1)
        self.assertEqual(len(reservoir), 1028)
        self.assertEqual(len(reservoir.values()), 1028)

    def test_timer_memory_bounded(self):
        metrics, _ = metrics_with_clock()
        timer = metrics.timer("t")
        for i in range(5000):
            timer.update(i)
        self.assertEqual(len(timer._reservoir), registry.RESERVOIR_SIZE)
        self.assertEqual(timer.snapshot()["count"], 5000)

    def test_recent_values_dominate(self):
        """Ten minutes later, new values push the old ones out (alpha 0.015: weight ratio e^9)."""
        clock = Clock()
        reservoir = ExpDecayReservoir(clock.seconds, size=100, rng=random.Random(5))
        for _ in range(1000):
            reservoir.update(1.0)
        clock.advance(600)
        for _ in range(1000):
            reservoir.update(2.0)
        recent = reservoir.values().count(2.0)
        self.assertGreaterEqual(recent, 95)

    def test_rescale_after_long_idle(self):
        """A day without updates (e^(0.015*86400) overflows a float) is handled by rescaling first."""
        clock = Clock()
        reservoir = ExpDecayReservoir(clock.seconds, size=10, rng=random.Random(7))
        for i in range(10):
            reservoir.update(1.0)
        clock.advance(86400)
        for i in range(10):
            reservoir.update(3.0)
        self.assertEqual(sorted(reservoir.values()), [3.0] * 10)
        clock.advance(3601)
        reservoir.update(4.0)
        self.assertIn(4.0, reservoir.values())

    def test_clear(self):
        clock = Clock()
        reservoir = ExpDecayReservoir(clock.seconds, rng=random.Random(7))
        reservoir.update(1)
        reservoir.clear()
        self.assertEqual(reservoir.values(), [])


class RateTests(SynchronousTestCase):
    """
    The meter's EWMAs against the Dropwizard formula: after a tick with 3 events in 5 s every rate is
    0.6/s; each further 5 s tick without events multiplies it by exp(-5/60/minutes), so one minute later
    it is 0.6 * exp(-1/minutes) (Dropwizard's EWMATest: 0.22072766, 0.49123845, 0.56130419).
    """

    def test_ewma_formula(self):
        for minutes, expected in ((1, 0.22072766), (5, 0.49123845), (15, 0.56130419)):
            ewma = EWMA(minutes)
            ewma.update(3)
            ewma.tick()
            self.assertAlmostEqual(ewma.rate(), 0.6)
            for _ in range(12):
                ewma.tick()
            self.assertAlmostEqual(ewma.rate(), expected, places=8)
            self.assertAlmostEqual(ewma.rate(), 0.6 * math.exp(-1.0 / minutes))

    def test_ewma_closed_form_matches_single_ticks(self):
        one, many = EWMA(5), EWMA(5)
        for ewma in (one, many):
            ewma.update(10)
        for _ in range(40):
            one.tick()
        many.tick(40)
        self.assertAlmostEqual(one.rate(), many.rate())

    def test_timer_rates_follow_the_clock(self):
        """Rates tick lazily from the reactor's clock: no LoopingCall, no delayed call."""
        metrics, clock = metrics_with_clock()
        timer = metrics.timer("container-start-time")
        for _ in range(3):
            timer.update(0.1)
        self.assertEqual(clock.getDelayedCalls(), [])
        snap = timer.snapshot()
        self.assertEqual((snap["m1_rate"], snap["m5_rate"], snap["m15_rate"]), (0.0, 0.0, 0.0))
        clock.advance(5)
        snap = timer.snapshot()
        for key in ("m1_rate", "m5_rate", "m15_rate"):
            self.assertAlmostEqual(snap[key], 0.6)
        self.assertAlmostEqual(snap["mean_rate"], 3 / 5.0)
        clock.advance(60)
        snap = timer.snapshot()
        self.assertAlmostEqual(snap["m1_rate"], 0.6 * math.exp(-1))
        self.assertAlmostEqual(snap["m5_rate"], 0.6 * math.exp(-1 / 5.0))
        self.assertAlmostEqual(snap["m15_rate"], 0.6 * math.exp(-1 / 15.0))
        self.assertAlmostEqual(snap["mean_rate"], 3 / 65.0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_steady_rate(self):
        """Two events a second for 15 minutes: every average converges to 2/s."""
        metrics, clock = metrics_with_clock()
        timer = metrics.timer("t")
        for _ in range(900 * 2):
            timer.update(0.01)
            clock.advance(0.5)
        snap = timer.snapshot()
        self.assertAlmostEqual(snap["m1_rate"], 2.0, places=3)
        self.assertAlmostEqual(snap["m5_rate"], 2.0, places=3)
        self.assertAlmostEqual(snap["m15_rate"], 2.0, places=3)
        self.assertAlmostEqual(snap["mean_rate"], 2.0, places=3)

    def test_partial_interval_not_ticked(self):
        """Events in an unfinished 5 s interval do not count yet (they will at the next tick)."""
        metrics, clock = metrics_with_clock()
        timer = metrics.timer("t")
        clock.advance(4.9)
        timer.update(1)
        self.assertEqual(timer.snapshot()["m1_rate"], 0.0)
        clock.advance(0.1)
        self.assertAlmostEqual(timer.snapshot()["m1_rate"], 0.2)


class CounterGaugeTests(SynchronousTestCase):

    def test_counter(self):
        metrics, _ = metrics_with_clock()
        counter = metrics.counter("containers")
        counter.inc()
        counter.inc(4)
        counter.dec(2)
        self.assertEqual(counter.count(), 3)
        self.assertIs(metrics.counter("containers"), counter)
        counter.clear()
        self.assertEqual(counter.count(), 0)

    def test_gauge_evaluated_on_read(self):
        metrics, _ = metrics_with_clock()
        calls = []

        def subscribers():
            calls.append(None)
            return len(calls) * 10

        metrics.gauge("event-subscribers", subscribers)
        self.assertEqual(calls, [])
        self.assertEqual(metrics.snapshot()["gauges"]["event-subscribers"], 10)
        self.assertEqual(metrics.snapshot()["gauges"]["event-subscribers"], 20)

    def test_gauge_repointed(self):
        metrics, _ = metrics_with_clock()
        metrics.gauge("tasks", lambda: 1)
        metrics.gauge("tasks", lambda: 2)
        self.assertEqual(metrics.snapshot()["gauges"], {"tasks": 2})

    def test_failing_gauge_left_out(self):
        metrics, _ = metrics_with_clock()
        metrics.gauge("broken", lambda: 1 / 0)
        metrics.gauge("fine", lambda: 1)
        self.assertEqual(metrics.snapshot()["gauges"], {"fine": 1})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_one_kind_per_name(self):
        metrics, _ = metrics_with_clock()
        metrics.counter("events")
        self.assertRaises(ValueError, metrics.timer, "events")
        self.assertRaises(ValueError, metrics.gauge, "events", lambda: 0)

    def test_process_gauges(self):
        metrics, _ = metrics_with_clock()
        process_gauges(metrics)
        gauges = metrics.snapshot()["gauges"]
        self.assertEqual(gauges["threads"], _kernel_threads())
        self.assertGreaterEqual(gauges["threads"], threading.active_count())
        self.assertGreater(gauges["fds"], 2)
        self.assertLessEqual(abs(gauges["fds"] - len(os.listdir("/proc/self/fd"))), 1)


class RegistryTests(SynchronousTestCase):

    def test_snapshot_is_plain_data(self):
        metrics, clock = metrics_with_clock()
        for name in (registry.CONTAINER_START_TIME, registry.CONTAINER_CREATE_TIME,
                     registry.CONTAINER_DELETE_TIME, registry.CONTAINER_STATS_TIME,
                     registry.EXEC_PROCESS_TIME, registry.EXIT_PROCESS_TIME):
            metrics.timer(name).update(0.5)
        for name in (registry.CONTAINERS, registry.EVENTS):
            metrics.counter(name).inc()
        metrics.gauge(registry.EVENT_SUBSCRIBERS, lambda: 0)
        metrics.gauge(registry.TASKS, lambda: 5)
        snap = metrics.snapshot()
        self.assertEqual(sorted(snap), ["counters", "gauges", "timers"])
        self.assertEqual(sorted(snap["timers"]), sorted([
            "container-start-time", "container-create-time", "container-delete-time",
            "container-stats-time", "exec-process-time", "exit-process-time"]))
        self.assertEqual(snap["counters"], {"containers": 1, "events": 1})
        self.assertEqual(snap["gauges"], {"event-subscribers": 0, "tasks": 5})
        self.assertEqual(metrics.names(), sorted(metrics.names()))
        metrics.unregister("tasks")
        self.assertIsNone(metrics.get("tasks"))


def _kernel_threads():
    return len(os.listdir("/proc/self/task"))


class ThreadCountTests(SynchronousTestCase):

    def test_native_threads_are_counted(self):
        """
        A thread started outside Python's threading module (as grpcio's are) is counted: the figure is
        the kernel's (/proc/self/status), not threading.active_count().
        """
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        start_routine = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
        pipe_r, pipe_w = os.pipe()
        self.addCleanup(os.close, pipe_r)

        def wait_for_pipe(_):  # runs in a native thread: blocks reading until the test writes
            os.read(pipe_r, 1)
            return None

        routine = start_routine(wait_for_pipe)
        thread = ctypes.c_ulong()
        before = registry.count_threads()
        python_before = threading.active_count()
        self.assertEqual(libc.pthread_create(ctypes.byref(thread), None, routine, None), 0)
        try:
            self.assertEqual(registry.count_threads(), before + 1)
            self.assertEqual(threading.active_count(), python_before)
        finally:
            os.write(pipe_w, b"x")
            os.close(pipe_w)
            libc.pthread_join(thread, None)
        self.assertEqual(registry.count_threads(), before)

    def test_reads_the_status_file(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("Name:\tpython3\nState:\tS (sleeping)\nThreads:\t17\nSigQ:\t0/1\n")
        self.assertEqual(registry.count_threads(path), 17)
