"""
Tests for L{containerd_tx.metrics.prometheus}: the collector's text parsed back equals the registry's
snapshot, and C{/metrics} and C{/healthz} served on a real loopback port, scraped with treq.
"""

import random

import treq
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from tests.support.net import free_port
from containerd_tx.metrics import Metrics, process_gauges
from containerd_tx.metrics.prometheus import (
    collector_registry,
    metrics_http_service,
    prometheus_name,
)

QUANTILE_KEYS = {"0.5": "median", "0.75": "p75", "0.95": "p95", "0.99": "p99", "0.999": "p999"}


def sample_metrics(clock):
    metrics = Metrics(clock, rng=random.Random(2))
    for value in (0.05, 0.1, 0.2, 0.4, 0.8):
        metrics.timer("container-start-time").update(value)
    metrics.timer("exec-process-time").update(0.003)
    metrics.timer("container-delete-time")
    metrics.counter("containers").inc(4)
    metrics.counter("containers").dec()
    metrics.counter("events").inc(12)
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


class NamingTests(SynchronousTestCase):

    def test_names(self):
        self.assertEqual(prometheus_name("container-start-time"), "containerd_container_start_time")
        self.assertEqual(prometheus_name("event-subscribers"), "containerd_event_subscribers")
        self.assertEqual(prometheus_name("a.b c"), "containerd_a_b_c")


class CollectorTests(SynchronousTestCase):

    def test_text_round_trip(self):
        """Every value in the exposition equals the registry's snapshot."""
        clock = Clock()
        metrics = sample_metrics(clock)
        process_gauges(metrics)
        text = generate_latest(collector_registry(metrics)).decode()
        samples, types = parse(text)
        snapshot = metrics.snapshot()
        for name, timer in snapshot["timers"].items():
            family = prometheus_name(name) + "_seconds"
            self.assertEqual(types[family], "summary")
            for quantile, key in QUANTILE_KEYS.items():
                self.assertAlmostEqual(samples[(family, (("quantile", quantile),))], timer[key])
            self.assertEqual(samples[(family + "_count", ())], timer["count"])
            self.assertAlmostEqual(samples[(family + "_sum", ())], timer["sum"])
        for name, value in snapshot["counters"].items():
            self.assertEqual(types[prometheus_name(name)], "gauge")
            self.assertEqual(samples[(prometheus_name(name), ())], value)
        for name in ("event-subscribers", "tasks"):
            self.assertEqual(samples[(prometheus_name(name), ())], snapshot["gauges"][name])
        self.assertIn(("containerd_threads", ()), samples)
        self.assertIn(("containerd_fds", ()), samples)
        self.assertIn('containerd_container_start_time_seconds{quantile="0.99"} 0.8', text)
        self.assertEqual(samples[("containerd_containers", ())], 3)

    def test_read_on_every_scrape(self):
        clock = Clock()
        metrics = sample_metrics(clock)
        registry = collector_registry(metrics)
        metrics.counter("containers").inc(10)
        samples, _ = parse(generate_latest(registry).decode())
        self.assertEqual(samples[("containerd_containers", ())], 13)




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
        self.assertEqual(types["containerd_container_start_time_seconds"], "summary")
        self.assertEqual(samples[("containerd_container_start_time_seconds_count", ())], 5)
        self.assertEqual(samples[("containerd_events", ())], 12)

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
