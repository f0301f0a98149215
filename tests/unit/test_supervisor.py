"""
Tests for L{containerd_tx.supervisor}: the single owner of container state, driven without root, runc or a
monitor process: a L{FakeRuntime} and a L{FakeMonitor} (L{tests.support.fakes}) behind the two declared
seams, a L{Clock} for the reactor, and a real state dir and event log in a temp folder.

Pids the fakes hand out belong to no process; the tests of signals and adoption use a real C{sleep}.
"""

import ast
import gc
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from containerd_tx import supervisor as supervisor_package
from containerd_tx.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, RuntimeFailure
from containerd_tx.events import EXIT, OOM, PAUSE, RESUME, START_CONTAINER, START_PROCESS, EventLog
from containerd_tx.metrics.registry import (
    CONTAINER_CREATE_TIME,
    CONTAINER_DELETE_TIME,
    CONTAINER_START_TIME,
    CONTAINER_STATS_TIME,
    EXEC_PROCESS_TIME,
    EXIT_PROCESS_TIME,
    Metrics,
)
from containerd_tx.model import CREATING, INIT, PAUSED, RUNNING, Container, Process
from containerd_tx.runtime.monitor_seam import MonitorError
from containerd_tx.runtime.runc import CheckpointFailed
from containerd_tx.state_store import StateStore
from containerd_tx.supervisor import CreateRequest, ExecRequest, Machine, Supervisor
from containerd_tx.supervisor.exits import EXEC_REAP_TIMEOUT
from containerd_tx.supervisor.shared import SharedState
from tests.support.fakes import FIRST_FAKE_PID, FakeMonitor, FakeRuntime

CONFIG = {
    "ociVersion": "1.0.2",
    "process": {"args": ["sh", "-c", "sleep 100"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
    "root": {"path": "rootfs"},
}


class FakeOom:
    """Records what the supervisor asks of the OOM watcher."""

    def __init__(self):
        self.calls = []

    def watch(self, container_id, cgroups, fresh=False):
        self.calls.append(("watch", container_id))
        self.watched = dict(cgroups)

    def unwatch(self, container_id):
        self.calls.append(("unwatch", container_id))

    def check(self, container_id):
        self.calls.append(("check", container_id))


class SupervisorTestCase(TestCase):
    """
    A supervisor on fakes, wired as the daemon wires it.

    @ivar supervisor: the supervisor under test.
    @ivar runtime: its L{FakeRuntime} (named "runc").
    @ivar monitor: its L{FakeMonitor}.
    """

    def setUp(self):
        self.clock = Clock()
        self.state_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.state_dir)
        # Console socket paths must fit a socket address: a short folder, not one under the long temp dir.
        self.sockets_dir = tempfile.mkdtemp(prefix="ctx-sockets-")
        self.addCleanup(shutil.rmtree, self.sockets_dir, True)
        self.bundle = os.path.join(self.state_dir, "bundle")
        os.makedirs(self.bundle)
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(CONFIG, f)
        self.store = StateStore(self.state_dir)
        self.events = EventLog(os.path.join(self.state_dir, "events.log"), 1000)
        self.runtime = FakeRuntime("runc")
        self.metrics = Metrics(self.clock)
        self.oom = FakeOom()
        self.monitor = FakeMonitor()
        self.supervisor = self.make_supervisor(self.monitor)

    def make_supervisor(self, monitor):
        """
        A supervisor on this test's state dir, event log and runtime, its exits coming from C{monitor} (its
        constructor says so to the monitor).
        """
        return Supervisor(self.clock, self.store, self.events, monitor, default_runtime=self.runtime,
                          sockets_dir=self.sockets_dir, metrics=self.metrics,
                          machine=Machine(cpus=2, memory=1 << 30), oom=self.oom, start_timeout=7.0)

    def create(self, container_id="web", **fields):
        """Create a container and return it (the create must finish at once)."""
        request = CreateRequest(id=container_id, bundle=self.bundle, config=CONFIG, **fields)
        container = self.successResultOf(defer.ensureDeferred(self.supervisor.create(request)))
        self.clock.advance(0)
        return container

    def exec(self, process_id="p1", container_id="web", **fields):
        """Start a process in a container; its pid."""
        request = ExecRequest(container_id=container_id, process_id=process_id, args=["ls"], **fields)
        return self.successResultOf(defer.ensureDeferred(self.supervisor.add_process(request)))

    def event_list(self):
        """(type, id, pid, status) of every event so far."""
        return [(e.type, e.id, e.pid, e.status) for e in self.events.stored()]

    def timer_count(self, name):
        return self.metrics.timer(name).count()

    def sleeper(self):
        """A real process that lives until the test ends (for signals and adoption)."""
        process = subprocess.Popen(["sleep", "60"])

        def stop():
            if process.poll() is None:
                process.kill()
            process.wait()

        self.addCleanup(stop)
        return process


class CreateTests(SupervisorTestCase):
    """
    Create: recorded before the runtime acts, started, reported once; undone entirely when it fails.
    """

    def test_create(self):
        """
        The container runs with the runtime's pid, its records are on disk, a start-container event without
        pid is reported, the OOM watcher watches it, and both start timers have a sample.
        """
        container = self.create(labels=["a=b"], runtime_args=["--debug"], stdio=("", "/tmp/out", ""))
        pid = FIRST_FAKE_PID
        self.assertEqual((container.status, container.init.system_pid), (RUNNING, pid))
        [(args, kwargs)] = self.runtime.called("run")
        self.assertEqual(args, ("web", self.bundle, (None, "/tmp/out", None),
                                ("web", INIT, self.store.container_dir("web"))))
        self.assertEqual((kwargs["global_args"], kwargs["timeout"], kwargs["console_socket"]), (["--debug"], 7.0, None))
        self.assertEqual([c.id for c, _ in self.supervisor.list()], ["web"])
        [stored] = StateStore(self.state_dir).load()
        self.assertEqual((stored.status, stored.labels, stored.init.system_pid), (RUNNING, ["a=b"], pid))
        self.assertEqual(self.event_list(), [(START_CONTAINER, "web", "", 0)])
        self.assertEqual(self.events.stored()[0].system_pid, pid)
        self.assertEqual(self.oom.calls, [("watch", "web")])
        self.assertEqual((self.timer_count(CONTAINER_START_TIME), self.timer_count(CONTAINER_CREATE_TIME)), (1, 1))

    def test_init_already_gone_watched_through_the_runtimes_record(self):
        """
        An init that ended (and was reaped) before its start was handled has no /proc entry: its cgroups come
        from the runtime's record, so an OOM kill that ended it is still seen.
        """
        self.runtime.recorded_cgroups["hog"] = {"memory": "/sys/fs/cgroup/memory/hog"}
        container = self.create("hog")
        self.assertEqual(container.cgroups, {"memory": "/sys/fs/cgroup/memory/hog"})
        self.assertEqual(self.oom.watched, {"memory": "/sys/fs/cgroup/memory/hog"})
        self.assertEqual(self.runtime.called("cgroup_paths"), [(("hog",), {"global_args": []})])

    def test_terminal_gets_console_socket(self):
        """A process with a terminal starts with a console socket in the sockets folder."""
        config = dict(CONFIG, process=dict(CONFIG["process"], terminal=True))
        request = CreateRequest(id="tty", bundle=self.bundle, config=config)
        self.successResultOf(defer.ensureDeferred(self.supervisor.create(request)))
        [(_, kwargs)] = self.runtime.called("run")
        self.assertEqual(os.path.dirname(kwargs["console_socket"]), self.sockets_dir)

    def test_duplicate(self):
        self.create()
        request = CreateRequest(id="web", bundle=self.bundle, config=CONFIG)
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.create(request)), AlreadyExists)
        self.assertEqual(failure.value.message, "container web already exists")

    def test_unknown_runtime(self):
        """Without a runtime factory, only the default runtime exists."""
        request = CreateRequest(id="web", bundle=self.bundle, config=CONFIG, runtime="crun")
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.create(request)), InvalidArgument)
        self.assertEqual(failure.value.message, "unknown runtime 'crun'")
        self.assertEqual(self.supervisor.list(), [])

    def test_runtime_refuses(self):
        """
        A failed start is undone: the runtime's state is deleted (forced), the records go, nothing is listed
        or reported, and only the runtime's timer has a sample.
        """
        self.runtime.script("run", RuntimeFailure("runc run failed: exec: \"sh\": not found"))
        request = CreateRequest(id="web", bundle=self.bundle, config=CONFIG)
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.create(request)), RuntimeFailure)
        self.assertEqual(failure.value.message, 'runc run failed: exec: "sh": not found')
        self.assertEqual(self.runtime.called("delete"), [(("web",), {"global_args": [], "force": True})])
        self.assertEqual(self.supervisor.list(), [])
        self.assertFalse(os.path.exists(self.store.container_dir("web")))
        self.assertEqual(self.event_list(), [])
        self.assertEqual((self.timer_count(CONTAINER_START_TIME), self.timer_count(CONTAINER_CREATE_TIME)), (0, 1))

    def test_not_listed_while_creating(self):
        """A container is invisible to lookups until its start has returned."""
        start = defer.Deferred()
        self.runtime.script("run", start)
        request = CreateRequest(id="web", bundle=self.bundle, config=CONFIG)
        d = defer.ensureDeferred(self.supervisor.create(request))
        self.assertEqual(self.supervisor.list(), [])
        self.assertRaises(NotFound, self.supervisor.get, "web")
        start.callback(4242)
        self.assertEqual(self.successResultOf(d).status, RUNNING)

    def test_create_waits_for_the_same_id_to_end(self):
        """A create of an id whose exit is being handled waits until the runtime has deleted the old one."""
        self.create()
        delete = defer.Deferred()
        self.runtime.script("delete", delete)
        self.monitor.exit("web", INIT, 0, pid=FIRST_FAKE_PID)
        request = CreateRequest(id="web", bundle=self.bundle, config=CONFIG)
        d = defer.ensureDeferred(self.supervisor.create(request))
        self.assertNoResult(d)
        self.assertEqual(len(self.runtime.called("run")), 1)
        delete.callback(None)
        self.assertEqual(self.successResultOf(d).init.system_pid, FIRST_FAKE_PID + 1)
        self.assertEqual([e[0] for e in self.event_list()], [START_CONTAINER, EXIT, START_CONTAINER])

    def test_stats(self):
        """A stats sample of the container's cgroups (none here: every figure zero), timed."""
        self.create()
        sample = self.supervisor.stats("web")
        self.assertEqual(sorted(sample), ["cgroup_stats", "network_stats", "timestamp"])
        self.assertEqual(self.timer_count(CONTAINER_STATS_TIME), 1)
        self.assertRaises(NotFound, self.supervisor.stats, "nope")


class ExitTests(SupervisorTestCase):
    """
    Exits: each reported once with its status, in containerd 0.2.9's order.
    """

    def test_init_exit(self):
        """
        The init's exit removes the container from the list, deletes it from the runtime, removes its
        records, and then reports the exit with its status; the exit and delete timers have a sample.
        """
        self.create()
        self.monitor.exit("web", INIT, 3, pid=FIRST_FAKE_PID)
        self.assertEqual(self.supervisor.list(), [])
        self.assertEqual(self.runtime.called("delete"), [(("web",), {"global_args": [], "force": False})])
        self.assertFalse(os.path.exists(self.store.container_dir("web")))
        self.assertEqual(self.event_list(), [(START_CONTAINER, "web", "", 0), (EXIT, "web", INIT, 3)])
        self.assertEqual(self.oom.calls, [("watch", "web"), ("check", "web"), ("unwatch", "web")])
        self.assertEqual((self.timer_count(EXIT_PROCESS_TIME), self.timer_count(CONTAINER_DELETE_TIME)), (1, 1))

    def test_constructor_routes_exits(self):
        """
        Building a supervisor is all it takes for the monitor's exits to reach it: its constructor calls the
        monitor's report_exits_to (the daemon sets nothing on either afterwards).
        """
        monitor = FakeMonitor()
        self.assertIsNone(monitor.exit_handler)
        self.monitor = monitor
        self.supervisor = Supervisor(self.clock, self.store, self.events, monitor, default_runtime=self.runtime,
                                     sockets_dir=self.sockets_dir, metrics=self.metrics,
                                     machine=Machine(cpus=2, memory=1 << 30), oom=self.oom)
        self.assertEqual(monitor.exit_handler, self.supervisor.handle_exit)
        self.create()
        monitor.exit("web", INIT, 3, pid=FIRST_FAKE_PID)
        self.assertEqual(self.supervisor.list(), [])
        self.assertEqual(self.event_list()[-1], (EXIT, "web", INIT, 3))

    def test_exit_reported_once(self):
        """The same exit record seen twice (notification and disk) is reported once."""
        self.create()
        delete = defer.Deferred()
        self.runtime.script("delete", delete)
        record = self.monitor.exit("web", INIT, 3, pid=FIRST_FAKE_PID)
        self.supervisor.handle_exit(record)
        delete.callback(None)
        self.supervisor.handle_exit(record)
        self.assertEqual([e for e in self.event_list() if e[0] == EXIT], [(EXIT, "web", INIT, 3)])

    def test_delete_failure_forced(self):
        """A delete the runtime refuses is forced; the exit is reported either way."""
        self.create()
        self.runtime.script("delete", RuntimeFailure("runc delete failed: busy"), RuntimeFailure("still busy"))
        self.monitor.exit("web", INIT, 0, pid=FIRST_FAKE_PID)
        self.assertEqual([kwargs["force"] for _, kwargs in self.runtime.called("delete")], [False, True])
        self.assertEqual(self.event_list()[-1], (EXIT, "web", INIT, 0))
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_early_exit(self):
        """
        An exit that arrives before the runtime's start has returned is kept, and handled in the turn after
        the create returns: the caller sees the container running first.
        """
        start = defer.Deferred()
        self.runtime.script("run", start)
        request = CreateRequest(id="web", bundle=self.bundle, config=CONFIG)
        d = defer.ensureDeferred(self.supervisor.create(request))
        self.monitor.exit("web", INIT, 1, pid=4242)
        start.callback(4242)
        self.assertEqual(self.successResultOf(d).status, RUNNING)
        self.assertEqual(self.event_list(), [(START_CONTAINER, "web", "", 0)])
        self.clock.advance(0)
        self.assertEqual(self.event_list(), [(START_CONTAINER, "web", "", 0), (EXIT, "web", INIT, 1)])
        self.assertEqual(self.supervisor.list(), [])

    def test_early_exit_of_failed_create_forgotten(self):
        """An early exit of a create that then fails is dropped with it."""
        start = defer.Deferred()
        self.runtime.script("run", start)
        d = defer.ensureDeferred(self.supervisor.create(CreateRequest(id="web", bundle=self.bundle, config=CONFIG)))
        self.monitor.exit("web", INIT, 1, pid=4242)
        start.errback(RuntimeFailure("no"))
        self.failureResultOf(d, RuntimeFailure)
        self.clock.advance(0)
        self.assertEqual(self.event_list(), [])

    def test_unknown_exit(self):
        """An exit of a container or process nobody knows only drops its record."""
        self.create()
        self.monitor.exit("nope", INIT, 0)
        self.monitor.exit("web", "p9", 0)
        self.assertEqual(self.event_list(), [(START_CONTAINER, "web", "", 0)])

    def test_exec_exit(self):
        """An exec'd process's exit is reported and the process forgotten; the container runs on."""
        self.create()
        pid = self.exec("p1")
        self.monitor.exit("web", "p1", 2, pid=pid)
        self.assertEqual(self.event_list()[-1], (EXIT, "web", "p1", 2))
        self.assertNotIn("p1", self.supervisor.get("web").processes)
        self.assertFalse(os.path.exists(os.path.join(self.store.container_dir("web"), "process-p1.json")))
        self.assertEqual(self.timer_count(EXIT_PROCESS_TIME), 1)

    def test_init_exit_with_execs(self):
        """
        When the init exits, the container's exec'd processes are killed and their exits awaited; they are
        reported before the container's, and the runtime deletes the container only after.
        """
        self.create()
        pid = self.exec("p1")
        self.monitor.exit("web", INIT, 0, pid=FIRST_FAKE_PID)
        self.assertEqual(self.supervisor.list(), [])
        self.assertEqual(self.runtime.called("delete"), [])
        self.assertEqual(self.event_list()[-1][0], START_PROCESS)
        self.monitor.exit("web", "p1", 137, pid=pid)
        self.assertEqual(self.event_list()[-2:], [(EXIT, "web", "p1", 137), (EXIT, "web", INIT, 0)])
        self.assertEqual(len(self.runtime.called("delete")), 1)

    def test_execs_not_reaped_in_time(self):
        """Exec'd processes whose exits never come hold the container's end for EXEC_REAP_TIMEOUT only."""
        self.create()
        self.exec("p1")
        self.monitor.exit("web", INIT, 0, pid=FIRST_FAKE_PID)
        self.clock.advance(EXEC_REAP_TIMEOUT - 0.1)
        self.assertEqual(self.runtime.called("delete"), [])
        self.clock.advance(0.1)
        self.assertEqual(len(self.runtime.called("delete")), 1)
        self.assertEqual(self.event_list()[-1], (EXIT, "web", INIT, 0))
        # The waits given up leave no unhandled error behind, also once they are collected.
        self.monitor.report_exits_to(None)
        self.supervisor = None
        gc.collect()
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_oom(self):
        """An OOM kill is an oom event of the container (none once it is gone)."""
        self.create()
        self.supervisor.report_oom("web")
        self.supervisor.report_oom("nope")
        self.assertEqual(self.event_list()[-1], (OOM, "web", INIT, 0))
        self.assertEqual(len(self.event_list()), 2)


class ExecTests(SupervisorTestCase):
    """
    Exec: the bundle's process narrowed by the request, started by the runtime, reported once.
    """

    def test_exec(self):
        """The runtime gets the process JSON and the registration; a start-process event is reported."""
        self.create()
        pid = self.exec("p1", env=["A=b"])
        [(args, kwargs)] = self.runtime.called("exec")
        self.assertEqual(args[0], "web")
        self.assertEqual(args[3], ("web", "p1", self.store.container_dir("web")))
        spec = json.loads(kwargs["spec"])
        self.assertEqual((spec["args"], spec["env"], spec["cwd"]), (["ls"], ["A=b"], "/"))
        self.assertFalse(os.path.exists(args[1]), "the process JSON is removed once the runtime has read it")
        self.assertEqual(self.supervisor.get_process("web", "p1")[1].system_pid, pid)
        self.assertEqual(self.event_list()[-1], (START_PROCESS, "web", "p1", 0))
        self.assertEqual(self.timer_count(EXEC_PROCESS_TIME), 1)

    def test_refused(self):
        """Unknown container, a taken process id, a paused container."""
        self.create()
        self.exec("p1")
        request = ExecRequest(container_id="nope", process_id="p2", args=["ls"])
        self.failureResultOf(defer.ensureDeferred(self.supervisor.add_process(request)), NotFound)
        request = ExecRequest(container_id="web", process_id="p1", args=["ls"])
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.add_process(request)), AlreadyExists)
        self.assertEqual(failure.value.message, "process p1 already exists in container web")
        self.successResultOf(defer.ensureDeferred(self.supervisor.set_status("web", PAUSED)))
        request = ExecRequest(container_id="web", process_id="p2", args=["ls"])
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.add_process(request)),
                                       FailedPrecondition)
        self.assertEqual(failure.value.message, "container web is paused: cannot exec process p2 into it")
        self.assertEqual(self.timer_count(EXEC_PROCESS_TIME), 1)

    def test_runtime_refuses(self):
        """A failed exec is forgotten (memory and records) and its error raised."""
        self.create()
        self.runtime.script("exec", RuntimeFailure("runc exec failed: no"))
        request = ExecRequest(container_id="web", process_id="p1", args=["ls"])
        self.failureResultOf(defer.ensureDeferred(self.supervisor.add_process(request)), RuntimeFailure)
        self.assertNotIn("p1", self.supervisor.get("web").processes)
        self.assertEqual(sorted(os.listdir(self.store.container_dir("web"))),
                         ["container.json", "process-init.json"])

    def test_serialised_with_pause(self):
        """An exec waits for a pause of the same container in flight, then finds it paused."""
        self.create()
        pause = defer.Deferred()
        self.runtime.script("pause", pause)
        paused = defer.ensureDeferred(self.supervisor.set_status("web", PAUSED))
        request = ExecRequest(container_id="web", process_id="p1", args=["ls"])
        d = defer.ensureDeferred(self.supervisor.add_process(request))
        self.assertNoResult(d)
        pause.callback(None)
        self.successResultOf(paused)
        self.failureResultOf(d, FailedPrecondition)

    def test_update_process(self):
        """Resizes of a terminal and closes of stdin go to the monitor; its refusals are FAILED_PRECONDITION."""
        self.create()
        self.exec("tty", terminal=True)
        self.exec("plain")
        self.successResultOf(defer.ensureDeferred(self.supervisor.update_process("web", "tty", width=80, height=24)))
        self.successResultOf(defer.ensureDeferred(self.supervisor.update_process("web", "plain", close_stdin=True)))
        self.assertEqual(self.monitor.requests, [("resize", "web", "tty", 80, 24), ("close_stdin", "web", "plain")])
        failure = self.failureResultOf(defer.ensureDeferred(
            self.supervisor.update_process("web", "plain", width=80, height=24)), FailedPrecondition)
        self.assertEqual(failure.value.message, "process plain of container web has no terminal to resize")
        self.monitor.failures["close_stdin"] = MonitorError("stdin already closed")
        failure = self.failureResultOf(defer.ensureDeferred(
            self.supervisor.update_process("web", "plain", close_stdin=True)), FailedPrecondition)
        self.assertEqual(failure.value.message, "stdin already closed")


class SignalTests(SupervisorTestCase):
    """
    Signals go to the process's host pid; the errors carry containerd 0.2.9's words.
    """

    def test_signal(self):
        sleeper = self.sleeper()
        self.runtime.script("run", sleeper.pid)
        self.create()
        self.supervisor.signal("web", INIT, signal.SIGTERM)
        self.assertEqual(sleeper.wait(10), -signal.SIGTERM)

    def test_errors(self):
        self.create()
        cases = [("nope", INIT, "container not found: nope"),
                 ("web", "p9", "process p9 of container web: no such process"),
                 ("web", INIT, "process init of container web: no such process")]  # a pid nobody has
        for container_id, process_id, message in cases:
            with self.assertRaises(NotFound) as caught:
                self.supervisor.signal(container_id, process_id, signal.SIGTERM)
            self.assertEqual(caught.exception.message, message)


class UpdateTests(SupervisorTestCase):
    """
    Pause, resume and resource updates.
    """

    def test_pause_resume(self):
        """Each changes the status on disk and is reported without pid; repeating one is refused."""
        self.create()
        self.successResultOf(defer.ensureDeferred(self.supervisor.set_status("web", PAUSED)))
        self.assertEqual(self.supervisor.get("web").status, PAUSED)
        self.assertEqual(StateStore(self.state_dir).load()[0].status, PAUSED)
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.set_status("web", PAUSED)),
                                       FailedPrecondition)
        self.assertEqual(failure.value.message, "container web is paused: cannot pause it")
        self.successResultOf(defer.ensureDeferred(self.supervisor.set_status("web", RUNNING)))
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.set_status("web", RUNNING)),
                                       FailedPrecondition)
        self.assertEqual(failure.value.message, "container web is running: cannot resume it")
        self.assertEqual(self.event_list()[1:], [(PAUSE, "web", "", 0), (RESUME, "web", "", 0)])
        self.assertEqual([name for name, _, _ in self.runtime.calls if name in ("pause", "resume")],
                         ["pause", "resume"])
        self.failureResultOf(defer.ensureDeferred(self.supervisor.set_status("web", "stopped")), InvalidArgument)

    def test_pause_refused_by_runtime(self):
        """A pause the runtime refuses changes nothing."""
        self.create()
        self.runtime.script("pause", RuntimeFailure("runc pause failed: no"))
        self.failureResultOf(defer.ensureDeferred(self.supervisor.set_status("web", PAUSED)), RuntimeFailure)
        self.assertEqual(self.supervisor.get("web").status, RUNNING)
        self.assertEqual(len(self.event_list()), 1)

    def test_update_resources(self):
        """The runtime reads the resources from a file that is gone afterwards."""
        self.create()
        resources = {"memory": {"limit": 1 << 26}, "pids": {"limit": 10}}
        self.successResultOf(defer.ensureDeferred(self.supervisor.update_resources("web", resources)))
        [(args, kwargs)] = self.runtime.called("update")
        self.assertEqual(json.loads(kwargs["resources"]), resources)
        self.assertFalse(os.path.exists(args[1]))


class CheckpointTests(SupervisorTestCase):
    """
    Checkpoints: written complete or not at all, listed and deleted only when this daemon wrote them, and
    restored through the runtime.
    """

    options = {"name": "cp1", "exit": False, "tcp": True, "unix_sockets": False, "shell": False, "empty_ns": []}

    def checkpoint(self, **options):
        return defer.ensureDeferred(self.supervisor.create_checkpoint("web", dict(self.options, **options)))

    def test_create_list_delete(self):
        self.create()
        self.successResultOf(self.checkpoint())
        folder = os.path.join(self.bundle, "checkpoints", "cp1")
        self.assertEqual(sorted(os.listdir(folder)), [".containerd-tx-checkpoint", "config.json", "inventory.img"])
        [(args, _)] = self.runtime.called("checkpoint")
        self.assertEqual(args[3], self.options)
        [listed] = self.supervisor.list_checkpoints("web")
        self.assertEqual(dict(listed, timestamp=0), dict(self.options, timestamp=0))
        failure = self.failureResultOf(self.checkpoint(), AlreadyExists)
        self.assertEqual(failure.value.message, f"checkpoint cp1 already exists in {os.path.dirname(folder)}")
        d = defer.ensureDeferred(self.supervisor.delete_checkpoint("web", "cp1"))

        def deleted(_):
            self.assertFalse(os.path.exists(folder))
            self.assertEqual(self.supervisor.list_checkpoints("web"), [])

        return d.addCallback(deleted)

    def test_failed_dump_leaves_nothing(self):
        """A dump CRIU refuses leaves no folder (not even a partial one) and raises CRIU's reason."""
        self.create()
        self.runtime.script("checkpoint", CheckpointFailed("runc checkpoint failed: TCP socket"))
        d = self.checkpoint()

        def failed(failure):
            failure.trap(CheckpointFailed)
            self.assertEqual(os.listdir(os.path.join(self.bundle, "checkpoints")), [])
            self.assertEqual(self.supervisor.list_checkpoints("web"), [])

        return d.addCallbacks(lambda _: self.fail("the checkpoint did not fail"), failed)

    def test_only_marked_folders(self):
        """A folder with a config.json but no marker is neither listed nor deleted."""
        self.create()
        stranger = os.path.join(self.state_dir, "others", "bundle")
        os.makedirs(stranger)
        with open(os.path.join(stranger, "config.json"), "w") as f:
            json.dump({"name": "bundle"}, f)
        root = os.path.dirname(stranger)
        self.assertEqual(self.supervisor.list_checkpoints("web", root), [])
        d = defer.ensureDeferred(self.supervisor.delete_checkpoint("web", "bundle", root))
        self.failureResultOf(d, NotFound)
        self.assertTrue(os.path.exists(os.path.join(stranger, "config.json")))

    def test_restore(self):
        """A create from a checkpoint restores it through the runtime with the options it was taken with."""
        self.create()
        self.successResultOf(self.checkpoint(exit=True))
        self.monitor.exit("web", INIT, 0, pid=FIRST_FAKE_PID)
        container = self.create(checkpoint="cp1")
        self.assertEqual(container.status, RUNNING)
        [(args, kwargs)] = self.runtime.called("restore")
        self.assertEqual(args[:3], ("web", self.bundle, os.path.join(self.bundle, "checkpoints", "cp1")))
        self.assertEqual(args[3], os.path.join(self.store.container_dir("web"), "criu-restore"))
        self.assertEqual({k: v for k, v in args[4].items() if k != "timestamp"}, dict(self.options, exit=True))
        self.assertEqual(len(self.runtime.called("run")), 1)

    def test_restore_missing(self):
        request = CreateRequest(id="web", bundle=self.bundle, config=CONFIG, checkpoint="nope")
        failure = self.failureResultOf(defer.ensureDeferred(self.supervisor.create(request)), NotFound)
        self.assertEqual(failure.value.message,
                         f"checkpoint nope not found in {os.path.join(self.bundle, 'checkpoints')}")
        self.assertEqual(self.supervisor.list(), [])

    def test_not_running(self):
        self.create()
        self.successResultOf(defer.ensureDeferred(self.supervisor.set_status("web", PAUSED)))
        self.successResultOf(self.checkpoint())
        failure = self.failureResultOf(defer.ensureDeferred(
            self.supervisor.create_checkpoint("nope", self.options)), NotFound)
        self.assertEqual(failure.value.message, "container nope not found")


class RecoveryTests(SupervisorTestCase):
    """
    After a restart, a new supervisor adopts what the state dir and the monitor know.
    """

    def restart(self, processes=(), exits=()):
        """A new supervisor (and monitor connection) on the same state dir, recovered."""
        self.monitor = FakeMonitor(processes=processes, exits=exits)
        self.supervisor = self.make_supervisor(self.monitor)
        self.successResultOf(defer.ensureDeferred(self.supervisor.recover()))
        return self.supervisor

    def test_running_adopted(self):
        """A container the monitor still watches is supervised again, without a second start event."""
        self.create()
        self.restart([{"container": "web", "process": INIT, "pid": FIRST_FAKE_PID}])
        container = self.supervisor.get("web")
        self.assertEqual((container.status, container.init.system_pid), (RUNNING, FIRST_FAKE_PID))
        self.assertEqual(self.event_list(), [(START_CONTAINER, "web", "", 0)])
        self.monitor.exit("web", INIT, 5, pid=FIRST_FAKE_PID)
        self.assertEqual(self.event_list()[-1], (EXIT, "web", INIT, 5))

    def test_exit_while_no_daemon_ran(self):
        """An exit record the monitor wrote meanwhile is reported with its true status."""
        self.create()
        with open(os.path.join(self.store.container_dir("web"), "exit-init.json"), "w") as f:
            json.dump({"container": "web", "process": INIT, "pid": FIRST_FAKE_PID, "status": 7, "time_ns": 1}, f)
        self.restart()
        self.assertEqual(self.event_list()[-1], (EXIT, "web", INIT, 7))
        self.assertEqual(self.supervisor.list(), [])
        self.assertFalse(os.path.exists(self.store.container_dir("web")))

    def test_exit_the_monitor_could_not_write(self):
        """
        An exit the monitor kept in memory (its disk refused the record) is reported with its true status,
        and the monitor is then told it may drop it.
        """
        self.create()
        record = {"container": "web", "process": INIT, "pid": FIRST_FAKE_PID, "status": 9, "time_ns": 1}
        self.restart(exits=[record])
        self.assertEqual(self.event_list()[-1], (EXIT, "web", INIT, 9))
        self.assertEqual(self.monitor.requests, [("exit_handled", "web", INIT, FIRST_FAKE_PID)])

    def test_lost_process(self):
        """A process nobody watches and that is gone exited with the unknown status 255."""
        self.create()
        self.restart()
        self.assertEqual(self.event_list()[-1], (EXIT, "web", INIT, 255))
        self.assertEqual(self.monitor.requests, [])

    def test_lost_but_alive(self):
        """A recorded process that lives on in its container's cgroups is watched again (adopted)."""
        sleeper = self.sleeper()
        self.runtime.script("run", sleeper.pid)
        self.create()
        self.restart()
        self.assertEqual(self.monitor.requests,
                         [("adopt", "web", INIT, sleeper.pid, self.store.container_dir("web"))])
        self.assertEqual(self.supervisor.get("web").status, RUNNING)

    def test_half_made(self):
        """A container whose start never returned a pid is removed from the runtime and the state dir."""
        container = Container(id="half", bundle=self.bundle, runtime="runc", status=CREATING,
                              processes={INIT: Process(id=INIT, args=["sh"])})
        self.successResultOf(self.store.save_new("half", [container.init], container))
        self.restart()
        self.assertEqual(self.supervisor.list(), [])
        self.assertEqual(self.runtime.called("delete"), [(("half",), {"global_args": [], "force": True})])
        self.assertFalse(os.path.exists(self.store.container_dir("half")))
        self.assertEqual(self.event_list(), [])

    def test_started_before_the_crash(self):
        """A container whose init pid was recorded but whose status was not yet is finished starting."""
        container = Container(id="late", bundle=self.bundle, runtime="runc", status=CREATING,
                              processes={INIT: Process(id=INIT, args=["sh"], system_pid=FIRST_FAKE_PID)})
        self.successResultOf(self.store.save_new("late", [container.init], container))
        self.restart([{"container": "late", "process": INIT, "pid": FIRST_FAKE_PID}])
        self.assertEqual(self.supervisor.get("late").status, RUNNING)
        self.assertEqual(self.event_list(), [(START_CONTAINER, "late", "", 0)])


class SharedStateContractTests(TestCase):
    """
    The supervisor's mixins share only what L{SharedState} declares.
    """

    def test_private_fields_declared(self):
        """
        Every private attribute a supervisor module assigns is declared by L{SharedState} or assigned only in
        the module that owns it (core's own fields in its constructor); every private attribute a mixin
        reads is declared, or a method of the supervisor.
        """
        declared = set(vars(SharedState(Clock(), None, None, FakeMonitor(), None, None, 1.0)))
        methods = {name for name in dir(Supervisor) if name.startswith("_")}
        folder = os.path.dirname(supervisor_package.__file__)
        assigned_by = {}
        for path in sorted(glob.glob(os.path.join(folder, "*.py"))):
            module = os.path.basename(path)
            if module in ("shared.py", "__init__.py"):
                continue
            tree = ast.parse(open(path).read())
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "self" and node.attr.startswith("_")
                        and not node.attr.startswith("__")):
                    if isinstance(node.ctx, ast.Store):
                        assigned_by.setdefault(node.attr, set()).add(module)
                    elif module != "core.py":
                        self.assertIn(node.attr, declared | methods, f"{module} reads self.{node.attr}")
        for name, modules in assigned_by.items():
            if name not in declared:
                self.assertEqual(modules, {"core.py"}, f"self.{name} is assigned outside core.py")
