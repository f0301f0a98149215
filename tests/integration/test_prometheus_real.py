"""
A real Prometheus (Debian's C{prometheus}) scrapes a real daemon: started on loopback with its own config
and a private storage dir in the test's temp dir, scraping every second. The test asks Prometheus' HTTP API
what operators ask it: C{up}, a counter's C{rate()} and a histogram quantile of the container start time.
"""

import json
import math
import os
import subprocess
import urllib.parse
import urllib.request

from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import wait_for
from tests.support.ids import unique_id
from tests.support.net import free_port
from tests.support.servers import ServerProcess

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
JOB = "containerd-tx"

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: {job}
    static_configs:
      - targets: ["127.0.0.1:{target}"]
"""


class PrometheusServer(ServerProcess):
    """A prometheus child process on a loopback port, config and TSDB in C{root}."""

    def __init__(self, root, port, target):
        super().__init__(root, port, "prometheus.out")
        os.makedirs(os.path.join(root, "data"), exist_ok=True)
        self.config = os.path.join(root, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(job=JOB, target=target))

    def start(self):
        self.spawn([PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.root}/data",
                    f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h",
                    "--log.level=warn"])

    def ready(self):
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expr):
        """The result vector of an instant query: a list of (labels, float value)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    def value(self, expr):
        """The single value of C{expr}, or None while it has no result."""
        result = self.query(expr)
        return result[0][1] if len(result) == 1 else None


class RealPrometheusTests(LifecycleTestCase):

    def setUp(self):
        if not os.path.exists(PROMETHEUS):
            self.skipTest(f"{PROMETHEUS} missing (Debian package prometheus): run scripts/setup-system")
        self.port = free_port()
        self.daemon_args = ("--metrics-address", f"tcp:{self.port}:interface=127.0.0.1")
        super().setUp()
        self.prometheus = PrometheusServer(os.path.abspath(self.mktemp()), free_port(), self.port)
        self.addCleanup(self.prometheus.stop)
        self.prometheus.start()
        wait_for(self.prometheus.ready, timeout=60, message="prometheus to be ready")

    def test_up_rate_and_start_time_quantile(self):
        prom = self.prometheus
        wait_for(lambda: prom.value(f'up{{job="{JOB}"}}') == 1.0, timeout=60,
                 message=f"up{{job={JOB!r}}} == 1:\n{prom.log()}")
        # A first scrape before the containers, so that the counters' increase lies between two samples.
        wait_for(lambda: prom.value("containerd_tx_events_total") is not None, timeout=30,
                 message="a first scrape of containerd_tx_events_total")
        starts = 4
        for _ in range(starts):
            container_id = unique_id("prom")
            self.start(container_id, "true")
            self.events.wait("exit", container_id, "init")
        wait_for(lambda: prom.value("containerd_tx_container_start_time_seconds_count") == starts, timeout=30,
                 message=f"{starts} starts scraped")

        rate = wait_for(lambda: prom.value("rate(containerd_tx_events_total[1m])"), timeout=30,
                        message="a positive rate(containerd_tx_events_total[1m])")
        self.assertGreater(rate, 0)
        self.assertTrue(math.isfinite(rate))

        expr = "histogram_quantile(0.9, sum by (le) (rate(containerd_tx_container_start_time_seconds_bucket[1m])))"
        quantile = wait_for(lambda: prom.value(expr), timeout=30, message=expr)
        self.assertTrue(math.isfinite(quantile), quantile)
        self.assertGreater(quantile, 0)
        self.assertLessEqual(quantile, 60.0)  # the largest finite bucket: every start is below it

        self.assertEqual(prom.value(f'up{{job="{JOB}"}}'), 1.0)
        [(labels, one)] = prom.query("containerd_tx_build_info")
        self.assertEqual(one, 1.0)
        self.assertEqual(labels["runtime"], self.runtime)
        self.assertTrue(labels["version"])
        self.assertTrue(labels["revision"])
        self.assertIsNotNone(prom.value("process_resident_memory_bytes"))
        self.assertGreater(prom.value("containerd_tx_threads"), 1)

    def test_scraped_page_passes_promtool(self):
        """The live page, as the daemon serves it, passes promtool check metrics without a warning."""
        if not os.path.exists(PROMTOOL):
            self.skipTest(f"{PROMTOOL} missing (Debian package prometheus): run scripts/setup-system")
        container_id = unique_id("lint")
        self.start(container_id, "true")
        self.events.wait("exit", container_id, "init")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            page = response.read()
        result = subprocess.run([PROMTOOL, "check", "metrics"], input=page, capture_output=True, timeout=60)
        self.assertEqual((result.returncode, result.stdout, result.stderr), (0, b"", b""))
