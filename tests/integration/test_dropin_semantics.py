"""
containerd 0.2.9's semantics that its real clients (Docker Engine 1.11-17.09) rely on, on real runc containers:
an exited container is gone before its exit event goes out, start/pause/resume events carry no pid, Signal
errors racing an exit use 0.2.9's words, OOM events are on by default, streams end with a transport error when
the daemon stops, pre-rc5 configs are refused with a reason, and GetServerVersion names a revision.
"""

import os
import signal
import threading

import grpc
from twisted.trial.unittest import SkipTest

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import create_request, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id
from tests.support.processes import cgroup_file

HOG = ("sh", "-c", "exec dd if=/dev/zero of=/tmp/fill bs=1M count=200")
#: What Docker looks for in a Signal error to know the process is already gone (libcontainerd).
GONE_WORDS = ("no such process", "container not found")


class ExitRemovesFirstTests(LifecycleTestCase):
    """
    0.2.9 removes the container, then emits its exit: a client acting on the exit event finds the id free.
    """

    def test_create_same_id_right_after_exit_event(self):
        bundle = self.bundle("true")
        again = unique_id("again")
        stream = self.daemon.stub.Events(pb.EventsRequest(id=again))
        self.addCleanup(stream.cancel)
        self.daemon.stub.CreateContainer(create_request(again, bundle), timeout=60)
        refused = []
        exits = 0
        for event in stream:
            if event.type != "exit":
                continue
            exits += 1
            if exits > 10:
                break
            # At once, as Docker's restart does: the id must be free.
            try:
                self.daemon.stub.CreateContainer(create_request(again, bundle), timeout=60)
            except grpc.RpcError as e:
                refused.append((e.code(), e.details()))
                if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                wait_for(lambda: again not in self.state_ids(), message="again to go")
                self.daemon.stub.CreateContainer(create_request(again, bundle), timeout=60)
        self.assertEqual(refused, [])

    def test_gone_from_state_and_signal_at_exit_event(self):
        """
        At the moment the exit event arrives, State does not list the container and Signal answers NOT_FOUND
        with 0.2.9's words; State never shows the status "stopped".
        """
        bundle = self.bundle("true")
        seen_statuses = set()
        stop = threading.Event()

        def poll_state():
            while not stop.is_set():
                try:
                    state = self.daemon.stub.State(pb.StateRequest(), timeout=10)
                except grpc.RpcError:
                    continue
                seen_statuses.update(c.status for c in state.containers)

        poller = threading.Thread(target=poll_state, daemon=True)
        poller.start()
        self.addCleanup(poller.join, 10)
        self.addCleanup(stop.set)
        for round in range(5):
            container_id = unique_id(f"gone{round}")
            collector = EventCollector(self.daemon.stub, pb.EventsRequest(id=container_id))
            self.addCleanup(collector.close)
            self.daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60)
            collector.wait("exit", container_id, "init")
            self.assertEqual(
                [c.id for c in self.daemon.stub.State(pb.StateRequest(), timeout=10).containers
                 if c.id == container_id], [])
            with self.assertRaises(grpc.RpcError) as raised:
                self.daemon.stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=9), timeout=10)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)
            self.assertIn("container not found", raised.exception.details())
        stop.set()
        poller.join(10)
        self.assertNotIn("stopped", seen_statuses)


class EventPidTests(LifecycleTestCase):
    """start-container, pause and resume events carry an empty pid, as 0.2.9 sends them."""

    def test_start_pause_resume_pids_are_empty(self):
        quiet = unique_id("quiet")
        self.start(quiet, "sleep", "1000")
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=quiet, status="paused"), timeout=30)
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=quiet, status="running"), timeout=30)
        for kind in ("start-container", "pause", "resume"):
            event = self.events.wait(kind, quiet)
            self.assertEqual(event.pid, "", kind)


class CreateResponseTests(LifecycleTestCase):
    """CreateContainer answers the container with its init, without pids, as 0.2.9 does; State lists them."""

    def test_no_pids_in_create_response_pids_in_state(self):
        quiet = unique_id("quiet")
        container = self.start(quiet, "sleep", "1000")
        (init,) = container.processes
        self.assertEqual((container.id, init.pid, container.status), (quiet, "init", "running"))
        self.assertGreater(init.systemPid, 0)
        self.assertEqual(list(container.pids), [])
        (listed,) = self.daemon.stub.State(pb.StateRequest(id=quiet), timeout=30).containers
        self.assertEqual(list(listed.pids), [init.systemPid])


class SignalRacingExitTests(LifecycleTestCase):
    """A Signal that loses the race with an exit says so in the words Docker looks for."""

    def test_signal_after_exit_uses_docker_words(self):
        bundle = self.bundle("sh", "-c", "exit 0")
        for round in range(5):
            container_id = unique_id(f"racer{round}")
            self.daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60)
            while True:
                try:
                    self.daemon.stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=18), timeout=10)
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), grpc.StatusCode.NOT_FOUND, e.details())
                    self.assertTrue(any(words in e.details() for words in GONE_WORDS), e.details())
                    break

    def test_signal_to_gone_container_uses_docker_words(self):
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.Signal(pb.SignalRequest(id="ghost", pid="init", signal=9), timeout=10)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("container not found", raised.exception.details())


class OomByDefaultTests(LifecycleTestCase):
    """OOM events are reported with the daemon's default flags, as 0.2.9 always did."""

    def test_oom_event_without_any_flag(self):
        bundle = self.bundle(*HOG, memory_limit=32 * 1024 * 1024)
        hog = unique_id("hog")
        self.daemon.stub.CreateContainer(create_request(hog, bundle), timeout=60)
        self.assertEqual(self.events.wait("exit", hog, "init").status, 137)
        self.events.wait("oom", hog)


class OomNotifyStillAcceptedTests(LifecycleTestCase):
    daemon_args = ("--oom-notify",)

    def test_flag_accepted_and_reports(self):
        bundle = self.bundle(*HOG, memory_limit=32 * 1024 * 1024)
        hog = unique_id("hog")
        self.daemon.stub.CreateContainer(create_request(hog, bundle), timeout=60)
        self.events.wait("oom", hog)


class StreamsEndUnavailableTests(LifecycleTestCase):
    """On SIGTERM or SIGINT an Events stream ends with UNAVAILABLE, never a clean end."""

    def check_stop(self, sig):
        # A channel of its own: the test's is closed by Daemon.stop, which would cancel the stream.
        channel = grpc.insecure_channel(self.daemon.address)
        self.addCleanup(channel.close)
        collector = EventCollector(pb_grpc.APIStub(channel))
        self.addCleanup(collector.close)
        alive = unique_id("alive")
        self.start(alive, "sleep", "1000")
        collector.wait("start-container", alive)
        self.daemon.stop(sig)
        wait_for(lambda: not collector._thread.is_alive(), timeout=20, message="the stream to end")
        self.assertIsNotNone(collector.error, "the stream ended with status OK")
        self.assertEqual(collector.error.code(), grpc.StatusCode.UNAVAILABLE)
        # Left running, as always: the next daemon adopts it (and the clean-up removes it).
        self.daemon.start()

    def test_sigterm(self):
        self.check_stop(signal.SIGTERM)

    def test_sigint(self):
        self.check_stop(signal.SIGINT)


class PreRc5ConfigTests(LifecycleTestCase):
    """process.capabilities as a list (runtime-spec before 1.0.0-rc5) is refused with the form needed."""

    def test_capabilities_list(self):
        def old_form(config):
            config["process"]["capabilities"] = ["CAP_CHOWN", "CAP_KILL"]

        bundle = self.bundle("sleep", "1000", edit=old_form)
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.CreateContainer(create_request(unique_id("old"), bundle), timeout=60)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, raised.exception.details())
        self.assertIn("process.capabilities", raised.exception.details())
        self.assertIn("1.0.0-rc5", raised.exception.details())
        self.assertEqual(self.state_ids(), [])


class UpdateResourceTests(LifecycleTestCase):
    """UpdateResource's fields 19 and 20 reach the cgroup; an update with every field zero succeeds, as in 0.2.9."""

    def test_realtime_fields_reach_the_cgroup(self):
        if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
            raise SkipTest("this kernel has no real-time group scheduling (cpu.rt_runtime_us)")
        rt = unique_id("rt")
        pid = self.start(rt, "sleep", "1000").processes[0].systemPid
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(
            id=rt, resources=pb.UpdateResource(cpuRealtimePeriod=500000, cpuRealtimeRuntime=3000)), timeout=60)
        self.assertEqual((cgroup_file(pid, "cpu", "cpu.rt_period_us"), cgroup_file(pid, "cpu", "cpu.rt_runtime_us")),
                         ("500000", "3000"))

    def test_every_field_zero_changes_nothing(self):
        """What Docker 17.0x sends for `docker update --cpu-rt-*`: answered with success, nothing changed."""
        idle = unique_id("idle")
        pid = self.start(idle, "sleep", "1000").processes[0].systemPid
        before = {name: cgroup_file(pid, subsystem, name) for subsystem, name in
                  (("memory", "memory.limit_in_bytes"), ("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"))}
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=idle, resources=pb.UpdateResource()),
                                         timeout=60)
        self.assertEqual({name: cgroup_file(pid, subsystem, name) for subsystem, name in
                          (("memory", "memory.limit_in_bytes"), ("cpu", "cpu.shares"), ("cpu", "cpu.cfs_quota_us"))},
                         before)
        with self.assertRaises(grpc.RpcError) as caught:
            self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(
                id=unique_id("ghost"), resources=pb.UpdateResource()), timeout=60)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)


class ServerVersionTests(LifecycleTestCase):

    def test_revision_filled(self):
        version = self.daemon.stub.GetServerVersion(pb.GetServerVersionRequest(), timeout=10)
        self.assertNotEqual(version.revision, "")
        self.assertNotIn("\n", version.revision)
