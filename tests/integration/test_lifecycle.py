"""
Container lifecycle on real runc through the real gRPC API: create, exit statuses, stdio, signals, state.
"""

import os
import re
import threading
import time

import grpc
from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from tests.support import bundles, processes
from tests.support.daemon import Daemon, create_request, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id


class LifecycleTestCase(TestCase):
    """A daemon, a shared busybox rootfs and bundle making per test."""

    daemon_args = ()
    runtime = "runc"
    #: Where the test's folder (state dir, bundles) goes; None for $TMPDIR or /tmp.
    workdir_parent = None

    def setUp(self):
        self.daemon = Daemon.for_test(self, args=self.daemon_args, runtime=self.runtime,
                                      parent=self.workdir_parent)
        self.rootfs = bundles.make_rootfs(os.path.join(self.daemon.workdir, "rootfs"))
        self.events = EventCollector(self.daemon.stub)
        self.addCleanup(self.events.close)
        self._bundles = 0

    def bundle(self, *args, **kw):
        """A new bundle running C{args}."""
        self._bundles += 1
        path = os.path.join(self.daemon.workdir, f"bundle{self._bundles}")
        return bundles.make_bundle(path, args, self.rootfs, **kw)

    def fifo(self, name):
        """A FIFO in the test's dir."""
        path = os.path.join(self.daemon.workdir, name)
        os.mkfifo(path)
        return path

    def start(self, container_id, *args, **request):
        """Create a container running C{args}; return the response's container."""
        bundle = self.bundle(*args)
        response = self.daemon.stub.CreateContainer(create_request(container_id, bundle, **request), timeout=60)
        return response.container

    def assertStatus(self, code, call, request, contains=""):
        """
        C{call(request)} fails with status C{code} and a one-line message (no traceback) containing
        C{contains}; @return: the message.
        """
        with self.assertRaises(grpc.RpcError) as raised:
            call(request, timeout=60)
        error = raised.exception
        self.assertEqual(error.code(), code, error.details())
        self.assertNotIn("\n", error.details())
        self.assertNotIn("Traceback", error.details())
        self.assertIn(contains, error.details())
        return error.details()

    def state_ids(self):
        return sorted(c.id for c in self.daemon.stub.State(pb.StateRequest(), timeout=10).containers)

    def barrier(self):
        """
        Run a container that exits at once and wait for its exit event; return its id. The daemon sends events
        in order, so every event that what the test did before would cause has reached C{self.events} by then:
        a check that something did I{not} happen waits on this, not on a sleep.
        """
        container_id = unique_id("barrier")
        self.start(container_id, "true")
        self.events.wait("exit", container_id, "init")
        return container_id


class ExitStatusTests(LifecycleTestCase):

    def test_exit_code_reported(self):
        exit7 = unique_id("exit7")
        container = self.start(exit7, "sh", "-c", "exit 7")
        self.assertEqual(container.status, "running")
        self.assertEqual(container.processes[0].pid, "init")
        self.assertGreater(container.processes[0].systemPid, 0)
        event = self.events.wait("exit", exit7, "init")
        self.assertEqual(event.status, 7)
        self.assertGreater(event.timestamp.seconds, 0)
        wait_for(lambda: exit7 not in self.state_ids(), message="exit7 to leave State")
        wait_for(lambda: exit7 not in self.daemon.runtime_containers(), message="runtime delete")

    def test_sigkill_reports_137(self):
        sleeper = unique_id("sleeper")
        self.start(sleeper, "sleep", "1000")
        self.assertIn(sleeper, self.state_ids())
        self.daemon.stub.Signal(pb.SignalRequest(id=sleeper, pid="init", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", sleeper, "init").status, 137)
        wait_for(lambda: sleeper not in self.state_ids(), message="sleeper to leave State")

    def test_start_event_and_state(self):
        st = unique_id("st")
        container = self.start(st, "sleep", "1000", labels=["a=b", "c"])
        self.events.wait("start-container", st, "")
        state = self.daemon.stub.State(pb.StateRequest(id=st), timeout=10)
        (listed,) = state.containers
        self.assertEqual(listed.status, "running")
        self.assertEqual(list(listed.labels), ["a=b", "c"])
        self.assertEqual(listed.runtime, "runc")
        self.assertIn(container.processes[0].systemPid, list(listed.pids))
        self.assertEqual(list(listed.processes[0].args), ["sleep", "1000"])
        self.assertEqual(state.machine.cpus, os.cpu_count())
        self.assertGreater(state.machine.memory, 0)


class StdioTests(LifecycleTestCase):

    def test_stdout_fifo_byte_exact(self):
        stdout = self.fifo("out")
        reader = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        payload = "hello \\001\\377 world\\n"
        echo = unique_id("echo")
        self.start(echo, "printf", payload, stdout=stdout)
        self.events.wait("exit", echo, "init")
        data = _read_until_eof(reader)
        self.assertEqual(data, b"hello \x01\xff world\n")

    def test_stdin_fifo_reaches_process(self):
        stdin, stdout = self.fifo("in"), self.fifo("out")
        reader = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        writer = os.open(stdin, os.O_RDWR)
        self.addCleanup(os.close, writer)
        reader_id = unique_id("reader")
        self.start(reader_id, "sh", "-c", "read line; echo got:$line", stdin=stdin, stdout=stdout)
        os.write(writer, b"ping\n")
        self.assertEqual(self.events.wait("exit", reader_id, "init").status, 0)
        self.assertEqual(_read_until_eof(reader), b"got:ping\n")

    def test_stdout_and_stderr_to_files(self):
        out, err = (os.path.join(self.daemon.workdir, n) for n in ("out.txt", "err.txt"))
        files = unique_id("files")
        self.start(files, "sh", "-c", "echo to-out; echo to-err >&2", stdout=out, stderr=err)
        self.events.wait("exit", files, "init")
        with open(out) as f:
            self.assertEqual(f.read(), "to-out\n")
        with open(err) as f:
            self.assertEqual(f.read(), "to-err\n")

    def test_unread_stdout_does_not_block_others(self):
        stdout = self.fifo("never-read")
        chatty, other = unique_id("chatty"), unique_id("other")
        pid = self.start(chatty, "yes", "0123456789abcdef", stdout=stdout).processes[0].systemPid
        # The chatty container fills its pipe and blocks writing to it; everything else goes on.
        wait_for(lambda: _blocked_writing_a_pipe(pid), message="yes to block on its full stdout pipe")
        self.start(other, "sh", "-c", "exit 3")
        self.assertEqual(self.events.wait("exit", other, "init").status, 3)
        self.assertIn(chatty, self.state_ids())
        self.assertTrue(_blocked_writing_a_pipe(pid), "yes no longer blocked on its pipe")


class ConcurrencyTests(LifecycleTestCase):

    daemon_args = ("--concurrency", "3", "--debug")

    def test_fifty_concurrent_starts(self):
        errors = []
        ids = [unique_id(f"c{i}") for i in range(50)]
        bundle = self.bundle("sleep", "1000")

        def create(i):
            try:
                self.daemon.stub.CreateContainer(create_request(ids[i], bundle), timeout=120)
            except grpc.RpcError as e:
                errors.append(e)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        self.assertEqual(errors, [])
        state = self.daemon.stub.State(pb.StateRequest(), timeout=10)
        self.assertEqual(sorted(c.id for c in state.containers), sorted(ids))
        self.assertTrue(all(c.status == "running" for c in state.containers))
        # The runtime driver itself reports how many starts it had in flight (under --debug).
        counts = [int(m) for m in re.findall(r"starts in flight, most at once so far (\d+)",
                                             self.daemon.log_text())]
        self.assertEqual(len(counts), 50)
        self.assertEqual(max(counts), 3)


class ZombieTests(LifecycleTestCase):

    def test_no_zombies_or_runtime_state_after_fifty_exits(self):
        before = set(processes.zombies())
        bundle = self.bundle("true")
        ids = [unique_id(f"z{i}") for i in range(50)]
        for container_id in ids:
            self.daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60)
        for container_id in ids:
            self.events.wait("exit", container_id, "init", timeout=60)
        wait_for(lambda: not self.state_ids(), timeout=30, message="all containers to leave State")
        wait_for(lambda: not self.daemon.runtime_containers(), timeout=30, message="runtime state removed")
        monitor = self.daemon.monitor_pid()
        self.assertEqual(processes.zombie_children(monitor), [])
        wait_for(lambda: set(processes.zombies()) <= before, timeout=10, message="no new zombies")
        leftovers = [n for n in os.listdir(os.path.join(self.daemon.state_dir, "containers"))]
        self.assertEqual(leftovers, [])


def _read_until_eof(fd, timeout=10.0):
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"no EOF within {timeout}s; read {data!r}")


def _blocked_writing_a_pipe(pid):
    """Whether process C{pid} sleeps in the kernel's pipe write (its pipe is full and nobody reads)."""
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read().strip().endswith("pipe_write")
    except OSError:
        return False
