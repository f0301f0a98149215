"""
The daemon as users run it: `twistd -n containerd` as a subprocess on a temp socket and state dir.
"""

import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.request

import grpc
from twisted.trial.unittest import TestCase

from containerd_tx import __version__
from containerd_tx.api import containerd_pb2 as pb
from grpc_health.v1 import health_pb2
from tests.support.daemon import Daemon, wait_for
from tests.support.net import free_port


class DaemonStartupTests(TestCase):
    """Start-up, socket and health."""

    def test_health_and_version(self):
        daemon = Daemon.for_test(self)
        self.assertEqual(daemon.health(), health_pb2.HealthCheckResponse.SERVING)
        version = daemon.stub.GetServerVersion(pb.GetServerVersionRequest(), timeout=5)
        self.assertEqual("%d.%d.%d" % (version.major, version.minor, version.patch), __version__)

    def test_socket_mode_and_state_dir_mode(self):
        daemon = Daemon.for_test(self)
        st = os.stat(daemon.socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        self.assertEqual(stat.S_IMODE(os.stat(daemon.state_dir).st_mode), 0o700)

    def test_second_daemon_on_same_socket_refused(self):
        first = Daemon.for_test(self)
        second = Daemon.for_test(self, start=False)
        second.socket = first.socket
        result = subprocess.run(second.command(), capture_output=True, text=True, timeout=60,
                                cwd=second.workdir)
        self.assertNotEqual(result.returncode, 0)
        output = result.stdout + result.stderr
        self.assertIn("another daemon is serving on", output)
        self.assertNotIn("Traceback", output)
        # The first one is untouched.
        self.assertEqual(first.health(), health_pb2.HealthCheckResponse.SERVING)

    def test_second_daemon_on_same_state_dir_refused(self):
        first = Daemon.for_test(self)
        second = Daemon.for_test(self, start=False)
        second.state_dir = first.state_dir
        result = subprocess.run(second.command(), capture_output=True, text=True, timeout=60,
                                cwd=second.workdir)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("another daemon is using the state dir", result.stdout + result.stderr)
        self.assertEqual(first.health(), health_pb2.HealthCheckResponse.SERVING)

    def test_stale_socket_replaced(self):
        daemon = Daemon.for_test(self, start=False)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(daemon.socket)
        stale.close()  # the file stays, nobody listens: a stale socket
        self.assertTrue(os.path.exists(daemon.socket))
        daemon.start()
        self.assertEqual(daemon.health(), health_pb2.HealthCheckResponse.SERVING)

    def test_listen_accepts_unix_url_with_relative_path(self):
        daemon = Daemon.for_test(self, start=False)
        daemon.socket = os.path.join(daemon.workdir, "rel.sock")
        daemon.args = []
        command = daemon.command()
        command[command.index("--listen") + 1] = "unix://rel.sock"
        log = open(daemon.log_path, "ab")
        daemon.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=daemon.workdir)
        log.close()
        daemon.wait_serving()
        self.assertEqual(daemon.health(), health_pb2.HealthCheckResponse.SERVING)


class SystemdNotifyTests(TestCase):

    def test_ready_sent_once_serving(self):
        daemon = Daemon.for_test(self, start=False)
        path = os.path.join(daemon.workdir, "notify.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(listener.close)
        listener.bind(path)
        listener.settimeout(30)
        daemon.start(wait=False, env={"NOTIFY_SOCKET": path})
        self.assertEqual(listener.recv(100), b"READY=1")
        # READY comes only once the API answers.
        self.assertEqual(daemon.health(), health_pb2.HealthCheckResponse.SERVING)
        daemon.wait_serving()
        self.assertEqual(daemon.stop(), 0)
        self.assertEqual(listener.recv(100), b"STOPPING=1")


class DaemonShutdownTests(TestCase):
    """SIGTERM and SIGINT stop the daemon cleanly, also with clients connected."""

    def _stop_with_stream_open(self, sig):
        port = free_port()
        daemon = Daemon.for_test(self, args=("--metrics-address", f"tcp:{port}:interface=127.0.0.1"))
        stream = daemon.stub.Events(pb.EventsRequest())
        received = []
        reader = threading.Thread(target=lambda: received.extend(_drain(stream)), daemon=True)
        reader.start()
        wait_for(lambda: _subscribers(port) == 1, message="the events stream to be subscribed")
        started = time.monotonic()
        status = daemon.stop(sig, timeout=10)
        elapsed = time.monotonic() - started
        self.assertEqual(status, 0, daemon.log_tail())
        self.assertLess(elapsed, 5.0, "shutdown took longer than 5 s")
        self.assertFalse(os.path.exists(daemon.socket), "socket file left behind")
        reader.join(5)
        self.assertFalse(reader.is_alive(), "the events stream was not ended")
        self.assertNotIn("Traceback", daemon.log_text())

    def test_sigterm(self):
        self._stop_with_stream_open(signal.SIGTERM)

    def test_sigint(self):
        self._stop_with_stream_open(signal.SIGINT)

    def test_restart_after_clean_stop(self):
        daemon = Daemon.for_test(self)
        self.assertEqual(daemon.stop(), 0)
        daemon.start()
        self.assertEqual(daemon.health(), health_pb2.HealthCheckResponse.SERVING)


def _drain(stream):
    items = []
    try:
        for item in stream:
            items.append(item)
    except grpc.RpcError:
        pass
    return items


def _subscribers(port):
    """The daemon's event subscriber count, from its Prometheus page."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return float(re.search(r"^containerd_tx_event_subscribers (\S+)$", text, re.M).group(1))
