# -*- test-case-name: tests.unit.test_supervisor -*-
"""
The supervisor: the single owner of container state, living in the reactor thread.

Every change to a container happens here: create, signal, exits, state queries. The gRPC layer only
translates requests into calls of this class (through the thread bridge); the runtime driver only runs
commands; the monitor process only spawns, reaps and records exits.
"""

import os
import time
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.logger import Logger

from containerd_tx import cgroups
from containerd_tx.errors import (
    AlreadyExists,
    ContainerdError,
    InvalidArgument,
    NotFound,
)
from containerd_tx.events import EXIT, START_CONTAINER
from containerd_tx.model import CREATING, INIT, RUNNING, STOPPED, Container, Process

log = Logger()

#: How long the init's exit waits for the container's exec'd processes to be reaped after killing them.
EXEC_REAP_TIMEOUT = 10.0


@dataclass
class CreateRequest:
    """
    A validated CreateContainer request in plain Python.

    @ivar stdio: (stdin, stdout, stderr) paths, "" for /dev/null.
    """

    id: str
    bundle: str
    config: dict
    stdio: tuple = ("", "", "")
    labels: list = field(default_factory=list)
    runtime: str = ""
    runtime_args: list = field(default_factory=list)
    no_pivot_root: bool = False


@dataclass
class Machine:
    """The host as State reports it."""

    cpus: int
    memory: int


def read_machine():
    """Cpus and memory (bytes) of this host."""
    memory = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
                break
    return Machine(cpus=os.cpu_count() or 1, memory=memory)


class Supervisor:
    """
    Owns every container; all methods run in the reactor thread.

    @param reactor: the reactor (injected; tests use a fake).
    @param store: L{containerd_tx.state_store.StateStore}.
    @param events: L{containerd_tx.events.EventLog}.
    @param monitor: the monitor client (exits arrive through its C{on_exit}).
    @param runtime_factory: C{name -> IRuntime} for names other than the default (None to refuse them).
    @param default_runtime: the L{IRuntime} used when a request names none.
    @param concurrency: how many runtime starts may run at once.
    @param start_timeout: seconds a start may take before it is killed.
    @param sockets_dir: where console sockets for terminals are made.
    @param metrics: L{containerd_tx.metrics.Metrics} or None.
    """

    def __init__(self, reactor, store, events, monitor, default_runtime, runtime_factory=None,
                 concurrency=10, start_timeout=30.0, sockets_dir=None, metrics=None, machine=None):
        self._reactor = reactor
        self.store = store
        self.events = events
        self.monitor = monitor
        self.default_runtime = default_runtime
        self._runtimes = {default_runtime.name: default_runtime}
        self._runtime_factory = runtime_factory
        self._starts = defer.DeferredSemaphore(concurrency)
        self.start_timeout = start_timeout
        self._sockets_dir = sockets_dir
        self._socket_counter = 0
        self.metrics = metrics
        self.machine = machine or read_machine()
        self._mounts = None
        #: container id -> Container; includes containers still being created.
        self.containers = {}
        #: (container id, process id) -> exit record that arrived before its process was known to be started.
        self._early_exits = {}
        #: (container id, process id) -> Deferred fired when that process's exit has been handled.
        self._exit_waiters = {}
        #: (container id, process id) of exits being handled now.
        self._exiting = set()
        monitor.on_exit = self.handle_exit

    # Runtimes.

    def runtime_for(self, name):
        """
        The runtime driver for a runtime name (the default for "").

        @raise InvalidArgument: for a runtime this daemon cannot find.
        """
        if not name:
            return self.default_runtime
        runtime = self._runtimes.get(name)
        if runtime is None:
            if self._runtime_factory is None:
                raise InvalidArgument(f"unknown runtime {name!r}")
            runtime = self._runtime_factory(name)
            self._runtimes[name] = runtime
        return runtime

    def _runtime_of(self, container):
        return self.runtime_for(container.runtime)

    # Create.

    async def create(self, request):
        """
        Create and start a container.

        @param request: a L{CreateRequest}.
        @return: the running L{Container}.
        @raise AlreadyExists: the id is taken.
        @raise DeadlineExceeded: the runtime did not start it within the start timeout.
        @raise RuntimeFailure: the runtime refused; its own message is included.
        """
        if request.id in self.containers:
            raise AlreadyExists(f"container {request.id} already exists")
        runtime = self.runtime_for(request.runtime)
        started = self._reactor.seconds()
        init = Process.from_oci(INIT, request.config["process"], request.stdio)
        container = Container(
            id=request.id,
            bundle=request.bundle,
            runtime=runtime.name,
            runtime_args=list(request.runtime_args),
            labels=list(request.labels),
            no_pivot_root=request.no_pivot_root,
            processes={INIT: init},
            created_ns=time.time_ns(),
        )
        self.containers[container.id] = container
        try:
            self.store.save_container(container)
            self.store.save_process(container.id, init)
            pid = await self._start_init(container, runtime)
        except BaseException:
            await self._discard(container, runtime)
            raise
        self._started(container, pid)
        if self.metrics is not None:
            self.metrics.timer("container-start-time").update(self._reactor.seconds() - started)
        # The caller sees the container running first; an exit that came early is handled next turn.
        self._reactor.callLater(0, self._deliver_early_exit, container.id, INIT)
        return container

    async def _start_init(self, container, runtime):
        console = self._console_socket() if container.init.terminal else None
        await self._starts.acquire()
        try:
            return await runtime.run(
                container.id,
                container.bundle,
                _stdio(container.init),
                (container.id, INIT, self.store.container_dir(container.id)),
                global_args=container.runtime_args,
                no_pivot_root=container.no_pivot_root,
                console_socket=console,
                timeout=self.start_timeout,
            )
        finally:
            self._starts.release()

    def _started(self, container, pid):
        container.init.system_pid = pid
        container.status = RUNNING
        container.cgroups = self._cgroups_of(pid)
        self.store.save_process(container.id, container.init)
        self.store.save_container(container)
        self.events.emit(START_CONTAINER, container.id, INIT, system_pid=pid)
        log.info("container {id} started (pid {pid})", id=container.id, pid=pid)

    async def _discard(self, container, runtime):
        """Undo a failed create: runtime state, monitor registration, records, memory."""
        self.containers.pop(container.id, None)
        self._early_exits.pop((container.id, INIT), None)
        try:
            await runtime.delete(container.id, container.runtime_args, force=True)
        except ContainerdError:
            pass
        self.store.remove_container(container.id)

    def _console_socket(self):
        self._socket_counter += 1
        return os.path.join(self._sockets_dir, f"console-{os.getpid()}-{self._socket_counter}.sock")

    def _cgroups_of(self, pid):
        if self._mounts is None:
            self._mounts = cgroups.mount_points()
        try:
            return cgroups.process_cgroups(pid, self._mounts)
        except OSError:
            return {}

    # Lookups.

    def get(self, container_id):
        """
        A started container.

        @raise NotFound: unknown (or still being created).
        """
        container = self.containers.get(container_id)
        if container is None or container.status == CREATING:
            raise NotFound(f"container {container_id} not found")
        return container

    def get_process(self, container_id, process_id):
        """
        A started process of a started container.

        @raise NotFound: unknown container or process.
        """
        container = self.get(container_id)
        process = container.processes.get(process_id)
        if process is None or not process.system_pid:
            raise NotFound(f"process {process_id} not found in container {container_id}")
        return container, process

    def list(self, container_id=""):
        """
        Started containers (all, or the one named), with their pids.

        @return: a list of (L{Container}, pids).
        @raise NotFound: the named container is unknown.
        """
        if container_id:
            containers = [self.get(container_id)]
        else:
            containers = [c for c in self.containers.values() if c.status != CREATING]
        return [(c, self.pids(c)) for c in containers]

    @staticmethod
    def pids(container):
        """Host pids in the container's cgroup now (empty once it is gone)."""
        return cgroups.cgroup_pids(container.cgroups)

    # Signals.

    def signal(self, container_id, process_id, signal):
        """
        Send C{signal} to a process of a container.

        @raise NotFound: unknown container or process, or the process has already exited.
        """
        container, process = self.get_process(container_id, process_id)
        try:
            os.kill(process.system_pid, signal)
        except ProcessLookupError:
            raise NotFound(f"process {process_id} of container {container_id} has already exited")

    # Exits.

    def handle_exit(self, record):
        """
        Handle an exit record (from the monitor's notification or found on disk at start-up).

        Exec'd processes are removed at once; the init's exit also ends the container. Each exit is reported
        exactly once, also when a record is seen twice or after a crash.
        """
        container_id, process_id = record["container"], record["process"]
        container = self.containers.get(container_id)
        if container is None:
            self.store.remove_exit_record(container_id, process_id)
            return
        process = container.processes.get(process_id)
        if process is None:
            self.store.remove_exit_record(container_id, process_id)
            return
        if not process.system_pid or container.status == CREATING:
            # Its start has not returned yet: the exit is handled once it has.
            self._early_exits[(container_id, process_id)] = record
            return
        if (container_id, process_id) in self._exiting:
            return
        self._exiting.add((container_id, process_id))
        if process_id == INIT:
            defer.ensureDeferred(self._init_exited(container, record)).addErrback(
                lambda f: log.failure("handling the exit of container {id}", f, id=container_id))
        else:
            self._process_exited(container, process, record)

    def _deliver_early_exit(self, container_id, process_id):
        record = self._early_exits.pop((container_id, process_id), None)
        if record is not None:
            self.handle_exit(record)

    def _report_exit(self, container, process, status):
        if not self.events.has_exit(container.id, process.id, process.system_pid):
            self.events.emit(EXIT, container.id, process.id, status=status, system_pid=process.system_pid)
        log.info("container {id} process {pid} exited with status {status}",
                 id=container.id, pid=process.id, status=status)

    def _process_exited(self, container, process, record):
        started = self._reactor.seconds()
        self._report_exit(container, process, record["status"])
        container.processes.pop(process.id, None)
        self.store.remove_process(container.id, process.id)
        self._exiting.discard((container.id, process.id))
        waiter = self._exit_waiters.pop((container.id, process.id), None)
        if waiter is not None:
            waiter.callback(None)
        if self.metrics is not None:
            self.metrics.timer("exit-process-time").update(self._reactor.seconds() - started)

    async def _init_exited(self, container, record):
        started = self._reactor.seconds()
        container.status = STOPPED
        await self._reap_execs(container)
        self._report_exit(container, container.init, record["status"])
        self.store.remove_exit_record(container.id, INIT)
        runtime = self._runtime_of(container)
        deleted = self._reactor.seconds()
        try:
            await runtime.delete(container.id, container.runtime_args)
        except ContainerdError as e:
            log.warn("runtime delete of {id} failed ({e}); forcing", id=container.id, e=e)
            try:
                await runtime.delete(container.id, container.runtime_args, force=True)
            except ContainerdError as e:
                log.error("cannot delete {id} from the runtime: {e}", id=container.id, e=e)
        if self.metrics is not None:
            self.metrics.timer("container-delete-time").update(self._reactor.seconds() - deleted)
            self.metrics.timer("exit-process-time").update(self._reactor.seconds() - started)
        self.store.remove_container(container.id)
        self.containers.pop(container.id, None)
        self._exiting.discard((container.id, INIT))

    async def _reap_execs(self, container):
        """Kill what is left of the container's exec'd processes and wait for their exits."""
        waiting = []
        for process in list(container.processes.values()):
            if process.id == INIT or not process.system_pid:
                continue
            waiter = self._exit_waiters.setdefault((container.id, process.id), defer.Deferred())
            waiting.append(waiter)
            try:
                os.kill(process.system_pid, 9)
            except ProcessLookupError:
                pass
        if waiting:
            everything = defer.DeferredList(waiting)
            everything.addTimeout(EXEC_REAP_TIMEOUT, self._reactor)
            try:
                await everything
            except defer.TimeoutError:
                log.warn("exec'd processes of {id} not reaped within {t}s", id=container.id,
                         t=EXEC_REAP_TIMEOUT)

    # Start-up: adopt what the previous daemon left.

    async def recover(self):
        """
        Adopt every container recorded in the state dir: running ones go on being supervised, exits that
        happened while no daemon ran are reported with their true status, half-made ones are cleaned up.
        """
        live = {(p["container"], p["process"]): p for p in self.monitor.processes}
        containers = self.store.load()
        for container in containers:
            self.containers[container.id] = container
        exits = []
        for container in containers:
            records = {r["process"]: r for r in self.store.read_exit_records(container.id)}
            for process in list(container.processes.values()):
                key = (container.id, process.id)
                if key in live and not process.system_pid:
                    process.system_pid = live[key]["pid"]
                    self.store.save_process(container.id, process)
                if process.id in records:
                    record = records[process.id]
                    if not process.system_pid:
                        process.system_pid = record.get("pid", 0)
                    exits.append(record)
                elif key not in live:
                    lost = await self._lost_process(container, process)
                    if lost is not None:
                        exits.append(lost)
            if container.status == CREATING:
                if container.init.system_pid:
                    self._started(container, container.init.system_pid)
                else:
                    log.warn("container {id} was being created when the daemon stopped: removing it",
                             id=container.id)
                    await self._discard(container, self._runtime_of(container))
                    continue
            log.info("adopted container {id} ({status})", id=container.id, status=container.status)
        for record in exits:
            self.handle_exit(record)

    async def _lost_process(self, container, process):
        """
        A recorded process the monitor does not know (the monitor itself was restarted): watch it again if it
        lives; otherwise return an exit record with the unknown status 255 (as containerd reports it).
        """
        if process.system_pid and _alive(process.system_pid):
            try:
                await self.monitor.adopt(container.id, process.id, process.system_pid,
                                         self.store.container_dir(container.id))
                return None
            except Exception as e:
                log.warn("cannot watch {id}/{pid}: {e}", id=container.id, pid=process.id, e=e)
        if process.system_pid:
            return {"container": container.id, "process": process.id, "pid": process.system_pid,
                    "status": 255}
        container.processes.pop(process.id, None)
        self.store.remove_process(container.id, process.id)
        return None


def _stdio(process):
    return (process.stdin or None, process.stdout or None, process.stderr or None)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
