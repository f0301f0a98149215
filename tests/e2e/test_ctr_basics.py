"""
ctr end to end: version, no daemon, start (attached and not), list, kill, events, state, completion.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from twisted.trial.unittest import SkipTest, TestCase

from containerd_tx import __version__
from tests.e2e.base import REPO, SLEEPER, TRAPPER, CtrTestCase, ctr_env, json_lines, now_stamp, run_ctr
from tests.support.daemon import wait_for


class VersionTests(CtrTestCase):

    def test_version(self):
        out = self.ctr_ok("version")
        self.assertRegex(out, rf"^Client: {re.escape(__version__)}\nServer: \d+\.\d+\.\d+( \(revision \S+\))?\n$")
        data = json.loads(self.ctr_ok("version", "--format", "json"))
        self.assertEqual(data["client"]["version"], __version__)
        self.assertEqual(data["server"]["version"], "{major}.{minor}.{patch}".format(**data["server"]))
        self.assertIn(f"Server: {data['server']['version']}", out)

    def test_address_from_environment(self):
        done = run_ctr(["version"], env=ctr_env(CONTAINERD_ADDRESS=self.daemon.address))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("Server: ", done.stdout)


class NoDaemonTests(TestCase):

    def test_one_line_and_status_1(self):
        directory = tempfile.mkdtemp(prefix="ctr-e2e-")
        self.addCleanup(shutil.rmtree, directory)
        address = "unix://" + os.path.join(directory, "none.sock")
        listing = run_ctr(["containers"], address)
        version = run_ctr(["version"], env=ctr_env(CONTAINERD_ADDRESS=address))
        for done in (listing, version):
            self.assertEqual(done.returncode, 1)
            self.assertEqual(done.stderr, f"ctr: cannot connect to containerd at {address}: is the daemon running?\n")
            self.assertNotIn("Traceback", done.stderr)
        self.assertEqual(listing.stdout, "")
        self.assertEqual(version.stdout, f"Client: {__version__}\n")  # the client's own version still shows


class AttachTests(CtrTestCase):

    def test_output_streams_and_exit_status(self):
        bundle = self.bundle("sh", "-c", "echo hello; echo oops >&2; exit 3")
        done = self.ctr("containers", "start", "--attach", self.talker, bundle)
        self.assertEqual((done.returncode, done.stdout, done.stderr), (3, "hello\n", "oops\n"))
        self.assertNotIn(self.talker, self.listed())

    def test_stdin_piped(self):
        bundle = self.bundle("cat")
        done = self.ctr("containers", "start", "-a", self.cat, bundle, input=b"data\n")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "data\n", ""))


class ListAndKillTests(CtrTestCase):

    def test_start_detached_then_list(self):
        bundle = self.bundle(*SLEEPER)
        started = time.monotonic()
        self.assertEqual(self.ctr_ok("containers", "start", self.sleeper, bundle), "")
        self.assertLess(time.monotonic() - started, 15)
        lines = self.ctr_ok("containers").splitlines()
        self.assertEqual(lines[0].split(), ["ID", "PATH", "STATUS", "PID1"])
        [row] = [line.split() for line in lines[1:]]
        self.assertEqual(row[:3], [self.sleeper, bundle, "running"])
        pid = int(row[3])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            self.assertEqual(f.read().split(b"\0")[:2], [b"sleep", b"1000"])
        self.assertEqual(self.ctr_ok("containers", "list", "-q"), self.sleeper + "\n")
        [data] = json_lines(self.ctr_ok("containers", "--format", "json"))
        self.assertEqual((data["id"], data["bundlePath"], data["status"], data["pid1"]),
                         (self.sleeper, bundle, "running", pid))
        self.assertEqual([p["pid"] for p in data["processes"]], ["init"])

    def test_kill_default_term(self):
        since = now_stamp()
        self.start(self.trapper, *TRAPPER)
        pid = self.pid1(self.trapper)
        wait_for(lambda: os.path.exists(f"/proc/{pid}/root/tmp/trapped"), message="the TERM trap to be set")
        self.ctr_ok("containers", "kill", self.trapper)
        self.assertEqual(self.wait_exit(since, self.trapper)["status"], 0)
        wait_for(lambda: self.trapper not in self.listed(), message="trapper to leave the list")

    def test_kill_by_signal_name(self):
        since = now_stamp()
        self.start(self.sleeper, *SLEEPER)
        self.ctr_ok("containers", "kill", "-s", "KILL", self.sleeper)
        self.assertEqual(self.wait_exit(since, self.sleeper)["status"], 137)

    def test_kill_unknown(self):
        done = self.ctr("containers", "kill", "ghost")
        self.assertEqual((done.returncode, done.stdout), (1, ""))
        self.assertRegex(done.stderr, r"^ctr: [^\n]*ghost[^\n]*\n$")


class EventsTests(CtrTestCase):

    def test_follow(self):
        """ctr events in the background prints the start and the exit of a container as JSON lines."""
        _, lines = self.ctr_background("events", "--since", now_stamp(), "--format", "json")
        bundle = self.bundle("sh", "-c", "exit 2")
        self.ctr_ok("containers", "start", self.shortlived, bundle)
        started = json.loads(lines.next_matching(lambda line: f'"{self.shortlived}"' in line))
        self.assertEqual((started["type"], started["pid"]), ("start-container", ""))  # containerd 0.2.9's: no pid
        exited = json.loads(lines.next_matching(lambda line: '"exit"' in line))
        self.assertEqual((exited["id"], exited["pid"], exited["status"]), (self.shortlived, "init", 2))
        self.assertGreater(exited["timestampNs"], started["timestampNs"])

    def test_stored_only_replay(self):
        since = now_stamp()
        bundle = self.bundle("sh", "-c", "exit 5")
        self.assertEqual(self.ctr("containers", "start", "-a", self.five, bundle).returncode, 5)
        events = self.stored_events(since)
        self.assertEqual([(e["type"], e["id"], e["pid"]) for e in events],
                         [("start-container", self.five, ""), ("exit", self.five, "init")])
        self.assertEqual(events[1]["status"], 5)
        # Resuming after the first event's timestamp gives the rest only.
        rest = self.stored_events(events[0]["timestamp"])
        self.assertEqual([e["type"] for e in rest], ["exit"])
        table = self.ctr_ok("events", "--since", since, "--stored-only").splitlines()
        self.assertEqual(table[0].split(), ["TIME", "TYPE", "ID", "PID", "STATUS"])
        self.assertEqual(table[2].split()[1:], ["exit", self.five, "init", "5"])


class StateTests(CtrTestCase):

    def test_state(self):
        bundle = self.start(self.sleeper, *SLEEPER)
        lines = self.ctr_ok("state").splitlines()
        self.assertRegex(lines[0], r"^CPUS: [1-9]\d*$")
        self.assertRegex(lines[1], r"^MEMORY: [\d.]+ [KMGT]iB$")
        self.assertEqual(lines[3].split(), ["ID", "PATH", "STATUS", "PID1"])
        self.assertEqual(lines[4].split()[:3], [self.sleeper, bundle, "running"])
        self.assertEqual(lines[5].split(), ["PID", "SYSTEMPID", "ARGS"])
        self.assertEqual(lines[6].split()[0::2], ["init", "sleep"])
        data = json.loads(self.ctr_ok("state", "--format", "json"))
        self.assertGreater(data["machine"]["cpus"], 0)
        self.assertEqual([c["id"] for c in data["containers"]], [self.sleeper])
        self.assertEqual(str(data["containers"][0]["pid1"]), lines[4].split()[3])


class CompletionTests(CtrTestCase):

    def setUp(self):
        self.script = os.path.join(os.path.dirname(sys.executable), "ctr")
        if not os.path.exists(self.script):
            raise SkipTest(f"the ctr console script is not installed next to {sys.executable}")
        super().setUp()

    def test_bash_script_loads(self):
        done = subprocess.run(["bash", "--norc", "-c", f"source <({self.script} completion bash) && complete -p ctr"],
                              capture_output=True, text=True, timeout=60, cwd=REPO, env=ctr_env())
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("ctr", done.stdout)

    def test_container_ids_complete(self):
        self.start(self.web, *SLEEPER)
        env = ctr_env(CONTAINERD_ADDRESS=self.daemon.address, _CTR_COMPLETE="bash_complete",
                      COMP_WORDS="ctr containers kill w", COMP_CWORD="3")
        done = subprocess.run([self.script], capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
        self.assertEqual((done.returncode, done.stdout.split(), done.stderr), (0, [f"plain,{self.web}"], ""))
