"""
The daemon under tight process limits, with real runc: C{ulimit -n 64} (with an inherited descriptor above
it, as a shell script's), and a limit too small to run, refused in one line.
"""

import os
import subprocess

from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.monitor_client import hardening
from tests.support import bundles
from tests.support.daemon import Daemon, create_request
from tests.support.events import EventCollector
from tests.support.ids import unique_id


def limited(daemon, prefix):
    """Make C{daemon} start through bash running C{prefix} first."""
    command = daemon.command
    daemon.command = lambda extra=(): ["bash", "-c", prefix + '; exec "$@"', "bash", *command(extra)]


class LowOpenFilesLimitTests(TestCase):

    def test_ulimit_64(self):
        """
        With C{ulimit -n 64} and fd 70 inherited (Twisted's spawn used to fail with EBADF on it), the daemon
        starts its monitor, serves, and runs a container; neither the monitor nor the container gets fd 70.
        """
        daemon = Daemon.for_test(self, start=False)
        limited(daemon, "exec 70</dev/null; ulimit -n 64")
        daemon.start()
        self.assertNotIn("70", os.listdir(f"/proc/{daemon.monitor_pid()}/fd"))
        rootfs = bundles.make_rootfs(os.path.join(daemon.workdir, "rootfs"))
        # The spec's own RLIMIT_NOFILE (1024) cannot be set above a hard limit of 64 without CAP_SYS_RESOURCE.
        bundle = bundles.make_bundle(os.path.join(daemon.workdir, "b"), ["sh", "-c", "ls /proc/self/fd; exit 3"],
                                     rootfs, edit=lambda config: config["process"].pop("rlimits", None))
        events = EventCollector(daemon.stub)
        self.addCleanup(events.close)
        out = os.path.join(daemon.workdir, "out")
        container_id = unique_id("low-nofile")
        daemon.stub.CreateContainer(create_request(container_id, bundle, stdout=out), timeout=60)
        self.assertEqual(events.wait("exit", container_id, "init").status, 3)
        with open(out) as f:
            fds = f.read().split()
        self.assertNotIn("70", fds)

    def test_too_low(self):
        """Below what it needs the daemon refuses in one line naming the limit."""
        daemon = Daemon.for_test(self, start=False)
        result = subprocess.run(["bash", "-c", f'ulimit -n {hardening.MIN_NOFILE - 8}; exec "$@"', "bash",
                                 *daemon.command()], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 1)
        # twistd's log observer prefixes it with the time and its log source.
        lines = [line.split("] ", 1)[-1] for line in result.stdout.decode().splitlines() if "containerd:" in line]
        self.assertEqual(lines, [f"containerd: the open files limit (ulimit -n) is {hardening.MIN_NOFILE - 8}; "
                                 f"containerd-tx needs at least {hardening.MIN_NOFILE}"])
