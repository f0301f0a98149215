"""
Tests for C{ctr containers wait} (L{ctr.wait}) against the fake daemon of L{tests.unit.test_ctr_cli}.
"""

import threading
import time

import grpc

from containerd_tx.api import containerd_pb2 as pb
from tests.unit.test_ctr_cli import DaemonTestCase, _container


class WaitTests(DaemonTestCase):

    def exit_when_asked(self, container_id, pid, status):
        """Publish an exit event once ctr has asked for the state (so it is subscribed by then)."""
        def publish():
            deadline = time.monotonic() + 10
            while not self.api.requests_of("State") and time.monotonic() < deadline:
                time.sleep(0.01)
            self.api.publish(pb.Event(type="exit", id=container_id, pid=pid, status=status))
        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        self.addCleanup(thread.join)

    def test_waits_for_the_exit(self):
        """A running init: ctr blocks until its exit event and prints the status."""
        self.api.containers = [_container("web", "/b/web")]
        self.exit_when_asked("web", "init", 137)
        result = self.run_ctr("containers", "wait", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "137\n")
        [events] = self.api.requests_of("Events")
        self.assertTrue(events.HasField("timestamp"))
        self.assertEqual(events.id, "web")

    def test_other_process(self):
        """--pid waits for that process; exits of others are ignored."""
        self.api.containers = [_container("web", "/b/web", processes=(("init", 1, ["sh"]), ("job", 2, ["true"])))]

        def publish():
            deadline = time.monotonic() + 10
            while not self.api.requests_of("State") and time.monotonic() < deadline:
                time.sleep(0.01)
            self.api.publish(pb.Event(type="exit", id="web", pid="other", status=1))
            self.api.publish(pb.Event(type="exit", id="web", pid="job", status=3))
        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        self.addCleanup(thread.join)
        result = self.run_ctr("containers", "wait", "-p", "job", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "3\n")

    def test_already_exited(self):
        """A container that is gone: its status comes from the last stored exit of its init."""
        self.api.stored = [pb.Event(type="exit", id="web", pid="init", status=1),
                           pb.Event(type="exit", id="web", pid="init", status=0),
                           pb.Event(type="exit", id="web", pid="job", status=5)]
        for event in self.api.stored:
            event.timestamp.GetCurrentTime()
        result = self.run_ctr("containers", "wait", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "0\n")

    def _stored(self, *events):
        for event in events:
            event.timestamp.GetCurrentTime()
            self.api.stored.append(event)

    def test_stopped_with_exit_already_logged(self):
        """
        An init that exited before ctr subscribed, while its container is still listed (stopped, being
        deleted): the status comes from the log, from after the container's last start.
        """
        self.api.containers = [_container("web", "/b/web", status="stopped")]
        self._stored(pb.Event(type="exit", id="web", pid="init", status=3),
                     pb.Event(type="start-container", id="web", pid="init"),
                     pb.Event(type="exit", id="web", pid="init", status=137))
        result = self.run_ctr("containers", "wait", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "137\n")

    def test_stopped_exit_still_to_come(self):
        """
        A stopped container whose init exit is not logged yet (the daemon is reaping its execs): ctr waits
        for it on the stream, ignoring the exit of an earlier container with the same id.
        """
        self.api.containers = [_container("web", "/b/web", status="stopped")]
        self._stored(pb.Event(type="exit", id="web", pid="init", status=3),
                     pb.Event(type="start-container", id="web", pid="init"))
        self.exit_when_asked("web", "init", 9)
        result = self.run_ctr("containers", "wait", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "9\n")

    def test_unknown(self):
        """Neither running nor in the event log: one line, exit status 1."""
        result = self.run_ctr("containers", "wait", "ghost")
        self.assertEqual((result.exit_code, result.stdout, result.stderr),
                         (1, "", "ctr: container ghost not found\n"))
        result = self.run_ctr("containers", "wait", "-p", "job", "ghost")
        self.assertEqual(result.stderr, "ctr: process job of container ghost not found\n")

    def test_daemon_error(self):
        """An error other than NOT_FOUND from State is reported as it is."""
        self.api.fail = (grpc.StatusCode.UNAVAILABLE, "shutting down")
        result = self.run_ctr("containers", "wait", "web")
        self.assertEqual(result.exit_code, 1)
        self.assertIn("shutting down", result.stderr)
        self.assertEqual(len(result.stderr.splitlines()), 1)
