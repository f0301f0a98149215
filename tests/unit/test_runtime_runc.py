"""
Tests for L{containerd_tx.runtime.runc}: the command lines the driver builds, and how it reads the runtime's
answers, on a fake monitor (L{tests.support.fakes.FakeMonitor}) and a L{Clock}; no runc, no root.
"""

import json
import os

from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from containerd_tx.errors import DeadlineExceeded, FailedPrecondition, NotFound, RuntimeFailure, Unavailable
from containerd_tx.runtime.interface import IRuntime
from containerd_tx.runtime.monitor_seam import IMonitor, MonitorError, MonitorLost
from containerd_tx.runtime.runc import CheckpointFailed, RuncRuntime, criu_log_errors
from containerd_tx.scratch import ScratchFiles
from tests.support.fakes import FakeMonitor

BINARY = "/usr/sbin/runc"
ROOT = "/run/ctx/runtime/runc"


class RuncTestCase(SynchronousTestCase):
    """A driver on a fake monitor and a clock; C{self.work} is a container's record folder."""

    name = "runc"

    def setUp(self):
        self.clock = Clock()
        self.monitor = FakeMonitor()
        self.runtime = RuncRuntime(self.clock, self.monitor, self.name, BINARY, ROOT, global_args=["--systemd-cgroup"])
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.log_file = os.path.join(self.work, "runtime.log")

    def register(self, process="init"):
        return ("c1", process, self.work)

    def last_spawn(self):
        return self.monitor.spawns[-1]

    def write_log(self, *entries):
        with open(self.log_file, "w") as f:
            for entry in entries:
                f.write(json.dumps(entry) + "\n")


class ScratchStartTests(RuncTestCase):
    """
    With a scratch folder (a state dir on a disk), each start's pid file and log are files of their own there,
    gone once the start has ended, and nothing is written to the container's folder.
    """

    def setUp(self):
        super().setUp()
        self.folder = os.path.abspath(self.mktemp())
        self.runtime = RuncRuntime(self.clock, self.monitor, self.name, BINARY, ROOT,
                                   scratch=ScratchFiles(self.folder))
        self.runtime._scratch.prepare()

    def start(self):
        d = self.runtime.run("c1", "/b", (None, None, None), self.register())
        argv = self.last_spawn().argv
        pid_file, log_file = argv[argv.index("--pid-file") + 1], argv[argv.index("--log") + 1]
        self.assertEqual(self.last_spawn().options["pid_file"], pid_file)
        self.assertEqual({os.path.dirname(pid_file), os.path.dirname(log_file)}, {self.folder})
        return d, pid_file, log_file

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)

    def test_files_removed_after_a_start(self):
        d, pid_file, log_file = self.start()
        self.write(pid_file, "4242")
        self.write(log_file, "")
        with capturedLogs() as events:
            self.last_spawn().finish(0, pid=4242)
        self.assertEqual(self.successResultOf(d), 4242)
        self.assertEqual(os.listdir(self.folder), [])
        self.assertEqual(os.listdir(self.work), [])
        self.assertEqual([formatEvent(e) for e in events if e["log_level"].name != "debug"], [])

    def test_what_a_working_start_logged_is_kept_in_the_daemon_log(self):
        d, pid_file, log_file = self.start()
        self.write(log_file, json.dumps({"level": "warning", "msg": "cgroup v1 is deprecated"}) + "\n")
        with capturedLogs() as events:
            self.last_spawn().finish(0, pid=7)
        self.successResultOf(d)
        self.assertEqual([formatEvent(e) for e in events],
                         ["runc on container c1: warning: cgroup v1 is deprecated"])
        self.assertEqual(os.listdir(self.folder), [])

    def test_failure_still_says_why_and_removes_the_files(self):
        d, pid_file, log_file = self.start()
        self.write(log_file, json.dumps({"level": "error", "msg": "exec: \"nope\": not found"}) + "\n")
        with capturedLogs() as events:
            self.last_spawn().finish(1)
        self.assertEqual(self.failureResultOf(d, RuntimeFailure).value.message,
                         'runc run failed: exec: "nope": not found')
        self.assertEqual(os.listdir(self.folder), [])
        self.assertEqual(list(events), [])

    def test_files_removed_when_the_start_times_out(self):
        d = self.runtime.run("c1", "/b", (None, None, None), self.register(), timeout=5)
        argv = self.last_spawn().argv
        self.write(argv[argv.index("--log") + 1], "")
        self.clock.advance(5)
        self.last_spawn().finish(-9)
        self.failureResultOf(d, DeadlineExceeded)
        self.assertEqual(os.listdir(self.folder), [])


class SeamTests(SynchronousTestCase):
    """
    The driver and the fakes provide the interfaces they are used through.
    """

    def test_interfaces(self):
        monitor = FakeMonitor()
        self.assertTrue(verifyObject(IMonitor, monitor))
        self.assertTrue(verifyObject(IRuntime, RuncRuntime(Clock(), monitor, "runc", BINARY, ROOT)))

    def test_monitor_client_declares_the_seam(self):
        """The real monitor client is declared to provide the seam the driver and supervisor use."""
        from containerd_tx.monitor_client.client import MonitorClient, MonitorError as ClientError

        self.assertTrue(verifyClass(IMonitor, MonitorClient))
        self.assertIs(MonitorError, ClientError)


class StartTests(RuncTestCase):
    """
    Starts (run, exec, restore): their command lines, the monitor registration, and their failures.
    """

    def test_run(self):
        """
        run -d with the runtime's JSON log and pid file in the record folder, the daemon's global args
        before the container's, and the process registered with the monitor; fires with the pid.
        """
        d = self.runtime.run("c1", "/bundles/c1", ("/in", "/out", None), self.register(),
                             global_args=["--debug"])
        spawn = self.last_spawn()
        pid_file = os.path.join(self.work, "pid-init")
        self.assertEqual(spawn.argv, [BINARY, "--root", ROOT, "--systemd-cgroup", "--debug", "--log",
                                      self.log_file, "--log-format", "json", "run", "-d", "--bundle",
                                      "/bundles/c1", "--pid-file", pid_file, "c1"])
        self.assertEqual(spawn.options, dict(capture=False, stdin="/in", stdout="/out", stderr=None, env=None,
                                             pid_file=pid_file, console_socket=None, announce=False,
                                             register={"container": "c1", "process": "init",
                                                       "record_dir": self.work}))
        self.assertNoResult(d)
        self.assertEqual((self.runtime.starts_in_flight, self.runtime.max_starts_in_flight), (1, 1))
        spawn.finish(0, pid=4242)
        self.assertEqual(self.successResultOf(d), 4242)
        self.assertEqual((self.runtime.starts_in_flight, self.runtime.max_starts_in_flight), (0, 1))

    def test_run_options(self):
        """--no-pivot and --console-socket; a --root among the args replaces the daemon's."""
        self.runtime.run("c1", "/b", (None, None, None), self.register(), global_args=["--root=/elsewhere"],
                         no_pivot_root=True, console_socket="/s/console.sock")
        argv = self.last_spawn().argv
        self.assertNotIn(ROOT, argv)
        self.assertEqual(argv[1:3], ["--systemd-cgroup", "--root=/elsewhere"])
        self.assertEqual(argv[-4:], ["--no-pivot", "--console-socket", "/s/console.sock", "c1"])
        self.assertEqual(self.last_spawn().options["console_socket"], "/s/console.sock")

    def test_exec(self):
        d = self.runtime.exec("c1", "/state/exec-p1.json", (None, "/out", "/err"), self.register("p1"))
        self.assertEqual(self.last_spawn().argv, [
            BINARY, "--root", ROOT, "--systemd-cgroup", "--log", self.log_file, "--log-format", "json", "exec",
            "-d", "--pid-file", os.path.join(self.work, "pid-p1"), "--process", "/state/exec-p1.json", "c1"])
        self.last_spawn().finish(0, pid=7)
        self.assertEqual(self.successResultOf(d), 7)

    def test_restore(self):
        """restore -d with the image, work path and the checkpoint's CRIU options repeated."""
        d = self.runtime.restore("c1", "/b", "/b/checkpoints/cp", "/work", {"tcp": True, "unix_sockets": True,
                                                                            "shell": True, "exit": True},
                                 (None, None, None), self.register())
        self.assertEqual(self.last_spawn().argv[4:], [
            "--log", self.log_file, "--log-format", "json", "restore", "-d", "--image-path", "/b/checkpoints/cp",
            "--work-path", "/work", "--bundle", "/b", "--pid-file", os.path.join(self.work, "pid-init"),
            "--tcp-established", "--ext-unix-sk", "--shell-job", "c1"])
        self.last_spawn().finish(0, pid=9)
        self.assertEqual(self.successResultOf(d), 9)

    def test_restore_failure_names_criu_errors(self):
        """A failed restore's message ends with CRIU's own error lines from restore.log."""
        work = self.mktemp()
        os.makedirs(work)
        with open(os.path.join(work, "restore.log"), "w") as f:
            f.write("(00.1) ok\n(00.2) Error (criu/files.c:1): Can't open file\n(00.3) Restoring FAILED.\n")
        d = self.runtime.restore("c1", "/b", "/img", work, {}, (None, None, None), self.register())
        self.last_spawn().finish(1, stderr=b"criu failed: type RESTORE errno 0")
        failure = self.failureResultOf(d, RuntimeFailure)
        self.assertEqual(failure.value.message,
                         "runc restore failed: criu failed: type RESTORE errno 0: Error (criu/files.c:1): Can't "
                         "open file")

    def test_failure_from_log(self):
        """A failed start says what the runtime's JSON log says, prefixed once with the runtime and command."""
        d = self.runtime.run("c1", "/b", (None, None, None), self.register())
        self.write_log({"level": "info", "msg": "starting"},
                       {"level": "error", "msg": "container_linux.go: exec: \"nope\": not found"})
        self.last_spawn().finish(1, stderr=b"ignored when the log has it")
        self.assertEqual(self.failureResultOf(d, RuntimeFailure).value.message,
                         'runc run failed: container_linux.go: exec: "nope": not found')
        d = self.runtime.run("c1", "/b", (None, None, None), self.register())
        self.write_log({"level": "fatal", "msg": "runc run failed: already prefixed"})
        self.last_spawn().finish(1)
        self.assertEqual(self.failureResultOf(d, RuntimeFailure).value.message, "runc run failed: already prefixed")

    def test_failure_without_log(self):
        """Without a log, stderr; without either, the exit status."""
        d = self.runtime.exec("c1", "/p.json", (None, None, None), self.register("p1"))
        self.last_spawn().finish(2, stderr=b"  no such container\n")
        self.assertEqual(self.failureResultOf(d, RuntimeFailure).value.message, "runc exec failed: no such container")
        d = self.runtime.exec("c1", "/p.json", (None, None, None), self.register("p1"))
        self.last_spawn().finish(3)
        self.assertEqual(self.failureResultOf(d, RuntimeFailure).value.message, "runc exec failed: exit status 3")

    def test_timeout(self):
        """
        A start not done within its timeout is killed with SIGKILL and fails with DeadlineExceeded once the
        monitor reports its end; one done in time cancels the timer.
        """
        d = self.runtime.run("c1", "/b", (None, None, None), self.register(), timeout=5)
        spawn = self.last_spawn()
        self.clock.advance(4.9)
        self.assertEqual(spawn.kills, [])
        self.clock.advance(0.1)
        self.assertEqual(spawn.kills, [9])
        self.assertNoResult(d)
        spawn.finish(137)
        self.assertEqual(self.failureResultOf(d, DeadlineExceeded).value.message,
                         "runc did not start c1 within 5s; it was killed")
        d = self.runtime.run("c1", "/b", (None, None, None), self.register(), timeout=5)
        self.last_spawn().finish(0, pid=1)
        self.assertEqual(self.successResultOf(d), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_monitor_lost(self):
        """A start whose monitor went away is UNAVAILABLE."""
        d = self.runtime.run("c1", "/b", (None, None, None), self.register())
        self.last_spawn().fail(MonitorLost("connection lost"))
        self.assertEqual(self.failureResultOf(d, Unavailable).value.message,
                         "cannot start c1: the monitor went away (connection lost)")
        self.assertEqual(self.runtime.starts_in_flight, 0)

    def test_monitor_refused(self):
        """A spawn the monitor refuses (a stdio path it cannot open) is FAILED_PRECONDITION naming the process."""
        d = self.runtime.exec("c1", "/p.json", ("/in", None, None), self.register("p1"))
        self.last_spawn().fail(MonitorError("cannot open /in: permission denied"))
        self.assertEqual(self.failureResultOf(d, FailedPrecondition).value.message,
                         "cannot start process p1 of container c1: cannot open /in: permission denied")
        d = self.runtime.run("c1", "/b", ("/in", None, None), self.register())
        self.last_spawn().fail(MonitorError("no"))
        self.assertEqual(self.failureResultOf(d, FailedPrecondition).value.message, "cannot start container c1: no")


class CrunOneStepTests(RuncTestCase):
    """
    crun starts in one step (`run -d`) like runc: the monitor waits for crun's short-lived helper to leave the
    init before it reads the init's status.
    """

    name = "crun"

    def test_run_detached(self):
        d = self.runtime.run("c1", "/b", (None, None, None), self.register())
        run = self.last_spawn()
        self.assertEqual(run.argv[run.argv.index("json") + 1:run.argv.index("json") + 3], ["run", "-d"])
        self.assertNotIn("create", run.argv)
        run.finish(0, pid=55)
        self.assertEqual(self.successResultOf(d), 55)
        self.assertEqual(len(self.monitor.spawns), 1)


class CommandTests(RuncTestCase):
    """
    The other commands run with their output captured; their errors are read from it.
    """

    def run_command(self, d, status=0, stdout=b"", stderr=b""):
        spawn = self.last_spawn()
        self.assertTrue(spawn.options["capture"])
        spawn.finish(status, stdout=stdout, stderr=stderr)
        return spawn.argv[4:] if spawn.argv[2] == ROOT else spawn.argv

    def test_command_lines(self):
        cases = [
            (lambda: self.runtime.kill("c1", 15), ["kill", "c1", "15"]),
            (lambda: self.runtime.kill("c1", 9, all=True), ["kill", "--all", "c1", "9"]),
            (lambda: self.runtime.delete("c1"), ["delete", "c1"]),
            (lambda: self.runtime.delete("c1", force=True), ["delete", "--force", "c1"]),
            (lambda: self.runtime.pause("c1"), ["pause", "c1"]),
            (lambda: self.runtime.resume("c1"), ["resume", "c1"]),
            (lambda: self.runtime.update("c1", "/r.json"), ["update", "--resources", "/r.json", "c1"]),
        ]
        for call, words in cases:
            d = call()
            self.assertEqual(self.run_command(d), words)
            self.successResultOf(d)

    def test_list(self):
        d = self.runtime.list()
        self.assertEqual(self.run_command(d, stdout=b'[{"id": "c1", "status": "running"}]'),
                         ["list", "--format", "json"])
        self.assertEqual(self.successResultOf(d), [{"id": "c1", "status": "running"}])
        d = self.runtime.list()
        self.run_command(d, stdout=b"null")
        self.assertEqual(self.successResultOf(d), [])

    def test_cgroup_paths_from_state(self):
        """runc's recorded cgroups are read from <root>/<id>/state.json, under a --root given per call too."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "c1"))
        with open(os.path.join(root, "c1", "state.json"), "w") as f:
            json.dump({"id": "c1", "cgroup_paths": {"memory": "/sys/fs/cgroup/memory/c1", "bad": "rel"}}, f)
        self.assertEqual(self.runtime.cgroup_paths("c1", ["--root", root]), {"memory": "/sys/fs/cgroup/memory/c1"})
        self.assertEqual(self.runtime.cgroup_paths("c1", [f"--root={root}"]), {"memory": "/sys/fs/cgroup/memory/c1"})
        self.assertEqual(self.runtime.cgroup_paths("c2", ["--root", root]), {})
        self.assertEqual(self.runtime.cgroup_paths("c1"), {})  # ROOT has no such container

    def test_not_found(self):
        """A container the runtime does not know is NOT_FOUND."""
        d = self.runtime.delete("c1")
        self.run_command(d, 1, stderr=b'time="x" level=error msg="container \\"c1\\" does not exist"\n')
        self.assertEqual(self.failureResultOf(d, NotFound).value.message, "runc: container c1 does not exist")

    def test_error_messages(self):
        """The runtime's message from JSON or text log lines, else its output, else the exit status."""
        cases = [
            (b'{"level": "error", "msg": "cannot pause: frozen"}\n', b"", "runc pause failed: cannot pause: frozen"),
            (b'time="t" level=fatal msg="bad \\"thing\\""\n', b"", 'runc pause failed: bad "thing"'),
            (b"plain words\n", b"", "runc pause failed: plain words"),
            (b"", b"from stdout", "runc pause failed: from stdout"),
            (b"", b"", "runc pause failed: exit status 1"),
        ]
        for stderr, stdout, message in cases:
            d = self.runtime.pause("c1")
            self.run_command(d, 1, stdout=stdout, stderr=stderr)
            self.assertEqual(self.failureResultOf(d, RuntimeFailure).value.message, message)


class CheckpointTests(RuncTestCase):
    """
    Checkpoints: CRIU's options as flags, and its own reason when it fails.
    """

    def test_leave_running(self):
        d = self.runtime.checkpoint("c1", "/img", "/work", {"tcp": True, "empty_ns": ["network", "ipc"]})
        spawn = self.last_spawn()
        self.assertEqual(spawn.argv[4:], ["checkpoint", "--image-path", "/img", "--work-path", "/work",
                                          "--leave-running", "--tcp-established", "--empty-ns", "network",
                                          "--empty-ns", "ipc", "c1"])
        spawn.finish(0)
        self.successResultOf(d)

    def test_exit(self):
        self.runtime.checkpoint("c1", "/img", "/work", {"exit": True, "shell": True})
        self.assertNotIn("--leave-running", self.last_spawn().argv)
        self.assertIn("--shell-job", self.last_spawn().argv)

    def test_failure_with_criu_reason(self):
        """A failed dump is CheckpointFailed (FAILED_PRECONDITION) ending with dump.log's error lines."""
        work = self.mktemp()
        os.makedirs(work)
        with open(os.path.join(work, "dump.log"), "w") as f:
            f.write("(0.1) Error (criu/sk-inet.c:1): Connected TCP socket, consider using --tcp-established\n"
                    "(0.2) Error (criu/cr-dump.c:2): Dumping FAILED.\n")
        d = self.runtime.checkpoint("c1", "/img", work, {})
        self.last_spawn().finish(1, stderr=b"criu failed: type NOTIFY errno 0")
        failure = self.failureResultOf(d, CheckpointFailed)
        self.assertIsInstance(failure.value, FailedPrecondition)
        self.assertEqual(failure.value.message, "runc checkpoint failed: criu failed: type NOTIFY errno 0: Error "
                                                "(criu/sk-inet.c:1): Connected TCP socket, consider using "
                                                "--tcp-established")

    def test_criu_log_errors(self):
        """The last error lines only (without CRIU's timestamps), at most three; none for a missing log."""
        path = os.path.join(self.work, "x.log")
        with open(path, "w") as f:
            f.write("".join(f"(0.{n}) Error (a.c:{n}): problem {n}\n" for n in range(5)))
        self.assertEqual(criu_log_errors(path), "Error (a.c:2): problem 2; Error (a.c:3): problem 3; "
                                                "Error (a.c:4): problem 4")
        self.assertEqual(criu_log_errors(os.path.join(self.work, "missing.log")), "")


class DebugTests(RuncTestCase):
    """
    With C{debug}, every command line is logged with its duration, and starts with how many are in flight.
    """

    def test_debug(self):
        runtime = RuncRuntime(self.clock, self.monitor, "runc", BINARY, ROOT, debug=True)
        with capturedLogs() as events:
            d = runtime.pause("c1")
            self.clock.advance(0.25)
            self.last_spawn().finish(0)
            self.successResultOf(d)
            runtime.run("c1", "/b", (None, None, None), self.register())
        self.assertEqual([formatEvent(e) for e in events], [
            f"runtime: {BINARY} --root {ROOT} pause c1 (250.0 ms)",
            "runtime: starting c1: 1 starts in flight, most at once so far 1",
        ])

    def test_quiet_by_default(self):
        with capturedLogs() as events:
            d = self.runtime.pause("c1")
            self.last_spawn().finish(0)
            self.successResultOf(d)
        self.assertEqual(events, [])
