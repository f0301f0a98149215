"""
ENOSPC while the daemon is down, with real runc: the records folder is a size-limited tmpfs, filled up; a
container killed meanwhile cannot get its exit record written. The monitor keeps the record in memory and
hands it to the next daemon, which reports the true status once.
"""

import os
import signal
import subprocess

from twisted.trial.unittest import SkipTest, TestCase

from containerd_tx.api import containerd_pb2 as pb
from tests.support import bundles, processes
from tests.support.daemon import Daemon, create_request, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id
from tests.unit.test_monitor_records import fill


class DiskFullTests(TestCase):

    def test_exit_while_daemon_down_and_disk_full(self):
        daemon = Daemon.for_test(self, start=False)
        records = os.path.join(daemon.state_dir, "containers")
        os.makedirs(records)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "none", records], capture_output=True)
        if result.returncode != 0:
            raise SkipTest(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")
        # Cleanups run last first: this one after the daemon's destroy.
        self.addCleanup(subprocess.run, ["umount", "-l", records])
        daemon.start()
        rootfs = bundles.make_rootfs(os.path.join(daemon.workdir, "rootfs"))
        bundle = bundles.make_bundle(os.path.join(daemon.workdir, "b"), ["sleep", "1000"], rootfs)
        victim, survivor = unique_id("disk-full"), unique_id("disk-full-alive")
        pid = daemon.stub.CreateContainer(create_request(victim, bundle), timeout=60).container.processes[0].systemPid
        daemon.stub.CreateContainer(create_request(survivor, bundle), timeout=60)
        monitor = daemon.monitor_pid()
        daemon.stop(signal.SIGKILL)
        filler = fill(records)
        os.kill(pid, signal.SIGKILL)
        log = os.path.join(daemon.state_dir, "monitor.log")
        wait_for(lambda: "kept in memory for the daemon" in open(log).read(), message="the monitor to keep it")
        self.assertFalse(os.path.exists(os.path.join(records, victim, "exit-init.json")))
        # The next daemon starts on the still full disk.
        daemon.start()
        self.assertEqual(daemon.monitor_pid(), monitor)
        events = EventCollector(daemon.stub, pb.EventsRequest(timestamp={"seconds": 1}))
        self.addCleanup(events.close)
        self.assertEqual(events.wait("exit", victim, "init").status, 137)
        wait_for(lambda: [c.id for c in daemon.stub.State(pb.StateRequest(), timeout=10).containers] == [survivor],
                 message="the victim to leave State")
        # The daemon said it has it: the monitor no longer keeps it, and never writes it later.
        os.unlink(filler)
        daemon.stub.Signal(pb.SignalRequest(id=survivor, pid="init", signal=9), timeout=10)
        self.assertEqual(events.wait("exit", survivor, "init").status, 137)
        self.assertEqual([e.status for e in events.matching("exit", victim)], [137])
        self.assertFalse(os.path.exists(os.path.join(records, victim)))
        self.assertNotIn(pid, processes.zombies())
