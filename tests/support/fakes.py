"""
Fakes behind the daemon's two seams, for unit tests without root, runc or a monitor process:

  - L{FakeMonitor} provides L{containerd_tx.runtime.monitor_seam.IMonitor} (what the runtime driver and the
    supervisor use of the monitor): spawns wait until the test answers them, requests are recorded, exits are
    delivered with L{FakeMonitor.exit};
  - L{FakeRuntime} provides L{containerd_tx.runtime.interface.IRuntime}: every call is recorded and answers at
    once (a new pid for starts) unless the test scripted another answer with L{FakeRuntime.script}.

Time comes from a L{twisted.internet.task.Clock} the test owns. Pids handed out start above the kernel's
largest pid (C{PID_MAX_LIMIT}, 2**22), so a signal sent to one finds no process, never a stranger.
"""

import itertools

from twisted.internet import defer
from zope.interface import implementer

from containerd_tx.runtime.interface import IRuntime
from containerd_tx.runtime.monitor_seam import IMonitor, ISpawn, MonitorError, SpawnResult

#: The first pid the fakes hand out: no process can have it.
FIRST_FAKE_PID = 2 ** 22 + 1000


@implementer(ISpawn)
class FakeSpawn:
    """
    One command given to a L{FakeMonitor}: its argv and options, answered by the test.

    @ivar kills: the signals sent through L{kill}.
    """

    def __init__(self, argv, options):
        self.argv = list(argv)
        self.options = options
        self.started = defer.Deferred()
        self.result = defer.Deferred()
        self.kills = []

    def kill(self, signum=9):
        """Record the signal; succeeds while the command has not been answered."""
        self.kills.append(int(signum))
        if self.result.called:
            return defer.fail(MonitorError("no such command running"))
        return defer.succeed(None)

    def finish(self, status=0, stdout=b"", stderr=b"", pid=None):
        """The command exited with C{status} (a start's C{pid} read from its pid file)."""
        if not self.started.called:
            self.started.callback(None if pid is None else pid)
        self.result.callback(SpawnResult(status, stdout, stderr, pid))

    def fail(self, error):
        """The monitor refused the command or went away (a L{MonitorError} or L{MonitorLost})."""
        if not self.started.called:
            self.started.callback(None)
        self.result.errback(error)


@implementer(IMonitor)
class FakeMonitor:
    """
    An L{IMonitor} in memory.

    @ivar spawns: every L{FakeSpawn}, in order.
    @ivar requests: the other requests, as tuples C{(op, *arguments)}.
    @ivar failures: op name -> exception the next request of that op fails with.
    @ivar answer: None to leave spawns pending, else C{answer(spawn)} called for each new spawn (it may
        finish it at once).
    """

    def __init__(self, processes=(), exits=(), answer=None):
        self.processes = list(processes)
        self.exits = list(exits)
        #: where L{exit} sends records: set by L{report_exits_to} (the supervisor's constructor).
        self.exit_handler = None
        self.spawns = []
        self.requests = []
        self.failures = {}
        self.answer = answer

    def spawn(self, argv, *, capture=False, stdin=None, stdout=None, stderr=None, env=None, pid_file=None,
              register=None, console_socket=None, announce=True):
        """Record the command; the test (or L{answer}) finishes it."""
        spawn = FakeSpawn(argv, dict(capture=capture, stdin=stdin, stdout=stdout, stderr=stderr, env=env,
                                     pid_file=pid_file, register=register, console_socket=console_socket,
                                     announce=announce))
        self.spawns.append(spawn)
        if self.answer is not None:
            self.answer(spawn)
        return spawn

    def _request(self, op, *arguments):
        self.requests.append((op,) + arguments)
        error = self.failures.pop(op, None)
        if error is not None:
            return defer.fail(error)
        return defer.succeed({"ok": True})

    def resize(self, container, process, width, height):
        """Record a resize."""
        return self._request("resize", container, process, width, height)

    def close_stdin(self, container, process):
        """Record a close of stdin."""
        return self._request("close_stdin", container, process)

    def adopt(self, container, process, pid, record_dir):
        """Record an adoption."""
        return self._request("adopt", container, process, pid, record_dir)

    def exit_handled(self, record):
        """Record that an unwritten exit was handled."""
        self.requests.append(("exit_handled", record["container"], record["process"], record["pid"]))
        return defer.succeed(None)

    def report_exits_to(self, handler):
        """Send each exit record from now on to C{handler}."""
        self.exit_handler = handler

    def exit(self, container, process, status, pid=0, **more):
        """Report an exit as the monitor does: one record to the handler given to L{report_exits_to}."""
        record = dict(container=container, process=process, pid=pid, status=status, time_ns=0, **more)
        self.exit_handler(record)
        return record


@implementer(IRuntime)
class FakeRuntime:
    """
    An L{IRuntime} in memory: every call is recorded in L{calls} as C{(method, args, kwargs)} and answers at
    once; starts (run, exec, restore) fire with a new pid.

    @ivar calls: every call, in order.
    """

    def __init__(self, name="fake"):
        self.name = name
        self.calls = []
        #: container id -> the cgroup map L{cgroup_paths} answers with.
        self.recorded_cgroups = {}
        self._scripted = {}
        self._pids = itertools.count(FIRST_FAKE_PID)

    def script(self, method, *answers):
        """
        The next calls of C{method} answer with these, in order: a Deferred (returned as is, for the test to
        fire), an exception (a failed Deferred) or a value.
        """
        self._scripted.setdefault(method, []).extend(answers)

    def called(self, method):
        """The (args, kwargs) of every call of C{method}."""
        return [(args, kwargs) for name, args, kwargs in self.calls if name == method]

    def _call(self, method, args, kwargs, default):
        self.calls.append((method, args, kwargs))
        scripted = self._scripted.get(method)
        answer = scripted.pop(0) if scripted else default()
        if isinstance(answer, defer.Deferred):
            return answer
        if isinstance(answer, BaseException):
            return defer.fail(answer)
        return defer.succeed(answer)

    def cgroup_paths(self, container_id, global_args=()):
        """The cgroups the runtime recorded: what L{recorded_cgroups} holds for the container, else none."""
        self.calls.append(("cgroup_paths", (container_id,), dict(global_args=global_args)))
        return dict(self.recorded_cgroups.get(container_id, {}))

    def run(self, container_id, bundle, process_stdio, register, global_args=(), no_pivot_root=False,
            console_socket=None, timeout=None):
        """Start a container: a new pid."""
        return self._call("run", (container_id, bundle, process_stdio, register),
                          dict(global_args=global_args, no_pivot_root=no_pivot_root,
                               console_socket=console_socket, timeout=timeout), lambda: next(self._pids))

    def exec(self, container_id, process_json_path, process_stdio, register, global_args=(),
             console_socket=None, timeout=None):
        """Start a process: a new pid (the process JSON is read now, as the runtime reads it once)."""
        with open(process_json_path) as f:
            spec = f.read()
        return self._call("exec", (container_id, process_json_path, process_stdio, register),
                          dict(global_args=global_args, console_socket=console_socket, timeout=timeout,
                               spec=spec), lambda: next(self._pids))

    def restore(self, container_id, bundle, image_path, work_path, options, process_stdio, register,
                global_args=(), no_pivot_root=False, console_socket=None, timeout=None):
        """Restore a container: a new pid."""
        return self._call("restore", (container_id, bundle, image_path, work_path, options, process_stdio,
                                      register),
                          dict(global_args=global_args, no_pivot_root=no_pivot_root,
                               console_socket=console_socket, timeout=timeout), lambda: next(self._pids))

    def kill(self, container_id, signal, global_args=(), all=False):
        """Record a kill."""
        return self._call("kill", (container_id, signal), dict(global_args=global_args, all=all), lambda: None)

    def delete(self, container_id, global_args=(), force=False):
        """Record a delete."""
        return self._call("delete", (container_id,), dict(global_args=global_args, force=force), lambda: None)

    def pause(self, container_id, global_args=()):
        """Record a pause."""
        return self._call("pause", (container_id,), dict(global_args=global_args), lambda: None)

    def resume(self, container_id, global_args=()):
        """Record a resume."""
        return self._call("resume", (container_id,), dict(global_args=global_args), lambda: None)

    def update(self, container_id, resources_json_path, global_args=()):
        """Record an update, with the resources file's text (it is removed once the call returns)."""
        with open(resources_json_path) as f:
            resources = f.read()
        return self._call("update", (container_id, resources_json_path),
                          dict(global_args=global_args, resources=resources), lambda: None)

    def checkpoint(self, container_id, image_path, work_path, options, global_args=()):
        """Record a checkpoint (the image folder gets one file, as CRIU's would)."""
        with open(f"{image_path}/inventory.img", "wb") as f:
            f.write(b"fake image")
        return self._call("checkpoint", (container_id, image_path, work_path, options),
                          dict(global_args=global_args), lambda: None)

    def list(self, global_args=()):
        """No containers."""
        return self._call("list", (), dict(global_args=global_args), list)
