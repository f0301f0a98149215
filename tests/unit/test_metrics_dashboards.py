"""
The dashboards in contrib/dashboards/ draw what the daemon sends: every Graphite path a panel asks for is
one the Graphite reporter writes, every metric a Prometheus expression names is on the daemon's page (and
each expression parses, by promtool), and both cover start times, running containers, events, OOMs, fds
and threads.
"""

import json
import os
import re
import subprocess

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from containerd_tx.daemon import TIMERS
from containerd_tx.metrics import Metrics, process_gauges
from containerd_tx.metrics.build import build_info
from containerd_tx.metrics.graphite import graphite_lines
from containerd_tx.metrics.prometheus import collector_registry
from containerd_tx.metrics.registry import CONTAINERS, EVENT_SUBSCRIBERS, EVENTS, OOM_EVENTS, TASKS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARDS = os.path.join(ROOT, "contrib", "dashboards")
PROMTOOL = "/usr/bin/promtool"
COVERED = ("start", "container", "event", "oom", "file descriptor", "thread")


def daemon_registry():
    """The registry as the daemon fills it (same names, same kinds)."""
    metrics = Metrics(Clock())
    for name in TIMERS:
        metrics.timer(name).update(0.1)
    process_gauges(metrics)
    metrics.counter(EVENTS).inc()
    metrics.counter(OOM_EVENTS)
    for name in (CONTAINERS, EVENT_SUBSCRIBERS, TASKS):
        metrics.gauge(name, lambda: 1)
    return metrics


def load(name):
    with open(os.path.join(DASHBOARDS, name), encoding="utf-8") as f:
        return json.load(f)


def targets(dashboard, key):
    return [(panel["title"], target[key]) for panel in dashboard["panels"] for target in panel["targets"]]


class DashboardTests(SynchronousTestCase):

    def assertCovers(self, dashboard):
        titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
        for topic in COVERED:
            self.assertIn(topic, titles)
        ids = [panel["id"] for panel in dashboard["panels"]]
        self.assertEqual(len(ids), len(set(ids)))

    def test_graphite_paths_exist(self):
        dashboard = load("grafana-graphite.json")
        self.assertCovers(dashboard)
        sent = {line.split()[0].decode() for line in
                graphite_lines(daemon_registry().snapshot(), "containerd-tx.$instance", 0)}
        self.assertEqual(dashboard["templating"]["list"][0]["query"], "containerd-tx.*")
        asked = 0
        for title, target in targets(dashboard, "target"):
            paths = re.findall(r"containerd-tx\.\$instance\.[A-Za-z0-9_.-]+", target)
            self.assertTrue(paths, f"{title}: no daemon path in {target!r}")
            for path in paths:
                self.assertIn(path, sent, f"{title}: {path} is never sent")
                asked += 1
        self.assertGreaterEqual(asked, 15)

    def test_prometheus_names_exist_and_parse(self):
        dashboard = load("grafana-prometheus.json")
        self.assertCovers(dashboard)
        page = generate_latest(collector_registry(daemon_registry(), build_info=build_info("runc"))).decode()
        exposed = {"up"}
        for family in text_string_to_metric_families(page):
            exposed.update(sample.name for sample in family.samples)
        expressions = targets(dashboard, "expr")
        for title, expr in expressions:
            names = re.findall(r"\b(containerd_tx_\w+|process_\w+|up)\b", expr)
            self.assertTrue(names, f"{title}: no daemon metric in {expr!r}")
            for name in names:
                self.assertIn(name, exposed, f"{title}: {name} is not on the daemon's page")
        self.assertIn("containerd_tx_build_info", dashboard["templating"]["list"][0]["query"])
        if not os.path.exists(PROMTOOL):
            raise SkipTest(f"{PROMTOOL} missing (Debian package prometheus): run scripts/setup-system")
        rules = os.path.abspath(self.mktemp())
        with open(rules, "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": [
                {"record": f"dashboard:expr{i}", "expr": expr.replace("$instance", ".*")}
                for i, (_, expr) in enumerate(expressions)]}]}, f)
        result = subprocess.run([PROMTOOL, "check", "rules", rules], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"SUCCESS: {len(expressions)} rules found", result.stdout)
