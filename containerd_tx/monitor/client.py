# -*- test-case-name: tests.unit.test_monitor_client -*-
"""
The daemon's side of the container monitor: a Twisted client for
C{monitord.py} (see that module for the process and the wire protocol).

L{MonitorClient.connect} connects to C{DIR/monitor.sock}, starting the
monitor first if nothing answers, and says hello.  Everything runs in the
reactor thread and nothing blocks it.
"""

import base64
import json
import os
import signal
import sys
import time
from collections import deque, namedtuple

from twisted.internet import defer, error
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.interfaces import IFileDescriptorReceiver
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from containerd_tx import layout
from containerd_tx.errors import DeadlineExceeded, Unavailable
from containerd_tx.monitor import takeover
from containerd_tx.runtime.monitor_seam import IMonitor
from containerd_tx.unix_path import reachable

#: The monitor protocol this daemon speaks (see C{monitord.py}).
PROTOCOL = 2

#: Path of the monitor script, run as C{python -S MONITORD_PATH}.
MONITORD_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitord.py")

log = Logger()


class MonitorError(Exception):
    """
    The monitor refused or failed a request (C{"ok": false}), or could not be
    started or reached.
    """


class MonitorLost(MonitorError, Unavailable):
    """
    The connection to the monitor ended before the reply came (the API says UNAVAILABLE: a request in
    flight when the monitor dies has an unknown outcome; a new monitor takes over, and a retry works).
    """

    def __init__(self, message):
        MonitorError.__init__(self, message)


class MonitorTimeout(DeadlineExceeded):
    """
    The monitor did not answer within L{MonitorClient.timeout} (stopped or
    hung): the request is abandoned.  A C{DeadlineExceeded}, not a
    L{MonitorError}: the API reports DEADLINE_EXCEEDED.
    """


SpawnResult = namedtuple("SpawnResult", "status stdout stderr pid")
SpawnResult.__doc__ = """
The outcome of a spawned command: exit C{status} (128 + signal number when
killed), captured C{stdout}/C{stderr} bytes (empty unless captured), and the
C{pid} read from the pid file (None without one).
"""


class Spawn:
    """
    A command the monitor runs for us.

    @ivar tag: the request tag (what L{kill} targets).
    @ivar started: Deferred firing with the spawned command's pid once it
        runs, or with None if it never ran (the reason comes through
        C{result}).
    @ivar result: Deferred firing with a L{SpawnResult} when the command has
        exited, or failing with L{MonitorError}/L{MonitorLost}.
    """

    def __init__(self, client, tag):
        self._client = client
        self.tag = tag
        self.started = defer.Deferred()
        self.result = defer.Deferred()

    def kill(self, signum=signal.SIGKILL):
        """
        Signal the running command (e.g. on a start timeout).

        @return: Deferred firing when the monitor has sent the signal; fails
            with L{MonitorError} if the command is no longer running.
        """
        return self._client._request({"op": "kill", "target": self.tag, "signal": int(signum)})

    def _spawned(self, pid):
        if not self.started.called:
            self.started.callback(pid)

    def _replied(self, message):
        self._spawned(None)
        if message.get("ok"):
            self.result.callback(
                SpawnResult(
                    message["status"],
                    base64.b64decode(message.get("stdout") or ""),
                    base64.b64decode(message.get("stderr") or ""),
                    message.get("pid"),
                )
            )
        else:
            self.result.errback(MonitorError(message.get("error", "unknown error")))

    def _lost(self, failure):
        self._spawned(None)
        self.result.errback(failure)


@implementer(IFileDescriptorReceiver)
class _MonitorConnection(Protocol):
    """
    Newline-delimited JSON framing; lines go to the L{MonitorClient}.  File descriptors (SCM_RIGHTS) are
    queued in order: a message says how many of them are its own.
    """

    client = None

    def __init__(self):
        self._partial = []
        self.closed = False
        self._lost_waiters = []
        self.fds_in = deque()

    def fileDescriptorReceived(self, fd):
        takeover.set_cloexec(fd)
        self.fds_in.append(fd)

    def take_fds(self, count):
        """The next C{count} fds received (fewer if fewer came: then the queue is emptied)."""
        taken = []
        while self.fds_in and len(taken) < count:
            taken.append(self.fds_in.popleft())
        return taken

    def whenLost(self):
        """
        @return: Deferred firing once the connection is closed.
        """
        if self.closed:
            return defer.succeed(None)
        d = defer.Deferred()
        self._lost_waiters.append(d)
        return d

    def dataReceived(self, data):
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line = data[start:end]
            if self._partial:
                self._partial.append(line)
                line = b"".join(self._partial)
                self._partial = []
            start = end + 1
            self._lineReceived(line)
        if start < len(data):
            self._partial.append(data[start:])

    def _lineReceived(self, line):
        try:
            message = json.loads(line)
        except ValueError:
            log.error("monitor sent a line that is not JSON: {line!r}", line=line[:200])
            return
        if self.client is not None:
            self.client._message(message)

    def send(self, message):
        self.transport.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def connectionLost(self, reason):
        self.closed = True
        while self.fds_in:
            os.close(self.fds_in.popleft())
        if self.client is not None:
            self.client._connectionLost(reason)
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)


class MonitorProcess(ProcessProtocol):
    """
    Watches a monitor this daemon started: waits for C{ready <pid>}, reaps
    it, logs its exit.
    """

    def __init__(self, reactor, state_dir):
        self._reactor = reactor
        self.state_dir = state_dir
        self.pid = None
        self.ready = defer.Deferred()
        self.ended = False
        self.end_reason = None
        self._output = b""
        self._waiters = []

    def outReceived(self, data):
        if self.ready.called:
            return
        self._output += data
        if b"\n" in self._output:
            line = self._output.split(b"\n", 1)[0]
            words = line.split()
            if len(words) == 2 and words[0] == b"ready" and words[1].isdigit():
                self.pid = int(words[1])
                self.ready.callback(self.pid)
            else:
                self.ready.errback(MonitorError("monitor said %r instead of ready" % (line[:200],)))
        elif len(self._output) > 4096:
            self.ready.errback(MonitorError("monitor printed no ready line"))

    def processEnded(self, reason):
        self.ended = True
        self.end_reason = reason.value
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        if code == 0:
            log.info("container monitor for {dir} exited", dir=self.state_dir)
        else:
            log.warn(
                "container monitor for {dir} ended: exit code {code}, signal {sig} (see monitor.log)",
                dir=self.state_dir,
                code=code,
                sig=sig,
            )
        if not self.ready.called:
            self.ready.errback(
                MonitorError("monitor exited before it was ready (exit code %s, signal %s)" % (code, sig))
            )
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(reason.value)

    def whenEnded(self):
        """
        @return: Deferred firing with the exit reason (a L{twisted.internet.error.ProcessDone} or
            L{twisted.internet.error.ProcessTerminated} instance) once the monitor has exited and
            been reaped (at once if it has).
        """
        if self.ended:
            return defer.succeed(self.end_reason)
        d = defer.Deferred()
        self._waiters.append(d)
        return d


def start_monitor(reactor, state_dir, python=sys.executable, idle_exit=None, extra_args=()):
    """
    Start C{monitord.py} for C{state_dir} with C{reactor.spawnProcess}
    (posix_spawn: no uid/gid/usePTY/path), stdin /dev/null, stderr appended
    to C{state_dir/monitor.log}.

    @return: the L{MonitorProcess}; its C{ready} fires with the monitor's pid.
    """
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    args = [python, "-S", MONITORD_PATH, "--state-dir", state_dir]
    if idle_exit is not None:
        args += ["--idle-exit", repr(float(idle_exit))]
    args += list(extra_args)
    watcher = MonitorProcess(reactor, state_dir)
    logfd = os.open(
        layout.StateDirLayout(state_dir).monitor_log,
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
        0o640,
    )
    try:
        nullfd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            reactor.spawnProcess(
                watcher, python, args, env=dict(os.environ), childFDs={0: nullfd, 1: "r", 2: logfd}
            )
        finally:
            os.close(nullfd)
    finally:
        os.close(logfd)
    return watcher


@implementer(IMonitor)
class MonitorClient:
    """
    One connection to the container monitor; use only in the reactor thread.

    @ivar monitor_pid: the monitor's pid (from hello).
    @ivar processes: registered processes at hello time, dicts with
        container, process, pid, tty.
    @ivar monitor_process: the L{MonitorProcess} if this client started the
        monitor, else None.
    @ivar on_exit: called with each exit notification (a dict with
        container, process, pid, status, time_ns and maybe unknown).
    @ivar on_lost: called with the reason when the connection is lost other
        than by L{disconnect} (e.g. the monitor died), before the pending
        Deferreds fail with L{MonitorLost}.
    """

    on_exit = None
    on_lost = None
    #: Seconds the monitor may stay silent while a request waits for it; then
    #: every waiting request fails with L{MonitorTimeout}, and new ones fail at
    #: once until the monitor speaks again (None: wait forever).  Requests carry
    #: the deadline too: a monitor that reads one too late refuses it, so what
    #: the daemon gave up on never happens behind its back.
    timeout = None

    def __init__(self, reactor, connection, state_dir):
        self._reactor = reactor
        self._connection = connection
        connection.client = self
        self.state_dir = state_dir
        self._tag = 0
        self._pending = {}
        self._spawns = {}
        self._connected = True
        self._disconnecting = False
        self.monitor_pid = None
        self._sent_at = {}
        self._abandoned = set()
        self._pings = set()
        self._last_heard = reactor.seconds()
        self._watchdog = None
        self.hung = False
        self.processes = []
        #: exit records the monitor could not write to disk (hello); see L{exit_handled}.
        self.exits = []
        self.monitor_process = None
        #: the daemon's copy of every stdio fd the monitor holds (see L{takeover}).
        self.fdstore = takeover.FdStore()
        #: replace a monitor that dies (the daemon must be its child subreaper) instead of calling on_lost.
        self.survive = False
        #: True from a monitor's death until its successor has taken over; requests wait meanwhile.
        self.recovering = False
        self._queued = []
        self.foster = takeover.Foster(reactor)
        #: one C{(seconds without a monitor, fd sets handed over)} per takeover.
        self.takeovers = []
        self._connect_args = (sys.executable, None, 10.0, ())
        self._monitor_pidfd = None
        self.protocol = None
        self._reexec = False
        self._recovered_waiters = []

    @classmethod
    def connect(cls, reactor, state_dir, python=sys.executable, idle_exit=None, timeout=10.0, monitor_args=()):
        """
        Connect to the monitor of C{state_dir}, starting it if nothing
        answers, and say hello.

        @param python: the interpreter for a monitor we start (use the real
            path, not a pyenv shim: it runs with C{-S}).
        @param idle_exit: C{--idle-exit} for a monitor we start (None: its
            default).
        @param timeout: seconds to get a connected, greeted monitor.
        @param monitor_args: more arguments for a monitor we start (see
            L{containerd_tx.monitor.hardening.Protection.monitor_args}).
        @return: Deferred firing with a connected L{MonitorClient}, or failing
            with L{MonitorError}.
        """
        return defer.ensureDeferred(
            cls._connect(reactor, os.path.abspath(state_dir), python, idle_exit, timeout, monitor_args)
        )

    @classmethod
    async def _connect(cls, reactor, state_dir, python, idle_exit, timeout, monitor_args=(), into=None,
                       start=True):
        deadline = reactor.seconds() + timeout
        sock_path = layout.StateDirLayout(state_dir).monitor_socket
        started = None
        problem = "nothing tried"
        while reactor.seconds() < deadline:
            connection = None
            try:
                with reachable(sock_path) as address:
                    # Connected (or refused) within the block: the folder's descriptor stays open until then.
                    connection = await UNIXClientEndpoint(reactor, address, timeout=5).connect(
                        Factory.forProtocol(_MonitorConnection)
                    )
            except error.ConnectError as e:
                problem = "cannot connect to %s: %s" % (sock_path, e)
            if connection is not None:
                if into is None:
                    client = cls(reactor, connection, state_dir)
                    client._connect_args = (python, idle_exit, timeout, monitor_args)
                else:
                    client = into
                    client._attach(connection)
                client.monitor_process = started
                try:
                    await client._hello()
                except MonitorLost as e:
                    # e.g. the monitor was exiting on idle as we connected
                    problem = "monitor went away during hello: %s" % (e,)
                else:
                    return client
            elif start and (started is None or started.ended):
                try:
                    started = start_monitor(reactor, state_dir, python, idle_exit, monitor_args)
                except OSError as e:
                    raise MonitorError("cannot start the monitor for %s: %s" % (state_dir, e))
                ready = started.ready
                ready.addTimeout(max(0.1, deadline - reactor.seconds()), reactor)
                try:
                    await ready
                    continue
                except defer.TimeoutError:
                    if not started.ended:
                        started.transport.signalProcess("KILL")
                    problem = "monitor started but not ready in time"
                    break
                except MonitorError as e:
                    # most likely another monitor won the lock and is starting
                    problem = str(e)
            await deferLater(reactor, 0.05, lambda: None)
        raise MonitorError("cannot reach the monitor of %s: %s" % (state_dir, problem))

    async def _hello(self):
        reply = await self._request({"op": "hello"}, force=True)
        self.monitor_pid = reply["pid"]
        self.processes = reply.get("processes", [])
        self.exits = reply.get("exits", [])
        self.protocol = reply.get("protocol")
        if self.protocol != PROTOCOL:
            log.warn("monitor speaks protocol {p}", p=reply.get("protocol"))
        if self._monitor_pidfd is not None:
            os.close(self._monitor_pidfd)
            self._monitor_pidfd = None
        try:
            # Readable once the monitor has exited, and then its children are ours.
            self._monitor_pidfd = os.pidfd_open(self.monitor_pid)
        except OSError:
            pass

    def _attach(self, connection):
        """Go on with a new connection (to the monitor that took over)."""
        self._connection = connection
        connection.client = self
        self._connected = True
        self._disconnecting = False
        self.hung = False
        self._last_heard = self._reactor.seconds()

    # Requests ----------------------------------------------------------------

    def _send(self, message, watched=True):
        self._tag += 1
        message = dict(message, tag=self._tag)
        if self.timeout is not None and watched:
            message["start_by_ns"] = time.monotonic_ns() + int(self.timeout * 1e9)
            self._sent_at[self._tag] = self._reactor.seconds()
            self._arm()
        self._connection.send(message)
        return self._tag

    def _request(self, message, force=False):
        if self.recovering and not force:
            # A new monitor is taking over: sent to it in a moment.
            d = defer.Deferred()
            self._queued.append((message, d))
            return d
        if not self._connected:
            return defer.fail(MonitorLost("not connected to the monitor"))
        if self.hung:
            return defer.fail(self._timeout_error())
        d = defer.Deferred()
        self._pending[self._send(message)] = d
        return d

    # Watchdog ------------------------------------------------------------------

    def _timeout_error(self):
        return MonitorTimeout(
            "the container monitor (pid %s) has not answered for %gs; is it stopped?"
            % (self.monitor_pid, self.timeout))

    def _interval(self):
        return min(max(self.timeout / 4.0, 0.05), 5.0)

    def _arm(self):
        if self._watchdog is None and self._connected and self.timeout is not None:
            self._watchdog = self._reactor.callLater(self._interval(), self._check)

    def _check(self):
        self._watchdog = None
        if not self._connected or (not self._sent_at and not self.hung):
            return
        now = self._reactor.seconds()
        if self._sent_at and now - max(self._last_heard, min(self._sent_at.values())) >= self.timeout:
            self._give_up()
        if now - self._last_heard >= self._interval() and not self._pings:
            # Ask for a sign of life: a long spawn (a checkpoint) is fine while the monitor answers.
            self._tag += 1
            self._pings.add(self._tag)
            self._connection.send({"op": "ping", "tag": self._tag})
        self._arm()

    def _give_up(self):
        """The monitor is silent: fail every waiting request; the late replies are ignored."""
        if not self.hung:
            log.warn("the container monitor (pid {pid}) has not answered for {t}s: failing what waits for it",
                     pid=self.monitor_pid, t=self.timeout)
        self.hung = True
        error = self._timeout_error()
        self._abandoned.update(self._sent_at)
        self._sent_at.clear()
        pending, self._pending = self._pending, {}
        spawns, self._spawns = self._spawns, {}
        for d in pending.values():
            d.errback(error)
        for spawn in spawns.values():
            spawn._lost(Failure(error))

    def _heard(self):
        self._last_heard = self._reactor.seconds()
        if self.hung:
            self.hung = False
            log.info("the container monitor (pid {pid}) answers again", pid=self.monitor_pid)

    def spawn(
        self,
        argv,
        *,
        capture=False,
        stdin=None,
        stdout=None,
        stderr=None,
        env=None,
        pid_file=None,
        register=None,
        console_socket=None,
    ):
        """
        Have the monitor run C{argv} (C{argv[0]} an absolute path).

        @param capture: capture stdout/stderr (stdin /dev/null), else use the
            stdio paths (None: /dev/null).
        @param env: the child's environment; None: the monitor's.
        @param pid_file: after exit 0, read a pid from this file.
        @param register: C{dict(container=, process=, record_dir=)}: register
            the pid from C{pid_file} as that process.
        @param console_socket: path on which the runtime sends a pty master;
            then C{stdin}/C{stdout} feed the terminal.
        @return: a L{Spawn}.
        """
        message = {
            "op": "spawn",
            "argv": list(argv),
            "env": None if env is None else dict(env),
            "capture": bool(capture),
            "stdin": stdin,
            "stdout": stdout,
            "stderr": stderr,
            "pid_file": pid_file,
            "register": None if register is None else dict(register),
            "console_socket": console_socket,
        }
        if self.recovering:
            spawn = Spawn(self, None)
            self._queued.append((message, spawn))
            return spawn
        if not self._connected or self.hung:
            spawn = Spawn(self, None)
            spawn._lost(Failure(MonitorLost("not connected to the monitor") if not self._connected
                                else self._timeout_error()))
            return spawn
        return self._send_spawn(message, Spawn(self, None))

    def _send_spawn(self, message, spawn):
        if message.get("register") is not None and self.timeout is not None:
            # Finished after this, the daemon has given up on it: the monitor kills what it started.
            message["expires_ns"] = time.monotonic_ns() + int((self.timeout + 1.0) * 1e9)
        spawn.tag = self._send(message)
        self._spawns[spawn.tag] = spawn
        return spawn

    def resize(self, container, process, width, height):
        """
        Set the terminal size of a registered tty process.
        """
        return self._request(
            {"op": "resize", "container": container, "process": process, "width": width, "height": height}
        )

    def close_stdin(self, container, process):
        """
        Deliver what its stdin FIFO holds, then EOF.  Idempotent.
        """
        return self._request({"op": "close_stdin", "container": container, "process": process})

    def adopt(self, container, process, pid, record_dir):
        """
        Watch a live pid that is not the monitor's child; its exit status
        will be unknown (255, C{unknown: true}).
        """
        return self._request(
            {"op": "adopt", "container": container, "process": process, "pid": pid, "record_dir": record_dir}
        )

    def forget(self, container, process):
        """
        Drop a registration without writing an exit record.
        """
        return self._request({"op": "forget", "container": container, "process": process})

    def exit_handled(self, record):
        """
        Tell the monitor that an exit it could not write to disk has been handled, so it drops the record it
        keeps in memory.  Best effort: errors are ignored.
        """
        if not self._connected:
            return defer.succeed(None)
        d = self._request({"op": "exit_handled", "container": record["container"],
                           "process": record["process"], "pid": record["pid"]})
        return d.addErrback(lambda f: None)

    def disconnect(self):
        """
        Close the connection (the daemon is stopping); the monitor keeps
        running.  Pending requests fail with L{MonitorLost}.

        @return: Deferred firing when the connection is closed.
        """
        if self._connected:
            self._disconnecting = True
            self._connection.transport.loseConnection()
        return self._connection.whenLost()

    # Incoming ------------------------------------------------------------------

    def _message(self, message):
        self._heard()
        event = message.get("event")
        if event == "fds":
            names = message.get("names") or []
            fds = self._connection.take_fds(len(names))
            if len(fds) < len(names):
                log.error("monitor sent {n} fds for {c}/{p}, {k} came (open files limit?): its stdio would not "
                          "survive the monitor", n=len(names), k=len(fds), c=message.get("container"),
                          p=message.get("process"))
                message = dict(message, names=names[:len(fds)], ids=(message.get("ids") or [])[:len(fds)])
            self.fdstore.add(message, fds)
            return
        if event == "released":
            self.fdstore.released(message.get("set"), message.get("names") or [])
            return
        if event == "exit":
            self.fdstore.exited(message.get("container"), message.get("process"), message.get("pid"))
            if self.on_exit is not None:
                try:
                    self.on_exit(message)
                except Exception:
                    log.failure("on_exit handler failed")
                else:
                    if message.get("unwritten"):
                        # Its record is only in the monitor's memory (full disk): this daemon has it now.
                        self.exit_handled(message)
            return
        if event == "spawned":
            spawn = self._spawns.get(message.get("tag"))
            if spawn is not None:
                spawn._spawned(message.get("spawn_pid"))
            return
        if event is not None:
            log.info("monitor event {event} ignored", event=event)
            return
        tag = message.get("tag")
        self._sent_at.pop(tag, None)
        if tag in self._pings:
            self._pings.discard(tag)
            return
        if tag in self._abandoned:
            self._abandoned.discard(tag)
            log.info("late monitor reply to an abandoned request: {message!r}", message=message)
            return
        spawn = self._spawns.pop(tag, None)
        if spawn is not None:
            spawn._replied(message)
            return
        d = self._pending.pop(tag, None)
        if d is None:
            log.error("monitor reply without a request: {message!r}", message=message)
        elif message.get("ok"):
            d.callback(message)
        else:
            d.errback(MonitorError(message.get("error", "unknown error")))

    def _connectionLost(self, reason):
        self._connected = False
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None
        self._sent_at.clear()
        why = "disconnected" if self._disconnecting else "connection to the monitor lost: %s" % (
            reason.getErrorMessage(),
        )
        if self.recovering and not self._disconnecting:
            pass  # a monitor lost while taking over: the takeover fails or retries
        elif not self._disconnecting and (self.survive or self._reexec):
            log.warn("{why}: a new monitor takes over", why=why)
            self._start_recovery()
        elif not self._disconnecting:
            log.warn("{why}", why=why)
            if self.on_lost is not None:
                try:
                    self.on_lost(reason)
                except Exception:
                    log.failure("on_lost handler failed")
        pending, self._pending = self._pending, {}
        spawns, self._spawns = self._spawns, {}
        for d in pending.values():
            d.errback(MonitorLost(why))
        for spawn in spawns.values():
            spawn._lost(Failure(MonitorLost(why)))

    # Monitor death, survived (see containerd_tx.monitor.takeover) -----------------------------------------

    def _start_recovery(self):
        self.recovering = True
        self._lost_at = self._reactor.seconds()
        d = defer.ensureDeferred(self._recover())
        d.addErrback(self._recovery_failed)

    async def _recover(self):
        old = self.monitor_pid
        reexec = self._reexec
        gone = False if reexec else await self._monitor_gone(2.0)
        if reexec:
            log.info("the container monitor (pid {pid}) re-executes itself: connecting again", pid=old)
            self.fdstore.close_all()
        elif gone:
            log.warn("the container monitor (pid {pid}) died: its processes are now the daemon's children; "
                     "starting a new monitor", pid=old)
            self._foster_orphans()
        else:
            # It lives (it dropped this connection): its hello hands every fd again.
            log.warn("the container monitor (pid {pid}) closed the connection: connecting again", pid=old)
            self.fdstore.close_all()
        python, idle_exit, timeout, monitor_args = self._connect_args
        await MonitorClient._connect(self._reactor, self.state_dir, python, idle_exit, timeout, monitor_args,
                                     into=self, start=not reexec)
        self._reexec = False
        handed = 0
        if gone:
            handed = await self._hand_over()
        self.recovering = False
        elapsed = self._reactor.seconds() - self._lost_at
        self.takeovers.append((elapsed, handed))
        log.info("monitor {pid} took over {n} fd sets {t:.3f}s after the old one was lost",
                 pid=self.monitor_pid, n=handed, t=elapsed)
        queued, self._queued = self._queued, []
        for message, waiter in queued:
            if isinstance(waiter, Spawn):
                self._send_spawn(message, waiter)
            else:
                self._pending[self._send(message)] = waiter
        waiters, self._recovered_waiters = self._recovered_waiters, []
        for d in waiters:
            d.callback(None)

    def _recovery_failed(self, failure):
        log.failure("no monitor could take over", failure)
        self.recovering = False
        self._reexec = False
        waiters, self._recovered_waiters = self._recovered_waiters, []
        for d in waiters:
            d.errback(MonitorLost("no monitor could take over"))
        queued, self._queued = self._queued, []
        for message, waiter in queued:
            if isinstance(waiter, Spawn):
                waiter._lost(Failure(MonitorLost("no monitor could take over")))
            else:
                waiter.errback(MonitorLost("no monitor could take over"))
        if self.on_lost is not None:
            self.on_lost(failure)

    async def _monitor_gone(self, timeout):
        """Wait until the monitor has exited (then its orphans are re-parented); False if it lives on."""
        if self._monitor_pidfd is None:
            stat = takeover.proc_stat(self.monitor_pid) if self.monitor_pid else None
            return stat is None or stat[0] in "ZX"
        pidfd, self._monitor_pidfd = self._monitor_pidfd, None
        d = defer.Deferred()
        reader = takeover.PidfdReader(self._reactor, os.dup(pidfd), lambda: d.called or d.callback(True))
        os.close(pidfd)
        timer = self._reactor.callLater(timeout, lambda: d.called or d.callback(False))
        try:
            return await d
        finally:
            reader.stop()
            if timer.active():
                timer.cancel()

    def _deliver_exit(self, record):
        self.fdstore.exited(record["container"], record["process"], record["pid"])
        if self.on_exit is not None:
            try:
                self.on_exit(record)
            except Exception:
                log.failure("on_exit handler failed")

    def _foster_orphans(self):
        """
        The monitor is gone: watch each process it had (now the daemon's children), report those that ended
        meanwhile (from their record), and reap the strays.
        """
        me = os.getpid()
        for entry in list(self.fdstore.sets.values()):
            entry.adopt = False
            if entry.exited:
                continue
            stat = takeover.proc_stat(entry.pid)
            if stat is not None and stat[1] == me:
                log.info("fostering {c}/{p} (pid {pid})", c=entry.container, p=entry.process, pid=entry.pid)
                self.foster.watch(entry.pid, lambda status, t, entry=entry: defer.ensureDeferred(
                    self._fostered_exit(entry, status, t)))
            elif stat is None or stat[0] in "ZX":
                record = takeover.read_record(entry.record_dir, entry.process, entry.pid)
                if record is None:
                    log.warn("{c}/{p} (pid {pid}) ended with the monitor, its status unrecorded: 255",
                             c=entry.container, p=entry.process, pid=entry.pid)
                    record = {"container": entry.container, "process": entry.process, "pid": entry.pid,
                              "status": takeover.UNKNOWN_STATUS, "time_ns": time.time_ns(), "unknown": True}
                entry.exited = True
                self._deliver_exit(record)
            else:
                # Alive but not ours (this daemon did not start that monitor): watched by pidfd, status unknown.
                entry.adopt = True
        self.foster.reap_strays()

    async def _fostered_exit(self, entry, status, time_ns):
        """A fostered process ended: its output flushed by the monitor, its record written, then reported."""
        entry.exited = True
        if self._connected and not self.recovering:
            try:
                await self._request({"op": "ended", "container": entry.container, "process": entry.process,
                                     "pid": entry.pid})
            except Exception as e:
                log.info("ended {c}/{p}: {e}", c=entry.container, p=entry.process, e=e)
        record = await takeover.write_exit_record(self._reactor, entry, status, time_ns)
        self.fdstore._maybe_drop(entry)
        self._deliver_exit(record)

    async def _hand_over(self):
        """Give the new monitor every fd set (with the fds, over SCM_RIGHTS) and the pids it must watch."""
        entries, fds, adopt = [], [], []
        for entry in self.fdstore.sets.values():
            described = entry.describe()
            entries.append(described)
            fds.extend(entry.fds[name] for name in described["names"])
            if getattr(entry, "adopt", False) and not entry.exited:
                adopt.append(entry)
        for fd in fds:
            self._connection.transport.sendFileDescriptor(fd)
        await self._request({"op": "takeover", "sets": entries}, force=True)
        for entry in adopt:
            try:
                await self._request({"op": "adopt", "container": entry.container, "process": entry.process,
                                     "pid": entry.pid, "record_dir": entry.record_dir}, force=True)
            except MonitorError as e:
                log.warn("cannot watch {c}/{p}: {e}", c=entry.container, p=entry.process, e=e)
        return len(entries)

    async def upgrade(self):
        """
        A monitor older than this daemon (its hello says a lower protocol) is asked to re-execute itself in
        place (C{reexec}: same pid, children and fds; its registry goes through a memfd), so it runs this
        daemon's monitor code and nothing is lost.  A monitor too old to know C{reexec} is used as it is,
        with the exact instructions to replace it logged.

        @return: True when the monitor speaks this daemon's protocol (now).
        """
        if not isinstance(self.protocol, int) or self.protocol >= PROTOCOL:
            return True
        old = self.protocol
        for _ in range(100):
            d = defer.Deferred()
            self._recovered_waiters.append(d)
            self._reexec = True
            try:
                await self._request({"op": "reexec"}, force=True)
            except MonitorLost:
                pass  # the exec closed the connection first
            except MonitorError as e:
                self._reexec = False
                self._recovered_waiters.remove(d)
                if str(e).startswith("busy"):
                    await deferLater(self._reactor, 0.1, lambda: None)
                    continue
                log.warn("the container monitor (pid {pid}) speaks protocol {old} and cannot re-execute itself "
                         "({e}): it goes on serving, but its death is not survivable and its processes' stdio "
                         "is not held by the daemon. To replace it: stop the daemon, stop every container, "
                         "`kill {pid}` (it removes {sock}), then start the daemon",
                         pid=self.monitor_pid, old=old, e=e, sock=layout.StateDirLayout(self.state_dir).monitor_socket)
                return False
            await d
            log.info("the container monitor (pid {pid}) was upgraded in place from protocol {old} to {new}",
                     pid=self.monitor_pid, old=old, new=self.protocol)
            return self.protocol >= PROTOCOL
        return False
