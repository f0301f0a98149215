"""
Tests for L{ctr.client}: addresses, and what ctr says when no daemon answers.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from grpc_health.v1 import health_pb2
from twisted.trial.unittest import TestCase

from containerd_tx import __version__, addresses
from ctr import client
from ctr.main import ctr
from tests.unit.test_ctr_cli import FakeDaemon, invoke

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The uid and gid a test drops to ("nobody").
NOBODY = 65534

#: Run a command as NOBODY, without groups, through setpriv. The only capability kept is CAP_DAC_READ_SEARCH,
#: so that the interpreter and its packages can be read wherever they are (under /root, say); it gives no
#: right to write to, and so to connect to, a socket.
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "--inh-caps=-all,+dac_read_search", "--ambient-caps=+dac_read_search"]


class ParseAddressTests(TestCase):
    def test_forms(self):
        cases = {
            "unix:///run/containerd/containerd.sock": ("/run/containerd/containerd.sock",
                                                       "unix:///run/containerd/containerd.sock"),
            "unix://run/c.sock": ("run/c.sock", "unix://run/c.sock"),
            "unix:rel.sock": ("rel.sock", "unix://rel.sock"),
            "/tmp/c.sock": ("/tmp/c.sock", "unix:///tmp/c.sock"),
            "c.sock": ("c.sock", "unix://c.sock"),
        }
        for text, (path, display) in cases.items():
            address = client.parse_address(text)
            self.assertEqual((address.path, address.display, address.target), (path, display, "unix:" + path))

    def test_rejected(self):
        for text in ("tcp://127.0.0.1:7000", "unix://", ""):
            self.assertRaises(ValueError, client.parse_address, text)


class DescribeRpcErrorTests(TestCase):
    def test_detailsOrCode(self):
        class Error(grpc.RpcError):
            def __init__(self, details):
                self._details = details

            def code(self):
                return grpc.StatusCode.DEADLINE_EXCEEDED

            def details(self):
                return self._details

        self.assertEqual(client.describe_rpc_error(Error("a\n  b")), "a b")
        self.assertEqual(client.describe_rpc_error(Error("")), "DEADLINE_EXCEEDED")


class NoDaemonTests(TestCase):
    """Nobody answering is one line on stderr and exit status 1, without a traceback."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ctr-test-")
        self.addCleanup(shutil.rmtree, self.dir)
        self.path = os.path.join(self.dir, "containerd.sock")

    def assertCannotConnect(self, result, display, reason="is the daemon running?"):
        self.assertEqual(result.exit_code, 1, result.output)
        self.assertEqual(result.stderr, f"ctr: cannot connect to containerd at {display}: {reason}\n")
        self.assertNotIn("Traceback", result.output)

    def test_missingSocket(self):
        started = time.monotonic()
        for command in (["containers"], ["containers", "kill", "web"], ["events"], ["state"]):
            result = invoke(["--address", self.path] + command)
            self.assertCannotConnect(result, "unix://" + self.path)
        self.assertLess(time.monotonic() - started, 3, "a missing socket should fail at once")

    def test_defaultAddress(self):
        """
        Without --address or CONTAINERD_ADDRESS, ctr dials the default address (pointed here at a scratch
        path, so that a daemon of this machine cannot answer), which is containerd 0.2's.
        """
        self.assertEqual(client.DEFAULT_ADDRESS, "unix:///run/containerd/containerd.sock")
        self.assertEqual(client.DEFAULT_ADDRESS, "unix://" + addresses.DEFAULT_SOCKET)
        [option] = [p for p in ctr.params if p.name == "address"]
        self.assertEqual(option.default, client.DEFAULT_ADDRESS)
        self.patch(option, "default", "unix://" + self.path)
        result = invoke(["containers"])
        self.assertCannotConnect(result, "unix://" + self.path)

    def test_versionPrintsClientFirst(self):
        result = invoke(["--address", "unix://" + self.path, "version"])
        self.assertCannotConnect(result, "unix://" + self.path)
        self.assertEqual(result.stdout, f"Client: {__version__}\n")

    def test_refused(self):
        """A socket file with nobody listening (a daemon that died) is refused at once."""
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.path)
        self.addCleanup(stale.close)
        started = time.monotonic()
        result = invoke(["--address", "unix://" + self.path, "containers"])
        self.assertCannotConnect(result, "unix://" + self.path)
        self.assertLess(time.monotonic() - started, 3)

    def test_notServing(self):
        """A daemon whose health is NOT_SERVING for the whole connect timeout is not connected to."""
        daemon = FakeDaemon()
        self.addCleanup(daemon.stop)
        daemon.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        started = time.monotonic()
        result = invoke(["--address", daemon.address, "--connect-timeout", "300ms", "containers"])
        self.assertCannotConnect(result, daemon.address)
        self.assertGreaterEqual(time.monotonic() - started, 0.3)
        self.assertEqual(daemon.api.requests, [])

    def test_becomesServing(self):
        """Health turning SERVING within the timeout is waited for."""
        daemon = FakeDaemon()
        self.addCleanup(daemon.stop)
        daemon.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        timer = threading.Timer(0.3, daemon.health.set, ("", health_pb2.HealthCheckResponse.SERVING))
        timer.start()
        self.addCleanup(timer.cancel)
        result = invoke(["--address", daemon.address, "--connect-timeout", "5s", "containers", "-q"])
        self.assertEqual((result.exit_code, result.stderr), (0, ""))
        self.assertEqual([name for name, _ in daemon.api.requests], ["State"])

    def test_noHealthService(self):
        """A server without the health service is not taken for the daemon."""
        daemon = FakeDaemon(serve_health=False)
        self.addCleanup(daemon.stop)
        result = invoke(["--address", daemon.address, "version"])
        self.assertCannotConnect(result, daemon.address)
        self.assertEqual(daemon.api.requests, [])

    def run_unprivileged(self, *args):
        """Run ctr as uid/gid NOBODY without groups (root connects whatever the socket's mode)."""
        command = (AS_NOBODY if os.geteuid() == 0 else []) + [sys.executable, "-m", "ctr.main"]
        env = {k: v for k, v in os.environ.items() if k != "CONTAINERD_ADDRESS"}
        env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return subprocess.run(command + list(args), capture_output=True, text=True, timeout=60, cwd="/",
                              env=env, stdin=subprocess.DEVNULL)

    def test_permissionDenied(self):
        """A socket the user may not write to is one line, "permission denied", and exit status 1."""
        daemon = FakeDaemon()
        self.addCleanup(daemon.stop)
        os.chmod(daemon.dir, 0o755)
        os.chmod(daemon.path, 0o660)  # root's, as the daemon's socket without --group
        done = self.run_unprivileged("--address", daemon.address, "containers")
        self.assertEqual((done.returncode, done.stdout, done.stderr),
                         (1, "", f"ctr: cannot connect to containerd at {daemon.address}: permission denied\n"))
        self.assertEqual(daemon.api.requests, [])
        if os.geteuid() == 0:
            # The same unprivileged process is let in once the mode allows it: the refusal was the mode's.
            os.chmod(daemon.path, 0o666)
            done = self.run_unprivileged("--address", daemon.address, "containers", "-q")
            self.assertEqual((done.returncode, done.stderr), (0, ""))
            self.assertEqual([name for name, _ in daemon.api.requests], ["State"])


class AddressEnvironmentTests(TestCase):
    """CONTAINERD_ADDRESS sets the address; --address wins over it."""

    def setUp(self):
        self.daemon = FakeDaemon()
        self.addCleanup(self.daemon.stop)
        self.missing = os.path.join(self.daemon.dir, "missing.sock")

    def test_envHonoured(self):
        result = invoke(["containers", "kill", "web"], env={"CONTAINERD_ADDRESS": self.daemon.path})
        self.assertEqual((result.exit_code, result.stderr), (0, ""))
        self.assertEqual([name for name, _ in self.daemon.api.requests], ["Signal"])

    def test_envInMessage(self):
        result = invoke(["containers"], env={"CONTAINERD_ADDRESS": "unix://" + self.missing})
        self.assertEqual(result.stderr,
                         f"ctr: cannot connect to containerd at unix://{self.missing}: is the daemon running?\n")

    def test_flagBeatsEnv(self):
        result = invoke(["--address", self.daemon.address, "containers", "kill", "web"],
                        env={"CONTAINERD_ADDRESS": self.missing})
        self.assertEqual((result.exit_code, result.stderr), (0, ""))
        self.assertEqual(len(self.daemon.api.requests), 1)

    def test_relativeAddress(self):
        cwd = os.getcwd()
        os.chdir(self.daemon.dir)
        self.addCleanup(os.chdir, cwd)
        result = invoke(["--address", "unix://containerd.sock", "containers", "kill", "web"])
        self.assertEqual((result.exit_code, result.stderr), (0, ""))
        self.assertEqual(len(self.daemon.api.requests), 1)
