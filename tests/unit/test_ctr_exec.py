"""
Tests for C{ctr containers exec} (L{ctr.execute}) against the fake daemon of L{tests.unit.test_ctr_cli}.
"""

import json
import os
import shutil
import stat
import tempfile
import threading
import time

import grpc
from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from ctr import execute, stdio
from tests.unit.test_ctr_cli import DaemonTestCase, _container, _read_to_eof, invoke, make_event

BUNDLE_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"]


class ExecRequestTests(DaemonTestCase):
    """Detached exec: the AddProcessRequest built from the command line."""

    def setUp(self):
        super().setUp()
        self.bundle = tempfile.mkdtemp(prefix="ctr-bundle-")
        self.addCleanup(shutil.rmtree, self.bundle)
        with open(os.path.join(self.bundle, "config.json"), "w") as config:
            json.dump({"process": {"args": ["sleep", "1000"], "env": BUNDLE_ENV}}, config)
        self.api.containers = [_container("web", self.bundle)]

    def test_request(self):
        result = self.run_ctr("containers", "exec", "--id", "web", "--pid", "probe", "--cwd", "/tmp",
                              "--env", "FOO=bar", "-e", "EMPTY=", "--uid", "1000", "--gid", "100", "--",
                              "sh", "-c", "echo $FOO; exit 4")
        self.assertOK(result)
        self.assertEqual(result.stdout, "probe\n")
        self.assertEqual(self.api.requests_of("AddProcess"), [pb.AddProcessRequest(
            id="web", pid="probe", args=["sh", "-c", "echo $FOO; exit 4"], cwd="/tmp",
            env=BUNDLE_ENV + ["FOO=bar", "EMPTY="], user=pb.User(uid=1000, gid=100), terminal=False)])
        self.assertEqual(self.api.requests_of("Events"), [])

    def test_envOverridesBundleEntry(self):
        self.assertOK(self.run_ctr("containers", "exec", "--id", "web", "--env", "PATH=/opt/bin", "--env",
                                   "A=1", "--", "true"))
        [request] = self.api.requests_of("AddProcess")
        self.assertEqual(list(request.env), ["PATH=/opt/bin", "TERM=xterm", "A=1"])
        self.assertEqual(self.api.requests_of("State"), [pb.StateRequest(id="web")])

    def test_envWithUnreadableBundle(self):
        """When the bundle cannot be read, the given entries alone are sent."""
        os.unlink(os.path.join(self.bundle, "config.json"))
        self.assertOK(self.run_ctr("containers", "exec", "--id", "web", "--env", "A=1", "--", "true"))
        self.assertEqual(list(self.api.requests_of("AddProcess")[0].env), ["A=1"])

    def test_noEnvUsesContainersEnvironment(self):
        """Without --env no env is sent (the daemon uses the container's), and State is not asked."""
        self.assertOK(self.run_ctr("containers", "exec", "--id", "web", "--", "true"))
        [request] = self.api.requests_of("AddProcess")
        self.assertEqual((list(request.env), request.cwd, request.user, request.terminal),
                         ([], "", pb.User(), False))
        self.assertEqual(self.api.requests_of("State"), [])

    def test_generatedPid(self):
        result = self.run_ctr("containers", "exec", "--id", "web", "--", "true")
        [request] = self.api.requests_of("AddProcess")
        self.assertRegex(request.pid, r"^exec-[0-9a-f]{6}$")
        self.assertEqual(result.stdout, request.pid + "\n")
        self.assertNotEqual(execute.generated_process_id(), execute.generated_process_id())

    def test_argsWithoutSeparator(self):
        """Options after the first argument belong to the process, -- or not."""
        self.assertOK(self.run_ctr("containers", "exec", "--id", "web", "sh", "-c", "ls -l", "--pid", "x"))
        self.assertEqual(list(self.api.requests_of("AddProcess")[0].args), ["sh", "-c", "ls -l", "--pid", "x"])

    def test_ttyDetached(self):
        self.assertOK(self.run_ctr("containers", "exec", "--id", "web", "-t", "--", "top"))
        self.assertTrue(self.api.requests_of("AddProcess")[0].terminal)

    def test_failedPreconditionIsOneLine(self):
        def refuse(request, context):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "container web is paused: cannot exec into it")

        self.api.on_add_process = refuse
        result = self.run_ctr("containers", "exec", "--id", "web", "--", "true")
        self.assertEqual((result.exit_code, result.stdout, result.stderr),
                         (1, "", "ctr: container web is paused: cannot exec into it\n"))


class ExecIdArgumentTests(DaemonTestCase):
    """`exec ID -- ARGS` (docker's order) sends the same request as containerd 0.2's `exec --id ID -- ARGS`."""

    def setUp(self):
        super().setUp()
        self.api.containers = [_container("web", "/nonexistent/bundle")]

    def test_sameRequest(self):
        forms = [
            ["--id", "web", "--pid", "p", "-u", "5", "-g", "6", "--", "ls", "-l"],
            ["--pid", "p", "-u", "5", "-g", "6", "web", "--", "ls", "-l"],
            ["--pid", "p", "--uid", "5", "--gid", "6", "web", "ls", "-l"],
            ["--pid", "p", "-u", "5", "-g", "6", "--", "web", "ls", "-l"],
        ]
        for args in forms:
            self.assertOK(self.run_ctr("containers", "exec", *args))
        expected = pb.AddProcessRequest(id="web", pid="p", args=["ls", "-l"], user=pb.User(uid=5, gid=6))
        self.assertEqual(self.api.requests_of("AddProcess"), [expected] * len(forms))

    def test_commandMayLookLikeAnOption(self):
        self.assertOK(self.run_ctr("containers", "exec", "--pid", "p", "web", "--", "ls", "--", "-x"))
        self.assertEqual(list(self.api.requests_of("AddProcess")[0].args), ["ls", "--", "-x"])


class ExecUsageTests(TestCase):
    def assertUsage(self, args, fragment):
        result = invoke(["--address", "/nonexistent/ctr.sock", "containers", "exec"] + args)
        self.assertEqual(result.exit_code, 2, result.output)
        self.assertIn(fragment, result.stderr)

    def test_missingId(self):
        self.assertUsage(["--", "true"], "missing the container or the command: ctr containers exec ID -- ARGS...")
        self.assertUsage(["web", "--"], "missing the container or the command")
        self.assertUsage([], "missing the container or the command")

    def test_missingArgs(self):
        self.assertUsage(["--id", "web"], "missing the command to run: ctr containers exec --id ID -- ARGS...")
        self.assertUsage(["--id", "web", "--"], "missing the command to run")

    def test_badEnv(self):
        self.assertUsage(["--id", "web", "--env", "NOEQUALS", "--", "true"], "'NOEQUALS' is not KEY=VALUE")

    def test_badUid(self):
        self.assertUsage(["--id", "web", "--uid", "-1", "--", "true"], "is not a user or group id")
        self.assertUsage(["--id", "web", "--gid", "x", "--", "true"], "'x' is not a valid integer")


class MergeEnvTests(TestCase):
    def test_merge(self):
        self.assertEqual(execute.merge_env(["A=1", "B=2"], ["B=3", "C=4", "A=5"]), ["A=5", "B=3", "C=4"])
        self.assertEqual(execute.merge_env([], ["X=a=b"]), ["X=a=b"])


class ExecAttachTests(DaemonTestCase):
    """exec --attach: stdio through FIFOs, the exit status of the exec'd process."""

    def test_attach(self):
        seen = {}

        def process(request, stdin, out, err):
            with stdin, out, err:
                data, seen["stdin EOF"] = _read_to_eof(stdin.fileno())
                out.write(b"0\n" + data)
                err.write(b"oops\n")
            # ctr closes the process's stdin at its local EOF; a real process could exit before that arrives,
            # but this test checks that it is sent, so the process ends only after it.
            seen["closed"] = self.api.stdin_closed.wait(60)
            # Another process's exit must not end the attach.
            self.api.publish(make_event("exit", "web", pid="other", status=9))
            self.api.publish(make_event("exit", "web", pid=request.pid, status=4))

        def on_add_process(request, context):
            seen["modes"] = [stat.S_IMODE(os.stat(p).st_mode) for p in (request.stdin, request.stdout, request.stderr)]
            # Opened before AddProcess answers, as the daemon does: stdin written and closed by ctr before
            # anyone had opened the FIFO for reading would be gone.
            streams = (open(request.stdin, "rb"), open(request.stdout, "wb"), open(request.stderr, "wb"))
            threading.Thread(target=process, args=(request, *streams)).start()

        self.api.on_add_process = on_add_process
        result = self.run_ctr("containers", "exec", "--id", "web", "--pid", "probe", "-a", "--", "sh", "-c",
                              "id -u; exit 4", input=b"typed\n")
        self.assertEqual(result.exit_code, 4, result.output[-300:])
        self.assertEqual(result.stdout_bytes, b"0\ntyped\n")  # no process id printed when attached
        self.assertEqual(result.stderr, "oops\n")
        self.assertTrue(seen["stdin EOF"])
        self.assertTrue(seen["closed"])
        self.assertEqual(seen["modes"], [0o600] * 3)
        [request] = self.api.requests_of("AddProcess")
        self.assertEqual((request.id, request.pid, list(request.args), request.terminal),
                         ("web", "probe", ["sh", "-c", "id -u; exit 4"], False))
        self.assertFalse(os.path.exists(os.path.dirname(request.stdout)))
        methods = [name for name, _ in self.api.requests]
        self.assertLess(methods.index("Events"), methods.index("AddProcess"))
        self.assertIn(pb.UpdateProcessRequest(id="web", pid="probe", closeStdin=True),
                      self.api.requests_of("UpdateProcess"))

    def test_attachTtyHandsOverToStdio(self):
        """-a -t: the request asks for a terminal and the attach handles one (raw mode, resize)."""
        calls = []

        def attach(stub, container_id, process_id, start_call, tty=False, **streams):
            calls.append((container_id, process_id, tty))
            start_call("/in", "/out", "/err")
            return 300

        self.patch(stdio, "attach", attach)
        result = self.run_ctr("containers", "exec", "--id", "web", "--pid", "sh1", "-a", "-t", "--", "sh")
        self.assertEqual(result.exit_code, 255)  # statuses above 255 are capped
        self.assertEqual(calls, [("web", "sh1", True)])
        [request] = self.api.requests_of("AddProcess")
        self.assertEqual((request.terminal, request.stdin, request.stdout, request.stderr),
                         (True, "/in", "/out", "/err"))

    def test_attachAddProcessFails(self):
        paths = []

        def refuse(request, context):
            paths.append(request.stdout)
            context.abort(grpc.StatusCode.NOT_FOUND, "container ghost not found")

        self.api.on_add_process = refuse
        started = time.monotonic()
        result = self.run_ctr("containers", "exec", "--id", "ghost", "-a", "--", "true")
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual((result.exit_code, result.stderr), (1, "ctr: container ghost not found\n"))
        self.assertFalse(os.path.exists(os.path.dirname(paths[0])))
