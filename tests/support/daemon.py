"""
A real daemon for integration and e2e tests: C{twistd -n containerd} as a subprocess on a temp state dir and
socket, a gRPC client for it, and clean-up that removes every container even when a test fails.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from containerd_tx import scratch
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from tests.support import bundles, processes, runtime_state

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


def wait_for(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Poll C{predicate} until it returns a true value (returned) or C{timeout} passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Daemon:
    """
    One daemon subprocess. Construct with L{Daemon.for_test}, which registers the clean-up.

    @ivar state_dir: its --state-dir.
    @ivar socket: its socket path.
    """

    def __init__(self, workdir, args=(), runtime="runc"):
        self.workdir = workdir
        self.state_dir = os.path.join(workdir, "state")
        self.socket = os.path.join(workdir, "containerd.sock")
        self.args = list(args)
        self.runtime = runtime
        self.process = None
        self.log_path = os.path.join(workdir, "daemon.log")
        self._channel = None
        self.stub = None
        self.starts = 0

    @classmethod
    def for_test(cls, testcase, args=(), start=True, runtime="runc", parent=None):
        """
        A daemon in a fresh temp dir (under C{parent}, default C{$TMPDIR} or /tmp), stopped and cleaned
        (containers, monitor, files) after the test.
        """
        reason = bundles.requirements_missing(runtime)
        if reason:
            from twisted.trial.unittest import SkipTest

            raise SkipTest(reason)
        processes.become_subreaper()
        workdir = tempfile.mkdtemp(prefix="ctx-test-", dir=parent)
        daemon = cls(workdir, args, runtime)
        testcase.addCleanup(daemon.destroy)
        if start:
            daemon.start()
        return daemon

    @property
    def address(self):
        """The address ctr and clients use."""
        return "unix://" + self.socket

    def command(self, extra=()):
        """The daemon's command line."""
        return [TWISTD, "-n", "--pidfile=", "containerd", "--state-dir", self.state_dir,
                "--listen", self.socket, "--metrics-interval", "0", "--runtime", self.runtime,
                *self.args, *extra]

    def start(self, extra=(), wait=True, env=None):
        """Start the daemon and wait until its health check says SERVING."""
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.process = subprocess.Popen(self.command(extra), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.workdir, env=env)
        log.close()
        self.starts += 1
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout=30.0):
        """Block until the daemon answers health checks with SERVING."""
        def serving():
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n{self.log_tail()}")
            return self.health() == health_pb2.HealthCheckResponse.SERVING

        wait_for(serving, timeout, message="the daemon to serve")
        self._connect()

    def health(self):
        """The health status, or None when nothing answers."""
        if not os.path.exists(self.socket):
            return None
        channel = grpc.insecure_channel(self.address)
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            return stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
        except grpc.RpcError:
            return None
        finally:
            channel.close()

    def _connect(self):
        if self._channel is not None:
            self._channel.close()
        self._channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.APIStub(self._channel)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Stop the daemon with C{sig}; return its exit status."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"daemon did not stop within {timeout}s after signal {sig}")

    def kill(self):
        """SIGKILL the daemon."""
        return self.stop(signal.SIGKILL)

    def log_tail(self, lines=40):
        """The end of the daemon's log, for failure messages."""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def log_text(self):
        """The daemon's whole log."""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    # Runtime-level views, for assertions that do not trust the daemon.

    def runtime_root(self):
        """The runtime's --root the daemon uses."""
        return os.path.join(self.state_dir, "runtime", os.path.basename(self.runtime))

    def runtime_containers(self):
        """Containers the runtime itself has (id -> status), also while the daemon deletes some."""
        return runtime_state.list_containers(self.runtime, self.runtime_root())

    def monitor_pid(self):
        """The monitor process's pid, or None."""
        try:
            with open(os.path.join(self.state_dir, "monitor.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def destroy(self):
        """Stop everything this daemon started and remove its files."""
        try:
            self.stop(signal.SIGKILL)
        finally:
            # Deletes the daemon had pending when it was killed are done here, or their cgroups stay for good.
            runtime_state.remove_all(self.runtime, self.runtime_root())
            monitor = self.monitor_pid()
            if monitor:
                _stop_monitor(monitor)
            # A monitor the killed daemon had just spawned has not written its pid yet; left alone, it would
            # make the state dir again after it is removed.
            for late in monitors_of(self.state_dir):
                _kill(late)
            processes.reap_orphans()
            # A killed daemon leaves its (empty) folder of scratch files on the tmpfs.
            folder = scratch.default_directory(self.state_dir)
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(self.workdir, ignore_errors=True)


def _stop_monitor(pid):
    """Let the monitor reap what the forced deletes killed, then end it and reap it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _children_of(pid):
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if processes.reap(pid) and not os.path.exists(f"/proc/{pid}"):
            return
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    processes.reap(pid)
                    return
        except OSError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    processes.reap(pid)


def monitors_of(state_dir):
    """The pids of the monitor processes (C{monitord.py --state-dir state_dir}) running now."""
    return processes.matching(
        lambda argv: any(arg.endswith("monitord.py") for arg in argv) and _option(argv, "--state-dir") == state_dir)


def _option(argv, name):
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[i + 1]
    return None


def _kill(pid):
    """SIGKILL a process and wait until it is gone (reaped, when it is our child or became one)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        wait_for(lambda: not processes.alive(pid), timeout=10, message=f"process {pid} to end")


def _children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


def create_request(container_id, bundle, **kw):
    """A CreateContainerRequest."""
    return pb.CreateContainerRequest(id=container_id, bundlePath=bundle, **kw)


class TmpfsStateDir:
    """
    Mixin for a test case with a C{workdir_parent} attribute and a C{self.daemon} made in C{setUp}: the test's
    folder goes on a tmpfs (skipped where there is none), and the daemon must say it writes its records inline
    there.
    """

    workdir_parent = "/dev/shm"

    def setUp(self):
        from twisted.trial.unittest import SkipTest

        from containerd_tx.state_store import filesystem_type

        if filesystem_type(self.workdir_parent) != "tmpfs":
            raise SkipTest(f"{self.workdir_parent} is not a tmpfs here")
        super().setUp()
        with open(self.daemon.log_path) as f:
            self.assertIn("records written inline", f.read())


def metric_value(port, name):
    """
    The value of an unlabelled sample C{name} on the Prometheus page a daemon serves on loopback C{port}
    (its C{--metrics-address}); AssertionError when the page has no such sample.
    """
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    if found is None:
        raise AssertionError(f"no {name} sample in /metrics")
    return float(found.group(1))
