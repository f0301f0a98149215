"""
ctr end to end: checkpoints with CRIU: create, list (table and JSON), restore as a clone, delete.
"""

import json
import os
import re
import shutil
import subprocess

from twisted.trial.unittest import SkipTest

from tests.e2e.base import CtrTestCase, json_lines
from tests.support.daemon import wait_for

COUNTER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done")

#: The oldest CRIU these tests are known to work with.
CRIU_MINIMUM = (4, 2)


def criu_missing():
    """@return: why checkpoints cannot be tested here, or None."""
    criu = shutil.which("criu")
    if criu is None:
        return "criu is not installed (run scripts/setup-system)"
    version = subprocess.run([criu, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"Version:\s*(\d+)\.(\d+)", version)
    if not found or tuple(int(n) for n in found.groups()) < CRIU_MINIMUM:
        return f"criu is older than {'.'.join(map(str, CRIU_MINIMUM))} ({version.strip() or 'unknown version'})"
    if subprocess.run([criu, "check"], capture_output=True).returncode != 0:
        return f"`{criu} check` fails on this kernel"
    return None


def read_counter(pid):
    def read():
        try:
            with open(f"/proc/{pid}/root/tmp/counter") as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None
    return wait_for(read, message=f"the counter of pid {pid}")


class CheckpointTests(CtrTestCase):

    def setUp(self):
        reason = criu_missing()
        if reason:
            raise SkipTest(reason)
        super().setUp()
        self.directory = os.path.join(self.daemon.workdir, "checkpoints")

    def test_create_list_restore_delete(self):
        bundle = self.start(self.origin, *COUNTER)
        pid = self.pid1(self.origin)
        wait_for(lambda: read_counter(pid) >= 3, message="the counter to reach 3")
        done = self.ctr_ok("checkpoints", "create", "--checkpoint-dir", self.directory, self.origin, "snap")
        self.assertEqual(done, "")
        before = read_counter(pid)
        self.ctr_ok("checkpoints", "create", "--tcp", "--unix-sockets", "--checkpoint-dir", self.directory,
                    self.origin, "withopts")
        self.assertEqual(self.listed()[self.origin]["status"], "running")  # a checkpoint without --exit keeps it

        table = self.ctr_ok("checkpoints", "list", "--checkpoint-dir", self.directory, self.origin).splitlines()
        self.assertEqual(table, [
            "NAME       TCP     UNIX SOCKETS   SHELL",
            "snap       false   false          false",
            "withopts   true    true           false",
        ])
        shorthand = self.ctr_ok("checkpoints", "--checkpoint-dir", self.directory, self.origin)
        self.assertEqual(shorthand.splitlines(), table)
        listed = json_lines(self.ctr_ok("checkpoints", "list", "-o", "json", "--checkpoint-dir", self.directory,
                                        self.origin))
        self.assertEqual([(c["name"], c["tcp"], c["unixSockets"], c["shell"], c["exit"]) for c in listed],
                         [("snap", False, False, False, False), ("withopts", True, True, False, False)])

        # Restore as a clone, next to the original.
        self.assertEqual(self.ctr_ok("containers", "start", "--checkpoint", "snap", "--checkpoint-dir", self.directory,
                                     self.clone, bundle), "")
        containers = self.listed()
        self.assertEqual({c["id"]: c["status"] for c in containers.values()},
                         {self.origin: "running", self.clone: "running"})
        clone_pid = containers[self.clone]["pid1"]
        value = read_counter(clone_pid)
        self.assertGreaterEqual(value, before - 1)
        wait_for(lambda: read_counter(clone_pid) > value + 2, message="the clone to count on")

        done = self.ctr_ok("checkpoints", "delete", "--checkpoint-dir", self.directory, self.origin, "snap")
        self.assertEqual(done, "")
        self.assertEqual([c["name"] for c in json_lines(self.ctr_ok(
            "checkpoints", "-o", "json", "--checkpoint-dir", self.directory, self.origin))], ["withopts"])
        self.assertFalse(os.path.exists(os.path.join(self.directory, "snap")))
        gone = self.ctr("checkpoints", "delete", "--checkpoint-dir", self.directory, self.origin, "snap")
        self.assertEqual(gone.returncode, 1)
        self.assertRegex(gone.stderr, r"^ctr: [^\n]*snap[^\n]*\n$")

    def test_exit_and_default_directory(self):
        """--exit stops the container; without --checkpoint-dir the checkpoint is in BUNDLE/checkpoints."""
        bundle = self.start(self.origin, *COUNTER)
        read_counter(self.pid1(self.origin))
        self.ctr_ok("checkpoints", "create", "--exit", self.origin, "last")
        wait_for(lambda: self.origin not in self.listed(), message="origin to stop after --exit")
        self.assertTrue(os.path.isdir(os.path.join(bundle, "checkpoints", "last")))
        self.ctr_ok("containers", "start", "-c", "last", self.origin, bundle)
        read_counter(self.pid1(self.origin))
