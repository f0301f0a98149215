# -*- test-case-name: tests.integration.test_daemon -*-
"""
The daemon as a Twisted service: claims its state dir and socket, connects to the monitor process, adopts
what a previous daemon left, then serves; on stop it ends streams and stops the gRPC server before the
reactor stops, and leaves every container running.
"""

import fcntl
import os
import shutil

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger

from containerd_tx import scratch, sd_notify
from containerd_tx.layout import StateDirLayout
from containerd_tx.api_service import APIService
from containerd_tx.bridge import ReactorBridge
from containerd_tx.errors import InvalidArgument, Unavailable
from containerd_tx.events import EventLog
from containerd_tx.grpc_server import GrpcServer, SocketInUse
from containerd_tx.metrics.build import build_info
from containerd_tx.metrics.graphite import GraphiteReporter
from containerd_tx.metrics.prometheus import metrics_http_service
from containerd_tx.metrics.registry import (
    CONTAINER_CREATE_TIME, CONTAINER_DELETE_TIME, CONTAINER_START_TIME, CONTAINER_STATS_TIME, CONTAINERS, EVENT_SUBSCRIBERS,
    EVENTS, EXEC_PROCESS_TIME, EXIT_PROCESS_TIME, OOM_EVENTS, TASKS, Metrics, process_gauges,
)
from containerd_tx.metrics.stdout import IDLE_LIMIT, StdoutReporter
from containerd_tx.model import CREATING
from containerd_tx.oom import OomWatcher
from containerd_tx.monitor_client import hardening, takeover
from containerd_tx.monitor_client.client import MonitorClient
from containerd_tx.runtime.runc import RuncRuntime
from containerd_tx.scratch import ScratchFiles
from containerd_tx.state_store import MEMORY_FILESYSTEMS, OrderedWriter, StateStore, filesystem_type
from containerd_tx.supervisor import Supervisor

log = Logger()

TIMERS = (CONTAINER_START_TIME, CONTAINER_CREATE_TIME, CONTAINER_DELETE_TIME, CONTAINER_STATS_TIME,
          EXEC_PROCESS_TIME, EXIT_PROCESS_TIME)


class StartupError(Exception):
    """The daemon cannot start; the message is one line for the operator."""


class ContainerdService(service.MultiService):
    """
    The whole daemon. Children (metrics reporters) start after it serves and stop before it shuts down.

    @param config: parsed L{containerd_tx.options.DaemonOptions}.
    @param reactor: the reactor.
    @param on_fatal: called with a one-line message when asynchronous start-up fails (twistd: exit 1).
    """

    def __init__(self, config, reactor, on_fatal=None):
        super().__init__()
        self.config = config
        self.reactor = reactor
        self._on_fatal = on_fatal
        self.state_dir = config["state-dir"]
        self.layout = StateDirLayout(self.state_dir)
        self.supervisor = None
        self.monitor = None
        self.grpc = None
        self.bridge = ReactorBridge(reactor)
        self.ready = defer.Deferred()
        self._state_lock = None
        self._starting = None
        self._events = None
        self._writer = None
        self._scratch = ScratchFiles()
        self._protection = None
        self._subreaper = False

    def startService(self):
        """
        Claim state dir and socket synchronously (failing with L{StartupError}), then start serving
        asynchronously; C{self.ready} fires once the socket serves.
        """
        service.Service.startService(self)
        self._claim()
        self._starting = defer.ensureDeferred(self._start())
        self._starting.addCallbacks(self.ready.callback, self._start_failed)

    def _claim(self):
        try:
            # oom_score_adj -999, soft open files limit raised, inherited fds close-on-exec (see hardening).
            self._protection = hardening.protect()
        except hardening.LimitTooLow as e:
            raise StartupError(str(e))
        # A dead monitor's processes are re-parented to the daemon, which reaps them with their true status
        # while a new monitor takes over their stdio (see containerd_tx.monitor_client.takeover).
        self._subreaper = takeover.become_subreaper()
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self._state_lock = os.open(self.layout.daemon_lock,
                                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._state_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._state_lock)
            self._state_lock = None
            raise StartupError(f"another daemon is using the state dir {self.state_dir}")
        self.grpc = GrpcServer(self.config["listen"], self.config["max-subscribers"],
                               group=self.config["group"])
        try:
            self.grpc.claim()
        except SocketInUse as e:
            self._release_state_lock()
            raise StartupError(str(e))
        for folder in (self.layout.sockets_dir, self.layout.runtimes_dir):
            os.makedirs(folder, mode=0o700, exist_ok=True)
        if filesystem_type(self.state_dir) in MEMORY_FILESYSTEMS:
            # On tmpfs (/run on a systemd host) fsync costs nothing and a record is a few microseconds of
            # syscalls: written inline, with no thread hand-off per change.
            log.info("state dir {dir} is in memory: records written inline", dir=self.state_dir)
            store = StateStore(self.state_dir, reactor=self.reactor)
        else:
            # One thread writes the state dir, in order and in batches, so fsync never stalls the reactor.
            self._writer = OrderedWriter(self.reactor, self.state_dir)
            self._writer.start()
            store = StateStore(self.state_dir, writer=self._writer, reactor=self.reactor)
        self.metrics = Metrics(self.reactor)
        for name in TIMERS:
            self.metrics.timer(name)  # reported from the start, even before the first sample
        process_gauges(self.metrics)
        self.metrics.counter(OOM_EVENTS)
        events = EventLog(self.layout.events_log, self.config["retain-count"],
                          counter=self.metrics.counter(EVENTS))
        self._store, self._events = store, events
        # Each start's pid file and runtime log: on a tmpfs even when the state dir is on a disk.
        self._scratch = ScratchFiles(scratch.default_directory(self.state_dir))
        try:
            self._scratch.prepare()
        except OSError as e:
            log.warn("cannot use {dir} for the runtime's pid files and logs ({e}); they go to the state dir",
                     dir=self._scratch.directory, e=e)
            self._scratch = ScratchFiles()


    async def _start(self):
        self.monitor = await MonitorClient.connect(
            self.reactor, self.state_dir, monitor_args=self._protection.monitor_args(),
            on_lost=self._monitor_lost,
            survive=self._subreaper,
            # An older monitor re-executes itself in place with this daemon's monitor code (nothing is lost).
            upgrade=True,
            # A stopped or hung monitor: calls needing it fail with DEADLINE_EXCEEDED within the start timeout
            # (set once any upgrade is done).
            request_timeout=self.config["start-timeout"],
        )
        log.info("monitor process {pid} watches the containers", pid=self.monitor.monitor_pid)
        runtime = self._make_runtime(self.config["runtime"], self.config["runtime-path"],
                                     self.config["runtime-args"])
        self.supervisor = Supervisor(
            self.reactor,
            self._store,
            self._events,
            self.monitor,
            default_runtime=runtime,
            runtime_factory=self._runtime_named,
            concurrency=self.config["concurrency"],
            start_timeout=self.config["start-timeout"],
            sockets_dir=self.layout.sockets_dir,
            metrics=self.metrics,
            oom=OomWatcher(self.reactor, self._report_oom) if self.config["oom-notify"] else None,
        )  # its constructor has the monitor (connected first: the runtime drives it) report exits to it
        self._register_gauges()
        await self.supervisor.recover()
        for container in list(self.supervisor.containers.values()):
            if self.supervisor.oom is not None and container.cgroups:
                self.supervisor.oom.watch(container.id, container.cgroups)
        api = APIService(self.bridge, self.supervisor, self.reactor,
                         max_subscribers=self.config["max-subscribers"])
        self._add_reporters()
        self.grpc.start(api)
        self.grpc.set_serving(True)
        log.info("containerd-tx serving on unix://{path} ({n} containers adopted)",
                 path=self.config["listen"], n=len(self.supervisor.containers))
        sd_notify.notify("READY=1")
        # The reporters added above were started by addService: this service was already running.
        return self

    def _register_gauges(self):
        supervisor, events, bridge = self.supervisor, self._events, self.bridge
        self.metrics.gauge(CONTAINERS, lambda: sum(1 for c in supervisor.containers.values()
                                                   if c.status != CREATING))
        self.metrics.gauge(EVENT_SUBSCRIBERS, lambda: events.subscriber_count)
        self.metrics.gauge(TASKS, lambda: bridge.in_flight)

    def _report_oom(self, container_id):
        if container_id in self.supervisor.containers:
            self.metrics.counter(OOM_EVENTS).inc()
        self.supervisor.report_oom(container_id)

    def _log_metrics(self):
        """
        Whether the periodic metrics dump goes to the log, and its idle limit (see L{StdoutReporter}): with
        C{--log-metrics auto}, only when no other sink is set, skipping idle dumps at the default interval.
        """
        mode = self.config.get("log-metrics", "auto")
        if mode == "auto":
            if self.config["graphite-address"] or self.config["metrics-address"]:
                return False, None
            return True, None if self.config.get("metrics-interval-given") else IDLE_LIMIT
        return mode == "on", None

    def _add_reporters(self):
        """The optional metric reporters, as children started once the daemon serves."""
        interval = self.config["metrics-interval"]
        if interval > 0:
            log_metrics, idle_limit = self._log_metrics()
            if log_metrics:
                StdoutReporter(self.metrics, interval, self.reactor, idle_limit=idle_limit).setServiceParent(self)
            if self.config["graphite-address"]:
                GraphiteReporter(self.metrics, self.config["graphite-address"],
                                 f"containerd-tx.{self.config['id']}", interval,
                                 self.reactor).setServiceParent(self)
        elif self.config["graphite-address"]:
            log.warn("--graphite-address is set but --metrics-interval is 0: nothing is sent to graphite")
        if self.config["metrics-address"]:
            metrics_http_service(self.config["metrics-address"], self.metrics, self.serving, self.reactor,
                                 build_info=build_info(self.config["runtime"])).setServiceParent(self)

    def serving(self):
        """Whether the daemon serves its API now (for /healthz)."""
        return self.running and self.ready.called and self.supervisor is not None

    def _make_runtime(self, name, path, global_args):
        return RuncRuntime(self.reactor, self.monitor, os.path.basename(name), path,
                           root=self.layout.runtime_root(name),
                           global_args=global_args, debug=self.config["log-level"] == "debug",
                           scratch=self._scratch)

    def _runtime_named(self, name):
        path = shutil.which(name)
        if path is None:
            raise InvalidArgument(f"runtime {name!r} not found in PATH")
        return self._make_runtime(name, path, self.config["runtime-args"])

    def _monitor_lost(self, reason):
        log.critical("the monitor process went away and no new one could take over ({reason}); stopping: "
                     "containers keep running and the next daemon start adopts them", reason=reason)
        if self.running and self._on_fatal is not None:
            self._on_fatal("monitor process lost")

    def _start_failed(self, failure):
        message = failure.getErrorMessage() or failure.type.__name__
        log.failure("start-up failed", failure)
        if self._on_fatal is not None:
            self._on_fatal(f"start-up failed: {message}")
        self.ready.errback(failure)

    def privilegedStartService(self):
        """Children get no privileged start: everything starts once the daemon serves."""

    def stopService(self):
        """
        Stop serving and let go of everything, leaving containers running. Fires when done.
        """
        return defer.ensureDeferred(self._stop())

    async def _stop(self):
        if not self.running:
            return
        service.Service.stopService(self)
        sd_notify.notify("STOPPING=1")
        for child in reversed(list(self)):
            if child.running:
                await defer.maybeDeferred(child.stopService)
        self.bridge.close()
        if self._events is not None:
            # As containerd 0.2.9's streams end when it stops: with a transport error (UNAVAILABLE), which
            # clients tell from the clean end of a stored-only replay.
            self._events.close(Unavailable("daemon is shutting down"))
        if self.supervisor is not None and self.supervisor.oom is not None:
            self.supervisor.oom.close()
        if self.grpc is not None:
            await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), self.grpc.stop, 2.0)
        if self.monitor is not None:
            self.monitor.disconnect()
        if self._writer is not None:
            # Finishes the writes already queued before returning.
            await threads.deferToThread(self._writer.stop)
        self._scratch.remove_folder()
        self._release_state_lock()
        log.info("containerd-tx stopped; containers keep running")

    def _release_state_lock(self):
        if self._state_lock is not None:
            os.close(self._state_lock)
            self._state_lock = None
