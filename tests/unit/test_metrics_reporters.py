"""
Tests for the push sinks: L{containerd_tx.metrics.stdout} (containerd 0.2's log layout) and
L{containerd_tx.metrics.graphite} (plaintext protocol; failures give one warning per report and never block
the reactor). Carbon itself is exercised in tests.integration.test_graphite.
"""

import random
import time

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from tests.support.net import ReactorLag, free_port, wait_until
from containerd_tx.metrics import Metrics
from containerd_tx.metrics.graphite import GraphiteReporter, graphite_lines
from containerd_tx.metrics.periodic import IMetricsReporter
from containerd_tx.metrics.stdout import StdoutReporter, format_snapshot

TIMERS = ("container-start-time", "container-create-time", "container-delete-time", "container-stats-time",
          "exec-process-time", "exit-process-time")
COUNTERS = ("containers", "events")
GAUGES = ("event-subscribers", "tasks", "threads", "fds")


def daemon_metrics(clock):
    """A registry with containerd 0.2's metric names and a little data."""
    metrics = Metrics(clock, rng=random.Random(1))
    for index, name in enumerate(TIMERS):
        for value in (0.010, 0.020, 0.030):
            metrics.timer(name).update(value * (index + 1))
    metrics.counter("containers").inc(3)
    metrics.counter("events").inc(7)
    for index, name in enumerate(GAUGES):
        metrics.gauge(name, lambda index=index: index + 10)
    return metrics


class StdoutLayoutTests(SynchronousTestCase):

    def test_sample_layout(self):
        """The exact go-metrics LogScaled layout, durations in milliseconds, metrics in name order."""
        clock = Clock()
        metrics = Metrics(clock, rng=random.Random(1))
        timer = metrics.timer("container-start-time")
        for ms in (100, 200, 300, 400):
            timer.update(ms / 1000.0)
        clock.advance(5)
        metrics.counter("containers").inc(3)
        metrics.gauge("threads", lambda: 12)
        metrics.gauge("load", lambda: 0.5)
        self.assertEqual(format_snapshot(metrics.snapshot()), [
            "timer container-start-time",
            "  count:               4",
            "  min:               100.00ms",
            "  max:               400.00ms",
            "  mean:              250.00ms",
            "  stddev:            111.80ms",
            "  median:            250.00ms",
            "  75%:               375.00ms",
            "  95%:               400.00ms",
            "  99%:               400.00ms",
            "  99.9%:             400.00ms",
            "  1-min rate:          0.80",
            "  5-min rate:          0.80",
            "  15-min rate:         0.80",
            "  mean rate:           0.80",
            "counter containers",
            "  count:               3",
            "gauge load",
            "  value:       0.500000",
            "gauge threads",
            "  value:              12",
        ])

    def test_every_metric_name_appears(self):
        lines = format_snapshot(daemon_metrics(Clock()).snapshot())
        for name in TIMERS:
            self.assertIn(f"timer {name}", lines)
        for name in COUNTERS:
            self.assertIn(f"counter {name}", lines)
        for name in GAUGES:
            self.assertIn(f"gauge {name}", lines)
        self.assertEqual(len(lines), len(TIMERS) * 15 + (len(COUNTERS) + len(GAUGES)) * 2)


class StdoutReporterTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.events = []
        self.reporter = StdoutReporter(daemon_metrics(self.clock), 10, reactor=self.clock,
                                       log=Logger(namespace="metrics", observer=self.events.append))

    def lines(self):
        return [event["line"] for event in self.events]

    def test_interface(self):
        verifyObject(IMetricsReporter, self.reporter)

    def test_logs_every_interval(self):
        """Nothing at start; one full report per interval on the reactor's clock; none after stop."""
        self.reporter.startService()
        self.assertEqual(self.events, [])
        self.clock.advance(9.9)
        self.assertEqual(self.events, [])
        self.clock.advance(0.1)
        first = self.lines()
        self.assertIn("timer container-start-time", first)
        self.assertEqual(len(first), len(TIMERS) * 15 + (len(COUNTERS) + len(GAUGES)) * 2)
        self.assertTrue(all(event["log_level"] == LogLevel.info for event in self.events))
        self.clock.advance(10)
        self.assertEqual(len(self.events), 2 * len(first))
        self.successResultOf(defer.maybeDeferred(self.reporter.stopService))
        self.clock.advance(100)
        self.assertEqual(len(self.events), 2 * len(first))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_zero_interval_refused(self):
        self.assertRaises(ValueError, StdoutReporter, Metrics(self.clock), 0, reactor=self.clock)


class StdoutIdleTests(SynchronousTestCase):
    """With an idle limit, a daemon where nothing moves writes one dump per limit, not one per interval."""

    def setUp(self):
        self.clock = Clock()
        self.metrics = daemon_metrics(self.clock)
        self.threads = [5]
        self.metrics.gauge("threads", lambda: self.threads[0])
        self.events = []
        self.reporter = StdoutReporter(self.metrics, 60, reactor=self.clock, idle_limit=3600,
                                       log=Logger(namespace="metrics", observer=self.events.append))
        self.reporter.startService()
        self.addCleanup(self.reporter.stopService)

    def dumps(self):
        return sum(1 for event in self.events if event["line"] == "timer container-start-time")

    def test_idle_day(self):
        """A day of an idle daemon at a 1-minute interval: 24 dumps (one an hour), not 1440."""
        for minute in range(24 * 60):
            self.threads[0] = 5 + minute % 3  # a thread pool breathing is not activity
            self.clock.advance(60)
        self.assertEqual(self.dumps(), 24)
        self.assertEqual(self.reporter.written + self.reporter.skipped, 24 * 60)

    def test_activity_is_dumped_at_the_next_interval(self):
        self.clock.advance(60)
        self.assertEqual(self.dumps(), 1)
        self.clock.advance(60)
        self.assertEqual(self.dumps(), 1)
        self.metrics.timer("container-start-time").update(0.1)
        self.clock.advance(60)
        self.assertEqual(self.dumps(), 2)
        self.metrics.counter("events").inc()
        self.clock.advance(60)
        self.assertEqual(self.dumps(), 3)
        self.metrics.gauge("event-subscribers", lambda: 7)
        self.clock.advance(60)
        self.assertEqual(self.dumps(), 4)
        for _ in range(10):
            self.clock.advance(60)
        self.assertEqual(self.dumps(), 4)

    def test_the_dump_is_whole_and_in_the_seed_layout(self):
        self.clock.advance(60)
        self.assertEqual([event["line"] for event in self.events],
                         format_snapshot(self.metrics.snapshot()))

    def test_without_limit_every_interval(self):
        events = []
        reporter = StdoutReporter(self.metrics, 60, reactor=self.clock,
                                  log=Logger(namespace="m", observer=events.append))
        reporter.startService()
        self.addCleanup(reporter.stopService)
        for _ in range(5):
            self.clock.advance(60)
        self.assertEqual(sum(1 for event in events if event["line"] == "timer container-start-time"), 5)


class GraphiteLinesTests(SynchronousTestCase):

    def test_names_and_units(self):
        """
        C{<prefix>.<metric>.<field>}, dashes kept; timer durations in milliseconds, rates per second;
        counters C{.count}, gauges C{.value}.
        """
        clock = Clock()
        metrics = daemon_metrics(clock)
        clock.advance(5)
        lines = graphite_lines(metrics.snapshot(), "containerd-tx.deathstar", 1700000000.7)
        points = {}
        for line in lines:
            self.assertTrue(line.endswith(b"\n"))
            path, value, stamp = line.decode().split()
            self.assertEqual(stamp, "1700000000")
            points[path] = float(value)
        head = "containerd-tx.deathstar.container-start-time."
        self.assertEqual(points[head + "count"], 3)
        self.assertAlmostEqual(points[head + "min"], 10.0)
        self.assertAlmostEqual(points[head + "max"], 30.0)
        self.assertAlmostEqual(points[head + "median"], 20.0)
        self.assertAlmostEqual(points[head + "p99"], 30.0)
        self.assertAlmostEqual(points[head + "m1_rate"], 0.6)
        for field in ("mean", "stddev", "p75", "p95", "p999", "m5_rate", "m15_rate", "mean_rate"):
            self.assertIn(head + field, points)
        self.assertEqual(points["containerd-tx.deathstar.containers.count"], 3)
        self.assertEqual(points["containerd-tx.deathstar.threads.value"], 12)
        self.assertEqual(len(points), len(TIMERS) * 14 + len(COUNTERS) + len(GAUGES))

    def test_non_finite_left_out_and_whitespace_replaced(self):
        snapshot = {"timers": {}, "counters": {"a b": 1}, "gauges": {"nan": float("nan"), "ok": 2.5}}
        self.assertEqual(graphite_lines(snapshot, "", 10),
                         [b"a_b.count 1 10\n", b"ok.value 2.5 10\n"])


class GraphiteReporterTests(SynchronousTestCase):
    """The reporter against a memory reactor: what it writes, and how it fails."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.events = []
        self.reporter = GraphiteReporter(
            daemon_metrics(self.reactor), ("127.0.0.1", 2003), "containerd-tx.deathstar", 10,
            reactor=self.reactor, log=Logger(namespace="graphite", observer=self.events.append))

    def warnings(self):
        return [event for event in self.events if event["log_level"] == LogLevel.warn]

    def connect(self, index=-1):
        """Accept the reporter's pending connection; returns the transport it wrote to."""
        host, port, factory, timeout, _ = self.reactor.tcpClients[index]
        self.assertEqual((host, port), ("127.0.0.1", 2003))
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_interface(self):
        verifyObject(IMetricsReporter, self.reporter)

    def test_one_connection_per_interval(self):
        self.reporter.startService()
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(10)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        protocol, transport = self.connect()
        written = transport.value().decode()
        self.assertTrue(transport.disconnecting)
        self.assertIn("containerd-tx.deathstar.container-start-time.p99 ", written)
        self.assertIn("containerd-tx.deathstar.fds.value 13 ", written)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((self.reporter.sent, self.reporter.failed), (1, 0))
        self.assertEqual(self.warnings(), [])
        self.reactor.advance(10)
        self.assertEqual(len(self.reactor.tcpClients), 2)

    def test_refused_gives_one_warning_per_interval(self):
        """Carbon down: one warning per report, no traceback, the loop goes on."""
        self.reporter.startService()
        for interval in range(1, 4):
            self.reactor.advance(10)
            _, _, factory, _, _ = self.reactor.tcpClients[-1]
            factory.clientConnectionFailed(self.reactor.connectors[-1], Failure(ConnectionRefusedError()))
            self.assertEqual(len(self.warnings()), interval)
        warning = self.warnings()[0]
        self.assertNotIn("log_failure", warning)
        self.assertIn("127.0.0.1", warning["log_format"].format(**warning))
        self.assertIn("refused", warning["error"])
        self.assertEqual(self.reporter.failed, 3)

    def test_slow_carbon_times_out(self):
        """A connection that never completes is given up after the timeout (80% of the interval)."""
        self.reporter.startService()
        self.reactor.advance(10)
        self.reactor.advance(7.9)
        self.assertEqual(self.warnings(), [])
        self.reactor.advance(0.1)
        self.assertEqual(len(self.warnings()), 1)
        self.assertTrue(self.reactor.connectors[-1].stoppedConnecting)

    def test_stuck_send_aborted(self):
        """Connected but Carbon never reads: the connection is aborted at the timeout."""
        self.reporter.startService()
        self.reactor.advance(10)
        protocol, transport = self.connect()
        transport.abortConnection = lambda: protocol.connectionLost(Failure(ConnectionDone()))
        self.reactor.advance(8)
        self.assertEqual(len(self.warnings()), 1)
        self.assertEqual(self.reporter.sent, 0)

    def test_stop_flushes(self):
        """Stopping sends a last report and waits for it (bounded by the timeout)."""
        self.reporter.startService()
        stopped = defer.maybeDeferred(self.reporter.stopService)
        self.assertNoResult(stopped)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        protocol, transport = self.connect()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopped)
        self.assertEqual(self.reporter.sent, 1)
        self.reactor.advance(100)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_stop_with_carbon_down_is_bounded(self):
        self.reporter.startService()
        stopped = defer.maybeDeferred(self.reporter.stopService)
        self.reactor.advance(8)
        self.successResultOf(stopped)
        self.assertEqual(len(self.warnings()), 1)


class GraphiteDownRealReactorTests(TestCase):
    """Carbon down, on the real reactor: warnings, one per report, and the reactor stays responsive."""

    @defer.inlineCallbacks
    def test_closed_port(self):
        events = []
        metrics = daemon_metrics(reactor)
        reporter = GraphiteReporter(metrics, ("127.0.0.1", free_port()), "containerd-tx.test", 0.2,
                                    reactor=reactor, log=Logger(namespace="graphite",
                                                                observer=events.append))
        lag = ReactorLag(0.01)
        started = time.monotonic()
        reporter.startService()
        try:
            yield wait_until(lambda: reporter.failed >= 5, message="five failed reports")
        finally:
            yield reporter.stopService()
            lag.stop()
        elapsed = time.monotonic() - started
        warnings = [event for event in events if event["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), reporter.failed)
        self.assertEqual(reporter.sent, 0)
        self.assertGreaterEqual(reporter.failed, 5)
        # At most one report per 0.2 s interval that passed, plus the first at start and the flush at stop.
        self.assertLessEqual(reporter.failed, int(elapsed / 0.2) + 2)
        self.assertFalse(any("log_failure" in event for event in events))
        self.assertLess(max(lag.lags), 0.15)
