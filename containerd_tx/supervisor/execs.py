# -*- test-case-name: tests.unit.test_supervisor,tests.integration.test_exec -*-
"""
Exec: new processes in running containers, and their stdin and terminals.
"""

import json
import os
from dataclasses import dataclass, field

from twisted.logger import Logger

from containerd_tx.errors import AlreadyExists, FailedPrecondition, InvalidArgument, RuntimeFailure
from containerd_tx.events import START_PROCESS
from containerd_tx.metrics.registry import EXEC_PROCESS_TIME
from containerd_tx.model import RUNNING, Process
from containerd_tx.process_spec import exec_process
from containerd_tx.runtime.monitor_seam import MonitorError
from containerd_tx.validation import load_bundle_config

log = Logger()


@dataclass
class ExecRequest:
    """
    A validated AddProcess request in plain Python.

    @ivar stdio: (stdin, stdout, stderr) paths, "" for /dev/null.
    """

    container_id: str
    process_id: str
    args: list
    env: list = field(default_factory=list)
    cwd: str = ""
    terminal: bool = False
    uid: int = 0
    gid: int = 0
    additional_gids: list = field(default_factory=list)
    capabilities: list = field(default_factory=list)
    no_new_privileges: bool = False
    rlimits: list = field(default_factory=list)
    apparmor_profile: str = ""
    selinux_label: str = ""
    stdio: tuple = ("", "", "")


class Execs:
    """
    Supervisor tasks for exec'd processes (mixed into L{containerd_tx.supervisor.Supervisor}; the state they
    share with the other tasks is L{containerd_tx.supervisor.shared.SharedState}).
    """

    async def add_process(self, request):
        """
        Start a process in a running container.

        @param request: an L{ExecRequest}.
        @return: the process's host pid.
        @raise NotFound: unknown container.
        @raise FailedPrecondition: the container is not running (paused, stopped).
        @raise AlreadyExists: the process id is taken in this container.
        """
        # One at a time with pause and resume: an exec never meets a container frozen half-way through it.
        async with self._transitions(request.container_id):
            return await self._add_process(request)

    async def _add_process(self, request):
        container = self.get(request.container_id)
        if container.status != RUNNING:
            raise FailedPrecondition(
                f"container {container.id} is {container.status}: cannot exec process {request.process_id} "
                f"into it"
            )
        if request.process_id in container.processes:
            raise AlreadyExists(f"process {request.process_id} already exists in container {container.id}")
        try:
            bundle_process = load_bundle_config(container.bundle)["process"]
        except InvalidArgument as e:
            raise FailedPrecondition(f"the bundle of {container.id} is no longer usable: {e.message}")
        spec = exec_process(bundle_process, vars(request))
        process = Process.from_oci(request.process_id, spec, request.stdio)
        with self.metrics.time(EXEC_PROCESS_TIME, failures=False):
            pid = await self._exec(container, process, spec)
        self._reactor.callLater(0, self._deliver_early_exit, container.id, process.id)
        return pid

    async def _exec(self, container, process, spec):
        """Record and start an exec'd process; its host pid."""
        spec_path = self.store.layout.exec_spec(container.id, process.id)
        container.processes[process.id] = process
        try:
            # A temporary file the runtime reads once: no fsync needed.
            with open(spec_path, "w") as f:
                json.dump(spec, f)
            await self.store.save_new(container.id, [process])
            pid = await self._runtime_of(container).exec(
                container.id,
                spec_path,
                (process.stdin or None, process.stdout or None, process.stderr or None),
                self.store.layout.registration(container.id, process.id),
                global_args=container.runtime_args,
                console_socket=self._console_socket() if process.terminal else None,
                timeout=self.start_timeout,
            )
        except RuntimeFailure as e:
            self._exec_failed(container, process)
            if _frozen(container):
                # Frozen from outside the daemon (it serialises its own pauses with execs).
                raise FailedPrecondition(f"cannot exec process {process.id} into container {container.id}: "
                                         f"the container is frozen ({e.message})")
            raise
        except BaseException:
            self._exec_failed(container, process)
            raise
        finally:
            _unlink(spec_path)
        process.system_pid = pid
        self.store.save_process(container.id, process)
        self.events.emit(START_PROCESS, container.id, process.id, system_pid=pid)
        log.info("container {id}: process {pid} started (pid {system_pid})", id=container.id,
                 pid=process.id, system_pid=pid)
        return pid

    def _exec_failed(self, container, process):
        """Forget an exec whose start failed."""
        container.processes.pop(process.id, None)
        self._early_exits.pop((container.id, process.id), None)
        self.store.remove_process(container.id, process.id)

    async def update_process(self, container_id, process_id, close_stdin=False, width=0, height=0):
        """
        Resize a process's terminal and/or close its stdin.

        @raise NotFound: unknown container or process.
        @raise FailedPrecondition: a resize of a process without a terminal, or stdin that cannot be closed.
        """
        container, process = self.get_process(container_id, process_id)
        try:
            if width or height:
                if not process.terminal:
                    raise FailedPrecondition(
                        f"process {process_id} of container {container_id} has no terminal to resize"
                    )
                await self.monitor.resize(container_id, process_id, width, height)
            if close_stdin:
                await self.monitor.close_stdin(container_id, process_id)
        except MonitorError as e:
            raise FailedPrecondition(str(e))


def _frozen(container):
    """Whether the container's freezer cgroup (cgroup v1) says it is frozen now."""
    freezer = container.cgroups.get("freezer")
    if not freezer:
        return False
    try:
        with open(os.path.join(freezer, "freezer.state")) as f:
            return f.read().strip() != "THAWED"
    except OSError:
        return False


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

