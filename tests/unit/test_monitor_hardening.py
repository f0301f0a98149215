"""
Tests for L{containerd_tx.monitor_client.hardening} and the monitor's child attributes: the daemon and the monitor
protect themselves (oom_score_adj, open files limit) and the containers do not inherit that.

Lowering an oom_score_adj below the lowest value a process ever had needs CAP_SYS_RESOURCE: the processes
here start at a high score and are "protected" at a lower positive one, which works with or without it.
"""

import base64
import os
import resource
import subprocess
import sys
import textwrap

from twisted.trial import unittest

from containerd_tx.monitor_client import hardening
from tests.unit.test_monitord import Monitor, alive

SH = "/bin/sh"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def oom_score_adj(pid):
    with open(f"/proc/{pid}/oom_score_adj") as f:
        return int(f.read())


def soft_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open files limit")


class MonitorChildAttributesTests(unittest.TestCase):

    def capture(self, monitor, command):
        client = monitor.connect()
        reply = client.spawn([SH, "-c", command], capture=True)
        self.assertEqual(reply["status"], 0, reply)
        return base64.b64decode(reply["stdout"]).decode().strip()

    def test_oom_score_adj(self):
        """
        With --oom-score-adj the monitor takes that score itself; what it spawns gets
        --child-oom-score-adj, also the children of what it spawns.
        """
        monitor = Monitor(self, args=["--oom-score-adj", "100", "--child-oom-score-adj", "700"],
                          shell_prefix="echo 700 > /proc/self/oom_score_adj")
        self.assertEqual(oom_score_adj(monitor.pid), 100)
        self.assertEqual(self.capture(monitor, "cat /proc/self/oom_score_adj; sh -c 'cat /proc/$$/oom_score_adj'"),
                         "700\n700")
        self.assertEqual(oom_score_adj(monitor.pid), 100)

    def test_nofile(self):
        """
        With --child-nofile the monitor raises its soft open files limit to the hard limit, and what it
        spawns gets the soft limit given.
        """
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard != resource.RLIM_INFINITY and hard < 1024:
            raise unittest.SkipTest("hard open files limit below 1024")
        monitor = Monitor(self, args=["--child-nofile", "256"], shell_prefix="ulimit -Sn 256; ulimit -Hn 1024")
        self.assertEqual(soft_nofile(monitor.pid), 1024)
        self.assertEqual(self.capture(monitor, "ulimit -Sn"), "256")
        self.assertEqual(soft_nofile(monitor.pid), 1024)

    def test_without_options(self):
        """Without the options nothing changes: the children get what the monitor has."""
        monitor = Monitor(self, shell_prefix="echo 300 > /proc/self/oom_score_adj")
        self.assertEqual(oom_score_adj(monitor.pid), 300)
        self.assertEqual(self.capture(monitor, "cat /proc/self/oom_score_adj"), "300")
        self.assertTrue(alive(monitor.pid))

    def test_bad_option(self):
        """A value out of range is a usage error."""
        result = subprocess.run([sys.executable, "-S", hardening_monitord(), "--state-dir", "/tmp/x",
                                 "--child-oom-score-adj", "5000"], capture_output=True)
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"--child-oom-score-adj must be in [-1000, 1000]", result.stderr)


def hardening_monitord():
    import containerd_tx.monitor

    return os.path.join(os.path.dirname(containerd_tx.monitor.__file__), "monitord.py")


PROTECT = textwrap.dedent("""
    import fcntl, json, os, resource
    from containerd_tx.monitor_client import hardening
    try:
        protection = hardening.protect(oom_score_adj=100)
    except hardening.LimitTooLow as e:
        print(json.dumps({"error": str(e)}))
        raise SystemExit(0)
    print(json.dumps({
        "oom": int(open("/proc/self/oom_score_adj").read()),
        "args": protection.monitor_args(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "cloexec": bool(fcntl.fcntl(90, fcntl.F_GETFD) & fcntl.FD_CLOEXEC),
    }))
""")


class ProtectTests(unittest.TestCase):
    """L{hardening.protect} in a fresh process."""

    def protect(self, prefix):
        import json

        result = subprocess.run(["bash", "-c", prefix + '; exec "$@"', "bash", sys.executable, "-c", PROTECT],
                                capture_output=True, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def test_protect(self):
        """
        The daemon lowers its own score, raises its soft open files limit to the hard one, marks inherited
        fds close-on-exec, and tells the monitor what the children get: the values it started with.
        """
        got = self.protect("echo 500 > /proc/self/oom_score_adj; exec 90</dev/null; ulimit -Sn 100; ulimit -Hn 1024")
        self.assertEqual(got["oom"], 100)
        self.assertEqual(got["nofile"], [1024, 1024])
        self.assertTrue(got["cloexec"])
        self.assertEqual(got["args"], ["--oom-score-adj", "100", "--child-oom-score-adj", "500",
                                       "--child-nofile", "100"])

    def test_already_protected(self):
        """A score already at or below the protected one is left alone, children included."""
        got = self.protect("echo 50 > /proc/self/oom_score_adj; exec 90</dev/null")
        self.assertEqual(got["oom"], 50)
        self.assertNotIn("--oom-score-adj", got["args"])

    def test_limit_too_low(self):
        """A hard limit below what the daemon needs is refused in one line naming the limit needed."""
        got = self.protect(f"exec 90</dev/null; ulimit -n {hardening.MIN_NOFILE - 1}")
        self.assertEqual(
            got["error"],
            f"the open files limit (ulimit -n) is {hardening.MIN_NOFILE - 1}; containerd-tx needs at least "
            f"{hardening.MIN_NOFILE}")
