"""
What ctr loads: C{--help}, C{--version}, C{completion} and every Tab that needs no daemon import nothing of
gRPC or protobuf; commands that call the daemon load gRPC and the generated code, and never the daemon (ctr
is a thin client: of C{containerd_tx} it takes the generated code and stdlib-only shared modules). Each
case runs ctr in a fresh interpreter and reads its C{sys.modules} as it exits.
"""

import json
import os
import subprocess
import sys
import tempfile

from twisted.trial.unittest import TestCase

from ctr import client
from tests.unit.test_ctr_cli import FakeDaemon, _container

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Runs ctr with the arguments given, then writes the names of the loaded modules to the file in
#: $CTR_MODULES_OUT, however ctr ends.
_PROBE = """
import atexit, json, os, sys
atexit.register(lambda: json.dump(sorted(sys.modules), open(os.environ["CTR_MODULES_OUT"], "w")))
sys.argv = ["ctr"] + sys.argv[1:]
from ctr.main import main
main()
"""

#: Top-level packages ctr must not load unless it talks to the daemon.
RPC_PACKAGES = ("grpc", "grpc_health", "google")

#: Of containerd_tx, what ctr may ever load: the package, its stdlib-only shared modules, the generated code.
CLIENT_SIDE = {"containerd_tx", "containerd_tx.durations", "containerd_tx.addresses", "containerd_tx.api",
               "containerd_tx.api.containerd_pb2", "containerd_tx.api.containerd_pb2_grpc"}


def loaded_modules(args, **env):
    """@return: (exit status, stdout, the modules loaded) of ctr run with C{args} in a new interpreter."""
    with tempfile.NamedTemporaryFile(prefix="ctr-modules-", suffix=".json") as out:
        environment = {k: v for k, v in os.environ.items() if k != "CONTAINERD_ADDRESS"}
        environment.update(PYTHONPATH=REPO, CTR_MODULES_OUT=out.name, **env)
        done = subprocess.run([sys.executable, "-c", _PROBE] + list(args), env=environment, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)
        with open(out.name) as f:
            return done.returncode, done.stdout, json.load(f)


def completing(*words):
    """The environment of a bash Tab after C{ctr WORDS...} (the last word is the one being completed)."""
    return {"_CTR_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(("ctr",) + words),
            "COMP_CWORD": str(len(words))}


class StartupImportTests(TestCase):

    def assertNoRpc(self, modules):
        loaded = sorted(m for m in modules if m.split(".")[0] in RPC_PACKAGES)
        self.assertEqual(loaded, [])

    def assertThinClient(self, modules):
        self.assertEqual(sorted(m for m in modules if m.startswith("containerd_tx") and m not in CLIENT_SIDE), [])
        self.assertEqual(sorted(m for m in modules if m.split(".")[0] in ("twisted", "zope")), [])

    def test_help_version_completion_script(self):
        for args in (["--version"], ["--help"], ["containers", "--help"], ["containers", "exec", "--help"],
                     ["events", "--help"], ["completion", "bash"], ["completion", "zsh"]):
            status, stdout, modules = loaded_modules(args)
            self.assertEqual(status, 0, args)
            self.assertTrue(stdout, args)
            self.assertNoRpc(modules)
            self.assertThinClient(modules)

    def test_tab_needs_no_rpc(self):
        """Tabs on commands, options, signal names, filters and formats load nothing of gRPC."""
        cases = [
            (("cont",), "plain,containers"),
            (("containers", "k"), "plain,kill"),
            (("containers", "kill", "--s"), "plain,--signal"),
            (("containers", "kill", "-s", "KI"), "plain,KILL"),
            (("containers", "kill", "-s", "sigte"), "plain,sigterm"),
            (("containers", "list", "--filter", "sta"), "plain,status="),
            (("events", "-o", "j"), "plain,json"),
        ]
        for words, expected in cases:
            status, stdout, modules = loaded_modules([], **completing(*words))
            self.assertEqual(status, 0, words)
            self.assertIn(expected, stdout.splitlines(), words)
            self.assertNoRpc(modules)

    def test_usage_error_needs_no_rpc(self):
        status, _, modules = loaded_modules(["containers", "update", "--memory", "lots", "web"])
        self.assertEqual(status, 2)
        self.assertNoRpc(modules)

    def test_daemon_command_stays_a_thin_client(self):
        """A command that calls the daemon loads gRPC and the generated code, and nothing of the daemon."""
        daemon = FakeDaemon()
        self.addCleanup(daemon.stop)
        daemon.api.containers = [_container("db", "/b/db"), _container("web", "/b/web")]
        status, stdout, modules = loaded_modules(["--address", daemon.address, "containers", "-q"])
        self.assertEqual((status, stdout), (0, "db\nweb\n"))
        self.assertIn("grpc", modules)
        self.assertIn("containerd_tx.api.containerd_pb2", modules)
        self.assertThinClient(modules)
        self.assertEqual([m for m in modules if m.startswith("grpc_health.")], [])  # health is read by hand
        self.assertNotIn("ctr.stdio", modules)  # only --attach needs it

    def test_no_daemon_loads_no_rpc(self):
        """Nobody listening is told before gRPC is loaded."""
        missing = os.path.join(tempfile.mkdtemp(prefix="ctr-startup-"), "none.sock")
        self.addCleanup(os.rmdir, os.path.dirname(missing))
        status, _, modules = loaded_modules(["--address", missing, "containers"])
        self.assertEqual(status, 1)
        self.assertEqual([m for m in modules if m.split(".")[0] == "grpc"], [])


class HealthStatusTests(TestCase):
    """The health reply, read by hand (no generated code needed to check the daemon's health)."""

    def test_statuses(self):
        from grpc_health.v1 import health_pb2

        for status in (0, 1, 2, 3):
            data = health_pb2.HealthCheckResponse(status=status).SerializeToString()
            self.assertEqual(client.health_status(data), status)
        self.assertEqual(client.health_status(b""), 0)
        self.assertEqual(client.health_status(b"\x12\x02hi\x08\x01"), 1)  # unknown fields are skipped

    def test_garbage(self):
        for data in (b"\x08", b"\x0d\x00", b"\x12\x05ab"):
            self.assertRaises(ValueError, client.health_status, data)


class ClosedPipeTests(TestCase):
    """Output into a pipe whose reader has gone ends quietly with status 0, as other Unix tools do."""

    def test_help_and_version_into_a_closed_pipe(self):
        for args in (["--help"], ["containers", "--help"], ["--version"], ["completion", "bash"]):
            child = subprocess.Popen([sys.executable, "-c", "import sys; sys.argv = ['ctr'] + sys.argv[1:]\n"
                                      "from ctr.main import main; main()", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
            child.stdout.close()  # the reader is gone before ctr writes a byte
            status = child.wait(timeout=60)
            stderr = child.stderr.read()
            child.stderr.close()
            self.assertEqual((status, stderr), (0, b""), args)
