"""
Bad input over every RPC of C{types.API}, table-driven: each case gets the status code docs/api-contract.md
documents and a one-line message without a traceback; afterwards the daemon serves, the container started
before is untouched, nothing was created in the runtime or the state dir, and the daemon logged no
unexpected error.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import grpc
from grpc_health.v1 import health_pb2

from containerd_tx.api import containerd_pb2 as pb
from tests.support.net import free_port
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support import processes
from tests.support.daemon import create_request, metric_value, wait_for
from tests.support.ids import unique_id

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

#: Ids no container, process or checkpoint may have (docs/api-contract.md, "Ids").
BAD_IDS = [
    ("empty", ""),
    ("129 chars", "x" * 129),
    ("dot-dot slash", "../x"),
    ("dot-dot", ".."),
    ("slash", "a/b"),
    ("absolute", "/abs"),
    ("leading dot", ".hidden"),
    ("leading dash", "-rf"),
    ("unicode", "\u00e9"),
    ("unicode lookalike", "caf\u00e9"),
    ("control char", "a\x01b"),
    ("escape", "a\x1b[2Jb"),
    ("tab", "tab\tid"),
    ("newline", "nl\nid"),
    ("nul", "nul\0id"),
    ("space", " "),
    ("colon", "a:b"),
]

#: A deadline for calls that should fail at once (an Events stream that wrongly stays open ends with it).
CALL_TIMEOUT = 15


def _events(stub):
    """Events as a unary-looking call: the whole stream as a list."""
    return lambda request, timeout: list(stub.Events(request, timeout=timeout))


class BadInputTestCase(LifecycleTestCase):
    """
    A daemon with one running container (self.kid) that nothing here may disturb, and a table runner.
    """

    def setUp(self):
        super().setUp()
        self.kid = unique_id("keeper")
        self.keeper = self.start(self.kid, "sleep", "1000")
        self.good_bundle = self.bundle("sleep", "1000")
        self.scratch = os.path.join(self.daemon.workdir, "scratch")
        os.mkdir(self.scratch)
        self.state_listing = sorted(os.listdir(self.daemon.state_dir))
        self.workdir_listing = sorted(os.listdir(self.daemon.workdir))
        self.expected_containers = {self.kid}
        # Cleanups run last-in first-out: this one runs before the daemon is torn down.
        self.addCleanup(self._check_unharmed)

    def _check_unharmed(self):
        self.assertEqual(self.daemon.health(), health_pb2.HealthCheckResponse.SERVING)
        version = self.daemon.stub.GetServerVersion(pb.GetServerVersionRequest(), timeout=10)
        self.assertTrue(version.revision or version.major or version.minor or version.patch)
        state = self.daemon.stub.State(pb.StateRequest(id=self.kid), timeout=10)
        (keeper,) = state.containers
        self.assertEqual(keeper.status, "running")
        self.assertEqual(keeper.processes[0].systemPid, self.keeper.processes[0].systemPid)
        self.assertEqual([p.pid for p in keeper.processes], ["init"])
        self.assertIn(self.keeper.processes[0].systemPid, list(keeper.pids))
        # Nothing but the expected containers, in the daemon, the runtime and the state dir.
        wait_for(lambda: set(self.state_ids()) == self.expected_containers, timeout=20,
                 message=f"State to list exactly {sorted(self.expected_containers)}")
        wait_for(lambda: set(self.daemon.runtime_containers()) == self.expected_containers, timeout=20,
                 message=f"the runtime to hold exactly {sorted(self.expected_containers)}")
        wait_for(lambda: set(os.listdir(os.path.join(self.daemon.state_dir, "containers")))
                 == self.expected_containers, timeout=20, message="containers/ to hold only the expected")
        # No file escaped into the state dir or the test dir (ids like ../x).
        self.assertEqual(sorted(os.listdir(self.daemon.state_dir)), self.state_listing)
        self.assertFalse(os.path.lexists(os.path.join(self.daemon.state_dir, "x")))
        self.assertFalse(os.path.lexists(os.path.join(self.daemon.state_dir, "runtime", "x")))
        # keeper saw no pause, resume, exec or exit.
        self.assertEqual([e.type for e in self.events.matching(id=self.kid)], ["start-container"])
        # Every refusal was deliberate: no handler fell through to "unexpected error" with a traceback.
        log = self.daemon.log_text()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("unexpected error", log)

    # The table runner.

    def run_table(self, cases):
        """
        Run C{cases}: (name, call, request, code, words) with C{words} a substring the message must contain
        (case-insensitive). Every case runs; all mismatches are reported together.
        """
        problems = []
        for name, call, request, code, words in cases:
            try:
                call(request, timeout=CALL_TIMEOUT)
            except grpc.RpcError as error:
                details = error.details() or ""
                if error.code() != code:
                    problems.append(f"{name}: {error.code().name} {details!r}, expected {code.name}")
                elif "\n" in details or "Traceback" in details:
                    problems.append(f"{name}: message is not one line: {details!r}")
                elif words and words.lower() not in details.lower():
                    problems.append(f"{name}: message {details!r} lacks {words!r}")
                elif not details.strip():
                    problems.append(f"{name}: empty message")
            else:
                problems.append(f"{name}: succeeded, expected {code.name}")
        if problems:
            self.fail(f"{len(problems)} of {len(cases)} cases wrong:\n  " + "\n  ".join(problems))
        return len(cases)

    def scratch_path(self, name):
        return os.path.join(self.scratch, name)

    def readonly_file(self):
        """A regular file with mode 0444 (root could write it; the daemon must honour the mode)."""
        path = self.scratch_path("readonly")
        if not os.path.exists(path):
            open(path, "w").close()
            os.chmod(path, 0o444)
        return path

    def writeonly_file(self):
        path = self.scratch_path("writeonly")
        if not os.path.exists(path):
            open(path, "w").close()
            os.chmod(path, 0o222)
        return path

    def a_directory(self):
        path = self.scratch_path("adir")
        os.makedirs(path, exist_ok=True)
        return path


class IdTests(BadInputTestCase):

    def test_bad_container_ids_on_every_rpc(self):
        stub = self.daemon.stub
        cases = []
        for label, bad in BAD_IDS:
            cases += [
                (f"CreateContainer id {label}", stub.CreateContainer, create_request(bad, self.good_bundle),
                 INVALID, "container id"),
                (f"Signal id {label}", stub.Signal, pb.SignalRequest(id=bad, pid="init", signal=9),
                 INVALID, "container id"),
                (f"AddProcess id {label}", stub.AddProcess,
                 pb.AddProcessRequest(id=bad, pid="p1", args=["true"]), INVALID, "container id"),
                (f"UpdateProcess id {label}", stub.UpdateProcess,
                 pb.UpdateProcessRequest(id=bad, pid="init", closeStdin=True), INVALID, "container id"),
                (f"UpdateContainer id {label}", stub.UpdateContainer,
                 pb.UpdateContainerRequest(id=bad, status="running"), INVALID, "container id"),
                (f"Stats id {label}", stub.Stats, pb.StatsRequest(id=bad), INVALID, "container id"),
                (f"CreateCheckpoint id {label}", stub.CreateCheckpoint,
                 pb.CreateCheckpointRequest(id=bad, checkpoint=pb.Checkpoint(name="cp")), INVALID,
                 "container id"),
                (f"ListCheckpoint id {label}", stub.ListCheckpoint, pb.ListCheckpointRequest(id=bad), INVALID,
                 "container id"),
                (f"DeleteCheckpoint id {label}", stub.DeleteCheckpoint,
                 pb.DeleteCheckpointRequest(id=bad, name="cp"), INVALID, "container id"),
            ]
            if bad:  # an empty id means "all containers" for these two
                cases += [
                    (f"State id {label}", stub.State, pb.StateRequest(id=bad), INVALID, "container id"),
                    (f"Events id {label}", _events(stub), pb.EventsRequest(id=bad), INVALID, "container id"),
                ]
        self.run_table(cases)

    def test_bad_process_ids(self):
        stub = self.daemon.stub
        cases = []
        for label, bad in BAD_IDS:
            cases += [
                (f"Signal pid {label}", stub.Signal, pb.SignalRequest(id=self.kid, pid=bad, signal=9),
                 INVALID, "process id"),
                (f"AddProcess pid {label}", stub.AddProcess,
                 pb.AddProcessRequest(id=self.kid, pid=bad, args=["true"]), INVALID, "process id"),
                (f"UpdateProcess pid {label}", stub.UpdateProcess,
                 pb.UpdateProcessRequest(id=self.kid, pid=bad, closeStdin=True), INVALID, "process id"),
            ]
            if bad:  # UpdateContainer's pid is optional
                cases.append((f"UpdateContainer pid {label}", stub.UpdateContainer,
                              pb.UpdateContainerRequest(id=self.kid, pid=bad, status="running"), INVALID,
                              "process id"))
        self.run_table(cases)
        records = os.listdir(os.path.join(self.daemon.state_dir, "containers", self.kid))
        self.assertEqual([n for n in records if n.startswith(("process-", "exec-", "pid-"))
                          and n not in ("process-init.json", "pid-init")], [])

    def test_bad_checkpoint_names(self):
        stub = self.daemon.stub
        cases = []
        for label, bad in BAD_IDS:
            cases += [
                (f"CreateCheckpoint name {label}", stub.CreateCheckpoint,
                 pb.CreateCheckpointRequest(id=self.kid, checkpoint=pb.Checkpoint(name=bad)), INVALID,
                 "checkpoint name"),
                (f"DeleteCheckpoint name {label}", stub.DeleteCheckpoint,
                 pb.DeleteCheckpointRequest(id=self.kid, name=bad), INVALID, "checkpoint name"),
            ]
            if bad:  # no checkpoint: a fresh start
                cases.append((f"CreateContainer checkpoint {label}", stub.CreateContainer,
                              create_request("restored", self.good_bundle, checkpoint=bad), INVALID,
                              "checkpoint name"))
        self.run_table(cases)
        self.assertFalse(os.path.exists(os.path.join(self.good_bundle, "checkpoints")))
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.good_bundle), "x")))


class BundleTests(BadInputTestCase):

    def _bundle_with_config(self, name, content):
        path = self.scratch_path(name)
        os.mkdir(path)
        if content is not None:
            with open(os.path.join(path, "config.json"), "wb") as f:
                f.write(content if isinstance(content, bytes) else content.encode())
        return path

    def test_bad_bundles(self):
        stub = self.daemon.stub
        not_dir = self.scratch_path("plainfile")
        open(not_dir, "w").close()
        config_is_dir = self._bundle_with_config("configdir", None)
        os.mkdir(os.path.join(config_is_dir, "config.json"))
        root = {"path": "/"}
        bundles = [
            ("empty path", "", "bundlePath"),
            ("relative", "relative/bundle", "absolute"),
            ("dot relative", "./bundle", "absolute"),
            ("missing", self.scratch_path("missing"), "does not exist"),
            ("not a directory", not_dir, "not a directory"),
            ("no config.json", self._bundle_with_config("noconfig", None), "no config.json"),
            ("config.json is a directory", config_is_dir, "config.json"),
            ("empty config", self._bundle_with_config("empty", ""), "empty"),
            ("blank config", self._bundle_with_config("blank", " \n\t\n"), "empty"),
            ("not JSON", self._bundle_with_config("garbage", "{not json"), "JSON"),
            ("binary", self._bundle_with_config("binary", b"\xff\xfe\x00\x01"), "JSON"),
            ("JSON list", self._bundle_with_config("list", "[1, 2]"), "object"),
            ("JSON string", self._bundle_with_config("string", '"config"'), "object"),
            ("no process", self._bundle_with_config("noprocess", json.dumps({"root": root})), "process"),
            ("process not object", self._bundle_with_config(
                "processstr", json.dumps({"process": "sh", "root": root})), "process"),
            ("empty args", self._bundle_with_config(
                "noargs", json.dumps({"process": {"args": []}, "root": root})), "process.args"),
            ("args not strings", self._bundle_with_config(
                "intargs", json.dumps({"process": {"args": [1, 2]}, "root": root})), "process.args"),
            ("args not a list", self._bundle_with_config(
                "strargs", json.dumps({"process": {"args": "sh"}, "root": root})), "process.args"),
            ("no root", self._bundle_with_config(
                "noroot", json.dumps({"process": {"args": ["sh"]}})), "root.path"),
            ("root.path not a string", self._bundle_with_config(
                "introot", json.dumps({"process": {"args": ["sh"]}, "root": {"path": 7}})), "root.path"),
            ("ociVersion not a string", self._bundle_with_config(
                "intversion", json.dumps({"ociVersion": 1, "process": {"args": ["sh"]}, "root": root})),
             "ociVersion"),
        ]
        cases = [(f"CreateContainer bundle {label}", stub.CreateContainer, create_request("newone", path),
                  INVALID, words) for label, path, words in bundles]
        self.run_table(cases)


class SignalTests(BadInputTestCase):

    def test_bad_signal_numbers(self):
        stub = self.daemon.stub
        cases = [(f"Signal {number}", stub.Signal, pb.SignalRequest(id=self.kid, pid="init", signal=number),
                  INVALID, "signal") for number in (0, 65, 999, 2 ** 31, 2 ** 32 - 1)]
        # An unknown container is still NOT_FOUND only for a valid signal; a bad signal is refused first.
        cases += [(f"Signal ghost {number}", stub.Signal, pb.SignalRequest(id="ghost", pid="init", signal=number),
                   INVALID, "signal") for number in (0, 65)]
        self.run_table(cases)


class UnknownTests(BadInputTestCase):

    def test_unknown_container(self):
        stub = self.daemon.stub
        checkpoint = pb.Checkpoint(name="cp")
        cases = [
            ("Signal", stub.Signal, pb.SignalRequest(id="ghost", pid="init", signal=9)),
            ("State", stub.State, pb.StateRequest(id="ghost")),
            ("AddProcess", stub.AddProcess, pb.AddProcessRequest(id="ghost", pid="p1", args=["true"])),
            ("UpdateProcess close", stub.UpdateProcess,
             pb.UpdateProcessRequest(id="ghost", pid="init", closeStdin=True)),
            ("UpdateProcess resize", stub.UpdateProcess,
             pb.UpdateProcessRequest(id="ghost", pid="init", width=80, height=24)),
            ("UpdateContainer pause", stub.UpdateContainer, pb.UpdateContainerRequest(id="ghost", status="paused")),
            ("UpdateContainer resume", stub.UpdateContainer,
             pb.UpdateContainerRequest(id="ghost", status="running")),
            ("UpdateContainer resources", stub.UpdateContainer,
             pb.UpdateContainerRequest(id="ghost", resources=pb.UpdateResource(cpuShares=512))),
            ("Stats", stub.Stats, pb.StatsRequest(id="ghost")),
            ("CreateCheckpoint", stub.CreateCheckpoint, pb.CreateCheckpointRequest(id="ghost", checkpoint=checkpoint)),
            ("ListCheckpoint", stub.ListCheckpoint, pb.ListCheckpointRequest(id="ghost")),
            ("DeleteCheckpoint", stub.DeleteCheckpoint, pb.DeleteCheckpointRequest(id="ghost", name="cp")),
        ]
        self.run_table([(f"{name} unknown container", call, request, NOT_FOUND, "ghost")
                        for name, call, request in cases])

    def test_unknown_process_and_checkpoint(self):
        stub = self.daemon.stub
        self.run_table([
            ("Signal unknown process", stub.Signal, pb.SignalRequest(id=self.kid, pid="ghost", signal=9),
             NOT_FOUND, "ghost"),
            ("UpdateProcess unknown process", stub.UpdateProcess,
             pb.UpdateProcessRequest(id=self.kid, pid="ghost", closeStdin=True), NOT_FOUND, "ghost"),
            ("UpdateProcess resize unknown process", stub.UpdateProcess,
             pb.UpdateProcessRequest(id=self.kid, pid="ghost", width=80, height=24), NOT_FOUND, "ghost"),
            ("DeleteCheckpoint unknown checkpoint", stub.DeleteCheckpoint,
             pb.DeleteCheckpointRequest(id=self.kid, name="ghost"), NOT_FOUND, "ghost"),
            ("CreateContainer from unknown checkpoint", stub.CreateContainer,
             create_request("restored", self.good_bundle, checkpoint="ghost"), NOT_FOUND, "ghost"),
        ])
        self.assertEqual(stub.ListCheckpoint(pb.ListCheckpointRequest(id=self.kid), timeout=10).checkpoints, [])

    def test_duplicates_and_state_preconditions(self):
        stub = self.daemon.stub
        self.run_table([
            ("CreateContainer duplicate id", stub.CreateContainer, create_request(self.kid, self.good_bundle),
             EXISTS, "already exists"),
            ("AddProcess pid init", stub.AddProcess, pb.AddProcessRequest(id=self.kid, pid="init", args=["true"]),
             EXISTS, "already exists"),
            ("resume a running container", stub.UpdateContainer,
             pb.UpdateContainerRequest(id=self.kid, status="running"), PRECONDITION, "running"),
            ("resize a process without a terminal", stub.UpdateProcess,
             pb.UpdateProcessRequest(id=self.kid, pid="init", width=80, height=24), PRECONDITION, "terminal"),
        ])


class MalformedRequestTests(BadInputTestCase):

    def test_malformed_fields(self):
        stub = self.daemon.stub
        resources = pb.UpdateResource
        self.run_table([
            ("AddProcess no args", stub.AddProcess, pb.AddProcessRequest(id=self.kid, pid="p1"), INVALID, "args"),
            ("AddProcess 1025 env", stub.AddProcess,
             pb.AddProcessRequest(id=self.kid, pid="p1", args=["true"], env=["A=b"] * 1025), INVALID, "env"),
            ("AddProcess NUL in args", stub.AddProcess,
             pb.AddProcessRequest(id=self.kid, pid="p1", args=["tr\0ue"]), INVALID, "args"),
            ("UpdateProcess width without height", stub.UpdateProcess,
             pb.UpdateProcessRequest(id=self.kid, pid="init", width=80), INVALID, "height"),
            ("UpdateProcess huge size", stub.UpdateProcess,
             pb.UpdateProcessRequest(id=self.kid, pid="init", width=70000, height=70000), INVALID, "65535"),
            ("UpdateContainer nothing", stub.UpdateContainer, pb.UpdateContainerRequest(id=self.kid), INVALID,
             "nothing to update"),
            ("UpdateContainer bad status", stub.UpdateContainer,
             pb.UpdateContainerRequest(id=self.kid, status="frozen"), INVALID, "status"),
            ("UpdateContainer cpuShares 1", stub.UpdateContainer,
             pb.UpdateContainerRequest(id=self.kid, resources=resources(cpuShares=1)), INVALID, "cpuShares"),
            ("UpdateContainer memory 1 byte", stub.UpdateContainer,
             pb.UpdateContainerRequest(id=self.kid, resources=resources(memoryLimit=1)), INVALID, "memoryLimit"),
            ("UpdateContainer negative memory", stub.UpdateContainer,
             pb.UpdateContainerRequest(id=self.kid, resources=resources(memoryLimit=2 ** 64 - 1)), INVALID,
             "range"),
            ("UpdateContainer cpuset garbage", stub.UpdateContainer,
             pb.UpdateContainerRequest(id=self.kid, resources=resources(cpusetCpus="abc")), INVALID, "cpuset"),
            ("CreateCheckpoint bad emptyNS", stub.CreateCheckpoint,
             pb.CreateCheckpointRequest(id=self.kid, checkpoint=pb.Checkpoint(name="cp", emptyNS=["bogus"])),
             INVALID, "emptyNS"),
            ("CreateContainer 65 runtimeArgs", stub.CreateContainer,
             create_request("rt", self.good_bundle, runtimeArgs=["--debug"] * 65), INVALID, "runtimeArgs"),
            ("CreateContainer unknown runtime", stub.CreateContainer,
             create_request("rt", self.good_bundle, runtime="no-such-runtime"), INVALID, "not found"),
            ("CreateContainer NUL in runtime", stub.CreateContainer,
             create_request("rt", self.good_bundle, runtime="ru\0nc"), INVALID, "runtime"),
            ("Events storedOnly without timestamp", _events(stub), pb.EventsRequest(storedOnly=True), INVALID,
             "timestamp"),
        ])


class StdioTests(BadInputTestCase):

    def test_bad_stdio_paths(self):
        stub = self.daemon.stub
        directory, readonly, writeonly = self.a_directory(), self.readonly_file(), self.writeonly_file()
        bad = [
            ("stdout", directory, "directory"),
            ("stderr", directory, "directory"),
            ("stdin", directory, "directory"),
            ("stdout", readonly, "not writable"),
            ("stderr", readonly, "not writable"),
            ("stdin", writeonly, "not readable"),
            ("stdin", self.scratch_path("nope"), "does not exist"),
            ("stdout", self.scratch_path("no/such/dir/out"), "does not exist"),
            ("stdout", "relative/out", "absolute"),
            ("stderr", "/dev/../" + "x" * 5000, ""),
        ]
        cases = []
        for field, path, words in bad:
            cases.append((f"CreateContainer {field}={path[:60]}", stub.CreateContainer,
                          create_request("io", self.good_bundle, **{field: path}), INVALID, words))
            cases.append((f"AddProcess {field}={path[:60]}", stub.AddProcess,
                          pb.AddProcessRequest(id=self.kid, pid="io", args=["true"], **{field: path}), INVALID,
                          words))
        self.run_table(cases)
        # The 0444 file was not written to (nor its mode changed).
        self.assertEqual(os.path.getsize(readonly), 0)
        self.assertEqual(stat.S_IMODE(os.stat(readonly).st_mode), 0o444)


class LabelTests(BadInputTestCase):

    def test_a_thousand_labels_accepted(self):
        # The limit is 1024 labels: 1000 labels of 100 characters (100 kB) are stored and listed back.
        labels = [f"label{i:04d}=" + "v" * 90 for i in range(1000)]
        self.assertEqual({len(label) for label in labels}, {100})
        labelled = unique_id("labelled")
        self.expected_containers = {self.kid, labelled}
        created = self.daemon.stub.CreateContainer(
            create_request(labelled, self.good_bundle, labels=labels), timeout=60).container
        self.assertEqual(list(created.labels), labels)
        (listed,) = self.daemon.stub.State(pb.StateRequest(id=labelled), timeout=10).containers
        self.assertEqual(list(listed.labels), labels)
        self.daemon.stub.Signal(pb.SignalRequest(id=labelled, pid="init", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", labelled, "init").status, 137)
        self.expected_containers = {self.kid}

    def test_too_many_or_too_long_labels(self):
        stub = self.daemon.stub
        self.run_table([
            ("1025 labels", stub.CreateContainer,
             create_request("many", self.good_bundle, labels=["l"] * 1025), INVALID, "labels"),
            ("2000 labels of 100 chars", stub.CreateContainer,
             create_request("many", self.good_bundle, labels=["x" * 100] * 2000), INVALID, "labels"),
            ("a 4097-character label", stub.CreateContainer,
             create_request("many", self.good_bundle, labels=["y" * 4097]), INVALID, "labels"),
            ("a label with NUL", stub.CreateContainer,
             create_request("many", self.good_bundle, labels=["a\0b"]), INVALID, "labels"),
        ])

    def test_request_over_the_message_limit(self):
        # 17 MiB of labels: grpc itself refuses it (the daemon's limit is 16 MiB) before any handler runs.
        labels = ["z" * (1024 * 1024)] * 17
        start = time.monotonic()
        self.run_table([
            ("CreateContainer of 17 MiB", self.daemon.stub.CreateContainer,
             create_request("huge", self.good_bundle, labels=labels), EXHAUSTED, "larger than max"),
            ("AddProcess of 17 MiB", self.daemon.stub.AddProcess,
             pb.AddProcessRequest(id=self.kid, pid="huge", args=["true"], env=labels), EXHAUSTED,
             "larger than max"),
        ])
        self.assertLess(time.monotonic() - start, 10)
        # The same channel still works.
        self.daemon.stub.State(pb.StateRequest(), timeout=10)


_VANISHING_CLIENT = textwrap.dedent("""
    import sys, time
    import grpc
    from containerd_tx.api import containerd_pb2 as pb, containerd_pb2_grpc as pb_grpc
    address, streams = sys.argv[1], int(sys.argv[2])
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.APIStub(channel)
    calls = [stub.Events(pb.EventsRequest(timestamp={"seconds": 1})) for _ in range(streams)]
    for call in calls:
        next(call)  # the replayed start-container of keeper: the stream is open
    print("open", flush=True)
    time.sleep(3600)
""")


class VanishingSubscriberTests(BadInputTestCase):

    def setUp(self):
        self.port = free_port()
        self.daemon_args = ("--metrics-address", f"tcp:{self.port}:interface=127.0.0.1")
        super().setUp()

    def subscribers(self):
        return metric_value(self.port, "containerd_tx_event_subscribers")

    def test_killed_subscriber_is_released(self):
        wait_for(lambda: self.subscribers() == 1, message="the test's own subscriber to be counted")
        self.events.close()
        wait_for(lambda: self.subscribers() == 0, message="the subscriber count to drop to 0")
        env = dict(os.environ, PYTHONPATH=_repo_root() + os.pathsep + os.environ.get("PYTHONPATH", ""))
        client = subprocess.Popen([sys.executable, "-c", _VANISHING_CLIENT, self.daemon.address, "5"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=_repo_root())
        self.addCleanup(_kill_and_wait, client)
        line = client.stdout.readline()
        self.assertEqual(line.strip(), b"open", client.stderr.read() if not line else line)
        wait_for(lambda: self.subscribers() == 5, message="five open streams to be counted")
        client.send_signal(signal.SIGKILL)
        client.wait(10)
        wait_for(lambda: self.subscribers() == 0, timeout=15,
                 message="the killed client's streams to be released (subscriber gauge back to 0)")
        # The daemon is healthy and its event fan-out still works: a new subscriber sees a new event.
        fresh = self.daemon.stub.Events(pb.EventsRequest())
        self.addCleanup(fresh.cancel)
        after = unique_id("after")
        self.expected_containers = {self.kid, after}
        self.start(after, "sh", "-c", "exit 3")
        kinds = []
        for event in fresh:
            kinds.append((event.type, event.id, event.status))
            if event.type == "exit":
                break
        self.assertEqual(kinds, [("start-container", after, 0), ("exit", after, 3)])
        self.expected_containers = {self.kid}
        fresh.cancel()
        wait_for(lambda: self.subscribers() == 0, timeout=15, message="the cancelled stream to be released")


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_kill_and_wait = processes.end
