"""
Tests for C{ctr checkpoints} (L{ctr.checkpoints}) against the fake daemon of L{tests.unit.test_ctr_cli}.
"""

import io
import json
import os
import time

from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from ctr import output
from tests.unit.test_ctr_cli import DaemonTestCase, invoke


class ListTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.api.checkpoints["web"] = [
            pb.Checkpoint(name="snap", tcp=True, unixSockets=False, shell=True),
            pb.Checkpoint(name="before-upgrade", exit=True, unixSockets=True, emptyNS=["network"]),
        ]

    def test_table(self):
        result = self.run_ctr("checkpoints", "list", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout.splitlines(), [
            "NAME             TCP     UNIX SOCKETS   SHELL",
            "before-upgrade   false   true           false",
            "snap             true    false          true",
        ])
        self.assertEqual(self.api.requests_of("ListCheckpoint"), [pb.ListCheckpointRequest(id="web")])

    def test_shorthandAndAlias(self):
        table = self.run_ctr("checkpoints", "list", "web").stdout
        self.assertEqual(self.run_ctr("checkpoints", "web").stdout, table)
        self.assertEqual(self.run_ctr("checkpoints", "ls", "web").stdout, table)

    def test_json(self):
        result = self.run_ctr("checkpoints", "list", "-o", "json", "web")
        self.assertOK(result)
        self.assertEqual([json.loads(line) for line in result.stdout.splitlines()], [
            {"name": "before-upgrade", "exit": True, "tcp": False, "unixSockets": True, "shell": False,
             "emptyNS": ["network"]},
            {"name": "snap", "exit": False, "tcp": True, "unixSockets": False, "shell": True, "emptyNS": []},
        ])

    def test_jsonMatchesTable(self):
        rows = [line.split() for line in self.run_ctr("checkpoints", "web").stdout.splitlines()[1:]]
        data = [json.loads(line) for line in self.run_ctr("checkpoints", "--format", "json", "web").stdout.splitlines()]
        self.assertEqual(rows, [[c["name"], str(c["tcp"]).lower(), str(c["unixSockets"]).lower(),
                                 str(c["shell"]).lower()] for c in data])

    def test_empty(self):
        self.api.checkpoints["db"] = []
        self.assertEqual(self.run_ctr("checkpoints", "db").stdout, "NAME   TCP   UNIX SOCKETS   SHELL\n")
        self.assertEqual(self.run_ctr("checkpoints", "db", "-o", "json").stdout, "")

    def test_checkpointDirAbsolute(self):
        cwd = os.getcwd()
        self.run_ctr("checkpoints", "list", "--checkpoint-dir", "ckpts", "web")
        self.run_ctr("checkpoints", "--checkpoint-dir", "/var/lib/ckpt", "web")  # given to the group
        self.run_ctr("checkpoints", "--checkpoint-dir", "/a", "list", "--checkpoint-dir", "/b", "web")
        self.assertEqual([r.checkpointDir for r in self.api.requests_of("ListCheckpoint")],
                         [os.path.join(cwd, "ckpts"), "/var/lib/ckpt", "/b"])

    def test_groupFormat(self):
        self.assertEqual(len(self.run_ctr("checkpoints", "-o", "json", "web").stdout.splitlines()), 2)

    def test_unknownContainer(self):
        result = self.run_ctr("checkpoints", "ghost")
        self.assertEqual((result.exit_code, result.stdout, result.stderr), (1, "", "ctr: container ghost not found\n"))


class CreateTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.api.checkpoints["web"] = []

    def test_plain(self):
        result = self.run_ctr("checkpoints", "create", "web", "snap")
        self.assertOK(result)
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.api.requests_of("CreateCheckpoint"), [pb.CreateCheckpointRequest(
            id="web", checkpoint=pb.Checkpoint(name="snap"))])

    def test_flags(self):
        self.assertOK(self.run_ctr("checkpoints", "create", "--tcp", "--unix-sockets", "--exit", "--shell",
                                   "--empty-ns", "network", "--empty-ns", "ipc", "--checkpoint-dir", "/ck",
                                   "web", "snap"))
        self.assertEqual(self.api.requests_of("CreateCheckpoint"), [pb.CreateCheckpointRequest(
            id="web", checkpointDir="/ck", checkpoint=pb.Checkpoint(
                name="snap", tcp=True, unixSockets=True, exit=True, shell=True, emptyNS=["network", "ipc"]))])

    def test_thenListed(self):
        self.run_ctr("checkpoints", "create", "--tcp", "web", "snap")
        self.assertEqual(self.run_ctr("checkpoints", "web").stdout.splitlines()[1].split(),
                         ["snap", "true", "false", "false"])

    def test_noProgressWithoutTerminal(self):
        result = self.run_ctr("checkpoints", "create", "web", "snap")
        self.assertEqual(result.stderr, "")

    def test_progressOnTerminal(self):
        """On a terminal stderr, a progress line names the container while CRIU works, then is erased."""
        self.patch(output, "is_terminal", lambda stream: True)
        result = self.run_ctr("checkpoints", "create", "web", "snap")
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertTrue(result.stderr.startswith("\r\033[Kcheckpointing web… 0s"), repr(result.stderr))
        self.assertTrue(result.stderr.endswith("\r\033[K"), repr(result.stderr))

    def test_progressErasedOnError(self):
        self.patch(output, "is_terminal", lambda stream: True)
        result = self.run_ctr("checkpoints", "create", "ghost", "snap")
        self.assertEqual(result.exit_code, 1)
        self.assertTrue(result.stderr.endswith("\r\033[Kctr: container ghost not found\n"), repr(result.stderr))

    def test_formatIsForListOnly(self):
        result = invoke(["--address", "/nonexistent/ctr.sock", "checkpoints", "-o", "json", "create", "web", "x"])
        self.assertEqual(result.exit_code, 2)
        self.assertIn("--format only applies to 'list'", result.stderr)

    def test_badNamespace(self):
        result = invoke(["--address", "/nonexistent/ctr.sock", "checkpoints", "create", "--empty-ns", "net",
                         "web", "x"])
        self.assertEqual(result.exit_code, 2)
        self.assertIn("'net' is not one of", result.stderr)


class DeleteTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.api.checkpoints["web"] = [pb.Checkpoint(name="snap"), pb.Checkpoint(name="other")]

    def test_delete(self):
        result = self.run_ctr("checkpoints", "delete", "--checkpoint-dir", "/ck", "web", "snap")
        self.assertOK(result)
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.api.requests_of("DeleteCheckpoint"),
                         [pb.DeleteCheckpointRequest(id="web", name="snap", checkpointDir="/ck")])
        self.assertEqual([c.name for c in self.api.checkpoints["web"]], ["other"])

    def test_alias(self):
        self.assertOK(self.run_ctr("checkpoints", "rm", "web", "other"))

    def test_unknown(self):
        result = self.run_ctr("checkpoints", "delete", "web", "nope")
        self.assertEqual((result.exit_code, result.stderr), (1, "ctr: checkpoint nope not found\n"))


class ProgressTests(TestCase):
    """L{output.progress} on its own."""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    def test_ticks(self):
        stream = self.Terminal()
        self.patch(output, "is_terminal", lambda s: s is stream)
        with output.progress("working…", stream=stream, interval=0.01):
            deadline = time.monotonic() + 10
            while stream.getvalue().count("working…") < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
        text = stream.getvalue()
        self.assertTrue(text.startswith("\r\033[Kworking… 0s"))
        self.assertTrue(text.endswith("\r\033[K"))

    def test_silentElsewhere(self):
        stream = io.StringIO()
        with output.progress("working…", stream=stream, interval=0.01):
            pass
        self.assertEqual(stream.getvalue(), "")
