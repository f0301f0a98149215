"""
Tests for contrib/crun-hybrid's dispatch: which subcommands go through the private mount namespace, with fake
crun and unshare programs on PATH.
"""

import os
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SynchronousTestCase

WRAPPER = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "crun-hybrid")


class DispatchTests(SynchronousTestCase):

    def setUp(self):
        self.bin = tempfile.mkdtemp(prefix="crun-hybrid-")
        self.addCleanup(shutil.rmtree, self.bin, True)
        for name in ("crun", "unshare"):
            path = os.path.join(self.bin, name)
            with open(path, "w") as f:
                f.write(f'#!/bin/sh\necho {name} "$@"\n')
            os.chmod(path, 0o755)

    def run_wrapper(self, *args):
        done = subprocess.run(["sh", WRAPPER, *args], capture_output=True, text=True, timeout=30,
                              env={"PATH": self.bin + os.pathsep + os.environ["PATH"]})
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stdout.split()

    def test_cgroup_commands_in_the_namespace(self):
        for args in (["create", "--bundle", "/b", "c1"], ["--root", "/r", "--log", "/l", "run", "-d", "c1"],
                     ["--root=/r", "delete", "-f", "c1"], ["--root", "start", "update", "c1"], ["pause", "c1"],
                     ["kill", "--all", "c1", "9"], ["--rootless", "false", "exec", "c1", "sh"]):
            self.assertEqual(self.run_wrapper(*args)[0], "unshare", args)

    def test_other_commands_direct(self):
        for args in (["start", "c1"], ["--root", "/r", "--log-format", "json", "start", "c1"],
                     ["--root=/r", "kill", "c1", "9"], ["state", "c1"], ["list"], ["--rootless", "false", "start", "c1"]):
            self.assertEqual(self.run_wrapper(*args), ["crun", *args], args)
