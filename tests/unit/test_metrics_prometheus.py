"""
Tests for L{containerd_tx.metrics.prometheus}: the collector's text parsed back equals the registry's
snapshot, names and help texts as Prometheus' conventions want them (promtool finds nothing to say), and
C{/metrics} and C{/healthz} served on a real loopback port, scraped with treq.
"""

import os
import random
import re
import subprocess

import treq
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from tests.support.net import free_port
from containerd_tx import __version__
from containerd_tx.metrics import Metrics, process_gauges
from containerd_tx.metrics.build import build_info
from containerd_tx.revision import revision
from containerd_tx.metrics.prometheus import (
    collector_registry,
    metrics_http_service,
    prometheus_name,
)

PROMTOOL = "/usr/bin/promtool"


def sample_metrics(clock):
    metrics = Metrics(clock, rng=random.Random(2))
    for value in (0.05, 0.1, 0.2, 0.4, 0.8):
        metrics.timer("container-start-time").update(value)
    metrics.timer("exec-process-time").update(0.003)
    metrics.timer("container-delete-time")
    metrics.counter("events").inc(12)
    metrics.counter("oom-events").inc(1)
    metrics.gauge("containers", lambda: 3)
    metrics.gauge("event-subscribers", lambda: 2)
    metrics.gauge("tasks", lambda: 0.5)
    return metrics


def parse(text):
    """Samples by (name, frozen labels) and the type of each family."""
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples, types


def helps(text):
    """The HELP text of each family."""
    return dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.M))


BUILD = {"version": "0.1.0", "revision": "0" * 40, "runtime": "runc"}


class NamingTests(SynchronousTestCase):

    def test_names(self):
        """One prefix, distinct from upstream containerd's C{containerd_}; C{tasks} gets a clear name."""
        self.assertEqual(prometheus_name("container-start-time"), "containerd_tx_container_start_time")
        self.assertEqual(prometheus_name("event-subscribers"), "containerd_tx_event_subscribers")
        self.assertEqual(prometheus_name("tasks"), "containerd_tx_reactor_pending_calls")
        self.assertEqual(prometheus_name("a.b c"), "containerd_tx_a_b_c")


class CollectorTests(SynchronousTestCase):

    def exposition(self, metrics=None, **kwargs):
        metrics = metrics if metrics is not None else sample_metrics(Clock())
        return generate_latest(collector_registry(metrics, **kwargs)).decode()

    def test_text_round_trip(self):
        """Every value in the exposition equals the registry's snapshot."""
        clock = Clock()
        metrics = sample_metrics(clock)
        process_gauges(metrics)
        text = self.exposition(metrics)
        samples, types = parse(text)
        snapshot = metrics.snapshot()
        for name, timer in snapshot["timers"].items():
            family = prometheus_name(name) + "_seconds"
            self.assertEqual(types[family], "histogram")
            for bound, count in timer["buckets"]:
                self.assertEqual(samples[(family + "_bucket", (("le", repr(bound)),))], count)
            self.assertEqual(samples[(family + "_bucket", (("le", "+Inf"),))], timer["count"])
            self.assertEqual(samples[(family + "_count", ())], timer["count"])
            self.assertAlmostEqual(samples[(family + "_sum", ())], timer["sum"])
        for name, value in snapshot["counters"].items():
            self.assertEqual(types[prometheus_name(name)], "counter")
            self.assertEqual(samples[(prometheus_name(name) + "_total", ())], value)
        for name in ("containers", "event-subscribers", "tasks"):
            self.assertEqual(types[prometheus_name(name)], "gauge")
            self.assertEqual(samples[(prometheus_name(name), ())], snapshot["gauges"][name])
        self.assertIn(("containerd_tx_threads", ()), samples)
        self.assertIn(("containerd_tx_fds", ()), samples)
        self.assertIn('containerd_tx_container_start_time_seconds_bucket{le="0.1"} 2.0', text)
        self.assertIn('containerd_tx_container_start_time_seconds_bucket{le="0.25"} 3.0', text)
        self.assertIn("# TYPE containerd_tx_events_total counter", text)
        self.assertEqual(samples[("containerd_tx_events_total", ())], 12)
        self.assertEqual(samples[("containerd_tx_oom_events_total", ())], 1)
        self.assertEqual(samples[("containerd_tx_containers", ())], 3)

    def test_one_prefix(self):
        """Every family of the daemon's own is containerd_tx_*; the rest are prometheus_client's standard ones."""
        process_gauges_metrics = sample_metrics(Clock())
        process_gauges(process_gauges_metrics)
        _, types = parse(self.exposition(process_gauges_metrics, build_info=BUILD))
        for family in types:
            self.assertTrue(family.startswith(("containerd_tx_", "process_", "python_")), family)
            self.assertFalse(re.match(r"containerd_(?!tx_)", family), family)

    def test_help_says_what_and_unit(self):
        """Each family of the daemon's has a help text of its own; timers say seconds."""
        metrics = sample_metrics(Clock())
        process_gauges(metrics)
        text = self.exposition(metrics, build_info=BUILD)
        texts = helps(text)
        ours = {name: help for name, help in texts.items() if name.startswith("containerd_tx_")}
        self.assertGreaterEqual(len(ours), 10)
        for name, help in ours.items():
            self.assertNotIn("containerd-tx gauge", help, name)
            self.assertNotIn("containerd-tx counter", help, name)
            self.assertGreater(len(help.split()), 3, name)
            if name.endswith("_seconds"):
                self.assertIn("in seconds", help, name)
        self.assertEqual(len(set(ours.values())), len(ours), "help texts are not copies of each other")

    def test_threads_from_the_kernel(self):
        """containerd_tx_threads is the kernel's figure for this process, native threads included."""
        metrics = sample_metrics(Clock())
        process_gauges(metrics)
        samples, _ = parse(self.exposition(metrics))
        with open("/proc/self/status") as f:
            threads = int(re.search(r"^Threads:\s+(\d+)$", f.read(), re.M).group(1))
        self.assertEqual(samples[("containerd_tx_threads", ())], threads)

    def test_build_info(self):
        samples, types = parse(self.exposition(build_info=BUILD))
        self.assertEqual(types["containerd_tx_build_info"], "gauge")
        self.assertEqual(samples[("containerd_tx_build_info", tuple(sorted(BUILD.items())))], 1)

    def test_process_collectors(self):
        """prometheus_client's process and platform collectors: CPU, memory, fds, start time, python_info."""
        samples, types = parse(self.exposition())
        for family in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds",
                       "process_max_fds", "process_start_time_seconds", "python_info"):
            self.assertIn(family, types)
        self.assertEqual(types["process_cpu_seconds"], "counter")
        self.assertGreater(samples[("process_resident_memory_bytes", ())], 1 << 20)
        self.assertLessEqual(abs(samples[("process_open_fds", ())] - len(os.listdir("/proc/self/fd"))), 1)
        samples, _ = parse(self.exposition(process=False))
        self.assertFalse([name for name, _ in samples if name.startswith("process_")])

    def test_promtool_has_no_complaint(self):
        """promtool check metrics: exit 0 and no output (no lint warning) for the whole page."""
        if not os.path.exists(PROMTOOL):
            raise SkipTest(f"{PROMTOOL} missing (Debian package prometheus): run scripts/setup-system")
        metrics = sample_metrics(Clock())
        process_gauges(metrics)
        text = self.exposition(metrics, build_info=BUILD)
        result = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                                timeout=60)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, "", ""))

    def test_read_on_every_scrape(self):
        clock = Clock()
        metrics = sample_metrics(clock)
        registry = collector_registry(metrics)
        metrics.counter("events").inc(10)
        metrics.gauge("containers", lambda: 13)
        samples, _ = parse(generate_latest(registry).decode())
        self.assertEqual(samples[("containerd_tx_containers", ())], 13)
        self.assertEqual(samples[("containerd_tx_events_total", ())], 22)


class BuildInfoTests(SynchronousTestCase):

    def test_revision_of_this_checkout(self):
        """The revision GetServerVersion reports: what git rev-parse HEAD says, in a git checkout."""
        here = os.path.dirname(os.path.abspath(__file__))
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            raise SkipTest("not a git checkout")
        self.assertEqual(build_info("runc")["revision"], head.stdout.strip())
        self.assertEqual(build_info("runc")["revision"], revision())

    def test_labels(self):
        labels = build_info("/usr/sbin/crun")
        self.assertEqual(sorted(labels), ["revision", "runtime", "version"])
        self.assertEqual(labels["runtime"], "crun")
        self.assertEqual(labels["version"], __version__)


class HTTPTests(TestCase):
    """The service on a real loopback port."""

    def setUp(self):
        self.healthy = True
        self.metrics = sample_metrics(reactor)
        self.port = free_port()
        self.service = metrics_http_service(f"tcp:{self.port}:interface=127.0.0.1", self.metrics,
                                            lambda: self.healthy, reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    @defer.inlineCallbacks
    def get(self, path, headers=None):
        response = yield treq.get(f"http://127.0.0.1:{self.port}{path}", pool=self.pool, headers=headers)
        body = yield response.text()
        return response, body

    @defer.inlineCallbacks
    def test_metrics(self):
        response, body = yield self.get("/metrics")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/plain; version=0.0.4; charset=utf-8"])
        samples, types = parse(body)
        self.assertEqual(types["containerd_tx_container_start_time_seconds"], "histogram")
        self.assertEqual(samples[("containerd_tx_container_start_time_seconds_count", ())], 5)
        self.assertEqual(samples[("containerd_tx_events_total", ())], 12)

    @defer.inlineCallbacks
    def test_openmetrics_negotiated(self):
        response, body = yield self.get("/metrics", headers={"Accept": ["application/openmetrics-text"]})
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith(
            "application/openmetrics-text"))
        self.assertTrue(body.rstrip().endswith("# EOF"))

    @defer.inlineCallbacks
    def test_healthz(self):
        response, body = yield self.get("/healthz")
        self.assertEqual((response.code, body), (200, "ok\n"))
        self.healthy = False
        response, body = yield self.get("/healthz")
        self.assertEqual(response.code, 503)

    @defer.inlineCallbacks
    def test_unknown_path(self):
        response, _ = yield self.get("/nope")
        self.assertEqual(response.code, 404)

    def test_service_name(self):
        self.assertEqual(self.service.name, "metrics-http")
