"""
ctr end to end: pause, resume and update of a running container, checked in its cgroups.
"""

import time

from tests.e2e.base import CtrTestCase

COUNTER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.05; done")


class PauseResumeTests(CtrTestCase):

    def counter(self, pid):
        with open(f"/proc/{pid}/root/tmp/counter") as f:
            return int(f.read().strip() or 0)

    def test_pause_and_resume(self):
        self.start(self.box, *COUNTER)
        pid = self.pid1(self.box)
        time.sleep(0.3)
        self.assertEqual(self.ctr_ok("containers", "pause", self.box), "")
        self.assertEqual(self.listed()[self.box]["status"], "paused")
        self.assertEqual(self.ctr_ok("containers").splitlines()[1].split()[2], "paused")
        self.assertEqual(self.cgroup_file(pid, "freezer", "freezer.state"), "FROZEN")
        frozen = self.counter(pid)
        time.sleep(0.3)
        self.assertEqual(self.counter(pid), frozen)
        done = self.ctr("containers", "exec", "--id", self.box, "--", "true")
        self.assertEqual(done.returncode, 1)
        self.assertRegex(done.stderr, r"^ctr: [^\n]*paused[^\n]*\n$")
        self.assertEqual(self.ctr_ok("containers", "resume", self.box), "")
        self.assertEqual(self.listed()[self.box]["status"], "running")
        deadline = time.monotonic() + 10
        while self.counter(pid) <= frozen + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreater(self.counter(pid), frozen + 2)

    def test_resume_running_is_one_line(self):
        self.start(self.box, "sleep", "1000")
        done = self.ctr("containers", "resume", self.box)
        self.assertEqual((done.returncode, done.stdout), (1, ""))
        self.assertEqual(done.stderr.count("\n"), 1)
        self.assertTrue(done.stderr.startswith("ctr: "), done.stderr)


class UpdateTests(CtrTestCase):

    def test_memory_and_more(self):
        self.start(self.box, "sleep", "1000")
        pid = self.pid1(self.box)
        self.assertEqual(self.ctr_ok("containers", "update", "--memory", "64m", self.box), "")
        self.assertEqual(self.cgroup_file(pid, "memory", "memory.limit_in_bytes"), "67108864")
        self.ctr_ok("containers", "update", "--cpu-shares", "512", "--pids-limit", "50", "--memory-reservation",
                    "32m", self.box)
        self.assertEqual(self.cgroup_file(pid, "cpu", "cpu.shares"), "512")
        self.assertEqual(self.cgroup_file(pid, "pids", "pids.max"), "50")
        self.assertEqual(self.cgroup_file(pid, "memory", "memory.soft_limit_in_bytes"), str(32 << 20))
        self.assertEqual(self.cgroup_file(pid, "memory", "memory.limit_in_bytes"), "67108864")  # untouched

    def test_refusals(self):
        self.start(self.box, "sleep", "1000")
        nothing = self.ctr("containers", "update", self.box)
        self.assertEqual(nothing.returncode, 2)
        self.assertIn("nothing to update", nothing.stderr)
        tiny = self.ctr("containers", "update", "--memory", "1k", self.box)
        self.assertEqual(tiny.returncode, 1)
        self.assertEqual(tiny.stderr, "ctr: --memory must be at least 4096k\n")  # the flag and unit typed
