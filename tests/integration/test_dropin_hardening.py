"""
Hardening found with bad input and unkind clients, on real runc containers: checkpoint calls never touch what
the daemon did not write as a checkpoint, wrongly typed configs and racing calls get one-line statuses, a full
daemon's State always answers, idle subscribers do not lock out live ones, and long or relative paths for the
state dir and socket work.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading

import grpc

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from tests.integration.test_bad_input_all import BadInputTestCase
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import bundles
from tests.support.daemon import Daemon, create_request, metric_value, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id
from tests.support.net import free_port

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
#: What grpc clients (Go's and Python's) receive at most by default.
CLIENT_RECEIVE_LIMIT = 4 * 1024 * 1024


class DropinBadInputTestCase(BadInputTestCase):
    """L{BadInputTestCase} with a one-call status check and a token for unique container ids."""

    def setUp(self):
        super().setUp()
        self.dropin = unique_id("d")


class CheckpointFoldersTests(DropinBadInputTestCase):
    """Only a folder the daemon wrote as a checkpoint is ever listed or deleted."""

    def test_bundle_is_not_a_checkpoint(self):
        bundle = self.good_bundle
        parent, name = os.path.dirname(bundle), os.path.basename(bundle)
        self.assertStatus(NOT_FOUND, self.daemon.stub.DeleteCheckpoint,
                          pb.DeleteCheckpointRequest(id=self.kid, name=name, checkpointDir=parent))
        self.assertTrue(os.path.isfile(os.path.join(bundle, "config.json")))
        listed = self.daemon.stub.ListCheckpoint(pb.ListCheckpointRequest(id=self.kid, checkpointDir=parent),
                                                 timeout=30)
        self.assertNotIn(name, [c.name for c in listed.checkpoints])

    def test_running_containers_bundle_survives(self):
        state = self.daemon.stub.State(pb.StateRequest(id=self.kid), timeout=10)
        bundle = state.containers[0].bundlePath
        parent, name = os.path.dirname(bundle), os.path.basename(bundle)
        self.assertStatus(NOT_FOUND, self.daemon.stub.DeleteCheckpoint,
                          pb.DeleteCheckpointRequest(id=self.kid, name=name, checkpointDir=parent))
        self.assertTrue(os.path.isfile(os.path.join(bundle, "config.json")))

    def test_folder_with_options_file_is_not_a_checkpoint(self):
        root = os.path.join(self.daemon.workdir, "fake-checkpoints")
        os.makedirs(os.path.join(root, "precious"))
        with open(os.path.join(root, "precious", "config.json"), "w") as f:
            json.dump({"name": "precious"}, f)
        self.assertStatus(NOT_FOUND, self.daemon.stub.DeleteCheckpoint,
                          pb.DeleteCheckpointRequest(id=self.kid, name="precious", checkpointDir=root))
        self.assertTrue(os.path.exists(os.path.join(root, "precious", "config.json")))
        listed = self.daemon.stub.ListCheckpoint(pb.ListCheckpointRequest(id=self.kid, checkpointDir=root),
                                                 timeout=30)
        self.assertEqual(list(listed.checkpoints), [])


class WronglyTypedConfigTests(DropinBadInputTestCase):
    """Wrong types anywhere a client can put them: INVALID_ARGUMENT or FAILED_PRECONDITION, no traceback."""

    def config_bundle(self, edit):
        return self.bundle("sleep", "1000", edit=edit)

    def test_wrong_types_in_config(self):
        edits = {
            "uid root": lambda c: c["process"]["user"].update(uid="root"),
            "gid list": lambda c: c["process"]["user"].update(gid=[0]),
            "additionalGids": lambda c: c["process"]["user"].update(additionalGids="x"),
            "env 5": lambda c: c["process"].update(env=5),
            "env of ints": lambda c: c["process"].update(env=[1, 2]),
            "rlimits x": lambda c: c["process"].update(rlimits="x"),
            "rlimit entry": lambda c: c["process"].update(rlimits=["x"]),
            "cwd 3": lambda c: c["process"].update(cwd=3),
            "terminal str": lambda c: c["process"].update(terminal="yes"),
            "user str": lambda c: c["process"].update(user="root"),
            "caps bounding str": lambda c: c["process"]["capabilities"].update(bounding="CAP_KILL"),
        }
        for name, edit in edits.items():
            bundle = self.config_bundle(edit)
            self.assertStatus(INVALID, self.daemon.stub.CreateContainer, create_request(f"typed-{self.dropin}", bundle))
        self.assertNotIn(f"typed-{self.dropin}", self.state_ids())

    def test_deeply_nested_json(self):
        bundle = self.bundle("sleep", "1000")
        with open(os.path.join(bundle, "config.json"), "w") as f:
            f.write("[" * 100000 + "]" * 100000)
        self.assertStatus(INVALID, self.daemon.stub.CreateContainer, create_request(f"deep-{self.dropin}", bundle), "nested")
        with open(os.path.join(bundle, "config.json"), "w") as f:
            config = bundles.runc_spec()
            config["root"] = {"path": self.rootfs}
            text = json.dumps(config)
            f.write(text[:-1] + ', "annotations": {"x": ' + "[" * 100000 + "]" * 100000 + "}}")
        self.assertStatus(INVALID, self.daemon.stub.CreateContainer, create_request(f"deep-{self.dropin}", bundle), "nested")

    def test_nul_in_stdio_path(self):
        for field in ("stdin", "stdout", "stderr"):
            self.assertStatus(INVALID, self.daemon.stub.CreateContainer,
                              create_request(f"nul-{self.dropin}", self.good_bundle, **{field: "/tmp/a\0b"}), field)
            self.assertStatus(INVALID, self.daemon.stub.AddProcess,
                              pb.AddProcessRequest(id=self.kid, pid="p", args=["true"],
                                                   **{field: "/tmp/a\0b"}), field)

    def test_terminal_with_regular_file_stdin(self):
        stdin = os.path.join(self.daemon.workdir, "input.txt")
        with open(stdin, "w") as f:
            f.write("echo hi\n")
        bundle = self.bundle("sh", terminal=True)
        details = None
        try:
            self.daemon.stub.CreateContainer(create_request(f"tty-{self.dropin}", bundle, stdin=stdin), timeout=60)
        except grpc.RpcError as e:
            self.assertIn(e.code(), (INVALID, PRECONDITION), e.details())
            self.assertNotIn("\n", e.details())
            details = e.details()
        self.assertIsNotNone(details, "a terminal with a regular-file stdin was accepted")
        self.assertIn("stdin", details)
        with self.assertRaises(grpc.RpcError) as raised:
            self.daemon.stub.AddProcess(pb.AddProcessRequest(id=self.kid, pid="ttyexec", args=["sh"], terminal=True,
                                                             stdin=stdin), timeout=60)
        self.assertIn(raised.exception.code(), (INVALID, PRECONDITION), raised.exception.details())
        self.assertIn("stdin", raised.exception.details())

    def test_exec_racing_pause(self):
        racer = f"flipper-{self.dropin}"
        self.start(racer, "sleep", "1000")
        self.expected_containers = {self.kid, racer}
        errors = []

        def flip():
            for _ in range(15):
                for status in ("paused", "running"):
                    try:
                        self.daemon.stub.UpdateContainer(
                            pb.UpdateContainerRequest(id=racer, status=status), timeout=60)
                    except grpc.RpcError as e:
                        errors.append(("update", e.code(), e.details()))

        flipper = threading.Thread(target=flip)
        flipper.start()
        try:
            round = 0
            while flipper.is_alive():
                round += 1
                try:
                    self.daemon.stub.AddProcess(
                        pb.AddProcessRequest(id=racer, pid=f"racer{round}", args=["true"]), timeout=60)
                except grpc.RpcError as e:
                    errors.append((f"racer{round}", e.code(), e.details()))
        finally:
            flipper.join(120)
        for who, code, details in errors:
            self.assertIn(code, (INVALID, PRECONDITION), (who, code, details))
            self.assertNotIn("\n", details)
            if who != "update":
                self.assertIn(who, details)
        self.daemon.stub.Signal(pb.SignalRequest(id=racer, pid="init", signal=9), timeout=10)
        self.events.wait("exit", racer, "init")
        self.expected_containers = {self.kid}


class FullStateTests(LifecycleTestCase):
    """Five containers with the most labels the API accepts: State (and ctr containers) still answer."""

    def test_state_answers(self):
        bundle = self.bundle("sleep", "1000")
        token = unique_id("t")
        accepted = []
        for n in range(5):
            labels = [f"l{n}.{i}=".ljust(4096, "x") for i in range(1024)]
            self.assertEqual({len(label) for label in labels}, {4096})
            while True:
                try:
                    self.daemon.stub.CreateContainer(create_request(f"fat{n}-{token}", bundle, labels=labels), timeout=60)
                    break
                except grpc.RpcError as e:
                    self.assertEqual(e.code(), INVALID, e.details())
                    self.assertIn("labels", e.details())
                    labels = labels[: len(labels) // 2]
            accepted.append(len(labels))
        self.assertTrue(all(accepted), accepted)
        # A client with grpc's default limits, as Docker's.
        channel = grpc.insecure_channel(self.daemon.address)
        self.addCleanup(channel.close)
        stub = pb_grpc.APIStub(channel)
        state = stub.State(pb.StateRequest(), timeout=30)
        self.assertEqual(sorted(c.id for c in state.containers), [f"fat{n}-{token}" for n in range(5)])
        self.assertLessEqual(state.ByteSize(), CLIENT_RECEIVE_LIMIT)
        for n in range(5):
            one = stub.State(pb.StateRequest(id=f"fat{n}-{token}"), timeout=30)
            self.assertEqual(one.containers[0].status, "running")
        done = subprocess.run([sys.executable, "-m", "ctr.main", "--address", self.daemon.address, "containers"],
                              capture_output=True, text=True, timeout=60,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        self.assertEqual(done.returncode, 0, done.stderr)
        for n in range(5):
            self.assertIn(f"fat{n}-{token}", done.stdout)


class IdleSubscribersTests(LifecycleTestCase):
    """128 subscribers that never read cannot keep a live subscriber out."""

    def setUp(self):
        self.port = free_port()
        self.daemon_args = ("--metrics-address", f"tcp:{self.port}:interface=127.0.0.1")
        super().setUp()

    def test_live_subscriber_admitted(self):
        self.events.close()
        channels = []
        calls = []
        for _ in range(128):
            # One connection each, as separate clients have: grpc's per-connection window is per client.
            channel = grpc.insecure_channel(self.daemon.address, options=[("grpc.use_local_subchannel_pool", 1)])
            channels.append(channel)
            calls.append(pb_grpc.APIStub(channel).Events(pb.EventsRequest()))
        for call in calls:
            self.addCleanup(call.cancel)
        for channel in channels:
            self.addCleanup(channel.close)
        # Every slot taken (counted by the daemon; probing with one more subscriber would itself evict an idle
        # one once they are 10 s old, which on a busy machine comes before all 128 are up).
        wait_for(lambda: metric_value(self.port, "containerd_tx_event_subscribers") == 128, timeout=120,
                 message="all 128 idle subscribers to be counted")
        quiet = unique_id("quiet")
        self.start(quiet, "sleep", "1000")
        # The idle ones hold on; a newcomer gets in (today: refused until they are 1524 events behind).
        wait_for(lambda: not self._subscriber_refused(), timeout=60, interval=1, message="a slot for a newcomer")
        live = EventCollector(self.daemon.stub)
        self.addCleanup(live.close)
        self.daemon.stub.UpdateContainer(pb.UpdateContainerRequest(id=quiet, status="paused"), timeout=30)
        live.wait("pause", quiet, timeout=30)
        self.assertIsNone(live.error)

    def _subscriber_refused(self):
        # A stored-only replay of nothing: admitted, it ends at once and its slot is free again before the
        # client sees the end; refused, it gets RESOURCE_EXHAUSTED.
        request = pb.EventsRequest(storedOnly=True, timestamp={"seconds": 4000000000})
        try:
            list(self.daemon.stub.Events(request, timeout=10))
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        return False


class LongPathTests(LifecycleTestCase):
    """A state dir and socket whose paths pass AF_UNIX's 108 bytes work."""

    #: --state-dir and --listen as given (None: the long absolute paths).
    state_dir_arg = None
    listen_arg = None

    def setUp(self):
        parent = tempfile.mkdtemp(prefix="ctx-long-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", parent]))
        deep = os.path.join(parent, "d" * 100, "e" * 60)
        os.makedirs(deep)
        self.daemon = Daemon.for_test(self, start=False, parent=deep)
        long_socket = self.daemon.socket
        self.assertGreater(len(os.path.join(self.daemon.state_dir, "monitor.sock")), 108)
        self.assertGreater(len(long_socket), 108)
        # The test's client reaches the long socket through a short link to its folder.
        link = os.path.join(parent, "w")
        os.symlink(self.daemon.workdir, link)
        self.daemon.socket = os.path.join(link, "containerd.sock")
        command = self.daemon.command
        state_dir, listen = self.state_dir_arg or self.daemon.state_dir, self.listen_arg or long_socket

        def with_paths(extra=()):
            argv = command(extra)
            argv[argv.index("--state-dir") + 1] = state_dir
            argv[argv.index("--listen") + 1] = listen
            return argv

        self.daemon.command = with_paths
        self.daemon.start()
        self.rootfs = bundles.make_rootfs(os.path.join(self.daemon.workdir, "rootfs"))
        self.events = EventCollector(self.daemon.stub)
        self.addCleanup(self.events.close)
        self._bundles = 0

    def test_long_paths_run_containers(self):
        self.assertTrue(os.path.exists(os.path.join(self.daemon.state_dir, "monitor.sock")))
        longpath = unique_id("longpath")
        container = self.start(longpath, "sh", "-c", "exit 3")
        self.assertEqual(container.status, "running")
        self.assertEqual(self.events.wait("exit", longpath, "init").status, 3)
        tty = self.bundle("sh", "-c", "exit 4", terminal=True)
        longtty = unique_id("longtty")
        self.daemon.stub.CreateContainer(create_request(longtty, tty), timeout=60)
        self.assertEqual(self.events.wait("exit", longtty, "init").status, 4)


class RelativePathTests(LongPathTests):
    """
    Relative --state-dir and --listen are taken from the daemon's working directory, as 0.2.9 does, also when
    their absolute form is past 108 bytes.
    """

    state_dir_arg = "state"
    listen_arg = "unix://containerd.sock"
