# -*- test-case-name: tests.unit.test_supervisor -*-
"""
The supervisor's core: container state, create, lookups and signals.
"""

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field

from twisted.internet import defer
from twisted.logger import Logger

from containerd_tx import cgroups, unix_path
from containerd_tx.errors import (
    AlreadyExists,
    ContainerdError,
    InvalidArgument,
    NotFound,
)
from containerd_tx.events import OOM, START_CONTAINER
from containerd_tx.metrics.registry import CONTAINER_CREATE_TIME, CONTAINER_START_TIME, CONTAINER_STATS_TIME
from containerd_tx.model import CREATING, INIT, RUNNING, Container, Process
from containerd_tx.stats import read_stats
from containerd_tx.supervisor.checkpoints import checkpoint_root, read_checkpoint
from containerd_tx.supervisor.shared import SharedState

log = Logger()


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
    #: Restore from this checkpoint (name) instead of starting fresh; its folder is checkpoint_dir or
    #: the bundle's checkpoints/.
    checkpoint: str = ""
    checkpoint_dir: str = ""


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


class SupervisorCore(SharedState):
    """
    Owns every container; all methods run in the reactor thread. The tasks of other kinds live in their own
    modules (exits, recovery, exec, update) and are mixed in by L{containerd_tx.supervisor.Supervisor}; what
    they share is declared by L{SharedState}.

    @param reactor: the reactor (injected; tests use a L{twisted.internet.task.Clock}).
    @param store: L{containerd_tx.state_store.StateStore}.
    @param events: L{containerd_tx.events.EventLog}.
    @param monitor: the L{containerd_tx.runtime.monitor_seam.IMonitor}; this constructor has it report
        exits to L{handle_exit} (its C{report_exits_to}).
    @param runtime_factory: C{name -> IRuntime} for names other than the default (None to refuse them).
    @param default_runtime: the L{IRuntime} used when a request names none.
    @param concurrency: how many runtime starts may run at once.
    @param start_timeout: seconds a start may take before it is killed.
    @param sockets_dir: where console sockets for terminals are made.
    @param metrics: L{containerd_tx.metrics.registry.Metrics} (None: a private registry nobody reports).
    @param oom: an L{containerd_tx.oom.OomWatcher} (its C{on_oom} calling L{report_oom}) or None.
    """

    def __init__(self, reactor, store, events, monitor, default_runtime, runtime_factory=None,
                 concurrency=10, start_timeout=30.0, sockets_dir=None, metrics=None, machine=None, oom=None):
        super().__init__(reactor, store, events, monitor, metrics, oom, start_timeout)
        self.default_runtime = default_runtime
        self._runtimes = {default_runtime.name: default_runtime}
        self._runtime_factory = runtime_factory
        self._starts = defer.DeferredSemaphore(concurrency)
        self._sockets_dir = sockets_dir
        self._socket_counter = 0
        self._short_sockets_dir = None
        self.machine = machine or read_machine()
        self._mounts = None
        #: container id -> DeferredLock held by an exec, pause or resume of it (see L{_transitions}).
        self._transition_locks = {}
        # Last, once everything an exit touches exists: the monitor's exits come here from now on.
        monitor.report_exits_to(self.handle_exit)

    # Per-container serialisation.

    @contextlib.asynccontextmanager
    async def _transitions(self, container_id):
        """
        Hold the container's transition lock: execs, pauses and resumes of one container run one at a time
        (containerd 0.2.9's single task loop gave that for free), so an exec never races a freeze.
        """
        lock = self._transition_locks.get(container_id)
        if lock is None:
            lock = self._transition_locks[container_id] = defer.DeferredLock()
        await lock.acquire()
        try:
            yield
        finally:
            lock.release()
            if not lock.locked and not lock.waiting and self._transition_locks.get(container_id) is lock:
                del self._transition_locks[container_id]

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
        while request.id in self._ending:
            # Its exit is being handled: the id is free once the runtime has deleted it.
            waiter = defer.Deferred()
            self._ended_waiters.setdefault(request.id, []).append(waiter)
            await waiter
        if request.id in self.containers:
            raise AlreadyExists(f"container {request.id} already exists")
        runtime = self.runtime_for(request.runtime)
        with self.metrics.time(CONTAINER_START_TIME, failures=False):
            container = await self._create(request, runtime)
        # The caller sees the container running first; an exit that came early is handled next turn.
        self._reactor.callLater(0, self._deliver_early_exit, container.id, INIT)
        return container

    async def _create(self, request, runtime):
        """Record, start and register a new container (L{create} without its waits and checks)."""
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
        restore = None
        if request.checkpoint:
            root = checkpoint_root(request.bundle, request.checkpoint_dir)
            restore = (os.path.join(root, request.checkpoint), read_checkpoint(root, request.checkpoint))
        self.containers[container.id] = container
        try:
            # On disk before the runtime acts: a daemon killed from here on finds the container again.
            await self.store.save_new(container.id, [init], container)
            pid = await self._start_init(container, runtime, restore)
        except BaseException:
            await self._discard(container, runtime)
            raise
        self._started(container, pid)
        return container

    async def _start_init(self, container, runtime, restore=None):
        console = self._console_socket() if container.init.terminal else None
        await self._starts.acquire()
        try:
            with self.metrics.time(CONTAINER_CREATE_TIME):
                if restore is not None:
                    image, options = restore
                    work = os.path.join(self.store.container_dir(container.id), "criu-restore")
                    os.makedirs(work, mode=0o700, exist_ok=True)
                    return await runtime.restore(
                        container.id, container.bundle, image, work, options, _stdio(container.init),
                        (container.id, INIT, self.store.container_dir(container.id)),
                        global_args=container.runtime_args, no_pivot_root=container.no_pivot_root,
                        console_socket=console, timeout=self.start_timeout,
                    )
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
        # An init that ended at once (an OOM kill, say) may be reaped already: the runtime's record of the
        # cgroups still holds, and without it an OOM kill would go unreported.
        container.cgroups = self._cgroups_of(pid) or self._runtime_of(container).cgroup_paths(
            container.id, container.runtime_args)
        self.store.save_started(container, container.init)
        # After a crash the record may predate the event already logged: report each start once. The event
        # carries no pid, as containerd 0.2.9 sends it (logs written before also have it with "init").
        if not (self.events.has(START_CONTAINER, container.id, "", pid)
                or self.events.has(START_CONTAINER, container.id, INIT, pid)):
            self.events.emit(START_CONTAINER, container.id, "", system_pid=pid)
        if self.oom is not None:
            self.oom.watch(container.id, container.cgroups, fresh=True)
        log.info("container {id} started (pid {pid})", id=container.id, pid=pid)

    async def _discard(self, container, runtime):
        """Undo a failed create: runtime state, monitor registration, records, memory."""
        self.containers.pop(container.id, None)
        self._early_exits.pop((container.id, INIT), None)
        if self.oom is not None:
            self.oom.unwatch(container.id)
        try:
            await runtime.delete(container.id, container.runtime_args, force=True)
        except ContainerdError:
            pass
        self.store.remove_container(container.id)

    def _console_socket(self):
        self._socket_counter += 1
        name = f"console-{os.getpid()}-{self._socket_counter}.sock"
        path = os.path.join(self._sockets_dir, name)
        if not unix_path.fits(path):
            # The runtime connects to it by path: under a long state dir, a private short folder instead.
            if self._short_sockets_dir is None:
                self._short_sockets_dir = tempfile.mkdtemp(prefix="containerd-tx-console-",
                                                           dir="/run" if os.access("/run", os.W_OK) else None)
            path = os.path.join(self._short_sockets_dir, name)
        return path

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

    # Stats and OOM.

    def stats(self, container_id):
        """
        One sample of a container's cgroup and network statistics, read from the kernel without spawning.

        @return: a dict shaped like StatsResponse (see L{containerd_tx.stats.read_stats}).
        @raise NotFound: unknown container.
        """
        container = self.get(container_id)
        with self.metrics.time(CONTAINER_STATS_TIME):
            return read_stats(container.cgroups, container.init.system_pid)

    def report_oom(self, container_id):
        """The kernel OOM-killed a process of this container: emit an C{oom} event."""
        if container_id in self.containers or container_id in self._ending:
            self.events.emit(OOM, container_id, INIT)
            log.warn("container {id}: out of memory, a process was killed", id=container_id)

    # Signals.

    def signal(self, container_id, process_id, signal):
        """
        Send C{signal} to a process of a container.

        The messages carry containerd 0.2.9's words, which clients match to tell a signal that lost the race
        with an exit: C{container not found} (the container is gone, or going) and C{no such process}.

        @raise NotFound: unknown container or process, or the process has already exited.
        """
        container = self.containers.get(container_id)
        if container is None or container.status == CREATING:
            raise NotFound(f"container not found: {container_id}")
        process = container.processes.get(process_id)
        if process is None or not process.system_pid:
            raise NotFound(f"process {process_id} of container {container_id}: no such process")
        try:
            os.kill(process.system_pid, signal)
        except ProcessLookupError:
            raise NotFound(f"process {process_id} of container {container_id}: no such process")


def _stdio(process):
    return (process.stdin or None, process.stdout or None, process.stderr or None)

