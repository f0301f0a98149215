# -*- test-case-name: tests.unit.test_runtime_runc -*-
"""
The runc (and crun: same command line) driver: the only place that builds OCI runtime command lines.

Every command is spawned by the monitor process (through the L{containerd_tx.runtime.monitor_seam.IMonitor}
seam), so that container processes are its children and the daemon itself never forks beside grpcio's threads.
"""

import json
import os
import re
import signal as signal_module

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from containerd_tx.errors import DeadlineExceeded, FailedPrecondition, NotFound, RuntimeFailure, Unavailable
from containerd_tx.layout import Registration
from containerd_tx.runtime.interface import IRuntime
from containerd_tx.runtime.monitor_seam import MonitorError, MonitorLost
from containerd_tx.scratch import ScratchFiles

log = Logger()


class CheckpointFailed(FailedPrecondition):
    """CRIU could not dump the container in its present state; the container is left as it was."""


@implementer(IRuntime)
class RuncRuntime:
    """
    Drives a runc-compatible binary.

    @param reactor: for timeouts.
    @param spawner: the L{containerd_tx.runtime.monitor_seam.IMonitor} that runs every command.
    @param name: the runtime's name as clients give it ("runc", "crun").
    @param binary: absolute path of the binary.
    @param root: the runtime's state root (C{--root}), unless C{global_args} already name one.
    @param global_args: the daemon's C{--runtime-args}, before any per-container ones.
    @param debug: log every command line run, with its duration (--debug).
    @param scratch: the L{containerd_tx.scratch.ScratchFiles} that name each start's pid file and log; by
        default both go to the container's folder of the state dir.
    """

    def __init__(self, reactor, spawner, name, binary, root, global_args=(), debug=False, scratch=None):
        self._reactor = reactor
        self._spawner = spawner
        self.name = name
        self.binary = binary
        self.root = root
        self._global_args = list(global_args)
        #: Runtime starts (run/exec/restore) in flight now, and the most ever seen at once.
        self.starts_in_flight = 0
        self.max_starts_in_flight = 0
        #: Log every command line run, with its duration (--debug).
        self.debug = debug
        self._scratch = scratch if scratch is not None else ScratchFiles()

    def _argv(self, global_args, *command):
        args = self._global_args + list(global_args)
        if not any(a == "--root" or a.startswith("--root=") for a in args):
            args = ["--root", self.root] + args
        return [self.binary] + args + list(command)

    # Starts: the runtime's stdio is the process's stdio, so errors come from its log file.

    def run(self, container_id, bundle, process_stdio, register, global_args=(), no_pivot_root=False,
            console_socket=None, timeout=None):
        register = Registration(*register)
        pid_file, log_file = self._scratch.for_start(register)
        # One step for every runtime: crun's `run -d` can return while the init is still the child of crun's
        # short-lived helper, and the monitor waits for that helper to go before it reads the init's status.
        command = ["--log", log_file, "--log-format", "json", "run", "-d", "--bundle", bundle,
                   "--pid-file", pid_file]
        if no_pivot_root:
            command.append("--no-pivot")
        if console_socket:
            command += ["--console-socket", console_socket]
        command.append(container_id)
        return self._start(self._argv(global_args, *command), process_stdio, pid_file, log_file, register,
                           console_socket, timeout)

    def exec(self, container_id, process_json_path, process_stdio, register, global_args=(),
             console_socket=None, timeout=None):
        register = Registration(*register)
        pid_file, log_file = self._scratch.for_start(register)
        command = ["--log", log_file, "--log-format", "json", "exec", "-d", "--pid-file", pid_file,
                   "--process", process_json_path]
        if console_socket:
            command += ["--console-socket", console_socket]
        command.append(container_id)
        return self._start(self._argv(global_args, *command), process_stdio, pid_file, log_file, register,
                           console_socket, timeout)

    def restore(self, container_id, bundle, image_path, work_path, options, process_stdio, register,
                global_args=(), no_pivot_root=False, console_socket=None, timeout=None):
        """
        Restore a container from a CRIU image (C{restore -d}); fires with the restored init's host pid.

        @param options: the checkpoint's options (tcp, unix_sockets, shell) that restore must repeat.
        """
        register = Registration(*register)
        pid_file, log_file = self._scratch.for_start(register)
        command = ["--log", log_file, "--log-format", "json", "restore", "-d", "--image-path", image_path,
                   "--work-path", work_path, "--bundle", bundle, "--pid-file", pid_file]
        command += _criu_flags(options)
        if no_pivot_root:
            command.append("--no-pivot")
        if console_socket:
            command += ["--console-socket", console_socket]
        command.append(container_id)
        return self._start(self._argv(global_args, *command), process_stdio, pid_file, log_file, register,
                           console_socket, timeout, criu_log=os.path.join(work_path, "restore.log"))

    @defer.inlineCallbacks
    def checkpoint(self, container_id, image_path, work_path, options, global_args=()):
        """
        Dump the container with CRIU into C{image_path}; it keeps running unless C{options["exit"]}.

        @raise CheckpointFailed: CRIU could not dump it; the message ends with CRIU's own reason.
        """
        command = ["checkpoint", "--image-path", image_path, "--work-path", work_path]
        if not options.get("exit"):
            command.append("--leave-running")
        command += _criu_flags(options)
        for namespace in options.get("empty_ns") or ():
            command += ["--empty-ns", namespace]
        command.append(container_id)
        try:
            yield self._call(global_args, *command, container_id=container_id)
        except RuntimeFailure as e:
            reason = criu_log_errors(os.path.join(work_path, "dump.log"))
            raise CheckpointFailed(f"{e.message}{': ' + reason if reason else ''}")

    @defer.inlineCallbacks
    def _start(self, argv, stdio, pid_file, log_file, register, console_socket, timeout, criu_log=None):
        self.starts_in_flight += 1
        self.max_starts_in_flight = max(self.max_starts_in_flight, self.starts_in_flight)
        if self.debug:
            log.debug("runtime: starting {id}: {n} starts in flight, most at once so far {most}",
                      id=register.container, n=self.starts_in_flight, most=self.max_starts_in_flight)
        started = self._reactor.seconds()
        succeeded = False
        try:
            spawn = self._spawner.spawn(
                argv,
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                pid_file=pid_file,
                register=register.to_wire(),
                console_socket=console_socket,
                announce=False,  # only the reply matters here: one message less per start
            )
            timed_out = []
            timer = None
            if timeout:
                def expire():
                    timed_out.append(True)
                    spawn.kill(signal_module.SIGKILL).addErrback(lambda f: None)

                timer = self._reactor.callLater(timeout, expire)
            try:
                result = yield spawn.result
            except MonitorLost as e:
                raise Unavailable(f"cannot start {register.container}: the monitor went away ({e})")
            except MonitorError as e:
                # The monitor refused the spawn, e.g. a stdio path it cannot open for this process.
                raise FailedPrecondition(f"cannot start {_what(register)}: {e}")
            finally:
                if timer is not None and timer.active():
                    timer.cancel()
            if timed_out:
                raise DeadlineExceeded(
                    f"{self.name} did not start {register.container} within {timeout:g}s; it was killed"
                )
            if result.status != 0:
                message = self._failure_text(argv, result, log_file)
                reason = criu_log_errors(criu_log) if criu_log else ""
                raise RuntimeFailure(f"{message}{': ' + reason if reason else ''}")
            succeeded = True
            return result.pid
        finally:
            self.starts_in_flight -= 1
            said = self._scratch.release(pid_file, log_file)
            if succeeded and said:
                # What it logged goes with the scratch file: a warning of a start that worked is kept here.
                log.warn("{runtime} on {what}: {said}", runtime=self.name, what=_what(register),
                         said="; ".join(_log_messages(said)))
            self._debug(argv, started)

    def _failure_text(self, argv, result, log_file):
        message = _last_log_error(log_file) or (result.stderr or b"").decode(errors="replace").strip()
        if not message:
            message = f"exit status {result.status}"
        prefix = f"{self.name} {_subcommand(argv)} failed: "
        # runc's own message often starts with the same words.
        return message if message.startswith(prefix) else prefix + message

    # Everything else: output captured.

    @defer.inlineCallbacks
    def _call(self, global_args, *command, container_id=None):
        argv = self._argv(global_args, *command)
        started = self._reactor.seconds()
        try:
            result = yield self._spawner.spawn(argv, capture=True, announce=False).result
        finally:
            self._debug(argv, started)
        if result.status != 0:
            text = (result.stderr or b"").decode(errors="replace").strip() or (
                result.stdout or b"").decode(errors="replace").strip()
            text = _json_msg(text) or _logrus_msg(text) or text or f"exit status {result.status}"
            if container_id and ("does not exist" in text or "not found" in text.lower()):
                raise NotFound(f"{self.name}: container {container_id} does not exist")
            raise RuntimeFailure(f"{self.name} {command[0]} failed: {text}")
        return result.stdout or b""

    def kill(self, container_id, signal, global_args=(), all=False):
        command = ["kill"] + (["--all"] if all else []) + [container_id, str(int(signal))]
        return self._call(global_args, *command, container_id=container_id)

    def delete(self, container_id, global_args=(), force=False):
        command = ["delete"] + (["--force"] if force else []) + [container_id]
        return self._call(global_args, *command, container_id=container_id)

    def pause(self, container_id, global_args=()):
        return self._call(global_args, "pause", container_id, container_id=container_id)

    def resume(self, container_id, global_args=()):
        return self._call(global_args, "resume", container_id, container_id=container_id)

    def update(self, container_id, resources_json_path, global_args=()):
        return self._call(global_args, "update", "--resources", resources_json_path, container_id,
                          container_id=container_id)

    @defer.inlineCallbacks
    def list(self, global_args=()):
        output = yield self._call(global_args, "list", "--format", "json")
        return json.loads(output or b"null") or []

    def cgroup_paths(self, container_id, global_args=()):
        """
        runc keeps the container's cgroup directories in C{<root>/<id>/state.json} (C{cgroup_paths}): they
        stay known after the init has exited and been reaped, until the container is deleted. Other runtimes'
        state has no such map: C{{}}.
        """
        args = self._global_args + list(global_args)
        root = self.root
        for i, arg in enumerate(args):
            if arg == "--root" and i + 1 < len(args):
                root = args[i + 1]
            elif arg.startswith("--root="):
                root = arg.partition("=")[2]
        try:
            with open(os.path.join(root, container_id, "state.json"), "rb") as f:
                paths = json.load(f).get("cgroup_paths") or {}
        except (OSError, ValueError, AttributeError):
            return {}
        return {name: path for name, path in paths.items() if isinstance(path, str) and os.path.isabs(path)}

    def _debug(self, argv, started):
        if self.debug:
            log.debug("runtime: {argv} ({ms:.1f} ms)", argv=" ".join(argv),
                      ms=(self._reactor.seconds() - started) * 1000)


def _criu_flags(options):
    flags = []
    if options.get("tcp"):
        flags.append("--tcp-established")
    if options.get("unix_sockets"):
        flags.append("--ext-unix-sk")
    if options.get("shell"):
        flags.append("--shell-job")
    return flags


def criu_log_errors(path, lines=3):
    """The last few error lines of a CRIU log (dump.log, restore.log), joined; "" when there are none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 262144))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    errors = [line.split(")", 1)[-1].strip() for line in text.splitlines() if "Error" in line]
    errors = [e for e in errors if e and "Dumping FAILED" not in e and "Restoring FAILED" not in e]
    return "; ".join(errors[-lines:])


def _subcommand(argv):
    for word in ("run", "exec", "restore", "create"):
        if word in argv:
            return word
    return argv[-1]


def _log_entries(text):
    """Each line of runc's log with its JSON object (C{--log-format json}), or None for a line that is not one."""
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        yield line, entry if isinstance(entry, dict) else None


def _json_msg(text):
    """runc --log-format json lines: the last error message, if the text is such lines."""
    message = None
    for _, entry in _log_entries(text):
        if entry and entry.get("level") in ("error", "fatal") and entry.get("msg"):
            message = entry["msg"]
    return message


_LOGRUS_MSG = re.compile(r'level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"')


def _logrus_msg(text):
    """runc's text-format log lines (time=... level=error msg="..."): the last error message."""
    messages = _LOGRUS_MSG.findall(text)
    if not messages:
        return None
    try:
        return json.loads('"' + messages[-1] + '"')
    except ValueError:
        return messages[-1]


def _log_messages(text):
    """The messages of runc's log lines (JSON or text), each line's own text when it has none."""
    messages = []
    for line, entry in _log_entries(text):
        if entry and entry.get("msg"):
            messages.append(f"{entry.get('level', 'info')}: {entry['msg']}")
        elif line.strip():
            messages.append(line.strip())
    return messages


def _last_log_error(path, tail=65536):
    """The last error message the runtime wrote to its JSON log file."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail))
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    return _json_msg(text)


def _what(register):
    """The process a start is for, in words: "container X" or "process P of container X"."""
    container_id, process_id = register.container, register.process
    return f"container {container_id}" if process_id == "init" else f"process {process_id} of container {container_id}"
