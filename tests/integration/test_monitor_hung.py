"""
A stopped monitor (SIGSTOP) under a real daemon with --start-timeout 3s: CreateContainer fails with
DEADLINE_EXCEEDED within about the start timeout (not the client's own deadline), the daemon keeps serving what
needs no monitor, nothing is left behind, and after SIGCONT the same id starts and is supervised.
"""

import os
import signal
import time

import grpc

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import processes
from tests.support.daemon import create_request, wait_for
from tests.support.ids import unique_id


class HungMonitorTests(LifecycleTestCase):

    daemon_args = ("--start-timeout", "3s")

    def test_sigstop(self):
        survivor = unique_id("hung-survivor")
        self.start(survivor, "sleep", "1000")
        monitor = self.daemon.monitor_pid()
        os.kill(monitor, signal.SIGSTOP)
        self.addCleanup(os.kill, monitor, signal.SIGCONT)
        container_id = unique_id("hung")
        bundle = self.bundle("sleep", "1000")
        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60)
        elapsed = time.monotonic() - started
        self.assertEqual(raised.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED, raised.exception.details())
        self.assertIn("monitor", raised.exception.details())
        print(f"\nCreateContainer with the monitor stopped failed after {elapsed:.2f}s (start timeout 3s)")
        self.assertLess(elapsed, 20.0)  # generous; without the fix only the client's 60 s deadline ends it
        # A pause needs the monitor (it runs runc pause): it fails the same way, at once while it is silent.
        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=survivor, pid="init", status="paused"),
                                             timeout=60)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        print(f"UpdateContainer (pause) with the monitor silent failed after {time.monotonic() - started:.2f}s")
        # What needs no monitor goes on.
        self.assertEqual(self.state_ids(), [survivor])
        os.kill(monitor, signal.SIGCONT)
        # Nothing of the failed create is left: not in the runtime, not in the state dir.
        self.assertNotIn(container_id, self.daemon.runtime_containers())
        self.assertFalse(os.path.exists(os.path.join(self.daemon.state_dir, "containers", container_id)))
        # After SIGCONT: the same id starts and is supervised; the survivor was not killed behind our back.
        container = wait_for(lambda: self._try_start(container_id, bundle), timeout=30, message="a create to work")
        self.assertEqual(self.daemon.runtime_containers(),
                         {survivor: "running", container_id: "running"})
        self.daemon.stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", container_id, "init").status, 137)
        self.assertEqual(self.daemon.monitor_pid(), monitor)
        self.assertEqual(processes.zombies(monitor), [])
        self.assertEqual(len(self.events.matching("exit", survivor)), 0)
        del container

    def _try_start(self, container_id, bundle):
        try:
            return self.daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60).container
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            return None
