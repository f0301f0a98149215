# -*- test-case-name: tests.unit.test_supervisor -*-
"""
Exits: every process's exit is reported once with its status; the init's exit ends the container.
"""

import os

from twisted.internet import defer
from twisted.logger import Logger

from containerd_tx.errors import ContainerdError, NotFound
from containerd_tx.events import EXIT
from containerd_tx.metrics.registry import CONTAINER_DELETE_TIME, EXIT_PROCESS_TIME
from containerd_tx.model import CREATING, INIT, STOPPED

log = Logger()

#: How long the init's exit waits for the container's exec'd processes to be reaped after killing them.
EXEC_REAP_TIMEOUT = 10.0


class ExitHandling:
    """Supervisor tasks for exits (mixed into L{containerd_tx.supervisor.Supervisor})."""

    def handle_exit(self, record):
        """
        Handle an exit record (from the monitor's notification or found on disk at start-up).

        Exec'd processes are removed at once; the init's exit also ends the container. Each exit is reported
        exactly once, also when a record is seen twice or after a crash.
        """
        container_id, process_id = record["container"], record["process"]
        container = self.containers.get(container_id) or self._ending.get(container_id)
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
        with self.metrics.time(EXIT_PROCESS_TIME):
            self._report_exit(container, process, record["status"])
            container.processes.pop(process.id, None)
            self.store.remove_process(container.id, process.id)
            self._exiting.discard((container.id, process.id))
            waiter = self._exit_waiters.pop((container.id, process.id), None)
            if waiter is not None:
                waiter.callback(None)

    async def _init_exited(self, container, record):
        """
        The container's end, in containerd 0.2.9's order: it leaves the list first (State no longer shows it,
        Signal and exec answer NOT_FOUND, a create of the same id waits), then its exec'd processes are reaped
        and the runtime deletes it, and only then is its exit reported, so a client acting on the exit event
        finds the id free.
        """
        with self.metrics.time(EXIT_PROCESS_TIME):
            await self._end(container, record)

    async def _end(self, container, record):
        """L{_init_exited}'s steps (timed there)."""
        if self.oom is not None:
            # An OOM kill is reported before the exit it caused, even if the kernel's notice is late.
            self.oom.check(container.id)
            self.oom.unwatch(container.id)
        container.status = STOPPED
        self.containers.pop(container.id, None)
        self._ending[container.id] = container
        try:
            await self._reap_execs(container)
            runtime = self._runtime_of(container)
            with self.metrics.time(CONTAINER_DELETE_TIME, failures=False):
                try:
                    await runtime.delete(container.id, container.runtime_args)
                except NotFound:
                    pass  # already gone from the runtime (e.g. a checkpoint with exit removes it)
                except ContainerdError as e:
                    log.warn("runtime delete of {id} failed ({e}); forcing", id=container.id, e=e)
                    try:
                        await runtime.delete(container.id, container.runtime_args, force=True)
                    except ContainerdError as e:
                        log.error("cannot delete {id} from the runtime: {e}", id=container.id, e=e)
        finally:
            # In one reactor turn: the event is in the log before the records go, so a daemon killed in
            # between reports the exit once on its next start.
            self._report_exit(container, container.init, record["status"])
            self.store.remove_exit_record(container.id, INIT)
            self.store.remove_container(container.id)
            self._ending.pop(container.id, None)
            self._exiting.discard((container.id, INIT))
            for waiter in self._ended_waiters.pop(container.id, []):
                waiter.callback(None)

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
            everything = defer.DeferredList(waiting, consumeErrors=True)
            everything.addTimeout(EXEC_REAP_TIMEOUT, self._reactor)
            try:
                await everything
            except defer.TimeoutError:
                log.warn("exec'd processes of {id} not reaped within {t}s", id=container.id,
                         t=EXEC_REAP_TIMEOUT)

