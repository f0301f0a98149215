"""
OOM events, Stats and metrics through a real daemon: stdout reports, Prometheus, Graphite (real Carbon).
"""

import os
import re
import socket
import time

import grpc
import treq
from twisted.internet import defer, reactor
from twisted.web.client import HTTPConnectionPool

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_graphite import CARBON_CACHE, WHISPER_FETCH, Carbon
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import create_request, wait_for
from tests.support.ids import unique_id
from tests.support.net import free_port

METRIC_NAMES = ("container-start-time", "container-create-time", "container-delete-time", "container-stats-time",
                "exec-process-time", "exit-process-time", "containers", "events", "event-subscribers", "tasks",
                "threads", "fds")
HOG = ("sh", "-c", "exec dd if=/dev/zero of=/tmp/fill bs=1M count=200")
#: Burns one second of CPU time (its own utime + stime, fields 14 and 15 of /proc/self/stat, in clock ticks),
#: however long that takes on a busy machine; builtins only, so nothing else runs.
BURN_ONE_CPU_SECOND = (
    "while :; do read -r s < /proc/$$/stat; set -- $s; "
    f"[ $(( ${{14}} + ${{15}} )) -ge {os.sysconf('SC_CLK_TCK')} ] && break; done"
)


class OomTests(LifecycleTestCase):

    daemon_args = ("--oom-notify",)

    def test_oom_event_before_exit(self):
        bundle = self.bundle(*HOG, memory_limit=32 * 1024 * 1024)
        hog = unique_id("hog")
        self.daemon.stub.CreateContainer(create_request(hog, bundle), timeout=60)
        exit_event = self.events.wait("exit", hog, "init")
        oom = self.events.wait("oom", hog)
        self.assertEqual(exit_event.status, 137)
        self.barrier()  # a second OOM event, if any, has arrived
        kinds = [e.type for e in self.events.matching(id=hog)]
        self.assertLess(kinds.index("oom"), kinds.index("exit"), kinds)
        self.assertEqual(kinds.count("oom"), 1)
        self.assertGreater((exit_event.timestamp.seconds, exit_event.timestamp.nanos),
                           (oom.timestamp.seconds, oom.timestamp.nanos))

    def test_normal_exit_has_no_oom(self):
        bundle = self.bundle("sh", "-c", "exit 0", memory_limit=32 * 1024 * 1024)
        calm = unique_id("calm")
        self.daemon.stub.CreateContainer(create_request(calm, bundle), timeout=60)
        self.events.wait("exit", calm, "init")
        # Deleting the container removes its cgroup, which signals the OOM eventfd once more.
        wait_for(lambda: calm not in self.state_ids(), message="calm to be deleted")
        self.barrier()
        self.assertEqual(self.events.matching("oom"), [])


class NoOomNotifyTests(LifecycleTestCase):

    daemon_args = ("--no-oom-notify",)

    def test_no_oom_event_with_no_oom_notify(self):
        bundle = self.bundle(*HOG, memory_limit=32 * 1024 * 1024)
        hog = unique_id("hog")
        self.daemon.stub.CreateContainer(create_request(hog, bundle), timeout=60)
        self.assertEqual(self.events.wait("exit", hog, "init").status, 137)
        self.barrier()
        self.assertEqual(self.events.matching("oom"), [])


def with_loopback(config):
    for caps in config["process"]["capabilities"].values():
        caps.append("CAP_NET_ADMIN")


class StatsTests(LifecycleTestCase):

    def setUp(self):
        super().setUp()
        bundle = self.bundle("sh", "-c", "ip link set lo up; exec sleep 1000", edit=with_loopback)
        self.cid = unique_id("box")
        self.daemon.stub.CreateContainer(create_request(self.cid, bundle), timeout=60)

    def stats(self):
        return self.daemon.stub.Stats(pb.StatsRequest(id=self.cid), timeout=10)

    def run_in(self, pid, *args):
        self.daemon.stub.AddProcess(pb.AddProcessRequest(id=self.cid, pid=pid, args=args), timeout=60)
        return self.events.wait("exit", self.cid, pid, timeout=60).status

    def test_cpu_grows_by_the_time_burnt(self):
        before = self.stats().cgroup_stats.cpu_stats.cpu_usage.total_usage
        # One second of CPU time, not of wall time: a busy machine gives a burner less CPU per second.
        self.assertEqual(self.run_in("burn", "sh", "-c", BURN_ONE_CPU_SECOND), 0)
        after = self.stats()
        grown = after.cgroup_stats.cpu_stats.cpu_usage.total_usage - before
        self.assertGreater(grown, 0.5e9)
        self.assertLess(grown, 4e9)
        self.assertGreater(after.cgroup_stats.cpu_stats.system_usage, 0)
        self.assertEqual(len(after.cgroup_stats.cpu_stats.cpu_usage.percpu_usage), os.cpu_count())
        self.assertGreater(after.timestamp.seconds, 0)

    def test_memory_grows_with_tmpfs_file(self):
        before = self.stats().cgroup_stats.memory_stats.usage.usage
        self.assertEqual(self.run_in("fill", "dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=20"), 0)
        memory = self.stats().cgroup_stats.memory_stats
        self.assertGreater(memory.usage.usage - before, 15 * 1024 * 1024)
        self.assertIn("cache", memory.stats)

    def test_pids_match_processes(self):
        for i in range(3):
            self.daemon.stub.AddProcess(pb.AddProcessRequest(id=self.cid, pid=f"s{i}", args=["sleep", "1000"]),
                                        timeout=60)
        self.assertEqual(self.stats().cgroup_stats.pids_stats.current, 4)

    def test_network_counts_loopback_traffic(self):
        def lo():
            return next(n for n in self.stats().network_stats if n.name == "lo")
        before = lo()
        # busybox httpd listens before it returns (it daemonizes after binding): no wait for the server, and
        # the transfer ends when the file is sent, whatever the time it takes.
        self.assertEqual(self.run_in("net", "sh", "-c", "mkdir /tmp/www && dd if=/dev/zero of=/tmp/www/big bs=1k "
                                                       "count=200 && httpd -p 127.0.0.1:7000 -h /tmp/www && "
                                                       "wget -q -O /dev/null http://127.0.0.1:7000/big"), 0)
        after = lo()
        self.assertGreater(after.rx_bytes - before.rx_bytes, 200 * 1024)
        self.assertGreater(after.Tx_bytes - before.Tx_bytes, 200 * 1024)

    def test_unknown_container(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.Stats(pb.StatsRequest(id="ghost"), timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)


class StdoutReportTests(LifecycleTestCase):

    daemon_args = ("--metrics-interval", "1s")

    def test_every_metric_reported_each_interval(self):
        one = unique_id("one")
        self.start(one, "sleep", "1000")
        self.daemon.stub.Stats(pb.StatsRequest(id=one), timeout=10)
        wait_for(lambda: all(f" {name}" in self.daemon.log_text() for name in METRIC_NAMES), timeout=10,
                 message="every metric name in the stdout report")
        log = self.daemon.log_text()
        self.assertRegex(log, r"counter containers|gauge containers")
        self.assertRegex(log, r"count:\s+1")
        reports = len(re.findall(r"timer container-start-time", log))
        wait_for(lambda: len(re.findall(r"timer container-start-time", self.daemon.log_text())) >= reports + 2,
                 timeout=30, message="two more reports")


class PrometheusTests(LifecycleTestCase):

    def setUp(self):
        self.port = free_port()
        self.daemon_args = ("--metrics-address", f"tcp:{self.port}:interface=127.0.0.1")
        super().setUp()
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    @defer.inlineCallbacks
    def test_scrape_matches_daemon_state(self):
        for i in range(2):
            self.start(unique_id(f"p{i}"), "sleep", "1000")
        response = yield treq.get(f"http://127.0.0.1:{self.port}/metrics", pool=self.pool)
        self.assertEqual(response.code, 200)
        text = yield response.text()
        values = dict(re.findall(r"^(containerd_tx_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", text, re.M))
        self.assertEqual(float(values["containerd_tx_containers"]), 2.0)
        self.assertEqual(float(values["containerd_tx_container_start_time_seconds_count"]), 2.0)
        self.assertGreater(float(values["containerd_tx_threads"]), 1)
        self.assertEqual(float(values['containerd_tx_container_start_time_seconds_bucket{le="+Inf"}']), 2.0)
        health = yield treq.get(f"http://127.0.0.1:{self.port}/healthz", pool=self.pool)
        self.assertEqual(health.code, 200)
        self.assertEqual((yield health.text()).strip(), "ok")


class GraphiteDaemonTests(LifecycleTestCase):

    def setUp(self):
        if not (os.path.exists(CARBON_CACHE) and os.path.exists(WHISPER_FETCH)):
            self.skipTest("graphite-carbon / python3-whisper missing: run scripts/setup-system")
        root = os.path.abspath(self.mktemp())
        self.carbon = Carbon(root, free_port())
        self.addCleanup(self.carbon.stop)
        self.carbon.start()
        wait_for(lambda: _listening(self.carbon.port), timeout=30, message="carbon to listen")
        self.daemon_args = ("--graphite-address", f"127.0.0.1:{self.carbon.port}", "--metrics-interval", "1s",
                            "--id", "probe")
        super().setUp()

    def test_metrics_reach_carbon(self):
        since = time.time()
        for i in range(2):
            self.start(unique_id(f"g{i}"), "sleep", "1000")
        prefix = "containerd-tx.probe."

        def latest(metric):
            points = self.carbon.fetch(prefix + metric, since)
            return points[-1][1] if points else None

        wait_for(lambda: latest("container-start-time.count") == 2.0, timeout=30,
                 message="container-start-time.count = 2 in whisper")
        wait_for(lambda: latest("containers.value") == 2.0, timeout=30, message="containers = 2 in whisper")
        self.assertGreater(latest("container-start-time.max"), 0)


class GraphiteDownTests(LifecycleTestCase):

    def setUp(self):
        self.daemon_args = ("--graphite-address", f"127.0.0.1:{free_port()}", "--metrics-interval", "1s")
        self.started = time.monotonic()
        super().setUp()

    def warnings(self):
        log = self.daemon.log_text()
        return [line for line in log.splitlines() if "warn" in line.lower() and "graphite" in line.lower()]

    def test_dead_carbon_never_hurts_the_daemon(self):
        wait_for(lambda: len(self.warnings()) >= 3, timeout=60, message="three graphite warnings")
        alive = unique_id("alive")
        container = self.start(alive, "sh", "-c", "exit 2")
        self.assertEqual(self.events.wait("exit", alive).status, 2)
        log = self.daemon.log_text()
        warnings = self.warnings()
        # One warning per 1 s interval, not more (the count is checked against the intervals that passed, as
        # a loaded machine may take longer to get to three).
        intervals = time.monotonic() - self.started
        self.assertLessEqual(len(warnings), intervals + 2, "\n".join(warnings))
        self.assertNotIn("Traceback", log)
        self.assertEqual(container.status, "running")


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False
