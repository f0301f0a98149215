# -*- test-case-name: tests.unit.test_monitord -*-
"""
The container monitor's server: its state, start-up, main loop and stop, and its command line.  Standard
library only; run through C{monitord.py}, which documents the process and its wire protocol.

The monitor's jobs, a module each:

- L{containerd_tx.monitor.loop}: the event loop and the log;
- L{containerd_tx.monitor.connection}: the daemon's connection (framing, fds, replies) and request checks;
- L{containerd_tx.monitor.requests}: a request's dispatch and the small requests;
- L{containerd_tx.monitor.spawn}: spawns, their children's attributes, and what a finished spawn registers;
- L{containerd_tx.monitor.registry}: the registry of live processes and the fd store;
- L{containerd_tx.monitor.reaping}: signals and reaping;
- L{containerd_tx.monitor.records}: exit records, written off the loop, kept in memory when the disk refuses;
- L{containerd_tx.monitor.handover}: takeover of a dead monitor's stdio, re-execution in place;
- L{containerd_tx.monitor.stdio}, L{containerd_tx.monitor.pumps}, L{containerd_tx.monitor.proxies}: stdio.
"""

import ctypes
import fcntl
import json
import os
import signal
import socket
import sys
import time
from collections import OrderedDict

from containerd_tx import layout
from containerd_tx.monitor.connection import Connection, bind_long
from containerd_tx.monitor.handover import Handover
from containerd_tx.monitor.loop import Loop, log
from containerd_tx.monitor.reaping import Reaper
from containerd_tx.monitor.records import ExitRecords, RecordWriter
from containerd_tx.monitor.registry import Registry
from containerd_tx.monitor.requests import Requests
from containerd_tx.monitor.spawn import ChildAttributes, Spawner
from containerd_tx.monitor.stdio import SharedOutputs


#: 2: the fd store (C{fds}/C{released} events, C{takeover}, C{ended}) and C{reexec}.
PROTOCOL = 2

PR_SET_CHILD_SUBREAPER = 36



class Monitor(Requests, Spawner, Handover, Registry, ExitRecords, Reaper):
    """
    The monitor: registry, spawns, reaping, and the daemon connection.  Its jobs are mixins, a module each:
    L{Requests}, L{Spawner}, L{Handover}, L{Registry}, L{ExitRecords}, L{Reaper}; here are its state, its
    start, its main loop and its stop.
    """

    def __init__(self, state_dir, idle_exit, child_attributes=None):
        self.state_dir = state_dir
        self.idle_exit = idle_exit
        self.pid = os.getpid()
        self.started_ns = time.monotonic_ns()
        self.loop = Loop()
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
        #: (container, process) -> KeptRecord(record_dir, record): exits whose record could not be written; kept for
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
        #: registered processes still the children of their runtime's helper (see L{Registry.resolve}).
        self.helper_waits = set()
        self.rescan_at = None
        self.protocol = PROTOCOL
        self.args = []
        self.records = None
        self.stopping = False
        self.idle_since = None
        self.devnull = None
        self.outputs = SharedOutputs()
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
        self.records = RecordWriter(self.loop)
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
            if self.helper_waits:
                wait = self.expire_helper_waits()
                if wait is not None:
                    timeout = wait if timeout is None else min(timeout, wait)
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
