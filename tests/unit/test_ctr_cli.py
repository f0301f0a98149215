"""
Tests for the ctr command line (L{ctr.main}, L{ctr.containers}, L{ctr.events}, L{ctr.state},
L{ctr.version}) against a real in-process gRPC server on a temporary unix socket that serves a tiny fake
C{types.API} and the standard health service.
"""

import json
import os
import queue
import select
import shutil
import stat
import tempfile
import threading
import time
from concurrent import futures

import click
import grpc
from click.testing import CliRunner
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from twisted.trial.unittest import TestCase

from containerd_tx import __version__
from containerd_tx.api import containerd_pb2, containerd_pb2_grpc
from ctr import cli, stdio
from ctr.main import ctr

pb = containerd_pb2


def make_event(kind, container_id, pid="init", status=0, seconds=0, nanos=0):
    """An C{Event}; a zero time is stamped with the current time when published."""
    return pb.Event(type=kind, id=container_id, pid=pid, status=status,
                    timestamp=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))


def _newer(event, since):
    return (event.timestamp.seconds, event.timestamp.nanos) > (since.seconds, since.nanos)


class FakeAPI(containerd_pb2_grpc.APIServicer):
    """
    A tiny C{types.API}: records every request, serves fixed state, and keeps an event log.

    @ivar requests: C{(method, request)} in arrival order.
    @ivar containers: the C{Container}s State returns.
    @ivar live: events every live subscriber gets after its replay; then its stream ends if
        C{end_after_live}.
    @ivar fail: C{(code, details)} that every call (but Events) aborts with.
    @ivar on_create: called with each C{CreateContainerRequest} before it answers.
    @ivar on_add_process: called with each C{AddProcessRequest} (and the context) before it answers.
    @ivar checkpoints: container id -> the C{Checkpoint}s ListCheckpoint returns (CreateCheckpoint adds,
        DeleteCheckpoint removes); an unknown container is NOT_FOUND.
    @ivar stats: container id -> the C{StatsResponse}s Stats returns, one per call; when a container has
        none (left), Stats is NOT_FOUND. C{None}: Stats is UNIMPLEMENTED.
    """

    def __init__(self):
        self.requests = []
        self.containers = []
        self.machine = pb.Machine(cpus=8, memory=16 * 1024 ** 3)
        self.version = pb.GetServerVersionResponse(major=0, minor=1, patch=0, revision="")
        self.stored = []
        self.live = []
        self.end_after_live = False
        self.fail = None
        self.on_create = None
        self.on_add_process = None
        self.checkpoints = {}
        self.stats = {}
        self.stdin_closed = threading.Event()
        self._subscribers = []
        self._lock = threading.Lock()

    def _record(self, method, request, context):
        self.requests.append((method, request))
        if self.fail:
            context.abort(*self.fail)

    def requests_of(self, method):
        """@return: the requests of one method."""
        return [request for name, request in self.requests if name == method]

    def wait_delivered(self, timeout=30.0):
        """Block until every live subscriber's stream has taken every published event."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if all(subscriber.empty() for subscriber in self._subscribers):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"events not taken by the streams within {timeout}s")
            time.sleep(0.005)

    def publish(self, event):
        """Store an event and send it to every live subscriber."""
        if not event.timestamp.seconds:
            event.timestamp.GetCurrentTime()
        with self._lock:
            self.stored.append(event)
            for subscriber in self._subscribers:
                subscriber.put(event)

    def GetServerVersion(self, request, context):
        self._record("GetServerVersion", request, context)
        return self.version

    def State(self, request, context):
        self._record("State", request, context)
        if request.id and request.id not in [c.id for c in self.containers]:
            context.abort(grpc.StatusCode.NOT_FOUND, f"container {request.id} not found")
        return pb.StateResponse(containers=self.containers, machine=self.machine)

    def Signal(self, request, context):
        self._record("Signal", request, context)
        return pb.SignalResponse()

    def UpdateProcess(self, request, context):
        self._record("UpdateProcess", request, context)
        if request.closeStdin:
            self.stdin_closed.set()
        return pb.UpdateProcessResponse()

    def CreateContainer(self, request, context):
        self._record("CreateContainer", request, context)
        if self.on_create is not None:
            self.on_create(request, context)
        process = pb.Process(pid="init", systemPid=4242)
        return pb.CreateContainerResponse(container=pb.Container(
            id=request.id, bundlePath=request.bundlePath, status="running", processes=[process], pids=[4242]))

    def AddProcess(self, request, context):
        self._record("AddProcess", request, context)
        if self.on_add_process is not None:
            self.on_add_process(request, context)
        return pb.AddProcessResponse(systemPid=5151)

    def UpdateContainer(self, request, context):
        self._record("UpdateContainer", request, context)
        if request.id not in [c.id for c in self.containers]:
            context.abort(grpc.StatusCode.NOT_FOUND, f"container {request.id} not found")
        return pb.UpdateContainerResponse()

    def _checkpoints_of(self, container_id, context):
        if container_id not in self.checkpoints:
            context.abort(grpc.StatusCode.NOT_FOUND, f"container {container_id} not found")
        return self.checkpoints[container_id]

    def CreateCheckpoint(self, request, context):
        self._record("CreateCheckpoint", request, context)
        self._checkpoints_of(request.id, context).append(request.checkpoint)
        return pb.CreateCheckpointResponse()

    def ListCheckpoint(self, request, context):
        self._record("ListCheckpoint", request, context)
        return pb.ListCheckpointResponse(checkpoints=self._checkpoints_of(request.id, context))

    def DeleteCheckpoint(self, request, context):
        self._record("DeleteCheckpoint", request, context)
        found = self._checkpoints_of(request.id, context)
        names = [c.name for c in found]
        if request.name not in names:
            context.abort(grpc.StatusCode.NOT_FOUND, f"checkpoint {request.name} not found")
        del found[names.index(request.name)]
        return pb.DeleteCheckpointResponse()

    def Stats(self, request, context):
        self._record("Stats", request, context)
        if self.stats is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
        samples = self.stats.get(request.id)
        if not samples:
            context.abort(grpc.StatusCode.NOT_FOUND, f"container {request.id} not found")
        return samples.pop(0)

    def Events(self, request, context):
        self.requests.append(("Events", request))
        subscriber = queue.Queue()
        with self._lock:
            replay = list(self.stored) if request.HasField("timestamp") else []
            self._subscribers.append(subscriber)
        try:
            for event in replay:
                if _newer(event, request.timestamp) and request.id in ("", event.id):
                    yield event
            if request.storedOnly:
                return
            for event in self.live:
                yield event
            if self.end_after_live:
                return
            while context.is_active():
                try:
                    event = subscriber.get(timeout=0.05)
                except queue.Empty:
                    continue
                if request.id in ("", event.id):
                    yield event
        finally:
            with self._lock:
                self._subscribers.remove(subscriber)


class FakeDaemon:
    """
    A gRPC server on a temporary unix socket with a L{FakeAPI} and the health service.

    @ivar address: C{unix://} + the socket's absolute path.
    @ivar health: the health servicer (SERVING unless a test changes it).
    """

    def __init__(self, api=None, serve_health=True):
        self.dir = tempfile.mkdtemp(prefix="ctr-test-")
        self.path = os.path.join(self.dir, "containerd.sock")
        self.address = "unix://" + self.path
        self.api = api or FakeAPI()
        self.health = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        containerd_pb2_grpc.add_APIServicer_to_server(self.api, self.server)
        if serve_health:
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.server.add_insecure_port("unix:" + self.path)
        self.server.start()

    def stop(self):
        """Stop the server and remove its directory."""
        self.server.stop(None).wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def invoke(args, address=None, input=None, env=None):
    """Run ctr in-process (with C{--address} when given); CONTAINERD_ADDRESS is unset unless C{env} sets it."""
    environment = {"CONTAINERD_ADDRESS": None}
    environment.update(env or {})
    prefix = ["--address", address, "--connect-timeout", "3s"] if address else []
    # A watchdog: a ctr that never returns fails its test instead of stalling the whole run.
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(CliRunner().invoke(
        ctr, prefix + list(args), input=input, env=environment, prog_name="ctr")), daemon=True)
    worker.start()
    worker.join(INVOKE_TIMEOUT)
    if not outcome:
        raise AssertionError(f"ctr {' '.join(args)} did not return within {INVOKE_TIMEOUT}s")
    return outcome[0]


INVOKE_TIMEOUT = 90


class DaemonTestCase(TestCase):
    """A test case with a running L{FakeDaemon} in C{self.daemon}."""

    def setUp(self):
        self.daemon = FakeDaemon()
        self.addCleanup(self.daemon.stop)
        self.api = self.daemon.api

    def run_ctr(self, *args, **kwargs):
        return invoke(args, self.daemon.address, **kwargs)

    def assertOK(self, result):
        self.assertEqual((result.exit_code, result.stderr), (0, ""), result.output)


def _container(container_id, bundle, labels=(), processes=(("init", 100, ["sh"]),), status="running"):
    return pb.Container(
        id=container_id, bundlePath=bundle, status=status, labels=list(labels),
        processes=[pb.Process(pid=pid, systemPid=system, args=args) for pid, system, args in processes])


class HelpTests(TestCase):
    """The help texts: exit codes, examples, the version."""

    def test_exitCodesInRootHelp(self):
        result = invoke(["--help"])
        self.assertEqual(result.exit_code, 0)
        for line in ("0    success", "1    error from the daemon", "2    usage error", "With --attach"):
            self.assertIn(line, result.stdout)
        for command in ("checkpoints", "completion", "containers", "events", "state", "version"):
            self.assertIn(f"  {command}  ", result.stdout)
        self.assertIn("With --attach (containers start, containers exec)", result.stdout)

    def test_everyCommandHasAnExample(self):
        def walk(command, path):
            yield path
            if isinstance(command, click.Group):
                for name, sub in command.commands.items():
                    yield from walk(sub, path + [name])

        paths = list(walk(ctr, []))
        for expected in (["containers", "start"], ["containers", "exec"], ["containers", "pause"],
                         ["containers", "resume"], ["containers", "update"], ["containers", "stats"],
                         ["checkpoints", "list"], ["checkpoints", "create"], ["checkpoints", "delete"],
                         ["completion"]):
            self.assertIn(expected, paths)
        for path in paths:
            result = invoke(path + ["--help"])
            self.assertEqual(result.exit_code, 0, path)
            self.assertIn("Examples:\n    ctr ", result.stdout, path)

    def test_version(self):
        result = invoke(["--version"])
        self.assertEqual((result.exit_code, result.stdout), (0, f"ctr version {__version__}\n"))


class UsageErrorTests(TestCase):
    """Bad options are usage errors (exit 2), found before any connection is tried."""

    def assertUsage(self, args, fragment):
        result = invoke(["--address", "/nonexistent/ctr.sock"] + args)
        self.assertEqual(result.exit_code, 2, result.output)
        self.assertIn(fragment, result.stderr)
        self.assertNotIn("cannot connect", result.stderr)

    def test_unknownSignal(self):
        self.assertUsage(["containers", "kill", "-s", "BOGUS", "web"], "unknown signal 'BOGUS'")

    def test_signalNumberOutOfRange(self):
        self.assertUsage(["containers", "kill", "-s", "99", "web"], "invalid signal number 99")

    def test_badConnectTimeout(self):
        self.assertUsage(["--connect-timeout", "soon", "version"], "invalid duration 'soon'")
        self.assertUsage(["--connect-timeout", "0s", "version"], "must be more than zero")

    def test_badAddressScheme(self):
        self.assertUsage(["--address", "tcp://127.0.0.1:1", "version"], "only unix sockets")

    def test_labelWithoutEquals(self):
        self.assertUsage(["containers", "start", "--label", "novalue", "web", "/b"], "'novalue' is not KEY=VALUE")

    def test_storedOnlyNeedsSince(self):
        self.assertUsage(["events", "--stored-only"], "--stored-only needs --since")

    def test_badSince(self):
        self.assertUsage(["events", "--since", "yesterday"], "invalid timestamp 'yesterday'")

    def test_listOptionsBeforeSubcommand(self):
        self.assertUsage(["containers", "-q", "kill", "web"], "list options go after 'list'")

    def test_missingArgument(self):
        self.assertUsage(["containers", "start", "web"], "Missing argument 'BUNDLE'")


class VersionTests(DaemonTestCase):
    def test_text(self):
        self.api.version = pb.GetServerVersionResponse(major=1, minor=2, patch=3, revision="abc123")
        result = self.run_ctr("version")
        self.assertOK(result)
        self.assertEqual(result.stdout, f"Client: {__version__}\nServer: 1.2.3 (revision abc123)\n")

    def test_textWithoutRevision(self):
        result = self.run_ctr("version")
        self.assertEqual(result.stdout, f"Client: {__version__}\nServer: 0.1.0\n")

    def test_json(self):
        self.api.version = pb.GetServerVersionResponse(major=1, minor=2, patch=3, revision="abc123")
        result = self.run_ctr("version", "--format", "json")
        self.assertOK(result)
        self.assertEqual(json.loads(result.stdout), {
            "client": {"version": __version__},
            "server": {"version": "1.2.3", "major": 1, "minor": 2, "patch": 3, "revision": "abc123"},
        })


class ContainersListTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.api.containers = [
            _container("web", "/srv/bundles/web", labels=["app=web", "tier=front"],
                       processes=[("init", 4242, ["nginx", "-g", "daemon off;"]), ("e1", 4300, ["top"])]),
            _container("db", "/b/db", status="paused", processes=[("init", 77, ["postgres"])]),
        ]

    def test_table(self):
        result = self.run_ctr("containers")
        self.assertOK(result)
        self.assertEqual(result.stdout.splitlines(), [
            "ID    PATH               STATUS    PID1",
            "db    /b/db              paused    77",
            "web   /srv/bundles/web   running   4242",
        ])
        self.assertEqual(self.api.requests_of("State"), [pb.StateRequest()])

    def test_listAndAlias(self):
        table = self.run_ctr("containers").stdout
        self.assertEqual(self.run_ctr("containers", "list").stdout, table)
        self.assertEqual(self.run_ctr("containers", "ls").stdout, table)

    def test_verboseAddsLabels(self):
        result = self.run_ctr("containers", "list", "-v")
        lines = result.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "PATH", "STATUS", "PID1", "LABELS"])
        self.assertTrue(lines[2].endswith("4242   app=web,tier=front"), lines[2])

    def test_quiet(self):
        result = self.run_ctr("containers", "ls", "-q")
        self.assertEqual(result.stdout, "db\nweb\n")

    def test_json(self):
        for option in ("--format", "-o"):
            result = self.run_ctr("containers", "list", option, "json")
            self.assertOK(result)
            data = [json.loads(line) for line in result.stdout.splitlines()]  # one object per line
            self.assertEqual([c["id"] for c in data], ["db", "web"])
            web = data[1]
            self.assertEqual(
                (web["bundlePath"], web["status"], web["pid1"], web["labels"]),
                ("/srv/bundles/web", "running", 4242, ["app=web", "tier=front"]))
            self.assertEqual(
                [(p["pid"], p["systemPid"], p["args"]) for p in web["processes"]],
                [("init", 4242, ["nginx", "-g", "daemon off;"]), ("e1", 4300, ["top"])])

    def test_filter(self):
        """docker's --filter: label=KEY[=VALUE], status=, id=PREFIX; one key's values or'ed, keys and'ed."""
        self.api.containers.append(_container("webcache", "/b/wc", labels=["app=cache"]))

        def ids(*filters):
            result = self.run_ctr("containers", "list", "-q", *[a for f in filters for a in ("--filter", f)])
            self.assertOK(result)
            return result.stdout.split()

        self.assertEqual(ids("label=app=web"), ["web"])
        self.assertEqual(ids("label=tier"), ["web"])
        self.assertEqual(ids("label=app"), ["web", "webcache"])
        self.assertEqual(ids("status=paused"), ["db"])
        self.assertEqual(ids("id=web"), ["web", "webcache"])
        self.assertEqual(ids("label=app=web", "label=app=cache"), ["web", "webcache"])
        self.assertEqual(ids("id=web", "label=app=cache"), ["webcache"])
        self.assertEqual(ids("status=stopped"), [])
        result = self.run_ctr("containers", "-f", "status=paused", "-o", "json")
        self.assertEqual([json.loads(line)["id"] for line in result.stdout.splitlines()], ["db"])

    def test_badFilter(self):
        for value, said in (("colour=red", "'colour=red' is not a filter"), ("status=gone", "unknown status 'gone'"),
                            ("label", "'label' is not a filter"), ("label=", "'label=' is not a filter")):
            result = self.run_ctr("containers", "list", "--filter", value)
            self.assertEqual(result.exit_code, 2, value)
            self.assertIn(said, result.stderr)
            self.assertNotIn("Traceback", result.output)

    def test_noInit(self):
        self.api.containers = [_container("odd", "/b/odd", processes=[("e1", 5, ["x"])])]
        self.assertEqual(self.run_ctr("containers").stdout.splitlines()[1].split(), ["odd", "/b/odd", "running", "-"])
        self.assertIsNone(json.loads(self.run_ctr("containers", "-o", "json").stdout)["pid1"])


class StateTests(DaemonTestCase):
    def test_table(self):
        self.api.machine = pb.Machine(cpus=4, memory=3 * 512 * 1024 ** 2)
        self.api.containers = [
            _container("web", "/srv/web", processes=[("init", 4242, ["nginx", "-g", "daemon off;"]),
                                                     ("shell", 5000, ["sh"])]),
        ]
        result = self.run_ctr("state")
        self.assertOK(result)
        self.assertEqual(result.stdout.splitlines(), [
            "CPUS: 4",
            "MEMORY: 1.5 GiB",
            "",
            "ID    PATH       STATUS    PID1",
            "web   /srv/web   running   4242",
            "    PID     SYSTEMPID   ARGS",
            "    init    4242        nginx -g daemon off;",
            "    shell   5000        sh",
        ])

    def test_json(self):
        self.api.containers = [_container("web", "/srv/web")]
        data = json.loads(self.run_ctr("state", "--format", "json").stdout)
        self.assertEqual(data["machine"], {"cpus": 8, "memory": 16 * 1024 ** 3})
        self.assertEqual([(c["id"], c["pid1"]) for c in data["containers"]], [("web", 100)])


class KillTests(DaemonTestCase):
    def test_defaultIsTermToInit(self):
        self.assertOK(self.run_ctr("containers", "kill", "web"))
        self.assertEqual(self.api.requests_of("Signal"), [pb.SignalRequest(id="web", pid="init", signal=15)])

    def test_signalByName(self):
        for name in ("KILL", "SIGKILL", "kill", "9"):
            self.assertOK(self.run_ctr("containers", "kill", "-s", name, "web"))
        self.assertEqual(self.api.requests_of("Signal"), [pb.SignalRequest(id="web", pid="init", signal=9)] * 4)

    def test_pid(self):
        self.assertOK(self.run_ctr("containers", "kill", "--signal", "HUP", "--pid", "worker", "db"))
        self.assertEqual(self.api.requests_of("Signal"), [pb.SignalRequest(id="db", pid="worker", signal=1)])


class ErrorTests(DaemonTestCase):
    """An error status from the daemon is one line on stderr and exit status 1."""

    def test_notFound(self):
        self.api.fail = (grpc.StatusCode.NOT_FOUND, "container foo not found")
        result = self.run_ctr("containers", "kill", "foo")
        self.assertEqual(result.exit_code, 1)
        self.assertEqual(result.stderr, "ctr: container foo not found\n")
        self.assertEqual(result.stdout, "")

    def test_multiLineDetailsFolded(self):
        self.api.fail = (grpc.StatusCode.INTERNAL, "runc failed:\n  exit status 1")
        result = self.run_ctr("containers", "list")
        self.assertEqual((result.exit_code, result.stderr), (1, "ctr: runc failed: exit status 1\n"))

    def test_debugShowsTraceback(self):
        self.api.fail = (grpc.StatusCode.NOT_FOUND, "container foo not found")
        result = self.run_ctr("--debug", "containers", "kill", "foo")
        self.assertEqual(result.exit_code, 1)
        self.assertIn("Traceback", result.stderr)
        self.assertIn("ctr: debug: /types.API/Signal", result.stderr)
        self.assertTrue(result.stderr.endswith("ctr: container foo not found\n"), result.stderr)

    def test_noTracebackWithoutDebug(self):
        self.api.fail = (grpc.StatusCode.INVALID_ARGUMENT, "invalid id")
        result = self.run_ctr("version")
        self.assertEqual(result.stderr, "ctr: invalid id\n")
        self.assertEqual(result.exit_code, 1)


class EventsTests(DaemonTestCase):
    def test_liveTable(self):
        self.api.live = [
            make_event("start-container", "web", seconds=1795957200, nanos=42),
            make_event("exit", "web", status=137, seconds=1795957201, nanos=5),
        ]
        self.api.end_after_live = True  # as when the daemon goes away: a live stream never ends otherwise
        result = self.run_ctr("events")
        self.assertEqual((result.exit_code, result.stderr),
                         (1, f"ctr: the event stream ended: containerd at {self.daemon.address} went away\n"))
        self.assertEqual(result.stdout.splitlines(), [
            "TIME                             TYPE              ID             PID        STATUS",
            "2026-11-29T13:00:00.000000042Z   start-container   web            init",
            "2026-11-29T13:00:01.000000005Z   exit              web            init       137",
        ])
        request = self.api.requests_of("Events")[0]
        self.assertFalse(request.HasField("timestamp"))

    def test_sinceStoredOnlyJson(self):
        self.api.stored = [
            make_event("start-container", "web", seconds=1795957200, nanos=0),
            make_event("start-container", "db", seconds=1795957200, nanos=500000001),
            make_event("exit", "db", status=2, seconds=1795957260, nanos=7),
        ]
        result = self.run_ctr("events", "--since", "2026-11-29T13:00:00.5Z", "--stored-only", "--format", "json")
        self.assertOK(result)
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        self.assertEqual(lines, [
            {"type": "start-container", "id": "db", "pid": "init", "status": 0,
             "timestamp": "2026-11-29T13:00:00.500000001Z", "timestampNs": 1795957200500000001},
            {"type": "exit", "id": "db", "pid": "init", "status": 2,
             "timestamp": "2026-11-29T13:01:00.000000007Z", "timestampNs": 1795957260000000007},
        ])
        request = self.api.requests_of("Events")[0]
        self.assertEqual((request.timestamp.seconds, request.timestamp.nanos, request.storedOnly),
                         (1795957200, 500000000, True))

    def test_resumeFromJsonTimestamp(self):
        """The "timestamp" of a JSON line given back to --since resumes right after that event."""
        self.api.stored = [make_event("exit", "db", seconds=1795957260, nanos=7),
                           make_event("exit", "db", seconds=1795957260, nanos=8)]
        first = json.loads(self.run_ctr("events", "--since", "0", "--stored-only", "-o", "json").stdout.split("\n")[0])
        result = self.run_ctr("events", "--since", first["timestamp"], "--stored-only", "-o", "json")
        self.assertEqual([json.loads(line)["timestampNs"] for line in result.stdout.splitlines()],
                         [1795957260000000008])

    def test_unixSinceAndId(self):
        self.assertOK(self.run_ctr("events", "--since", "1795957200.25", "--id", "web", "--stored-only"))
        request = self.api.requests_of("Events")[0]
        self.assertEqual((request.timestamp.seconds, request.timestamp.nanos, request.id),
                         (1795957200, 250000000, "web"))


class ParseTimestampTests(TestCase):
    """--since: RFC 3339 as protobuf's Timestamp.FromJsonString reads it, or unix seconds, to the nanosecond."""

    def test_forms(self):
        from ctr.events import parse_timestamp

        cases = {
            "2026-11-29T13:00:00Z": (1795957200, 0),
            "2026-11-29T13:00:00.5Z": (1795957200, 500000000),
            "2026-11-29T14:00:00.123456789+01:00": (1795957200, 123456789),
            "2026-11-29T12:30:00-00:30": (1795957200, 0),
            "1795957200.000000042": (1795957200, 42),
            "1795957200": (1795957200, 0),
            "0": (0, 0),
        }
        for text, (seconds, nanos) in cases.items():
            stamp = parse_timestamp(text)
            self.assertEqual((stamp.seconds, stamp.nanos), (seconds, nanos), text)

    def test_bad(self):
        from ctr.events import parse_timestamp

        for text in ("yesterday", "2026-13-01T00:00:00Z", "2026-11-29", "999999999999", "-5", ""):
            self.assertRaises(ValueError, parse_timestamp, text)


class WatchTests(DaemonTestCase):
    def test_watchOneContainer(self):
        """containers watch ID: new events of ID (no replay), then one line and status 1 when the stream ends."""
        self.api.containers = [_container("web", "/b/web")]
        self.api.live = [make_event("exit", "web", status=137, seconds=1795957201, nanos=5)]
        self.api.end_after_live = True
        result = self.run_ctr("containers", "watch", "-o", "json", "web")
        self.assertEqual([json.loads(line)["status"] for line in result.stdout.splitlines()], [137])
        self.assertEqual(result.exit_code, 1)
        self.assertTrue(result.stderr.startswith("ctr: the event stream ended"), result.stderr)
        request = self.api.requests_of("Events")[0]
        self.assertEqual((request.id, request.HasField("timestamp")), ("web", False))

    def test_unknown(self):
        result = self.run_ctr("containers", "watch", "ghost")
        self.assertEqual((result.exit_code, result.stdout), (1, ""))
        self.assertIn("ghost", result.stderr)


class _InterruptedStream:
    """An events stream that yields one event, then acts as if Ctrl-C was pressed."""

    def __init__(self):
        self.cancelled = False

    def __iter__(self):
        yield make_event("exit", "web", status=1, seconds=1795957200)
        raise KeyboardInterrupt()

    def cancel(self):
        self.cancelled = True


class EventsInterruptTests(TestCase):
    def test_ctrlCEndsQuietly(self):
        stream = _InterruptedStream()

        class Stub:
            def Events(self, request):
                return stream

        self.patch(cli, "api", lambda: Stub())
        result = invoke(["events"])
        self.assertEqual((result.exit_code, result.stderr), (0, ""))
        self.assertEqual(len(result.stdout.splitlines()), 2)
        self.assertIn("exit", result.stdout.splitlines()[1])
        self.assertTrue(stream.cancelled)


def _read_to_eof(fd, timeout=10):
    """@return: what C{fd} gives until EOF or C{timeout} seconds, and whether EOF came."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data, True
            data += chunk
    return data, False


class StartTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.bundles = tempfile.mkdtemp(prefix="ctr-bundles-")
        self.addCleanup(shutil.rmtree, self.bundles)
        self.bundle = os.path.join(self.bundles, "web")
        os.mkdir(self.bundle)
        with open(os.path.join(self.bundle, "config.json"), "w") as config:
            json.dump({"process": {"terminal": False, "args": ["sh"]}}, config)

    def test_detached(self):
        cwd = os.getcwd()
        os.chdir(self.bundles)
        self.addCleanup(os.chdir, cwd)
        result = self.run_ctr(
            "containers", "start", "--label", "app=web", "--label", "tier=front", "--runtime", "crun",
            "--runtime-args", "--debug", "--runtime-args", "--systemd-cgroup", "--no-pivot",
            "-c", "ck1", "--checkpoint-dir", "ckpts", "web", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout, "")
        self.assertEqual(self.api.requests_of("CreateContainer"), [pb.CreateContainerRequest(
            id="web", bundlePath=self.bundle, checkpoint="ck1",
            checkpointDir=os.path.join(self.bundles, "ckpts"), labels=["app=web", "tier=front"],
            noPivotRoot=True, runtime="crun", runtimeArgs=["--debug", "--systemd-cgroup"])])
        self.assertEqual(self.api.requests_of("Events"), [])

    def test_attach(self):
        """
        --attach: the FIFOs exist (0600) and events are subscribed before CreateContainer; stdin is copied
        in and closed at EOF; stdout and stderr are copied out, including output written after the exit
        event; ctr exits with the process's status; the FIFOs are removed.
        """
        seen = {}
        big = b"x" * 200000 + b"\n"

        def container(request, stdin, out, err):
            with stdin, out, err:
                data, seen["stdin EOF"] = _read_to_eof(stdin.fileno())  # ctr closes its end at local EOF
                seen["stdin"] = data
                seen["closed"] = self.api.stdin_closed.wait(5)
                out.write(data.upper())
                out.write(big)
                err.write(b"warning\n")
                err.flush()
                self.api.publish(make_event("exit", "web", status=3))
                self.api.wait_delivered()  # the exit is on its way to ctr before the last output
                out.write(b"tail\n")

        def on_create(request, context):
            seen["modes"] = [stat.S_IMODE(os.stat(p).st_mode) for p in (request.stdin, request.stdout, request.stderr)]
            seen["fifos"] = all(stat.S_ISFIFO(os.stat(p).st_mode)
                                for p in (request.stdin, request.stdout, request.stderr))
            # Opened before CreateContainer answers, as the daemon does: stdin written and closed by ctr before
            # anyone had opened the FIFO for reading would be gone.
            streams = (open(request.stdin, "rb"), open(request.stdout, "wb"), open(request.stderr, "wb"))
            threading.Thread(target=container, args=(request, *streams)).start()

        self.api.on_create = on_create
        self.patch(stdio, "DRAIN_IDLE", 60)  # the drain must end at EOF, not by waiting for silence
        started = time.monotonic()
        result = self.run_ctr("containers", "start", "-a", "web", self.bundle, input=b"ping\npong\n")
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(result.exit_code, 3, result.output[-300:])
        self.assertEqual(result.stderr, "warning\n")
        self.assertEqual(result.stdout_bytes, b"PING\nPONG\n" + big + b"tail\n")
        self.assertEqual((seen["stdin"], seen["stdin EOF"]), (b"ping\npong\n", True))
        self.assertTrue(seen["closed"])
        self.assertEqual(seen["modes"], [0o600] * 3)
        self.assertTrue(seen["fifos"])

        [create] = self.api.requests_of("CreateContainer")
        directory = os.path.dirname(create.stdout)
        self.assertEqual([os.path.dirname(create.stdin), os.path.dirname(create.stderr)], [directory] * 2)
        self.assertFalse(os.path.exists(directory))
        # ctr subscribes before it creates, but does not wait for the stream to reach the server: it asks for
        # a replay from the time it subscribed, so that an exit can never slip in between.
        [events] = self.api.requests_of("Events")
        self.assertEqual(events.id, "web")
        self.assertTrue(events.HasField("timestamp"))
        self.assertIn(pb.UpdateProcessRequest(id="web", pid="init", closeStdin=True),
                      self.api.requests_of("UpdateProcess"))

    def test_attachCreateFails(self):
        """A failed CreateContainer is one line and exit 1, and the FIFOs are removed."""
        paths = []

        def on_create(request, context):
            paths.append(request.stdout)
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "container web already exists")

        self.api.on_create = on_create
        result = self.run_ctr("containers", "start", "--attach", "web", self.bundle)
        self.assertEqual((result.exit_code, result.stderr), (1, "ctr: container web already exists\n"))
        self.assertFalse(os.path.exists(os.path.dirname(paths[0])))

    def test_attachExitStatusAbove255(self):
        def on_create(request, context):
            self.api.publish(make_event("exit", "web", status=0xFFFFFFFF))

        self.api.on_create = on_create
        result = self.run_ctr("containers", "start", "--attach", "web", self.bundle, input=b"")
        self.assertEqual(result.exit_code, 255)

    def test_attachTerminalBundle(self):
        """A bundle whose process.terminal is true is attached with tty handling (raw mode, resize)."""
        calls = []

        def attach(stub, container_id, process_id, start_call, tty=False, **streams):
            calls.append((container_id, process_id, tty))
            return 0

        self.patch(stdio, "attach", attach)
        self.assertOK(self.run_ctr("containers", "start", "-a", "web", self.bundle))
        with open(os.path.join(self.bundle, "config.json"), "w") as config:
            json.dump({"process": {"terminal": True, "args": ["sh"]}}, config)
        self.assertOK(self.run_ctr("containers", "start", "-a", "web", self.bundle))
        self.assertEqual(calls, [("web", "init", False), ("web", "init", True)])
