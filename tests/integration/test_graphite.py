"""
The Graphite reporter against a real Carbon: Debian's carbon-cache started on loopback with its own
config in a temp dir (1 s resolution), the points read back from its whisper files with whisper-fetch;
and Carbon going away and coming back while the reporter runs.
"""

import os
import shutil
import socket
import subprocess
import time

from twisted.internet import defer, reactor, task
from twisted.logger import Logger, LogLevel
from twisted.trial.unittest import TestCase

from tests.support.net import ReactorLag, free_port, wait_until
from tests.support.servers import ServerProcess
from containerd_tx.metrics import Metrics, process_gauges
from containerd_tx.metrics.graphite import GraphiteReporter

CARBON_CACHE = "/usr/bin/carbon-cache"
WHISPER_FETCH = "/usr/bin/whisper-fetch"
PREFIX = "containerd-tx.deathstar"

CARBON_CONF = """\
[cache]
STORAGE_DIR = {root}/storage/
LOCAL_DATA_DIR = {root}/storage/whisper/
WHITELISTS_DIR = {root}/storage/lists/
CONF_DIR = {root}/conf/
LOG_DIR = {root}/log/
PID_DIR = {root}/
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 10000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = 0
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = 0
ENABLE_TAGS = False
LOG_UPDATES = False
LOG_CREATES = False
WHISPER_AUTOFLUSH = True
"""

STORAGE_SCHEMAS = """\
[everything]
pattern = .*
retentions = 1s:1h
"""




def system_env():
    """The environment for Debian's python scripts: without this interpreter's (pyenv) settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "PYENV"))}
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    return env


class Carbon(ServerProcess):
    """A carbon-cache child process on a loopback port, with its config and data in C{root}."""

    def __init__(self, root, port):
        super().__init__(root, port, "carbon.out")
        for sub in ("conf", "storage/whisper", "storage/lists", "log"):
            os.makedirs(os.path.join(root, sub), exist_ok=True)
        self.config = os.path.join(root, "conf", "carbon.conf")
        with open(self.config, "w") as f:
            f.write(CARBON_CONF.format(root=root, port=port))
        with open(os.path.join(root, "conf", "storage-schemas.conf"), "w") as f:
            f.write(STORAGE_SCHEMAS)

    def start(self):
        self.spawn([CARBON_CACHE, f"--config={self.config}", f"--pidfile={self.root}/carbon.pid",
                    f"--logdir={self.root}/log", "--nodaemon", "start"], env=system_env())

    @defer.inlineCallbacks
    def wait_listening(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"carbon-cache exited with {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"carbon-cache did not listen on {self.port}:\n{self.log()}")
            yield task.deferLater(reactor, 0.1, lambda: None)

    def whisper_path(self, metric):
        return os.path.join(self.root, "storage", "whisper", *metric.split(".")) + ".wsp"

    def fetch(self, metric, since):
        """The (timestamp, value) points of C{metric} from C{since} on ([] while its file is missing)."""
        path = self.whisper_path(metric)
        if not os.path.exists(path):
            return []
        result = subprocess.run([WHISPER_FETCH, f"--from={int(since) - 2}", "--drop=nulls", path],
                                capture_output=True, text=True, env=system_env(), timeout=30)
        if result.returncode != 0:
            return []
        points = []
        for line in result.stdout.splitlines():
            stamp, value = line.split()
            points.append((int(stamp), float(value)))
        return points


class CarbonTestCase(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def setUp(self):
        if not os.path.exists(CARBON_CACHE):
            raise self.skipTest(f"{CARBON_CACHE} is missing: install Debian's graphite-carbon")
        if not os.path.exists(WHISPER_FETCH):
            raise self.skipTest(f"{WHISPER_FETCH} is missing: install Debian's python3-whisper")
        root = os.path.abspath(self.mktemp())
        self.carbon = Carbon(root, free_port())
        self.addCleanup(shutil.rmtree, root, True)
        self.addCleanup(self.carbon.stop)
        self.carbon.start()
        yield self.carbon.wait_listening()
        self.events = []
        self.metrics = Metrics(reactor)
        timer = self.metrics.timer("container-start-time")
        for seconds in (0.1, 0.2, 0.3):
            timer.update(seconds)
        self.metrics.counter("containers").inc(3)
        self.metrics.gauge("event-subscribers", lambda: 7)
        process_gauges(self.metrics)
        self.reporter = GraphiteReporter(self.metrics, ("127.0.0.1", self.carbon.port), PREFIX, 1,
                                         reactor=reactor,
                                         log=Logger(namespace="graphite", observer=self.events.append))

    def warnings(self):
        return [event for event in self.events if event["log_level"] == LogLevel.warn]

    @defer.inlineCallbacks
    def wait_points(self, metric, since, predicate=bool, timeout=30.0):
        """Poll whisper until C{predicate(points)} holds; returns the points."""
        deadline = time.monotonic() + timeout
        while True:
            points = self.carbon.fetch(metric, since)
            if points and predicate(points):
                return points
            if time.monotonic() > deadline:
                raise AssertionError(f"no points for {metric} in {timeout}s (got {points}):\n{self.carbon.log()}")
            yield task.deferLater(reactor, 0.25, lambda: None)


class GraphiteTests(CarbonTestCase):

    @defer.inlineCallbacks
    def test_points_reach_whisper(self):
        """Every kind of metric lands in its own whisper file, with the value the registry had."""
        since = time.time()
        self.reporter.startService()
        try:
            yield wait_until(lambda: self.reporter.sent >= 2, message="two reports sent")
        finally:
            yield self.reporter.stopService()
        self.assertGreaterEqual(self.reporter.sent, 2)
        self.assertEqual(self.warnings(), [])
        timer = f"{PREFIX}.container-start-time"
        expected = {"count": 3, "min": 100.0, "max": 300.0, "mean": 200.0, "median": 200.0, "p99": 300.0}
        for field, value in expected.items():
            points = yield self.wait_points(f"{timer}.{field}", since)
            for _, stored in points:
                self.assertAlmostEqual(stored, value, places=3, msg=field)
        for field in ("stddev", "p75", "p95", "p999", "m1_rate", "m5_rate", "m15_rate", "mean_rate"):
            yield self.wait_points(f"{timer}.{field}", since)
        points = yield self.wait_points(f"{PREFIX}.containers.count", since)
        self.assertEqual({value for _, value in points}, {3.0})
        points = yield self.wait_points(f"{PREFIX}.event-subscribers.value", since)
        self.assertEqual({value for _, value in points}, {7.0})
        yield self.wait_points(f"{PREFIX}.threads.value", since)
        yield self.wait_points(f"{PREFIX}.fds.value", since)
        self.assertTrue(os.path.exists(self.carbon.whisper_path(f"{timer}.count")))
        self.assertTrue(self.carbon.whisper_path(f"{timer}.count").endswith(
            "/whisper/containerd-tx/deathstar/container-start-time/count.wsp"))

    @defer.inlineCallbacks
    def test_carbon_down_and_back(self):
        """
        Carbon killed: the reporter goes on, one warning per interval, the reactor stays responsive;
        Carbon back on the same port: points arrive again.
        """
        lag = ReactorLag(0.02)
        self.addCleanup(lag.stop)
        self.reporter.startService()
        self.addCleanup(self.reporter.stopService)
        yield wait_until(lambda: self.reporter.sent >= 1, message="a report sent")
        self.carbon.stop()  # blocks this test's reactor while carbon shuts down: measure lags after it
        sent = self.reporter.sent
        lag.reset()
        yield wait_until(lambda: len(self.warnings()) >= 2, message="two warnings with carbon down")
        self.assertLessEqual(self.reporter.sent, sent + 1)  # one report may have raced the kill
        warnings = self.warnings()
        self.assertGreaterEqual(len(warnings), 2)
        self.assertEqual(len(warnings), self.reporter.failed)
        self.assertFalse(any("log_failure" in event for event in self.events))
        self.assertLess(max(lag.lags), 0.2)

        since = time.time()
        self.metrics.counter("containers").inc(2)
        self.carbon.start()
        yield self.carbon.wait_listening()
        points = yield self.wait_points(f"{PREFIX}.containers.count", since,
                                        predicate=lambda points: any(value == 5.0 for _, value in points))
        self.assertIn(5.0, {value for _, value in points})
        # Carbon back: the next reports succeed (two more sent, none failed meanwhile).
        failed, sent = self.reporter.failed, self.reporter.sent
        yield wait_until(lambda: self.reporter.sent >= sent + 2, message="two more reports sent")
        self.assertEqual(self.reporter.failed, failed)
        lag.stop()
