"""
Containers outlive the daemon: a restarted daemon adopts them and reports exits that happened meanwhile.
"""

import os
import signal


from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import processes
from tests.support.daemon import TmpfsStateDir, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id

TRAP_42 = ("sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done")


_alive = processes.alive


class RestartTests(LifecycleTestCase):

    def _survive(self, sig):
        pids = {}
        sleepers = sorted(unique_id(f"s{i}") for i in range(4))
        trapper = unique_id("trapper")
        for container_id in sleepers:
            pids[container_id] = self.start(container_id, "sleep", "1000").processes[0].systemPid
        pids[trapper] = self.start(trapper, *TRAP_42).processes[0].systemPid
        self.events.close()
        self.daemon.stop(sig)
        # Every container keeps running without the daemon.
        runtime = self.daemon.runtime_containers()
        for container_id, pid in pids.items():
            self.assertTrue(_alive(pid), f"{container_id} died with the daemon")
            self.assertEqual(runtime.get(container_id), "running")
        # One exits while nobody serves.
        os.kill(pids[trapper], signal.SIGTERM)
        wait_for(lambda: not _alive(pids[trapper]), message="trapper to exit")
        self.daemon.start()
        events = EventCollector(self.daemon.stub, pb.EventsRequest(timestamp={"seconds": 1}))
        self.addCleanup(events.close)
        self.assertEqual(events.wait("exit", trapper, "init").status, 42)
        wait_for(lambda: self.state_ids() == sleepers, message="the four sleepers in State")
        state = self.daemon.stub.State(pb.StateRequest(), timeout=10)
        for container in state.containers:
            self.assertEqual(container.status, "running")
            self.assertEqual(container.processes[0].systemPid, pids[container.id])
        # Adopted containers are supervised like new ones.
        self.daemon.stub.Signal(pb.SignalRequest(id=sleepers[0], pid="init", signal=9), timeout=10)
        self.assertEqual(events.wait("exit", sleepers[0], "init").status, 137)
        wait_for(lambda: self.state_ids() == sleepers[1:], message="s0 to leave State")
        self.assertEqual(len(events.matching("exit", trapper)), 1)

    def test_survive_sigkill(self):
        self._survive(signal.SIGKILL)

    def test_survive_sigterm(self):
        self._survive(signal.SIGTERM)

    def test_events_resume_across_restart(self):
        a, b = unique_id("a"), unique_id("b")
        self.start(a, *TRAP_42)
        b_pid = self.start(b, "sleep", "1000").processes[0].systemPid
        last = self.events.wait("start-container", b)
        self.events.close()
        self.daemon.stop(signal.SIGKILL)
        os.kill(b_pid, signal.SIGKILL)
        wait_for(lambda: not _alive(b_pid), message="b to exit")
        self.daemon.start()
        resumed = EventCollector(self.daemon.stub, pb.EventsRequest(timestamp=last.timestamp))
        self.addCleanup(resumed.close)
        self.assertEqual(resumed.wait("exit", b, "init").status, 137)
        self.daemon.stub.Signal(pb.SignalRequest(id=a, pid="init", signal=15), timeout=10)
        self.assertEqual(resumed.wait("exit", a, "init").status, 42)
        seen = [(e.type, e.id) for e in resumed.events]
        self.assertEqual(seen, [("exit", b), ("exit", a)])
        stamps = [(e.timestamp.seconds, e.timestamp.nanos) for e in resumed.events]
        self.assertEqual(stamps, sorted(set(stamps)))
        self.assertGreater(stamps[0], (last.timestamp.seconds, last.timestamp.nanos))

    def test_stored_only_replay(self):
        r = unique_id("r")
        self.start(r, "sh", "-c", "exit 5")
        self.events.wait("exit", r)
        replay = EventCollector(self.daemon.stub, pb.EventsRequest(timestamp={"seconds": 1}, storedOnly=True,
                                                                   id=r))
        self.addCleanup(replay.close)
        replay._thread.join(10)
        self.assertFalse(replay._thread.is_alive(), "storedOnly stream did not end")
        self.assertEqual([(e.type, e.pid, e.status) for e in replay.events],
                         [("start-container", "", 0), ("exit", "init", 5)])


class TmpfsRestartTests(TmpfsStateDir, RestartTests):
    """
    The same with the state dir on a tmpfs (as /run/containerd is on a systemd host), where the daemon writes
    its records inline instead of through the writer thread.
    """
