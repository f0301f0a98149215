# -*- test-case-name: tests.unit.test_monitor_client -*-
"""
The daemon's side of the container monitor: a Twisted client for
C{containerd_tx/monitor/monitord.py} (see that module for the process and the wire
protocol).

L{MonitorClient.connect} connects to C{DIR/monitor.sock}, starting the
monitor first if nothing answers, and says hello.  Everything runs in the
reactor thread and nothing blocks it.

Its parts: L{protocol} (the line framing and the fds received), L{process} (starting the monitor),
L{spawn}, L{errors}, L{watchdog} (a silent monitor noticed), L{recovery} (the monitor's death survived, its upgrade) and L{takeover} (the fd store
and the fostering of a dead monitor's processes).
"""

import os
import sys
import time

from twisted.internet import defer, error
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from containerd_tx import layout
from containerd_tx.monitor_client import takeover
from containerd_tx.monitor_client.errors import MonitorError, MonitorLost, MonitorTimeout
from containerd_tx.monitor_client.process import start_monitor
from containerd_tx.monitor_client.protocol import PROTOCOL, MonitorConnection
from containerd_tx.monitor_client.recovery import Recovery
from containerd_tx.monitor_client.spawn import Spawn, SpawnResult
from containerd_tx.monitor_client.watchdog import Watchdog
from containerd_tx.runtime.monitor_seam import IMonitor
from containerd_tx.unix_path import reachable

#: What the daemon and the tests take from here (the seam's errors and results included).
__all__ = ["MonitorClient", "MonitorError", "MonitorLost", "MonitorTimeout", "PROTOCOL", "Spawn", "SpawnResult",
           "start_monitor"]


log = Logger()


@implementer(IMonitor)
class MonitorClient(Watchdog, Recovery):
    """
    One connection to the container monitor; use only in the reactor thread.

    @ivar monitor_pid: the monitor's pid (from hello).
    @ivar processes: registered processes at hello time, dicts with
        container, process, pid, tty.
    @ivar monitor_process: the L{MonitorProcess} if this client started the
        monitor, else None.
    @ivar on_exit: called with each exit notification (a dict with
        container, process, pid, status, time_ns and maybe unknown); set by
        L{report_exits_to}.
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
    def connect(cls, reactor, state_dir, python=sys.executable, idle_exit=None, timeout=10.0, monitor_args=(), *,
                on_lost=None, survive=False, request_timeout=None, upgrade=False):
        """
        Connect to the monitor of C{state_dir}, starting it if nothing
        answers, and say hello.

        @param python: the interpreter for a monitor we start (use the real
            path, not a pyenv shim: it runs with C{-S}).
        @param idle_exit: C{--idle-exit} for a monitor we start (None: its
            default).
        @param timeout: seconds to get a connected, greeted monitor.
        @param monitor_args: more arguments for a monitor we start (see
            L{containerd_tx.monitor_client.hardening.Protection.monitor_args}).
        @param on_lost: the client's C{on_lost}, set before anything can lose
            the connection (None: nobody is told).
        @param survive: the client's C{survive}: a new monitor takes over
            from one that dies (the caller must be its child subreaper).
        @param request_timeout: the client's C{timeout} (the watchdog of a
            silent monitor), set once the client is returned, after any
            upgrade: the re-execution is not subject to it.
        @param upgrade: have an older monitor re-execute itself with this
            code first (see L{upgrade}).
        @return: Deferred firing with a connected L{MonitorClient}, or failing
            with L{MonitorError}.
        """
        return defer.ensureDeferred(
            cls._connect_configured(reactor, os.path.abspath(state_dir), python, idle_exit, timeout, monitor_args,
                                    on_lost, survive, request_timeout, upgrade)
        )

    @classmethod
    async def _connect_configured(cls, reactor, state_dir, python, idle_exit, timeout, monitor_args, on_lost,
                                  survive, request_timeout, upgrade):
        client = await cls._connect(reactor, state_dir, python, idle_exit, timeout, monitor_args)
        client.on_lost = on_lost
        client.survive = survive
        if upgrade:
            try:
                await client.upgrade()
            except BaseException:
                client.disconnect()
                raise
        # Only now: an upgrade's re-execution must not be cut short by the watchdog of requests.
        client.timeout = request_timeout
        return client

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
                        Factory.forProtocol(MonitorConnection)
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
        announce=True,
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
        @param announce: False when nobody waits for the spawn's C{started}:
            the monitor sends no C{spawned} event, and C{started} fires with
            None once the command has ended.
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
        if not announce:
            message["announce"] = False
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

    def report_exits_to(self, handler):
        """
        From now on each exit notification goes to C{handler} (see L{on_exit}); those that came before it
        are in their records on disk or in L{exits}, which recovery reads.
        """
        self.on_exit = handler

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
