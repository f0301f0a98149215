# -*- test-case-name: tests.unit.test_monitord -*-
"""
The monitor's spawns: the C{spawn} and C{kill} requests, the children's attributes around each posix_spawn,
and the reply (with the registration of the started process) once a spawned command has exited.

Standard library only (see C{monitord.py}).
"""

import contextlib
import os
import resource
import signal
import time
from collections import namedtuple

from containerd_tx import layout
from containerd_tx.monitor.connection import BadRequest, RequestFailed, b64, get_int, get_name, get_str
from containerd_tx.monitor.loop import close_quietly, log
from containerd_tx.monitor.proxies import Proxies
from containerd_tx.monitor.stdio import Capture, ConsoleListener, StdioError, open_stdio

#: Bytes of captured stdout (and of stderr) kept per spawn.
CAPTURE_LIMIT = 16 * 1024 * 1024

#: The paths a C{spawn} request may name (each absolute, or null).
SPAWN_PATHS = ("stdin", "stdout", "stderr", "pid_file", "console_socket")


def read_pid_file(path):
    """
    Read a positive pid from C{path}; raise RequestFailed saying why not.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(64)
    except OSError as e:
        raise RequestFailed("pid file %s: %s" % (path, e.strerror))
    try:
        pid = int(data.strip())
    except ValueError:
        pid = 0
    if pid <= 0:
        raise RequestFailed("pid file %s: no pid in %r" % (path, data[:32]))
    return pid


class SpawnRequest(namedtuple("SpawnRequest", "argv env capture paths register name announce")):
    """
    A checked C{spawn} request: C{argv}, C{env} (a dict), C{capture} (a bool), C{paths} (each of
    L{SPAWN_PATHS} to a path or None), C{register} (a L{layout.Registration} or None), the C{name} of
    the spawn in logs, and whether to C{announce} it (a C{spawned} event) before the reply.
    """

    __slots__ = ()


def parse_spawn(req, tag, environ):
    """
    Check a C{spawn} request (see C{monitord.py}); C{environ} is the environment of a request without one.

    @return: a L{SpawnRequest}.
    @raise BadRequest: saying what is wrong.
    """
    argv = req.get("argv")
    if (
        not isinstance(argv, list)
        or not argv
        or not all(isinstance(a, str) and "\0" not in a for a in argv)
    ):
        raise BadRequest("argv must be a non-empty list of strings")
    if not argv[0].startswith("/"):
        raise BadRequest("argv[0] must be an absolute path")
    env = req.get("env")
    if env is None:
        env = environ
    elif not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and "=" not in k for k, v in env.items()
    ):
        raise BadRequest("env must be null or an object of strings")
    capture = req.get("capture", False)
    if not isinstance(capture, bool):
        raise BadRequest("capture must be a boolean")
    announce = req.get("announce", True)
    if not isinstance(announce, bool):
        raise BadRequest("announce must be a boolean")
    paths = {key: get_str(req, key, optional=True, path=True) for key in SPAWN_PATHS}
    register = req.get("register")
    if register is not None:
        if not isinstance(register, dict):
            raise BadRequest("register must be null or an object")
        register = layout.Registration(
            get_name(register, "container"),
            get_name(register, "process"),
            get_str(register, "record_dir", path=True),
        )
        if paths["pid_file"] is None:
            raise BadRequest("register needs a pid_file")
        name = "%s/%s" % (register.container, register.process)
    else:
        name = "spawn %d" % (tag,)
    return SpawnRequest(argv, env, capture, paths, register, name, announce)


def parse_expiry(req):
    """The C{expires_ns} of a spawn request (None: none); BadRequest if it is not an integer."""
    expires = req.get("expires_ns")
    if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
        raise BadRequest("expires_ns must be null or an integer")
    return expires


class SpawnJob:
    """
    A running spawned command and what its reply needs.
    """

    def __init__(self, conn, tag, argv0, pid_file, register, proxies):
        self.conn = conn
        self.tag = tag
        self.argv0 = argv0
        self.pid_file = pid_file
        self.register = register
        self.proxies = proxies
        self.captures = None
        self.console = None
        self.pid = None
        self.expires_ns = None
        #: a process this spawn starts cannot have exited before this (see L{Registry.resolve}).
        self.started_ns = time.time_ns()


class ChildAttributes:
    """
    The monitor protects itself (oom_score_adj -999, a raised soft RLIMIT_NOFILE) but the runtime and the
    containers must not inherit that: around each posix_spawn the monitor takes the children's values and
    then its own back (one thread spawns; the two writes cost microseconds).  posix_spawn cannot run code in
    the child before exec, and an attribute set after the spawn would race runc's own forks.
    """

    def __init__(self, own_oom=None, child_oom=None, child_nofile=None):
        self.own_oom = own_oom
        self.child_oom = child_oom
        self.child_nofile = child_nofile
        self.oom_fd = None
        self.nofile = None

    def start(self):
        """Take the monitor's own values; called once at start-up."""
        if self.own_oom is not None:
            try:
                self.oom_fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
                self._write_oom(self.own_oom)
            except OSError as e:
                log("cannot set oom_score_adj %d: %s" % (self.own_oom, e.strerror))
                close_quietly(self.oom_fd)
                self.oom_fd = None
        if self.child_nofile is not None:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (OSError, ValueError) as e:
                log("cannot raise the open files limit to %d: %s" % (hard, e))
            self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)

    def _write_oom(self, value):
        os.pwrite(self.oom_fd, b"%d\n" % (value,), 0)

    @contextlib.contextmanager
    def applied(self, child_fds=()):
        oom = self.oom_fd is not None and self.child_oom is not None and self.child_oom != self.own_oom
        nofile = (
            self.nofile is not None
            and self.child_nofile < self.nofile[0]
            # glibc refuses a dup2 file action from an fd at or above the soft limit
            and all(fd < self.child_nofile for fd in child_fds)
        )
        if oom:
            try:
                self._write_oom(self.child_oom)
            except OSError:
                oom = False
        if nofile:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.child_nofile, self.nofile[1]))
            except (OSError, ValueError):
                nofile = False
        try:
            yield
        finally:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)
            if oom:
                try:
                    self._write_oom(self.own_oom)
                except OSError as e:
                    log("cannot take oom_score_adj %d back: %s" % (self.own_oom, e.strerror))


class Spawner:
    """
    The L{containerd_tx.monitor.server.Monitor}'s spawns (a mixin: it uses the monitor's loop, registry,
    spawns, spawn_tags, devnull, environ, default_signals and child_attributes).
    """

    def op_spawn(self, conn, tag, req):
        request = parse_spawn(req, tag, self.environ)
        if (conn.serial, tag) in self.spawn_tags:
            raise BadRequest("tag %d is in use by a running spawn" % (tag,))
        expires = parse_expiry(req)
        job = SpawnJob(conn, tag, request.argv[0], request.paths["pid_file"], request.register,
                       Proxies(self.loop, request.name))
        job.expires_ns = expires
        to_close = []
        try:
            try:
                child_fds = self._child_stdio(job, request, to_close)
            except StdioError as e:
                raise RequestFailed(str(e))
            try:
                job.pid = self.posix_spawn(request.argv, request.env, child_fds)
            except OSError as e:
                raise RequestFailed("cannot execute %s: %s" % (request.argv[0], e.strerror or e))
        except BaseException:
            self._discard_job(job)
            raise
        finally:
            for fd in to_close:
                close_quietly(fd)
        self.spawns[job.pid] = job
        self.spawn_tags[(conn.serial, tag)] = job
        if request.announce:
            conn.send({"event": "spawned", "tag": tag, "spawn_pid": job.pid})
        return None  # the reply comes when the command has exited

    def _child_stdio(self, job, request, to_close):
        """
        Open what the child's stdin, stdout and stderr are (capture pipes, the terminal's proxy, the stdio
        paths through their proxies, or /dev/null); the fds to close once it is spawned go to C{to_close}.

        @return: the child's three stdio fds.
        @raise StdioError: a path could not be opened.
        """
        paths = request.paths
        child_fds = [self.devnull, self.devnull, self.devnull]
        if request.capture:
            job.captures = []
            for i in (1, 2):
                r, w = os.pipe()
                to_close.append(w)
                job.captures.append(Capture(self.loop, r, CAPTURE_LIMIT))
                child_fds[i] = w
        if paths["console_socket"] is not None:
            self._prepare_terminal(job, paths)
            job.console = ConsoleListener(self.loop, paths["console_socket"], job.proxies.set_master)
        elif not request.capture:
            if paths["stdin"] is not None:
                fd, is_fifo = open_stdio(paths["stdin"], "stdin")
                if is_fifo:
                    fd = job.proxies.proxy_stdin(fd)
                else:
                    os.set_blocking(fd, True)
                to_close.append(fd)
                child_fds[0] = fd
            for i, which in ((1, "stdout"), (2, "stderr")):
                if paths[which] is not None:
                    fd, _ = self.outputs.open(paths[which], which)
                    fd = job.proxies.proxy_output(fd, which)
                    to_close.append(fd)
                    child_fds[i] = fd
        return child_fds

    def posix_spawn(self, argv, env, child_fds):
        """
        posix_spawn C{argv} with C{child_fds} as its stdio, and with the oom_score_adj and soft open files
        limit the daemon was started with (see L{ChildAttributes}).
        """
        with self.child_attributes.applied(child_fds):
            return os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(child_fds)],
                setsigmask=(),
                setsigdef=self.default_signals,
            )

    def _prepare_terminal(self, job, paths):
        """
        Open the stdout/stdin paths that the pty proxy of C{job} will use.
        """
        out, _ = self.outputs.open(paths["stdout"] or os.devnull, "stdout")
        stdin = None
        if paths["stdin"] is not None:
            try:
                stdin, is_fifo = open_stdio(paths["stdin"], "stdin")
            except StdioError:
                os.close(out)
                raise
            if not is_fifo:
                os.close(out)
                os.close(stdin)
                raise StdioError("stdin %s of a terminal must be a FIFO" % (paths["stdin"],))
        job.proxies.expect_terminal(out, stdin)

    def _discard_job(self, job):
        if job.captures:
            for capture in job.captures:
                capture.finish()
        if job.console is not None:
            job.console.finish()
        job.proxies.close()

    def op_kill(self, conn, tag, req):
        target = get_int(req, "target", -(2**63), 2**63 - 1)
        signum = get_int(req, "signal", 1, signal.NSIG - 1, default=signal.SIGKILL)
        job = self.spawn_tags.get((conn.serial, target))
        if job is None:
            raise RequestFailed("no running spawn with tag %d" % (target,))
        os.kill(job.pid, signum)
        return {"ok": True}

    def finish_spawn(self, job, status):
        """
        The spawned command exited: collect output, register, reply.
        """
        key = (job.conn.serial, job.tag)
        if self.spawn_tags.get(key) is job:
            del self.spawn_tags[key]
        out = err = b""
        if job.captures:
            out, err = (c.finish() for c in job.captures)
        if job.console is not None:
            job.console.finish()  # takes a pty master still queued in the socket
        reply = {"ok": True, "status": status, "stdout": b64(out), "stderr": b64(err), "pid": None}
        proc = None
        if status == 0 and job.pid_file is not None:
            reply, proc = self._started(job, status, reply)
        if job.proxies is not None:
            job.proxies.close(drain=True)
        if not job.conn.closed:
            job.conn.send(dict(tag=job.tag, **reply))
        if proc is not None:
            self.resolve(proc)

    def _started(self, job, status, reply):
        """
        A command that wrote a pid file exited 0: read the pid and (with C{register}) register the process,
        unless the daemon gave up on it meanwhile (it is killed).

        @return: C{(reply, the registered Proc or None)}.
        """
        try:
            pid = read_pid_file(job.pid_file)
        except RequestFailed as e:
            if job.register is not None:
                return {"ok": False, "error": str(e), "status": status}, None
            return reply, None
        reply["pid"] = pid
        if job.register is None:
            return reply, None
        if job.expires_ns is not None and time.monotonic_ns() > job.expires_ns:
            # The daemon gave up on this start (this monitor was stopped meanwhile): nobody would supervise
            # the process.
            log("%s/%s: started after the daemon gave up; killing pid %d"
                % (job.register.container, job.register.process, pid))
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            return {"ok": False, "error": "started after its deadline; killed", "status": status}, None
        container, process, record_dir = job.register
        if job.proxies.tty and job.proxies.master is None:
            log("%s/%s: no terminal came through the console socket" % (container, process))
        proc = self.register(container, process, pid, record_dir, job.proxies)
        proc.spawned_ns = job.started_ns
        job.proxies = None
        return reply, proc
