"""
The test clean-up (L{tests.support.daemon.Daemon.destroy}) after a daemon killed with deletes pending: a
container leaves State before the runtime deletes it, so a daemon killed right after State emptied leaves
stopped containers in the runtime, and their cgroups, for the clean-up to delete. A clean-up that trusted one
`runc list` (which fails whole while a delete runs) left 101 of 300 containers' cgroups for good.
"""

import os
import signal
import stat
import textwrap
import time

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import processes
from tests.support.daemon import wait_for
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


def _held_deletes(runtime):
    """Pids of the wrapper's delete commands still running."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if runtime.encode() in argv and b"delete" in argv:
                found.append(int(entry))
    return found
