# -*- test-case-name: tests.unit.test_metrics_prometheus,tests.integration.test_prometheus_real -*-
"""
The registry over HTTP: C{/metrics} in Prometheus' text format (or OpenMetrics, as the scraper's Accept
header asks; prometheus_client does the encoding) and C{/healthz} for liveness probes.

Every name of the daemon's own starts with C{containerd_tx_} (upstream containerd exports C{containerd_*}
and C{container_*}; a host running both must not mix them up). A registry name becomes
C{containerd_tx_} plus the name with every character outside C{[a-zA-Z0-9_]} made C{_}, except where
L{NAMES} gives a clearer one:

  - a timer becomes a B{histogram} in seconds, C{containerd_tx_container_start_time_seconds_bucket{le="0.1"}}
    (bounds L{containerd_tx.metrics.registry.BUCKETS}), C{..._seconds_count} and C{..._seconds_sum}, over
    every duration recorded: buckets add up across daemons and over time, which client-side quantiles do not
    (C{histogram_quantile(0.99, rate(containerd_tx_container_start_time_seconds_bucket[5m]))});
  - a counter becomes a counter with C{_total}: C{containerd_tx_events_total} (the daemon's counters only go
    up; a restart starts them at zero, which C{rate()} handles);
  - a gauge stays a gauge: C{containerd_tx_containers}, C{containerd_tx_threads}, C{containerd_tx_fds}, and
    C{tasks} (API calls waiting for the reactor) is C{containerd_tx_reactor_pending_calls}.

Beside the registry the page has C{containerd_tx_build_info{version, revision, runtime} 1} and
prometheus_client's standard collectors: C{process_*} (CPU seconds, resident memory, open and maximum
fds, start time), C{python_info} and C{python_gc_*}. Every family has a help text saying what it counts
and in which unit; the page passes C{promtool check metrics} without a warning.

The registry is read on every scrape, in the reactor thread; nothing is cached.
"""

import math
import re

from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import CollectorRegistry
from twisted.application import strports
from twisted.web.resource import Resource
from twisted.web.server import Site

from containerd_tx.metrics.registry import DESCRIPTIONS, TASKS

NAMESPACE = "containerd_tx"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")

#: Registry names whose Prometheus name is not simply derived from them.
NAMES = {
    TASKS: "reactor_pending_calls",
}


def prometheus_name(name, namespace=NAMESPACE):
    """C{"container-start-time"} -> C{"containerd_tx_container_start_time"} (before any unit or suffix)."""
    name = NAMES.get(name) or _INVALID.sub("_", name)
    return f"{namespace}_{name}" if namespace else name


def _help(name, kind, unit=""):
    return DESCRIPTIONS.get(name) or f"containerd-tx {kind} {name}{unit}."


def _bound(value):
    return "+Inf" if math.isinf(value) else repr(float(value))


class RegistryCollector:
    """
    A prometheus_client collector over a L{Metrics} registry (see the module docstring for the mapping).
    """

    def __init__(self, metrics, namespace=NAMESPACE):
        self.metrics = metrics
        self.namespace = namespace

    def describe(self):
        """Nothing up front: the registry may gain metrics later."""
        return []

    def collect(self):
        """Yield one metric family per registered metric, from a fresh snapshot."""
        snapshot = self.metrics.snapshot()
        for name, timer in snapshot["timers"].items():
            buckets = [(_bound(bound), count) for bound, count in timer["buckets"]]
            buckets.append(("+Inf", timer["count"]))
            yield HistogramMetricFamily(prometheus_name(name, self.namespace) + "_seconds",
                                        _help(name, "timer", ", in seconds"), buckets=buckets,
                                        sum_value=timer["sum"])
        for name, value in snapshot["counters"].items():
            # prometheus_client adds the _total suffix.
            yield CounterMetricFamily(prometheus_name(name, self.namespace), _help(name, "counter"), value=value)
        for name, value in snapshot["gauges"].items():
            yield GaugeMetricFamily(prometheus_name(name, self.namespace), _help(name, "gauge"), value=value)


class BuildInfoCollector:
    """C{containerd_tx_build_info{version=..., revision=..., runtime=...} 1}."""

    def __init__(self, labels, namespace=NAMESPACE):
        """
        @param labels: a dict of label values; C{version}, C{revision} and C{runtime} are expected.
        """
        self.labels = dict(labels)
        self.namespace = namespace

    def describe(self):
        return list(self.collect())

    def collect(self):
        family = GaugeMetricFamily(
            f"{self.namespace}_build_info",
            "Always 1; the labels say which containerd-tx is running: its version, the source revision it "
            "was built from and the default OCI runtime.", labels=sorted(self.labels))
        family.add_metric([str(self.labels[key]) for key in sorted(self.labels)], 1)
        yield family


def collector_registry(metrics, namespace=NAMESPACE, build_info=None, process=True):
    """
    A prometheus_client L{CollectorRegistry} with the collector over C{metrics}, the build info (when
    C{build_info} labels are given) and, with C{process}, prometheus_client's process, platform and GC
    collectors (not its global registry: nothing else of this process lands on the page).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(metrics, namespace))
    if build_info is not None:
        registry.register(BuildInfoCollector(build_info, namespace))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


class MetricsResource(Resource):
    """C{GET /metrics}: the registry, encoded as the client's Accept header prefers."""

    isLeaf = True

    def __init__(self, registry):
        super().__init__()
        self.registry = registry

    def render_GET(self, request):
        """The exposition of a fresh snapshot."""
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        body = encoder(self.registry)
        request.setHeader(b"content-type", content_type.encode("ascii"))
        return body

    render_HEAD = render_GET


class HealthResource(Resource):
    """C{GET /healthz}: 200 C{ok} when C{health_check()} is true, else 503 C{unavailable}."""

    isLeaf = True

    def __init__(self, health_check):
        super().__init__()
        self.health_check = health_check

    def render_GET(self, request):
        """200 or 503, as C{health_check()} says (503 when it raises)."""
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        try:
            healthy = bool(self.health_check())
        except Exception:
            healthy = False
        if healthy:
            return b"ok\n"
        request.setResponseCode(503)
        return b"unavailable\n"

    render_HEAD = render_GET


class _QuietSite(Site):
    """A Site without an access log line per scrape."""

    def log(self, request):
        """No access log."""


def make_metrics_resource(metrics, health_check, namespace=NAMESPACE, build_info=None):
    """The resource tree: C{/metrics} and C{/healthz} (anything else is 404)."""
    root = Resource()
    root.putChild(b"metrics", MetricsResource(collector_registry(metrics, namespace, build_info)))
    root.putChild(b"healthz", HealthResource(health_check))
    return root


def make_metrics_site(metrics, health_check, namespace=NAMESPACE, build_info=None):
    """
    A L{twisted.web.server.Site} serving C{/metrics} and C{/healthz} (no access log, no tracebacks).

    @param metrics: the L{Metrics} registry.
    @param health_check: a zero-argument callable, true when the daemon is serving.
    @param build_info: labels of C{containerd_tx_build_info} (see L{containerd_tx.metrics.build}), or None.
    """
    site = _QuietSite(make_metrics_resource(metrics, health_check, namespace, build_info))
    site.displayTracebacks = False
    site.noisy = False
    return site


def metrics_http_service(endpoint_string, metrics, health_check, reactor=None, build_info=None):
    """
    A service listening on C{endpoint_string} (a Twisted server endpoint description such as
    C{"tcp:1338:interface=127.0.0.1"}, from C{--metrics-address}) and serving L{make_metrics_site}.
    """
    if reactor is None:
        from twisted.internet import reactor
    service = strports.service(endpoint_string, make_metrics_site(metrics, health_check, build_info=build_info),
                               reactor=reactor)
    service.setName("metrics-http")
    return service
