# -*- test-case-name: tests.unit.test_metrics_prometheus -*-
"""
The registry over HTTP: C{/metrics} in Prometheus' text format (or OpenMetrics, as the scraper's Accept
header asks; prometheus_client does the encoding) and C{/healthz} for liveness probes.

Names are C{containerd_} plus the metric name with every character outside C{[a-zA-Z0-9_]} made C{_}:

  - a timer becomes a summary in seconds: C{containerd_container_start_time_seconds{quantile="0.5"}} (and
    0.75, 0.95, 0.99, 0.999, over the timer's decaying sample), C{..._seconds_count} and
    C{..._seconds_sum} (over every update);
  - a counter becomes a gauge (go-metrics counters go down as well as up): C{containerd_containers};
  - a gauge stays a gauge: C{containerd_threads}, C{containerd_fds}.

The registry is read on every scrape, in the reactor thread; nothing is cached.
"""

import re

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from twisted.application import strports
from twisted.web.resource import Resource
from twisted.web.server import Site

from containerd_tx.metrics.registry import QUANTILES

NAMESPACE = "containerd"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_name(name, namespace=NAMESPACE):
    """C{"container-start-time"} -> C{"containerd_container_start_time"}."""
    name = _INVALID.sub("_", name)
    return f"{namespace}_{name}" if namespace else name


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
            family = prometheus_name(name, self.namespace) + "_seconds"
            summary = Metric(family, f"containerd-tx timer {name}, in seconds", "summary")
            for quantile, key in QUANTILES:
                summary.add_sample(family, {"quantile": repr(quantile)}, timer[key])
            summary.add_sample(family + "_count", {}, timer["count"])
            summary.add_sample(family + "_sum", {}, timer["sum"])
            yield summary
        for name, value in snapshot["counters"].items():
            yield GaugeMetricFamily(prometheus_name(name, self.namespace), f"containerd-tx counter {name}",
                                    value=value)
        for name, value in snapshot["gauges"].items():
            yield GaugeMetricFamily(prometheus_name(name, self.namespace), f"containerd-tx gauge {name}",
                                    value=value)


def collector_registry(metrics, namespace=NAMESPACE):
    """A prometheus_client L{CollectorRegistry} holding only the collector over C{metrics}."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistryCollector(metrics, namespace))
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


def make_metrics_resource(metrics, health_check, namespace=NAMESPACE):
    """The resource tree: C{/metrics} and C{/healthz} (anything else is 404)."""
    root = Resource()
    root.putChild(b"metrics", MetricsResource(collector_registry(metrics, namespace)))
    root.putChild(b"healthz", HealthResource(health_check))
    return root


def make_metrics_site(metrics, health_check, namespace=NAMESPACE):
    """
    A L{twisted.web.server.Site} serving C{/metrics} and C{/healthz} (no access log, no tracebacks).

    @param metrics: the L{Metrics} registry.
    @param health_check: a zero-argument callable, true when the daemon is serving.
    """
    site = _QuietSite(make_metrics_resource(metrics, health_check, namespace))
    site.displayTracebacks = False
    site.noisy = False
    return site


def metrics_http_service(endpoint_string, metrics, health_check, reactor=None):
    """
    A service listening on C{endpoint_string} (a Twisted server endpoint description such as
    C{"tcp:1338:interface=127.0.0.1"}, from C{--metrics-address}) and serving L{make_metrics_site}.
    """
    if reactor is None:
        from twisted.internet import reactor
    service = strports.service(endpoint_string, make_metrics_site(metrics, health_check), reactor=reactor)
    service.setName("metrics-http")
    return service
