"""
ctr end to end: containerd 0.2's ctr flags as aliases (its scripts run unchanged), and the options ctr adds
for people who know docker: stats of every running container, --filter, exec ID -- CMD; events and watch
when the daemon goes away; a closed pipe; the exit status of an attached container killed by a signal;
completion that asks the daemon.
"""

import os
import subprocess
import time

from tests.e2e.base import CTR, REPO, SLEEPER, CtrTestCase, LineReader, ctr_env, json_lines, now_stamp
from tests.support.daemon import wait_for


class GoFlagTests(CtrTestCase):
    """containerd 0.2's ctr spelling of each flag ctr has under another name."""

    def test_conn_timeout(self):
        self.assertEqual(self.ctr_ok("--conn-timeout", "2s", "containers", "-q"), "")
        done = self.ctr("--conn-timeout", "soon", "containers")
        self.assertEqual(done.returncode, 2)
        self.assertIn("invalid duration 'soon'", done.stderr)

    def test_start_label_and_runtime_short_flags(self):
        bundle = self.bundle(*SLEEPER)
        self.assertEqual(self.ctr_ok("containers", "start", "-l", "app=web", "--label", "tier=front", "-r", "runc",
                                     self.web, bundle), "")
        [data] = json_lines(self.ctr_ok("containers", "list", "-o", "json", "--filter", f"id={self.web}"))
        self.assertEqual((data["labels"], data["runtime"], data["status"]), (["app=web", "tier=front"], "runc",
                                                                             "running"))

    def test_exec_uid_gid_short_flags_and_id_argument(self):
        self.start(self.box, *SLEEPER)
        done = self.ctr("containers", "exec", "-a", "-u", "1000", "-g", "1001", self.box, "--", "sh", "-c",
                        "id -u; id -g")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "1000\n1001\n", ""))
        # containerd 0.2's form, --id and the command alone, still works.
        done = self.ctr("containers", "exec", "--id", self.box, "--pid", "p2", "-a", "--uid", "7", "--", "id", "-u")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "7\n", ""))
        missing = self.ctr("containers", "exec", self.box)
        self.assertEqual(missing.returncode, 2)
        self.assertIn("missing the container or the command", missing.stderr)

    def test_update_go_names(self):
        self.start(self.box, *SLEEPER)
        pid = self.pid1(self.box)
        self.assertEqual(self.ctr_ok("containers", "update", "--memory-limit", "64m", self.box), "")
        self.assertEqual(self.cgroup_file(pid, "memory", "memory.limit_in_bytes"), str(64 << 20))
        self.assertEqual(self.ctr_ok("containers", "update", "--memory-limit", "96m", "--kernel-limit", "128m",
                                     "--kernel-tcp-limit", "32m", self.box), "")
        self.assertEqual(self.cgroup_file(pid, "memory", "memory.limit_in_bytes"), str(96 << 20))

    def test_update_error_in_the_users_words(self):
        """The daemon's minimum is said with the flag typed and in the unit the size was typed in."""
        self.start(self.box, *SLEEPER)
        for flag in ("--memory", "--memory-limit"):
            done = self.ctr("containers", "update", flag, "1m", self.box)
            self.assertEqual((done.returncode, done.stdout, done.stderr),
                             (1, "", f"ctr: {flag} must be at least 4m\n"))

    def test_events_timestamp_flag(self):
        since = now_stamp()
        self.start(self.box, *SLEEPER)
        events = json_lines(self.ctr_ok("events", "-t", since, "--stored-only", "-o", "json", "--id", self.box))
        self.assertEqual([e["type"] for e in events], ["start-container"])
        again = json_lines(self.ctr_ok("events", "--timestamp", since, "--stored-only", "-o", "json", "--id",
                                       self.box))
        self.assertEqual(again, events)

    def test_containers_watch(self):
        self.start(self.box, *SLEEPER)
        self.start(self.web, *SLEEPER)
        process, lines = self.ctr_background("containers", "watch", "-o", "json", self.box)
        # The watch is subscribed once an event it prints comes through (it replays nothing): pause the container
        # until one does, resuming between tries.
        self.ctr_ok("containers", "pause", self.web)
        deadline = time.monotonic() + 120
        while True:
            self.ctr_ok("containers", "pause", self.box)
            try:
                paused = lines.next_matching(lambda line: '"pause"' in line, timeout=2)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                self.ctr_ok("containers", "resume", self.box)
        self.assertEqual(json_lines(paused)[0]["id"], self.box)
        self.ctr_ok("containers", "kill", "-s", "KILL", self.box)
        self.ctr_ok("containers", "resume", self.box)
        exited = json_lines(lines.next_matching(lambda line: '"exit"' in line))[0]
        self.assertEqual((exited["id"], exited["pid"], exited["status"]), (self.box, "init", 137))
        self.assertNotIn(self.web, "".join(lines.seen))
        self.assertIsNone(process.poll())
        unknown = self.ctr("containers", "watch", "ghost")
        self.assertEqual((unknown.returncode, unknown.stdout), (1, ""))
        self.assertRegex(unknown.stderr, r"^ctr: [^\n]*ghost[^\n]*\n$")


class DockerLikeTests(CtrTestCase):

    def test_stats_of_every_running_container(self):
        self.start(self.box, *SLEEPER)
        self.start(self.web, *SLEEPER)
        self.start(self.busy, *SLEEPER)
        self.ctr_ok("containers", "pause", self.busy)
        frames = json_lines(self.ctr_ok("containers", "stats", "--no-stream", "-o", "json"))
        self.assertEqual(sorted(f["id"] for f in frames), sorted([self.box, self.web]))
        for frame in frames:
            self.assertIsNone(frame["pids"]["limit"])  # no pids limit: null, never a sentinel
            self.assertGreater(frame["memory"]["rawUsage"], 0)
        table = self.ctr_ok("containers", "stats", "--no-stream").splitlines()
        self.assertEqual(sorted(line.split()[0] for line in table[1:]), sorted([self.box, self.web]))

    def test_stats_unlimited_in_table(self):
        """Without a limit, LIMIT is the machine's memory (as docker shows it); pids limit null in JSON."""
        self.start(self.box, *SLEEPER)
        self.ctr_ok("containers", "update", "--pids-limit", "20", self.box)
        [frame] = json_lines(self.ctr_ok("containers", "stats", "--no-stream", "-o", "json", self.box))
        self.assertEqual(frame["pids"]["limit"], 20)
        self.assertIsNone(frame["memory"]["cgroupLimit"])

    def test_filter(self):
        self.start(self.box, *SLEEPER)
        web_bundle = self.bundle(*SLEEPER)
        self.ctr_ok("containers", "start", "--label", "app=web", "--label", "tier=front", self.web, web_bundle)
        cat_bundle = self.bundle(*SLEEPER)
        self.ctr_ok("containers", "start", "--label", "app=cat", self.cat, cat_bundle)
        self.ctr_ok("containers", "pause", self.cat)

        def ids(*filters):
            args = [arg for f in filters for arg in ("--filter", f)]
            return self.ctr_ok("containers", "list", "-q", *args).split()

        self.assertEqual(ids("label=app=web"), [self.web])
        self.assertEqual(sorted(ids("label=app")), sorted([self.web, self.cat]))
        self.assertEqual(ids("status=paused"), [self.cat])
        self.assertEqual(sorted(ids("status=running")), sorted([self.box, self.web]))
        self.assertEqual(sorted(ids("label=app=web", "label=app=cat")), sorted([self.web, self.cat]))  # or
        self.assertEqual(ids("label=app", "status=running"), [self.web])  # and
        self.assertEqual(self.ctr_ok("containers", "-f", "label=tier=front", "-q"), self.web + "\n")
        done = self.ctr("containers", "list", "--filter", "colour=red")
        self.assertEqual(done.returncode, 2)
        self.assertIn("'colour=red' is not a filter", done.stderr)
        self.assertNotIn("Traceback", done.stderr)


class EndingTests(CtrTestCase):

    def test_events_when_the_daemon_goes_away(self):
        """events and containers watch end with status 1 and one line when the daemon stops."""
        followers = [self.ctr_background("events"), self.ctr_background("containers", "watch")]
        for _, lines in followers:
            lines.next_matching(lambda line: line.startswith("TIME"))
        # The header is printed before the stream is known to be open: wait until the daemon has both.
        since = now_stamp()
        self.start(self.box, *SLEEPER)
        for _, lines in followers:
            lines.next_matching(lambda line: self.box in line)
        self.ctr_ok("containers", "kill", "-s", "KILL", self.box)
        self.wait_exit(since, self.box)
        self.daemon.stop()
        for process, _ in followers:
            self.assertEqual(process.wait(timeout=30), 1)
            message = process.stderr.read().decode()
            self.assertEqual(message.count("\n"), 1, message)
            self.assertRegex(message, r"^ctr: (lost the connection to|the event stream ended:) containerd at ")

    def test_closed_pipe_is_quiet(self):
        """`ctr containers watch | head -1`: once head has gone, the next event ends ctr with 0, silently."""
        script = f"{' '.join(CTR)} --address {self.daemon.address} containers watch | head -1; " \
                 'echo "status ${PIPESTATUS[0]}"'
        pipeline = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, cwd=REPO, env=ctr_env())
        self.addCleanup(lambda: pipeline.poll() is None and pipeline.kill())
        lines = LineReader(pipeline.stdout)
        lines.next_matching(lambda line: line.startswith("TIME"))  # head printed it and is gone
        self.start(self.box, *SLEEPER)
        status = lines.next_matching(lambda line: line.startswith("status"), timeout=30)
        self.assertEqual(status, "status 0")
        self.assertEqual(pipeline.wait(timeout=30), 0)
        self.assertEqual(pipeline.stderr.read().decode(), "")

    def test_attach_exit_status_of_a_killed_container(self):
        """start --attach of a container SIGKILLed exits 137 (128 + 9), as a shell reports it."""
        bundle = self.bundle(*SLEEPER)
        process, _ = self.ctr_background("containers", "start", "--attach", self.sleeper, bundle)
        wait_for(lambda: self.sleeper in self.listed(), timeout=30, message="the attached container to run")
        self.ctr_ok("containers", "kill", "-s", "KILL", self.sleeper)
        self.assertEqual(process.wait(timeout=30), 137)
        self.assertEqual(process.stderr.read(), b"")


class CompletionTests(CtrTestCase):
    """Completion that asks the daemon: container ids, process ids; signal names without it."""

    def complete(self, words):
        env = ctr_env(_CTR_COMPLETE="bash_complete", COMP_WORDS=" ".join(["ctr"] + words),
                      COMP_CWORD=str(len(words)), CONTAINERD_ADDRESS=self.daemon.address)
        done = subprocess.run(CTR, env=env, capture_output=True, text=True, timeout=30, cwd=REPO,
                              stdin=subprocess.DEVNULL)
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        return [line.split(",", 1)[1] for line in done.stdout.splitlines() if line.startswith("plain,")]

    def test_ids_pids_signals(self):
        self.start(self.box, *SLEEPER)
        self.ctr_ok("containers", "exec", "--id", self.box, "--pid", "worker", "--", "sleep", "1000")
        self.assertEqual(self.complete(["containers", "kill", self.box[:4]]), [self.box])
        self.assertEqual(self.complete(["containers", "kill", self.box, "-p", ""]), ["init", "worker"])
        self.assertEqual(self.complete(["containers", "wait", self.box, "-p", "w"]), ["worker"])
        self.assertEqual(self.complete(["containers", "kill", "-s", "KI"]), ["KILL"])
        self.assertEqual(self.complete(["containers", "exec", ""]), [self.box])

    def test_checkpoint_names_for_start(self):
        """start -c completes from the bundle's checkpoints folder (no container yet to ask about)."""
        bundle = self.bundle(*SLEEPER)
        os.makedirs(os.path.join(bundle, "checkpoints", "snap"))
        os.makedirs(os.path.join(bundle, "checkpoints", "second"))
        self.assertEqual(self.complete(["containers", "start", self.box, bundle, "-c", "s"]), ["second", "snap"])
