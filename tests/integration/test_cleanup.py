"""
The test clean-up (L{tests.support.daemon.Daemon.destroy}) after a daemon killed with deletes pending: a
container leaves State before the runtime deletes it, so a daemon killed right after State emptied leaves
stopped containers in the runtime, and their cgroups, for the clean-up to delete. A clean-up that trusted one
`runc list` (which fails whole while a delete runs) left 101 of 300 containers' cgroups for good.
"""

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import textwrap
import time

from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import processes
from tests.support.daemon import Daemon, wait_for
from tests.support.ids import unique_id

#: runc, except that the daemon's `delete` waits while the file {hold} exists (at most 60 s), and that `list`
#: fails, as runc's does when a container's folder goes away under it, while such a delete waits. A forced
#: delete, the clean-up's, goes through at once.
HELD_DELETES = textwrap.dedent("""\
    #!/bin/sh
    case " $* " in
      *" delete --force "*) ;;
      *" delete "*)
        touch {hold}.waiting; n=0
        while [ -e {hold} ] && [ $n -lt 1200 ]; do sleep 0.05; n=$((n+1)); done
        rm -f {hold}.waiting ;;
      *" list "*)
        if [ -e {hold}.waiting ]; then
          echo 'level=error msg="stat /run/runc/gone: no such file or directory"' >&2; exit 1
        fi ;;
    esac
    exec runc "$@"
""")


class CleanupTests(LifecycleTestCase):

    def setUp(self):
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.hold = os.path.join(folder, "hold")
        open(self.hold, "w").close()
        self.addCleanup(self._release)
        self.runtime = os.path.join(folder, "runc-held-deletes")
        with open(self.runtime, "w") as f:
            f.write(HELD_DELETES.format(hold=self.hold))
        os.chmod(self.runtime, stat.S_IRWXU)
        super().setUp()

    def _release(self):
        # The held deletes (orphans of the killed monitor by now) go on, find nothing, and are reaped here.
        if os.path.exists(self.hold):
            os.unlink(self.hold)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _held_deletes(self.runtime):
            processes.reap_orphans()
            time.sleep(0.05)
        processes.reap_orphans()
        # The runtime makes its root again for each of them: the test's folder would stay in /tmp.
        shutil.rmtree(self.daemon.workdir, ignore_errors=True)

    def test_containers_whose_delete_was_pending_are_deleted(self):
        ids = [unique_id(f"held{i}") for i in range(4)]
        bundle = self.bundle("sleep", "1000")
        cgroups = []
        for container_id in ids:
            self.daemon.stub.CreateContainer(pb.CreateContainerRequest(id=container_id, bundlePath=bundle),
                                             timeout=60)
        for container in self.daemon.stub.State(pb.StateRequest(), timeout=10).containers:
            pid = container.processes[0].systemPid
            cgroups += [processes.cgroup_path(pid, "pids"), processes.cgroup_path(pid, "memory")]
        for container_id in ids:
            self.daemon.stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=signal.SIGKILL),
                                    timeout=60)
        wait_for(lambda: not self.state_ids(), timeout=60, message="State to be empty")
        wait_for(lambda: len(_held_deletes(self.runtime)) >= 1, timeout=60, message="a delete to be held")
        # The scenario: State is empty, the runtime still has every container, and listing them fails.
        self.assertEqual(set(os.listdir(self.daemon.runtime_root())), set(ids))

        self.daemon.destroy()

        self.assertFalse(os.path.exists(self.daemon.workdir))
        self.assertEqual([path for path in cgroups if os.path.exists(path)], [])
        # Released, the held deletes go on, and the runtime makes its root again for each: nothing may stay.
        self._release()
        self.assertFalse(os.path.exists(self.daemon.workdir))


def _held_deletes(runtime):
    """Pids of the wrapper's delete commands still running."""
    return processes.matching(lambda argv: runtime in argv and "delete" in argv)


#: Stands for a monitor that a killed daemon had just spawned: it makes the state dir and writes its pid file
#: once the state dir's folder is gone (a monitor starting up after the clean-up removed it). $0 is the
#: program's name, as a monitor's command line has it.
LATE_MONITOR = 'while [ -e "$(dirname "$2")" ]; do sleep 0.02; done; mkdir -p "$2"; touch "$2/monitor.pid"; sleep 60'


class LateMonitorTests(TestCase):
    """A monitor spawned just before the daemon was killed, its pid not yet written, is stopped too."""

    def test_it_is_killed_before_the_folder_goes(self):
        processes.become_subreaper()
        daemon = Daemon(tempfile.mkdtemp(prefix="ctx-test-"), (), "runc")
        self.addCleanup(shutil.rmtree, daemon.workdir, True)
        os.makedirs(daemon.state_dir)
        late = subprocess.Popen(["sh", "-c", LATE_MONITOR, "/x/monitord.py", "--state-dir", daemon.state_dir])
        self.addCleanup(processes.end, late)
        wait_for(lambda: daemon.state_dir in processes.command_line(late.pid), message="the stand-in to run")

        daemon.destroy()

        # Gone (destroy reaped it, so Popen cannot tell its status); left alone it would still be sleeping.
        self.assertIsNotNone(late.poll())
        self.assertFalse(os.path.exists(daemon.workdir))
