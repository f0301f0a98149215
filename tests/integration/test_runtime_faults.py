"""
Runtime faults: a runtime that hangs past --start-timeout or fails gives a clear error, leaves no state, and the
next start works.
"""

import os
import time

import grpc

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import create_request, wait_for
from tests.support.ids import unique_id

HANGING_RUNTIME = """#!/bin/sh
# runc, except that `run` hangs forever.
for arg in "$@"; do
    if [ "$arg" = run ]; then exec sleep 1000; fi
done
exec runc "$@"
"""

FAILING_RUNTIME = """#!/bin/sh
# runc, except that `run` fails with a message.
for arg in "$@"; do
    if [ "$arg" = run ]; then echo "flaky-runtime: cannot start today" >&2; exit 3; fi
done
exec runc "$@"
"""


def _script(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


class StartTimeoutTests(LifecycleTestCase):

    daemon_args = ("--start-timeout", "1s")

    def test_hanging_runtime_times_out_and_next_start_works(self):
        hanging = _script(self.daemon.workdir, "hanging-runtime", HANGING_RUNTIME)
        bundle = self.bundle("sleep", "1000")
        slow = unique_id("slow")
        started = time.monotonic()
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.CreateContainer(create_request(slow, bundle, runtime=hanging), timeout=60)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertIn("within 1s", raised.exception.details())
        self.assertLess(time.monotonic() - started, 20)
        self.assertNotIn(slow, self.state_ids())
        # The records go on the state dir's writer thread, after the answer: gone, not necessarily at once.
        folder = os.path.join(self.daemon.state_dir, "containers", slow)
        wait_for(lambda: not os.path.exists(folder), timeout=30, message=f"{folder} to be removed")
        # No stuck supervisor task: the same id starts with the real runtime.
        container = self.daemon.stub.CreateContainer(create_request(slow, bundle), timeout=60).container
        self.assertEqual(container.status, "running")

    def test_failing_runtime_reports_its_words(self):
        failing = _script(self.daemon.workdir, "failing-runtime", FAILING_RUNTIME)
        bundle = self.bundle("sleep", "1000")
        f = unique_id("f")
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.CreateContainer(create_request(f, bundle, runtime=failing), timeout=60)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INTERNAL)
        self.assertIn("failed", raised.exception.details())
        self.assertNotIn(f, self.state_ids())
        container = self.daemon.stub.CreateContainer(create_request(f, bundle), timeout=60).container
        self.assertEqual(container.status, "running")
        state = self.daemon.stub.State(pb.StateRequest(), timeout=10)
        self.assertEqual([c.id for c in state.containers], [f])
