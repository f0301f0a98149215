"""
Tests for C{ctr completion} (L{ctr.completion}) and the completion of container ids
(L{ctr.cli.complete_container_id}), against the fake daemon of L{tests.unit.test_ctr_cli}.
"""

import os
import shutil
import subprocess
import tempfile
import time

import grpc
from click.testing import CliRunner
from twisted.trial.unittest import SkipTest, TestCase

from containerd_tx.api import containerd_pb2 as pb
from ctr.main import ctr
from tests.unit.test_ctr_cli import DaemonTestCase, _container, invoke


class ScriptTests(TestCase):
    def script(self, shell):
        result = invoke(["completion", shell])
        self.assertEqual(result.exit_code, 0, result.output)
        return result.stdout

    def test_bashLoads(self):
        """The bash script defines a completion for ctr: `source <(ctr completion bash)` works."""
        bash = shutil.which("bash")
        if bash is None:
            raise SkipTest("bash is not installed")
        script = self.script("bash")
        self.assertIn("_CTR_COMPLETE=bash_complete", script)
        directory = tempfile.mkdtemp(prefix="ctr-completion-")
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "ctr.bash")
        with open(path, "w") as f:
            f.write(script)
        done = subprocess.run([bash, "--norc", "-c", f"source {path} && complete -p ctr"], capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("ctr", done.stdout)

    def test_zsh(self):
        script = self.script("zsh")
        self.assertTrue(script.startswith("#compdef ctr"), script[:40])
        self.assertIn("_CTR_COMPLETE=zsh_complete", script)

    def test_fish(self):
        self.assertIn("_CTR_COMPLETE=fish_complete", self.script("fish"))

    def test_unknownShell(self):
        result = invoke(["completion", "tcsh"])
        self.assertEqual(result.exit_code, 2)
        self.assertIn("'tcsh' is not one of", result.stderr)

    def test_needsNoDaemon(self):
        result = invoke(["--address", "/nonexistent/ctr.sock", "completion", "bash"])
        self.assertEqual((result.exit_code, result.stderr), (0, ""))


def complete(words, env=None):
    """What bash's completion gets back from ctr for the command line C{words} (the last word incomplete)."""
    environment = {"_CTR_COMPLETE": "bash_complete", "COMP_WORDS": words,
                   "COMP_CWORD": str(len(words.split(" ")) - 1), "CONTAINERD_ADDRESS": None}
    environment.update(env or {})
    result = CliRunner().invoke(ctr, [], env=environment, prog_name="ctr")
    return result.exit_code, [line for line in result.stdout.splitlines() if line]


class ContainerIdTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.api.containers = [_container(name, f"/b/{name}") for name in ("web", "worker", "db")]

    def words(self, rest):
        return f"ctr --address {self.daemon.address} {rest}"

    def test_kill(self):
        self.assertEqual(complete(self.words("containers kill w")), (0, ["plain,web", "plain,worker"]))
        self.assertEqual(complete(self.words("containers kill ")), (0, ["plain,db", "plain,web", "plain,worker"]))

    def test_everyIdArgument(self):
        for rest in ("containers exec --id d", "containers pause d", "containers resume d", "containers update d",
                     "containers stats d", "checkpoints list d", "checkpoints create d", "checkpoints delete d"):
            self.assertEqual(complete(self.words(rest)), (0, ["plain,db"]), rest)

    def test_eventsId(self):
        self.assertEqual(complete(self.words("events --id w")), (0, ["plain,web", "plain,worker"]))

    def test_checkpointsShorthand(self):
        """`ctr checkpoints <TAB>` offers the commands and the container ids (ctr checkpoints ID lists)."""
        code, items = complete(self.words("checkpoints "))
        self.assertEqual(items, ["plain,create", "plain,delete", "plain,list", "plain,db", "plain,web",
                                 "plain,worker"])

    def test_processIds(self):
        """-p completes the process ids of the container given, or of every container before one is."""
        self.api.containers = [
            _container("web", "/b/web", processes=[("init", 1, ["sh"]), ("worker", 2, ["top"])]),
            _container("db", "/b/db", processes=[("init", 3, ["pg"]), ("backup", 4, ["tar"])]),
        ]
        self.assertEqual(complete(self.words("containers kill web -p ")), (0, ["plain,init", "plain,worker"]))
        self.assertEqual(complete(self.words("containers wait db -p b")), (0, ["plain,backup"]))
        self.assertEqual(complete(self.words("containers kill -p ")),
                         (0, ["plain,backup", "plain,init", "plain,worker"]))

    def test_execContainerArgument(self):
        """exec's first argument is the container (without --id); the command after it is not completed."""
        self.assertEqual(complete(self.words("containers exec w")), (0, ["plain,web", "plain,worker"]))
        self.assertEqual(complete(self.words("containers exec --id web l")), (0, []))

    def test_checkpointNames(self):
        self.api.checkpoints["web"] = [pb.Checkpoint(name="snap"), pb.Checkpoint(name="second"),
                                       pb.Checkpoint(name="other")]
        self.assertEqual(complete(self.words("checkpoints delete web s")), (0, ["plain,second", "plain,snap"]))
        self.assertEqual(complete(self.words("checkpoints delete --checkpoint-dir /ck web o")), (0, ["plain,other"]))
        self.assertEqual(self.api.requests_of("ListCheckpoint")[-1],
                         pb.ListCheckpointRequest(id="web", checkpointDir="/ck"))
        self.assertEqual(complete(self.words("checkpoints delete ghost ")), (0, []))

    def test_addressFromEnvironment(self):
        self.assertEqual(complete("ctr containers kill d", env={"CONTAINERD_ADDRESS": self.daemon.address}),
                         (0, ["plain,db"]))

    def test_commandsStillComplete(self):
        code, items = complete(self.words("containers "))
        self.assertIn("plain,exec", items)
        self.assertIn("plain,stats", items)

    def test_quietOnDaemonError(self):
        self.api.fail = (grpc.StatusCode.UNAVAILABLE, "down")  # any error: nothing, exit 0
        self.assertEqual(complete(self.words("containers kill ")), (0, []))


class LocalCompletionTests(TestCase):
    """Tabs answered without the daemon: signal names, filters, checkpoints of a bundle."""

    def test_signalNames(self):
        self.assertEqual(complete("ctr containers kill -s KI"), (0, ["plain,KILL"]))
        self.assertEqual(complete("ctr containers kill -s SIGU"),
                         (0, ["plain,SIGUSR1", "plain,SIGUSR2", "plain,SIGURG"]))  # in signal number order
        self.assertEqual(complete("ctr containers kill -s sigk"), (0, ["plain,sigkill"]))
        code, items = complete("ctr containers kill -s ")
        self.assertEqual(code, 0)
        self.assertIn("plain,TERM", items)
        self.assertIn("plain,HUP", items)

    def test_startCheckpointFromBundle(self):
        bundle = tempfile.mkdtemp(prefix="ctr-bundle-")
        self.addCleanup(shutil.rmtree, bundle)
        for name in ("snap", "second", "other"):
            os.makedirs(os.path.join(bundle, "checkpoints", name))
        with open(os.path.join(bundle, "checkpoints", "stray-file"), "w"):
            pass
        self.assertEqual(complete(f"ctr containers start web {bundle} -c s"), (0, ["plain,second", "plain,snap"]))
        directory = os.path.join(bundle, "checkpoints")
        self.assertEqual(complete(f"ctr containers start --checkpoint-dir {directory} -c o"), (0, ["plain,other"]))


class NoDaemonTests(TestCase):
    def test_quietAndQuick(self):
        directory = tempfile.mkdtemp(prefix="ctr-test-")
        self.addCleanup(shutil.rmtree, directory)
        started = time.monotonic()
        self.assertEqual(complete(f"ctr --address {directory}/none.sock containers kill "), (0, []))
        self.assertLess(time.monotonic() - started, 5)
