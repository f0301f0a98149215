# -*- test-case-name: tests.unit.test_monitord -*-
"""
The container monitor's server: registry, spawns, reaping and the daemon
connection.  Standard library only; run through C{monitord.py}, which
documents the process and its wire protocol.
"""


import array
import binascii
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from collections import OrderedDict, deque

from containerd_tx import layout

if __package__:
    from . import monitord_stdio as sio
else:  # run by monitord.py, which put this directory on sys.path
    import monitord_stdio as sio

log = sio.log

#: 2: the fd store (C{fds}/C{released} events, C{takeover}, C{ended}) and C{reexec}.
PROTOCOL = 2
#: Most fds received in one message.
FDS_PER_MESSAGE = 253
#: Bytes of captured stdout (and of stderr) kept per spawn.
CAPTURE_LIMIT = 16 * 1024 * 1024
#: Exit statuses of reaped unknown pids kept for a later registration.
UNCLAIMED_LIMIT = 4096
#: Longest request line accepted.
LINE_LIMIT = 1024 * 1024
#: Replies queued for a daemon that does not read before it is dropped.
OUTPUT_LIMIT = 256 * 1024 * 1024
#: Status reported when a watched (adopted) process's status is unknown.
UNKNOWN_STATUS = 255
#: Seconds between attempts to write the exit records that could not be written (ENOSPC, EIO).
RECORD_RETRY = 1.0

PR_SET_CHILD_SUBREAPER = 36


class BadRequest(Exception):
    """
    The request is malformed; answered with C{bad request: ...}.
    """


class RequestFailed(Exception):
    """
    The request is well-formed but could not be done.
    """


def exit_status(wait_status):
    """
    Exit code, or 128 + signal number when killed by a signal.
    """
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def siginfo_status(info):
    """
    Exit code, or 128 + signal number, from an C{os.waitid} result.
    """
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return 128 + info.si_status


def fd_identity(fd):
    """C{[st_dev, st_ino]} of an open fd (the daemon checks what it received against it)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return [0, 0]
    return [st.st_dev, st.st_ino]


def read_proc_stat(pid):
    """
    Return C{(state, ppid)} of C{pid} from /proc, or None if it is gone.
    """
    try:
        with open("/proc/%d/stat" % (pid,), "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


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


def b64(data):
    """
    Bytes as a base64 string for the wire.
    """
    return binascii.b2a_base64(data, newline=False).decode("ascii")


# Request validation helpers ---------------------------------------------------


def _get_str(req, key, optional=False, path=False):
    value = req.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise BadRequest("%s must be a non-empty string" % (key,))
    if path and not value.startswith("/"):
        raise BadRequest("%s must be an absolute path" % (key,))
    return value


def _get_name(req, key):
    value = _get_str(req, key)
    if "/" in value or value in (".", "..") or len(value) > 200:
        raise BadRequest("%s %r is not a valid name" % (key, value))
    return value


def _get_int(req, key, low, high, default=None):
    value = req.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest("%s must be an integer in [%d, %d]" % (key, low, high))
    return value


class Proc:
    """
    A registered container process.
    """

    def __init__(self, container, process, pid, record_dir, proxies, fostered=False):
        self.container = container
        self.process = process
        self.pid = pid
        self.record_dir = record_dir
        self.proxies = proxies
        self.pidfd = None
        #: not our child: a process a dead monitor left, reaped by the daemon (its subreaper), which tells us
        #: with C{ended}; we only move its stdio.
        self.fostered = fostered

    @property
    def key(self):
        return (self.container, self.process)

    def describe(self):
        return {
            "container": self.container,
            "process": self.process,
            "pid": self.pid,
            "tty": self.proxies.master is not None,
            "record_dir": self.record_dir,
            "set": self.proxies.set_id,
            "fostered": self.fostered,
        }


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


class Connection:
    """
    The daemon's connection: line framing in, queued non-blocking writes out.
    """

    serials = 0

    def __init__(self, monitor, sock):
        Connection.serials += 1
        self.serial = Connection.serials
        self.monitor = monitor
        self.loop = monitor.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        #: fds received, in order, for the requests that say how many they carry.
        self.fds_in = deque()
        self.discarding = False
        self.out = deque()
        self.out_size = 0
        self.writing = False
        self.closed = False
        self.loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self):
        try:
            data, ancdata, flags, _ = self.sock.recvmsg(
                256 * 1024, socket.CMSG_SPACE(FDS_PER_MESSAGE * 4), socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.monitor.connection_lost(self, e.strerror)
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self.fds_in.extend(fds)
        if flags & socket.MSG_CTRUNC:
            log("file descriptors from the daemon were dropped (open files limit?)")
        if not data:
            self.monitor.connection_lost(self, "closed by the daemon")
            return
        self.inbuf += data
        while not self.closed:
            i = self.inbuf.find(b"\n")
            if i < 0:
                break
            line = bytes(self.inbuf[:i])
            del self.inbuf[: i + 1]
            if self.discarding:
                self.discarding = False
                continue
            if line.strip():
                self.monitor.handle_line(self, line)
        if len(self.inbuf) > LINE_LIMIT and not self.closed:
            self.inbuf = bytearray()
            if not self.discarding:
                self.discarding = True
                log("request line longer than %d bytes dropped" % (LINE_LIMIT,))
                self.send({"ok": False, "error": "bad request: line longer than %d bytes" % (LINE_LIMIT,)})

    def take_fds(self, count):
        """The next C{count} fds received; BadRequest if fewer came."""
        if len(self.fds_in) < count:
            got = len(self.fds_in)
            while self.fds_in:
                sio.close_quietly(self.fds_in.popleft())
            raise BadRequest("expected %d file descriptors, received %d" % (count, got))
        return [self.fds_in.popleft() for _ in range(count)]

    def send(self, message, fds=()):
        """
        Queue one JSON message (with copies of C{fds}, sent with its first
        byte); drop the connection if it stopped reading.
        """
        if self.closed:
            return
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        copies = []
        for fd in fds:
            try:
                copies.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
            except OSError as e:
                log("cannot copy fd %d for the daemon: %s" % (fd, e.strerror))
        self.out.append([memoryview(data), copies])
        self.out_size += len(data)
        if self.out_size > OUTPUT_LIMIT:
            self.monitor.connection_lost(self, "daemon does not read its replies")
            return
        self._flush()

    def _flush(self):
        while self.out:
            entry = self.out[0]
            head, fds = entry
            try:
                if fds:
                    n = self.sock.sendmsg(
                        [head], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
                    for fd in fds:
                        sio.close_quietly(fd)
                    entry[1] = fds = []
                else:
                    n = self.sock.send(head)
            except (BlockingIOError, InterruptedError):
                if not self.writing:
                    self.loop.add_writer(self.fd, self._flush)
                    self.writing = True
                return
            except OSError as e:
                self.monitor.connection_lost(self, e.strerror)
                return
            self.out_size -= n
            if n == len(head):
                self.out.popleft()
            else:
                entry[0] = head[n:]
        if self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False

    def close(self):
        """
        Close the socket; queued messages are dropped.
        """
        if not self.closed:
            self.closed = True
            self.loop.discard(self.fd)
            self.sock.close()
            for _, fds in self.out:
                for fd in fds:
                    sio.close_quietly(fd)
            self.out.clear()
            while self.fds_in:
                sio.close_quietly(self.fds_in.popleft())


def bind_long(sock, path):
    """
    Bind a unix socket to C{path} of any length: a path past the 107 bytes a socket address holds is reached
    through its folder's descriptor (C{/proc/self/fd/N/name}).
    """
    if len(os.fsencode(path)) <= 107:
        sock.bind(path)
        return
    directory, name = os.path.split(path)
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind("/proc/self/fd/%d/%s" % (fd, name))
    finally:
        os.close(fd)


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
                sio.close_quietly(self.oom_fd)
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


class Monitor:
    """
    The monitor: registry, spawns, reaping, and the daemon connection.
    """

    def __init__(self, state_dir, idle_exit, child_attributes=None):
        self.state_dir = state_dir
        self.idle_exit = idle_exit
        self.pid = os.getpid()
        self.started_ns = time.monotonic_ns()
        self.loop = sio.Loop()
        paths = layout.StateDirLayout(state_dir)
        self.sock_path = paths.monitor_socket
        self.pid_path = paths.monitor_pid
        self.lock_path = paths.monitor_lock
        self.lock_fd = None
        self.listener = None
        self.conn = None
        self.procs = {}
        self.procs_by_pid = {}
        self.spawns = {}
        self.spawn_tags = {}
        self.unclaimed = OrderedDict()
        #: (container, process) -> (record_dir, record): exits whose record could not be written; kept for
        #: the daemon (hello) and written as soon as the disk takes them.
        self.unwritten = OrderedDict()
        self.retrying = set()
        self.retry_at = None
        #: set id -> Proxies: the stdio of every registered process and of exited ones still flushing; the
        #: daemon holds a copy of each of their fds (the fd store) and hands them to the next monitor.
        self.fdsets = {}
        self._set_serial = 0
        #: pids of registered children that exited and are left unreaped (zombies) until their exit record is
        #: on disk: a monitor killed before that leaves them to the daemon (its subreaper), which reaps them
        #: with their true status.
        self.held_zombies = set()
        self.rescan_at = None
        self.protocol = PROTOCOL
        self.args = []
        self.records = None
        self.stopping = False
        self.idle_since = None
        self.devnull = None
        self.default_signals = ()
        self.child_attributes = child_attributes or ChildAttributes()
        self.ops = {
            "hello": self.op_hello,
            "spawn": self.op_spawn,
            "kill": self.op_kill,
            "resize": self.op_resize,
            "close_stdin": self.op_close_stdin,
            "adopt": self.op_adopt,
            "forget": self.op_forget,
            "exit_handled": self.op_exit_handled,
            "takeover": self.op_takeover,
            "ended": self.op_ended,
            "reexec": self.op_reexec,
            "ping": lambda conn, tag, req: {"ok": True},
        }

    # Start and stop -------------------------------------------------------------

    def lock(self):
        """
        Take DIR/monitor.lock; False if another monitor holds it.
        """
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def start(self, resumed=False):
        """
        Become session leader and subreaper, set up signals, write the pid
        file, listen on the socket.
        """
        os.chdir("/")
        for fd in (0, 1, 2):
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(os.open(os.devnull, os.O_RDWR), fd)
        if not resumed:
            try:
                os.setsid()
            except OSError as e:
                log("setsid failed (%s); continuing in the current session" % (e.strerror,))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            log("prctl(PR_SET_CHILD_SUBREAPER) failed: %s" % (os.strerror(ctypes.get_errno()),))
        self.child_attributes.start()
        self.records = sio.RecordWriter(self.loop)
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        # A plain copy: posix_spawn re-encodes an os.environ mapping on every call.
        self.environ = dict(os.environ)

        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _ignore_signal)
        self.loop.add_reader(wake_r, lambda: self._on_signals(wake_r))
        # Signals ignored here (SIGPIPE, SIGXFSZ) must be default in children.
        self.default_signals = tuple(
            s for s in range(1, signal.NSIG) if signal.getsignal(s) == signal.SIG_IGN
        )

        layout.write_atomically(self.pid_path, b"%d\n" % (self.pid,), durable=False)

        try:
            os.unlink(self.sock_path)  # stale: we hold the lock
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            bind_long(sock, self.sock_path)
        finally:
            os.umask(old_umask)
        os.chmod(self.sock_path, 0o600)
        sock.listen(16)
        sock.setblocking(False)
        self.listener = sock
        self.loop.add_reader(sock.fileno(), self._on_accept)

    def shutdown(self):
        """
        Remove monitor.sock and monitor.pid and close the connection.
        """
        if self.listener is not None:
            self.loop.discard(self.listener.fileno())
            self.listener.close()
            self.listener = None
        for path in (self.sock_path, self.pid_path):
            try:
                os.unlink(path)
            except OSError:
                pass
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.procs or self.spawns:
            log(
                "exiting with %d registered processes and %d running spawns"
                % (len(self.procs), len(self.spawns))
            )
        for record_dir, record in self.unwritten.values():
            log("exiting: the exit record %s of %s could not be written and is lost" % (
                json.dumps(record, separators=(",", ":")), record_dir))

    def is_idle(self):
        return (
            not self.procs
            and not self.spawns
            and self.conn is None
            and not self.loop.lingering
            and not self.unwritten
            and not (self.records is not None and self.records.pending)
            and not self.held_zombies
            and not self.fdsets
        )

    def run(self):
        """
        The main loop, until SIGTERM/SIGINT or idle exit.
        """
        while not self.stopping:
            timeout = None
            if self.idle_exit > 0:
                if self.is_idle():
                    now = time.monotonic()
                    if self.idle_since is None:
                        self.idle_since = now
                    timeout = self.idle_since + self.idle_exit - now
                    if timeout <= 0:
                        log("idle for %gs: exiting" % (self.idle_exit,))
                        break
                else:
                    self.idle_since = None
            linger = self.loop.expire_lingering()
            if linger is not None:
                timeout = linger if timeout is None else min(timeout, linger)
            retry = self.retry_unwritten()
            if retry is not None:
                timeout = retry if timeout is None else min(timeout, retry)
            if self.rescan_at is not None:
                wait = self.rescan_at - time.monotonic()
                if wait <= 0:
                    self.rescan_at = None
                    self.reap()
                    if self.held_zombies and self.rescan_at is None:
                        self.rescan_at = time.monotonic() + 1.0
                    continue
                timeout = wait if timeout is None else min(timeout, wait)
            self.loop.run_once(timeout)
        self.shutdown()

    # Signals and reaping ----------------------------------------------------------

    def _on_signals(self, fd):
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            data = b""
        if signal.SIGTERM in data or signal.SIGINT in data:
            log("terminated by signal: exiting")
            self.stopping = True
        self.reap()

    def _children(self):
        """Our children's pids (every thread's), or None when /proc cannot tell."""
        pids = []
        try:
            tasks = os.listdir("/proc/self/task")
        except OSError:
            return None
        for tid in tasks:
            try:
                with open("/proc/self/task/%s/children" % (tid,), "rb") as f:
                    pids.extend(int(p) for p in f.read().split())
            except FileNotFoundError:
                continue  # that thread ended
            except OSError:
                return None
        return pids

    def reap(self):
        """
        Reap every exited child: spawns and unknown ones (their status is kept
        for a later registration) at once; a registered process's status is
        read without reaping it (WNOWAIT), and it is reaped once its exit record
        is on disk (see L{held_zombies}).
        """
        for _ in range(3):
            children = self._children()
            if children is None:
                return self._reap_any()
            for pid in children:
                if pid in self.held_zombies:
                    continue
                try:
                    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    continue
                if info is None:
                    continue
                status = siginfo_status(info)
                try:
                    proc = self.procs_by_pid.get(pid)
                    if proc is not None and pid not in self.spawns and not proc.fostered:
                        self.held_zombies.add(pid)
                        self.proc_exited(proc, status, time.time_ns(), zombie=True)
                        continue
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        continue
                    self.child_exited(pid, status, time.time_ns())
                except Exception as e:
                    log("internal error handling exit of pid %d: %s: %s" % (pid, type(e).__name__, e))
            # The children file can miss an entry that moved while it was read: look once more.
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                info = None
            if info is None:
                return
            if info.si_pid in self.held_zombies:
                # The first zombie is one we hold: others behind it are found by the next scan.
                if self.rescan_at is None:
                    self.rescan_at = time.monotonic() + 1.0
                return

    def release_zombie(self, pid):
        """Reap a registered child held as a zombie until its record was written."""
        if pid in self.held_zombies:
            self.held_zombies.discard(pid)
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass

    def _reap_any(self):
        """Without /proc: reap whatever exited (a monitor killed before a record is written loses it)."""
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            try:
                self.child_exited(pid, exit_status(wait_status), time.time_ns())
            except Exception as e:
                log("internal error handling exit of pid %d: %s: %s" % (pid, type(e).__name__, e))

    def child_exited(self, pid, status, time_ns):
        job = self.spawns.pop(pid, None)
        if job is not None:
            self.finish_spawn(job, status)
            return
        proc = self.procs_by_pid.get(pid)
        if proc is not None:
            self.proc_exited(proc, status, time_ns)
            return
        self.unclaimed[pid] = (status, time_ns)
        self.unclaimed.move_to_end(pid)
        while len(self.unclaimed) > UNCLAIMED_LIMIT:
            self.unclaimed.popitem(last=False)

    # The daemon connection -------------------------------------------------------

    def _on_accept(self):
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        if self.conn is not None:
            log("a new daemon connection replaces the current one")
            self.connection_lost(self.conn, "replaced")
        self.conn = Connection(self, sock)

    def connection_lost(self, conn, why):
        if conn.closed:
            return
        conn.close()
        if conn is self.conn:
            self.conn = None
        for key in [k for k in self.spawn_tags if k[0] == conn.serial]:
            del self.spawn_tags[key]
        log("daemon connection closed: %s" % (why,))

    def notify(self, message):
        if self.conn is not None:
            self.conn.send(message)

    def handle_line(self, conn, line):
        """
        Answer one request line; never raise.
        """
        tag = None
        try:
            try:
                req = json.loads(line)
            except ValueError as e:
                raise BadRequest("not JSON: %s" % (e,))
            if not isinstance(req, dict):
                raise BadRequest("expected a JSON object")
            tag = req.get("tag")
            if not isinstance(tag, int) or isinstance(tag, bool):
                tag = None
                raise BadRequest("missing integer tag")
            op = req.get("op")
            handler = self.ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise BadRequest("unknown op %r" % (op,))
            start_by = req.get("start_by_ns")
            if isinstance(start_by, int) and time.monotonic_ns() > start_by:
                # The daemon has given up on it (this monitor was stopped, or far behind): never act on it.
                raise RequestFailed("deadline exceeded: the request came %.1fs too late"
                                    % ((time.monotonic_ns() - start_by) / 1e9,))
            reply = handler(conn, tag, req)
        except BadRequest as e:
            log("bad request: %s" % (e,))
            reply = {"ok": False, "error": "bad request: %s" % (e,)}
        except RequestFailed as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:
            log("internal error in request: %s: %s" % (type(e).__name__, e))
            reply = {"ok": False, "error": "internal error: %s: %s" % (type(e).__name__, e)}
        if reply is not None:
            if tag is not None:
                reply = dict(tag=tag, **reply)
            conn.send(reply)

    # Requests ---------------------------------------------------------------------

    def op_hello(self, conn, tag, req):
        processes = [self.procs[k].describe() for k in sorted(self.procs)]
        exits = [record for _, record in self.unwritten.values()]
        conn.send({"tag": tag, "ok": True, "pid": self.pid, "protocol": self.protocol, "processes": processes,
                   "exits": exits})
        # The new daemon's fd store: a copy of every stdio fd, registered processes and exited ones still
        # flushing.
        for set_id in list(self.fdsets):
            self.send_fdset(conn, set_id)
        return None

    def op_takeover(self, conn, tag, req):
        """
        Go on with the stdio of processes a dead monitor left: C{sets} (from the C{fds} events the daemon
        kept: set, container, process, pid, record_dir, tty, exited, names) and, in order, as many fds as
        their names.  A live one is registered as fostered: the daemon reaps it and says C{ended}.
        """
        sets = req.get("sets")
        if not isinstance(sets, list):
            raise BadRequest("sets must be a list")
        count = 0
        for entry in sets:
            if not isinstance(entry, dict) or not isinstance(entry.get("names"), list):
                raise BadRequest("each set must be an object with names")
            count += len(entry["names"])
        fds = conn.take_fds(count)
        taken = 0
        for entry in sets:
            names = entry["names"]
            mine = dict(zip(names, fds[taken: taken + len(names)]))
            taken += len(names)
            try:
                set_id = _get_str(entry, "set")
                container = _get_name(entry, "container")
                process = _get_name(entry, "process")
                pid = _get_int(entry, "pid", 1, 2**31 - 1)
                record_dir = _get_str(entry, "record_dir", path=True)
            except BadRequest as e:
                log("takeover: set dropped: %s" % (e,))
                for fd in mine.values():
                    sio.close_quietly(fd)
                continue
            if set_id in self.fdsets:
                for fd in mine.values():
                    sio.close_quietly(fd)
                continue
            exited = bool(entry.get("exited"))
            proxies = sio.Proxies.restore(self.loop, "%s/%s" % (container, process), mine,
                                          bool(entry.get("tty")))
            if exited:
                # Its output still flushing to a slow reader: linger on (from now, at most LINGER_SECONDS).
                self.track(set_id, proxies, meta={"container": container, "process": process, "pid": pid,
                                                  "record_dir": record_dir, "exited": False})
                proxies.close(drain=True)
                self._set_exited(proxies)
            else:
                self.register(container, process, pid, record_dir, proxies, fostered=True, set_id=set_id)
        log("took over the stdio of %d processes (%d fds) from a previous monitor" % (len(sets), count))
        return {"ok": True}

    def op_reexec(self, conn, tag, req):
        """
        Re-execute the monitor's script in place: C{os.execv} keeps the pid, the children (so every exit is
        still ours to reap, with its true status) and the fds; the registry goes in an inherited memfd.  A
        newer daemon upgrades an older monitor this way without losing a container, an fd or an exit.  The
        connection ends with the exec; the daemon connects again.  Refused while a spawn runs or a record is
        being written (try again).
        """
        if self.spawns:
            raise RequestFailed("busy: %d spawns running; try again" % (len(self.spawns),))
        if self.records is not None and self.records.pending:
            raise RequestFailed("busy: exit records being written; try again")
        sets = []
        keep = [self.lock_fd]
        for set_id, proxies in self.fdsets.items():
            fds = proxies.fds()
            proc = self.procs.get((proxies.meta["container"], proxies.meta["process"]))
            registered = proc is not None and proc.proxies is proxies
            buffers = {}
            for key, pump in (("out", proxies.out_pump), ("in", proxies.in_pump if proxies.tty else None)):
                if isinstance(pump, sio.Pump) and pump.buf:
                    buffers[key] = b64(bytes(pump.buf))
            sets.append(dict(proxies.meta, set=set_id, tty=proxies.tty, fds=fds, registered=registered,
                             fostered=registered and proc.fostered, watched=registered and proc.pidfd is not None,
                             buffers=buffers))
            keep.extend(fds.values())
        state = {
            "sets": sets,
            "unwritten": [[d, r] for d, r in self.unwritten.values()],
            "held_zombies": sorted(self.held_zombies),
            "unclaimed": [[pid, st, t] for pid, (st, t) in self.unclaimed.items()],
            "lock_fd": self.lock_fd,
            "started_ns": self.started_ns,
            "serial": self._set_serial,
        }
        memfd = os.memfd_create("monitord-state", 0)
        data = memoryview(json.dumps(state).encode())
        while data:
            data = data[os.write(memfd, data):]
        os.lseek(memfd, 0, os.SEEK_SET)
        for fd in keep:
            os.set_inheritable(fd, True)
        # No connection is accepted by this image from now on: a daemon connecting again reaches the next.
        self.loop.discard(self.listener.fileno())
        self.listener.close()
        conn.send({"tag": tag, "ok": True})
        conn.sock.setblocking(True)
        conn._flush()
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitord.py")
        log("re-executing %s in place (%d processes, %d fd sets)" % (script, len(self.procs), len(sets)))
        os.execv(sys.executable, [sys.executable, "-S", script] + self.args + ["--resume-fd", str(memfd)])

    def load_state(self, fd):
        """Read the state a previous image of this monitor saved (L{op_reexec})."""
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        state = json.loads(b"".join(chunks))
        self.lock_fd = state["lock_fd"]
        os.set_inheritable(self.lock_fd, False)
        return state

    def resume(self, state):
        """Go on from a saved state: every process, fd set, kept record and held zombie."""
        self.started_ns = state["started_ns"]
        self._set_serial = state["serial"]
        for entry in state["sets"]:
            fds = {name: fd for name, fd in entry["fds"].items()}
            for fd in fds.values():
                os.set_inheritable(fd, False)
            name = "%s/%s" % (entry["container"], entry["process"])
            proxies = sio.Proxies.restore(self.loop, name, fds, entry["tty"])
            for key, pump in (("out", proxies.out_pump), ("in", proxies.in_pump)):
                data = entry.get("buffers", {}).get(key)
                if data and isinstance(pump, sio.Pump):
                    pump.buf[:0] = binascii.a2b_base64(data)
                    pump._flush()
            meta = {k: entry[k] for k in ("container", "process", "pid", "record_dir")}
            if entry["registered"]:
                proc = self.register(entry["container"], entry["process"], entry["pid"], entry["record_dir"],
                                     proxies, fostered=entry["fostered"], set_id=entry["set"])
                if entry["watched"]:
                    try:
                        proc.pidfd = os.pidfd_open(proc.pid)
                    except OSError:
                        self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)
                        continue
                    self.loop.add_reader(proc.pidfd, lambda proc=proc: self._on_pidfd(proc))
            else:
                self.track(entry["set"], proxies, meta=dict(meta, exited=False))
                proxies.close(drain=True)
                self._set_exited(proxies)
        for record_dir, record in state["unwritten"]:
            self.unwritten[(record["container"], record["process"])] = (record_dir, record)
        if self.unwritten:
            self.retry_at = time.monotonic()
        self.held_zombies.update(state["held_zombies"])
        for pid, status, time_ns in state["unclaimed"]:
            self.unclaimed[pid] = (status, time_ns)
        self.reap()

    def op_ended(self, conn, tag, req):
        """A fostered process exited (the daemon reaped it): its output is flushed, its stdio closed."""
        container = _get_name(req, "container")
        process = _get_name(req, "process")
        pid = _get_int(req, "pid", 1, 2**31 - 1)
        proc = self.procs.get((container, process))
        if proc is not None and proc.pid == pid and proc.fostered:
            self.unregister(proc)
            proc.proxies.close(drain=True)
            self._set_exited(proc.proxies)
        return {"ok": True}

    def op_exit_handled(self, conn, tag, req):
        container = _get_name(req, "container")
        process = _get_name(req, "process")
        pid = _get_int(req, "pid", 0, 2**31 - 1)
        entry = self.unwritten.get((container, process))
        if entry is not None and entry[1]["pid"] == pid:
            del self.unwritten[(container, process)]
            self.release_zombie(pid)
        return {"ok": True}

    def _lookup(self, req):
        container = _get_name(req, "container")
        process = _get_name(req, "process")
        proc = self.procs.get((container, process))
        if proc is None:
            raise RequestFailed("no such process %s of container %s" % (process, container))
        return proc

    def op_kill(self, conn, tag, req):
        target = _get_int(req, "target", -(2**63), 2**63 - 1)
        signum = _get_int(req, "signal", 1, signal.NSIG - 1, default=signal.SIGKILL)
        job = self.spawn_tags.get((conn.serial, target))
        if job is None:
            raise RequestFailed("no running spawn with tag %d" % (target,))
        os.kill(job.pid, signum)
        return {"ok": True}

    def op_resize(self, conn, tag, req):
        proc = self._lookup(req)
        width = _get_int(req, "width", 0, 65535)
        height = _get_int(req, "height", 0, 65535)
        if not proc.proxies.resize(width, height):
            raise RequestFailed(
                "process %s of container %s has no terminal" % (proc.process, proc.container)
            )
        return {"ok": True}

    def op_close_stdin(self, conn, tag, req):
        self._lookup(req).proxies.close_stdin()
        return {"ok": True}

    def op_forget(self, conn, tag, req):
        container = _get_name(req, "container")
        process = _get_name(req, "process")
        proc = self.procs.get((container, process))
        if proc is not None:
            self.unregister(proc)
            proc.proxies.close()
            self._set_exited(proc.proxies)
        return {"ok": True}

    def op_adopt(self, conn, tag, req):
        container = _get_name(req, "container")
        process = _get_name(req, "process")
        pid = _get_int(req, "pid", 1, 2**31 - 1)
        record_dir = _get_str(req, "record_dir", path=True)
        existing = self.procs.get((container, process))
        if existing is not None and existing.pid == pid and existing.fostered:
            # Its stdio came with a takeover; the daemon that reaped it is gone: watch it, status unknown.
            try:
                existing.pidfd = os.pidfd_open(pid)
            except OSError as e:
                raise RequestFailed("cannot watch pid %d: %s" % (pid, e.strerror))
            existing.fostered = False
            self.loop.add_reader(existing.pidfd, lambda: self._on_pidfd(existing))
            return {"ok": True, "pid": pid}
        if existing is not None:
            if existing.pid == pid:
                return {"ok": True, "pid": pid}
            raise RequestFailed(
                "process %s of container %s is already registered with pid %d"
                % (process, container, existing.pid)
            )
        if pid in self.procs_by_pid:
            other = self.procs_by_pid[pid]
            raise RequestFailed(
                "pid %d is already registered as process %s of container %s"
                % (pid, other.process, other.container)
            )
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise RequestFailed("pid %d is not alive" % (pid,))
        except OSError as e:
            raise RequestFailed("cannot watch pid %d: %s" % (pid, e.strerror))
        stat = read_proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            os.close(pidfd)
            raise RequestFailed("pid %d is not alive" % (pid,))
        proc = self.register(
            container, process, pid, record_dir, sio.Proxies(self.loop, "%s/%s" % (container, process))
        )
        if stat[1] == self.pid:
            os.close(pidfd)  # our own child: waitpid gives its true status
        else:
            proc.pidfd = pidfd
            self.loop.add_reader(pidfd, lambda: self._on_pidfd(proc))
        return {"ok": True, "pid": pid}

    def op_spawn(self, conn, tag, req):
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
            env = self.environ
        elif not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and "=" not in k for k, v in env.items()
        ):
            raise BadRequest("env must be null or an object of strings")
        capture = req.get("capture", False)
        if not isinstance(capture, bool):
            raise BadRequest("capture must be a boolean")
        paths = {
            key: _get_str(req, key, optional=True, path=True)
            for key in ("stdin", "stdout", "stderr", "pid_file", "console_socket")
        }
        register = req.get("register")
        if register is not None:
            if not isinstance(register, dict):
                raise BadRequest("register must be null or an object")
            register = layout.Registration(
                _get_name(register, "container"),
                _get_name(register, "process"),
                _get_str(register, "record_dir", path=True),
            )
            if paths["pid_file"] is None:
                raise BadRequest("register needs a pid_file")
            name = "%s/%s" % (register.container, register.process)
        else:
            name = "spawn %d" % (tag,)
        if (conn.serial, tag) in self.spawn_tags:
            raise BadRequest("tag %d is in use by a running spawn" % (tag,))

        expires = req.get("expires_ns")
        if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
            raise BadRequest("expires_ns must be null or an integer")
        job = SpawnJob(conn, tag, argv[0], paths["pid_file"], register, sio.Proxies(self.loop, name))
        job.expires_ns = expires
        child_fds = [self.devnull, self.devnull, self.devnull]
        to_close = []
        try:
            try:
                if capture:
                    job.captures = []
                    for i in (1, 2):
                        r, w = os.pipe()
                        to_close.append(w)
                        job.captures.append(sio.Capture(self.loop, r, CAPTURE_LIMIT))
                        child_fds[i] = w
                if paths["console_socket"] is not None:
                    self._prepare_terminal(job, paths)
                    job.console = sio.ConsoleListener(
                        self.loop, paths["console_socket"], job.proxies.set_master
                    )
                elif not capture:
                    if paths["stdin"] is not None:
                        fd, is_fifo = sio.open_stdio(paths["stdin"], "stdin")
                        if is_fifo:
                            fd = job.proxies.proxy_stdin(fd)
                        else:
                            os.set_blocking(fd, True)
                        to_close.append(fd)
                        child_fds[0] = fd
                    for i, which in ((1, "stdout"), (2, "stderr")):
                        if paths[which] is not None:
                            fd, _ = sio.open_stdio(paths[which], which)
                            fd = job.proxies.proxy_output(fd, which)
                            to_close.append(fd)
                            child_fds[i] = fd
            except sio.StdioError as e:
                raise RequestFailed(str(e))
            try:
                job.pid = self.posix_spawn(argv, env, child_fds)
            except OSError as e:
                raise RequestFailed("cannot execute %s: %s" % (argv[0], e.strerror or e))
        except BaseException:
            self._discard_job(job)
            raise
        finally:
            for fd in to_close:
                sio.close_quietly(fd)
        self.spawns[job.pid] = job
        self.spawn_tags[(conn.serial, tag)] = job
        conn.send({"event": "spawned", "tag": tag, "spawn_pid": job.pid})
        return None  # the reply comes when the command has exited

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
        out, _ = sio.open_stdio(paths["stdout"] or os.devnull, "stdout")
        stdin = None
        if paths["stdin"] is not None:
            try:
                stdin, is_fifo = sio.open_stdio(paths["stdin"], "stdin")
            except sio.StdioError:
                os.close(out)
                raise
            if not is_fifo:
                os.close(out)
                os.close(stdin)
                raise sio.StdioError("stdin %s of a terminal must be a FIFO" % (paths["stdin"],))
        job.proxies.expect_terminal(out, stdin)

    def _discard_job(self, job):
        if job.captures:
            for capture in job.captures:
                capture.finish()
        if job.console is not None:
            job.console.finish()
        job.proxies.close()

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
            try:
                pid = read_pid_file(job.pid_file)
            except RequestFailed as e:
                if job.register is not None:
                    reply = {"ok": False, "error": str(e), "status": status}
            else:
                reply["pid"] = pid
                if job.register is not None and job.expires_ns is not None and time.monotonic_ns() > job.expires_ns:
                    # The daemon gave up on this start (this monitor was stopped meanwhile): nobody would
                    # supervise the process.
                    log("%s/%s: started after the daemon gave up; killing pid %d"
                        % (job.register.container, job.register.process, pid))
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                    reply = {"ok": False, "error": "started after its deadline; killed", "status": status}
                elif job.register is not None:
                    container, process, record_dir = job.register
                    if job.proxies.tty and job.proxies.master is None:
                        log("%s/%s: no terminal came through the console socket" % (container, process))
                    proc = self.register(container, process, pid, record_dir, job.proxies)
                    job.proxies = None
        if job.proxies is not None:
            job.proxies.close(drain=True)
        if not job.conn.closed:
            job.conn.send(dict(tag=job.tag, **reply))
        if proc is not None:
            self.resolve(proc)

    # The registry ---------------------------------------------------------------

    def register(self, container, process, pid, record_dir, proxies, fostered=False, set_id=None):
        """
        Register a live container process; a previous registration of the
        same key or pid is dropped (without a record).  The daemon gets a copy
        of its stdio fds (event C{fds}) unless C{set_id} says it has them.
        """
        for old in (self.procs.get((container, process)), self.procs_by_pid.get(pid)):
            if old is not None and self.procs.get(old.key) is old:
                log("registration of %s/%s (pid %d) replaced" % (old.container, old.process, old.pid))
                self.unregister(old)
                old.proxies.close()
                self._set_exited(old.proxies)
        proc = Proc(container, process, pid, record_dir, proxies, fostered=fostered)
        self.procs[proc.key] = proc
        self.procs_by_pid[pid] = proc
        announce = set_id is None
        if set_id is None:
            self._set_serial += 1
            set_id = "%d.%d.%d" % (self.pid, self.started_ns, self._set_serial)
        self.track(set_id, proxies, proc)
        if announce and self.conn is not None:
            self.send_fdset(self.conn, set_id)
        return proc

    # The fd store -------------------------------------------------------------------

    def track(self, set_id, proxies, proc=None, meta=None):
        """Keep C{proxies} as fd set C{set_id} until every fd of it is closed and its process is done."""
        proxies.set_id = set_id
        proxies.meta = meta or {
            "container": proc.container, "process": proc.process, "pid": proc.pid,
            "record_dir": proc.record_dir, "exited": False,
        }
        proxies.on_release = lambda name: self._released(proxies, name)
        self.fdsets[set_id] = proxies
        self._maybe_done(proxies)

    def _released(self, proxies, name):
        self.notify({"event": "released", "set": proxies.set_id, "names": [name]})
        self._maybe_done(proxies)

    def _maybe_done(self, proxies):
        if proxies.meta["exited"] and not proxies.fds() and self.fdsets.get(proxies.set_id) is proxies:
            del self.fdsets[proxies.set_id]

    def _set_exited(self, proxies):
        proxies.meta["exited"] = True
        self._maybe_done(proxies)

    def send_fdset(self, conn, set_id):
        """Hand the daemon a copy of every fd of one set, with what a next monitor needs to go on."""
        proxies = self.fdsets[set_id]
        fds = proxies.fds()
        names = sorted(fds)
        proc = self.procs.get((proxies.meta["container"], proxies.meta["process"]))
        message = dict(proxies.meta, event="fds", set=set_id, tty=proxies.tty, names=names,
                       ids=[fd_identity(fds[n]) for n in names],
                       fostered=bool(proc is not None and proc.proxies is proxies and proc.fostered))
        conn.send(message, [fds[n] for n in names])

    def unregister(self, proc):
        if self.procs.get(proc.key) is proc:
            del self.procs[proc.key]
        if self.procs_by_pid.get(proc.pid) is proc:
            del self.procs_by_pid[proc.pid]
        if proc.pidfd is not None:
            self.loop.close(proc.pidfd)
            proc.pidfd = None

    def resolve(self, proc):
        """
        After registration from a pid file: the process may be our child
        (alive, or a zombie whose SIGCHLD is pending), already reaped by us
        (its status is in C{unclaimed}), gone, or (unexpectedly) not our
        child (then it is watched through a pidfd, status unknown).
        """
        if self.procs.get(proc.key) is not proc:
            return
        stat = read_proc_stat(proc.pid)
        found = self.unclaimed.pop(proc.pid, None)
        if stat is not None and stat[1] == self.pid:
            # Our child, alive or a zombie not reaped yet: an unclaimed status
            # for this pid belongs to an earlier process with the same pid.
            self.reap()
            return
        if found is not None:
            self.proc_exited(proc, *found)
            return
        if stat is None:
            # e.g. its own parent reaped it: the status is lost
            log("%s/%s: pid %d vanished before registration" % (proc.container, proc.process, proc.pid))
            self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)
        else:
            log("%s/%s: pid %d is not our child; watching it" % (proc.container, proc.process, proc.pid))
            try:
                proc.pidfd = os.pidfd_open(proc.pid)
            except OSError:
                self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)
                return
            self.loop.add_reader(proc.pidfd, lambda: self._on_pidfd(proc))

    def _on_pidfd(self, proc):
        if proc.pidfd is None or not select.select([proc.pidfd], [], [], 0)[0]:
            return
        try:
            pid, wait_status = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pid = -1
        if pid == 0:
            return  # our child after all: SIGCHLD brings its status
        if pid == proc.pid:
            self.proc_exited(proc, exit_status(wait_status), time.time_ns())
        else:
            self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)

    def proc_exited(self, proc, status, time_ns, unknown=False, zombie=False):
        """
        Drain and close its stdio, write the exit record, then (C{zombie}: reap it, then) notify.
        """
        self.unregister(proc)
        proc.proxies.close(drain=True)
        self._set_exited(proc.proxies)
        record = {
            "container": proc.container,
            "process": proc.process,
            "pid": proc.pid,
            "status": status,
            "time_ns": time_ns,
        }
        if unknown:
            record["unknown"] = True
        key = proc.key
        record_dir = proc.record_dir

        def written(error):
            if error is not None:
                log(
                    "cannot write exit record of %s/%s in %s: %s; kept in memory for the daemon"
                    % (key[0], key[1], record_dir, error)
                )
                self.unwritten[key] = (record_dir, record)
                self.unwritten.move_to_end(key)
                if self.retry_at is None:
                    self.retry_at = time.monotonic() + RECORD_RETRY
            elif zombie:
                self.release_zombie(record["pid"])
            # The record is on disk (or kept here) before the daemon hears of the exit.
            if error is not None:
                self.notify(dict(event="exit", unwritten=True, **record))
            else:
                self.notify(dict(event="exit", **record))

        self.records.submit(record_dir, layout.exit_record_name(proc.process), record, written)

    def retry_unwritten(self):
        """
        Try again to write the records kept in memory; return seconds until the next attempt (None: none).
        """
        if not self.unwritten:
            self.retry_at = None
            return None
        now = time.monotonic()
        if self.retry_at is not None and now < self.retry_at:
            return self.retry_at - now
        self.retry_at = now + RECORD_RETRY
        for key, (record_dir, record) in list(self.unwritten.items()):
            if key in self.retrying:
                continue
            self.retrying.add(key)

            def written(error, key=key, record=record, record_dir=record_dir):
                self.retrying.discard(key)
                entry = self.unwritten.get(key)
                if entry is None or entry[1] is not record:
                    return
                if error is None:
                    log("exit record of %s/%s written at last" % key)
                    del self.unwritten[key]
                    self.release_zombie(record["pid"])
                elif error.errno == errno.ENOENT:
                    # Its folder is gone: the daemon handled the exit and removed the container.
                    log("exit record of %s/%s dropped: %s is gone" % (key[0], key[1], record_dir))
                    del self.unwritten[key]
                    self.release_zombie(record["pid"])

            self.records.submit(record_dir, layout.exit_record_name(record["process"]), record, written)
        return RECORD_RETRY


def _ignore_signal(signum, frame):
    """
    Python-level handler; the work is done from the wakeup fd.
    """


USAGE = (
    "usage: monitord.py --state-dir DIR [--idle-exit SECONDS] [--oom-score-adj N]\n"
    "                   [--child-oom-score-adj N] [--child-nofile N]\n"
)

_INT_OPTIONS = {
    "--oom-score-adj": ("own_oom", -1000, 1000),
    "--child-oom-score-adj": ("child_oom", -1000, 1000),
    "--child-nofile": ("child_nofile", 1, 2**31 - 1),
    # The protocol version hello reports (tests use it to play an older monitor).
    "--protocol": ("protocol", 1, PROTOCOL),
    # A re-executed monitor: the memfd with the state its previous image saved (see op_reexec).
    "--resume-fd": ("resume_fd", 3, 2**31 - 1),
}
_EXTRA_OPTIONS = ("protocol", "resume_fd")


def parse_args(args):
    """
    @return: C{(state_dir, idle_exit, ChildAttributes)}; exits 2 with the usage on a bad argument.
    """
    state_dir = None
    idle_exit = 5.0
    ints = {}
    i = 0
    try:
        while i < len(args):
            arg = args[i]
            if arg in ("-h", "--help"):
                sys.stdout.write(USAGE)
                sys.exit(0)
            name, eq, value = arg.partition("=")
            if name not in ("--state-dir", "--idle-exit") and name not in _INT_OPTIONS:
                raise ValueError("unknown argument %r" % (arg,))
            if not eq:
                i += 1
                value = args[i]
            if name == "--state-dir":
                state_dir = value
            elif name in _INT_OPTIONS:
                key, low, high = _INT_OPTIONS[name]
                ints[key] = int(value)
                if not low <= ints[key] <= high:
                    raise ValueError("%s must be in [%d, %d]" % (name, low, high))
            else:
                idle_exit = float(value)
                if idle_exit < 0:
                    raise ValueError("--idle-exit must be >= 0")
            i += 1
        if not state_dir:
            raise ValueError("--state-dir is required")
    except (ValueError, IndexError) as e:
        sys.stderr.write("monitord: %s\n%s" % (e or "missing value", USAGE))
        sys.exit(2)
    extra = {key: ints.pop(key) for key in _EXTRA_OPTIONS if key in ints}
    return os.path.abspath(state_dir), idle_exit, ChildAttributes(**ints), extra


def _without(args, names):
    """C{args} without the options C{names} (and their values)."""
    kept = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name, eq, _ = arg.partition("=")
        if name in names:
            skip = not eq
            continue
        kept.append(arg)
    return kept


def main(args=None):
    args = sys.argv[1:] if args is None else list(args)
    state_dir, idle_exit, child_attributes, extra = parse_args(args)
    monitor = Monitor(state_dir, idle_exit, child_attributes)
    monitor.protocol = extra.get("protocol", PROTOCOL)
    monitor.args = _without(args, ("--resume-fd", "--protocol"))
    if "resume_fd" in extra:
        # Re-executed in place (same pid, children and fds): go on from the saved state.
        state = monitor.load_state(extra["resume_fd"])
        monitor.start(resumed=True)
        monitor.resume(state)
        log("re-executed: protocol %d, %d processes, %d fd sets" % (
            monitor.protocol, len(monitor.procs), len(monitor.fdsets)))
        monitor.run()
        return 0
    if not monitor.lock():
        try:
            with open(monitor.pid_path) as f:
                other = f.read().strip()
        except OSError:
            other = "?"
        sys.stderr.write(
            "monitord: another monitor (pid %s) holds %s\n" % (other, monitor.lock_path)
        )
        return 1
    monitor.start()
    log("ready on %s (idle exit %gs)" % (monitor.sock_path, idle_exit))
    os.write(1, b"ready %d\n" % (monitor.pid,))
    os.dup2(monitor.devnull, 1)  # closes the pipe to whoever waits for "ready"
    os.dup2(monitor.devnull, 0)
    monitor.run()
    return 0


