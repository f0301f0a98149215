# -*- test-case-name: tests.unit.test_monitor_client -*-
"""
Tests for L{containerd_tx.monitor_client.client}: the Twisted client against a real
monitor process (started by the client itself), with /bin/sh children.
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from containerd_tx.monitor_client.client import (
    MonitorClient,
    MonitorError,
    MonitorLost,
    SpawnResult,
)
from containerd_tx.monitor_client.protocol import MAX_LINE, MonitorConnection
from tests.unit.test_monitord import PYTHON, SH, Client, alive, descendants, described, proc_table

SLEEPER = "sleep 30 >/dev/null 2>&1 & echo $! > %s"

PR_SET_CHILD_SUBREAPER = 36

# A minimal daemon: connects (starting the monitor), registers a sleeper,
# prints the pids, and keeps its reactor running until it is killed.
DAEMON = """
import os, sys
from twisted.internet import reactor, defer
from containerd_tx.monitor_client.client import MonitorClient

async def main(state_dir):
    client = await MonitorClient.connect(reactor, state_dir, idle_exit=0)
    pid_file = os.path.join(state_dir, "s.pid")
    result = await client.spawn(
        ["/bin/sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $! > " + pid_file],
        pid_file=pid_file,
        register={"container": "c1", "process": "init", "record_dir": state_dir},
    ).result
    print(client.monitor_pid, result.pid, flush=True)

defer.ensureDeferred(main(sys.argv[1])).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
reactor.run()
"""


async def wait_until(predicate, timeout=10.0, message="condition"):
    """
    Poll C{predicate} from the reactor (never blocking it) until true.
    """
    deadline = reactor.seconds() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError("timed out waiting for %s" % (message,))
        await deferLater(reactor, 0.01, lambda: None)


class MonitorClientTests(unittest.TestCase):
    """
    L{MonitorClient} with a real monitor.
    """

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="monc-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.clients = []
        self.watchers = []
        self.addCleanup(lambda: defer.ensureDeferred(self._stop_all()))

    async def _stop_all(self):
        """
        Close clients, kill what the monitors run, check they reap it, stop
        the monitors we started and wait until they are reaped.
        """
        for client in self.clients:
            await client.disconnect()
        for watcher in self.watchers:
            if watcher.ended or watcher.pid is None:
                continue

            def reaped(root=watcher.pid):
                found = descendants(root)
                for pid, state in found.items():
                    if state != "Z":
                        os.kill(pid, signal.SIGKILL)
                return not found

            await wait_until(reaped, message="monitor's descendants reaped")
            os.kill(watcher.pid, signal.SIGTERM)
        for watcher in self.watchers:
            await watcher.whenEnded()

    async def connect(self, cls=MonitorClient, **kwargs):
        kwargs.setdefault("python", PYTHON)
        kwargs.setdefault("idle_exit", 0)
        client = await cls.connect(reactor, self.dir, **kwargs)
        self.clients.append(client)
        if client.monitor_process is not None:
            self.watchers.append(client.monitor_process)
        return client

    def sleeper(self, client, container="c1", process="init"):
        pid_file = os.path.join(self.dir, "%s-%s.pid" % (container, process))
        return client.spawn(
            [SH, "-c", SLEEPER % (pid_file,)],
            pid_file=pid_file,
            register={"container": container, "process": process, "record_dir": self.dir},
        )

    async def test_connect_starts_monitor(self):
        """
        With nothing listening, connect starts the monitor (posix_spawn,
        stderr to monitor.log, own session) and says hello; the next connect
        reuses it.
        """
        def no_fork():
            raise AssertionError("the monitor must be started with posix_spawn, not fork")

        self.patch(os, "fork", no_fork)
        client = await self.connect()
        with open(os.path.join(self.dir, "monitor.pid")) as f:
            self.assertEqual(int(f.read()), client.monitor_pid)
        self.assertEqual(client.monitor_process.pid, client.monitor_pid)
        self.assertEqual(client.processes, [])
        self.assertEqual(os.getsid(client.monitor_pid), client.monitor_pid)
        self.assertEqual(proc_table()[client.monitor_pid][0], os.getpid())
        with open(os.path.join(self.dir, "monitor.log")) as f:
            self.assertIn("ready on %s/monitor.sock" % (self.dir,), f.read())
        self.assertTrue(stat.S_ISSOCK(os.stat(os.path.join(self.dir, "monitor.sock")).st_mode))
        await client.disconnect()
        again = await self.connect()
        self.assertIsNone(again.monitor_process)
        self.assertEqual(again.monitor_pid, client.monitor_pid)

    async def test_stale_files(self):
        """
        A socket and pid file left by a dead monitor do not stop connect
        from starting a new one.
        """
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(os.path.join(self.dir, "monitor.sock"))
        stale.close()
        with open(os.path.join(self.dir, "monitor.pid"), "w") as f:
            f.write("999999\n")
        client = await self.connect()
        self.assertIsNotNone(client.monitor_process)
        with open(os.path.join(self.dir, "monitor.pid")) as f:
            self.assertEqual(int(f.read()), client.monitor_pid)

    async def test_monitor_survives_daemon(self):
        """
        SIGTERM to the daemon's whole process group and SIGKILL of the
        daemon do not reach the monitor (own session); its container process
        keeps running and a new client finds it.
        """
        libc = ctypes.CDLL(None, use_errno=True)
        # The monitor is orphaned when the daemon dies: become its subreaper
        # so that it can be reaped here, instead of by a PID 1 that never does.
        # Left on afterwards: other tests in this process rely on it (turning it off sent a later test's orphans
        # to PID 1).
        self.assertEqual(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0)
        top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=top)
        daemon = subprocess.Popen(
            [PYTHON, "-c", DAEMON, self.dir], stdout=subprocess.PIPE, env=env, start_new_session=True
        )
        self.addCleanup(daemon.wait)
        self.addCleanup(lambda: daemon.poll() is None and daemon.kill())
        output = []
        line = await wait_until(lambda: _read_line(daemon.stdout, output), message="daemon ready")
        monitor_pid, sleeper_pid = map(int, line.split())

        def reap_monitor():
            if alive(monitor_pid):
                os.kill(monitor_pid, signal.SIGTERM)
            try:
                return os.waitpid(monitor_pid, os.WNOHANG)[0] == monitor_pid
            except ChildProcessError:
                return True

        self.addCleanup(lambda: defer.ensureDeferred(wait_until(reap_monitor, message="monitor reaped")))
        self.addCleanup(lambda: alive(sleeper_pid) and os.kill(sleeper_pid, signal.SIGKILL))
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.kill()
        daemon.wait()
        await wait_until(lambda: proc_table()[monitor_pid][0] == os.getpid(), message="monitor reparented")
        self.assertTrue(alive(monitor_pid))
        self.assertTrue(alive(sleeper_pid))
        self.assertEqual(proc_table()[sleeper_pid][0], monitor_pid)
        client = Client(os.path.join(self.dir, "monitor.sock"))
        self.addCleanup(client.close)
        self.assertEqual(
            described(client.request("hello")["processes"]),
            [{"container": "c1", "process": "init", "pid": sleeper_pid, "tty": False, "record_dir": self.dir,
              "fostered": False}],
        )
        os.kill(sleeper_pid, signal.SIGKILL)
        self.assertEqual(client.event(event="exit")["status"], 137)

    async def test_spawn_capture(self):
        """
        A captured spawn reports its pid when started, then status and bytes.
        """
        client = await self.connect()
        spawn = client.spawn([SH, "-c", "printf 'out\\377'; echo err >&2; exit 7"], capture=True)
        pid = await spawn.started
        self.assertIsInstance(pid, int)
        result = await spawn.result
        self.assertEqual(result, SpawnResult(7, b"out\xff", b"err\n", None))

    async def test_spawn_unannounced(self):
        """
        C{announce=False}: the monitor says nothing until the command ends; C{started} then fires with None,
        and the result is the same.
        """
        client = await self.connect()
        spawn = client.spawn([SH, "-c", "printf out; exit 7"], capture=True, announce=False)
        self.assertIsNone(await spawn.started)
        self.assertEqual(await spawn.result, SpawnResult(7, b"out", b"", None))

    async def test_spawn_failure(self):
        """
        A spawn the monitor cannot start fails with its message; C{started}
        fires with None.
        """
        client = await self.connect()
        spawn = client.spawn([SH, "-c", "exit 0"], stdout=self.dir)
        self.assertIsNone(await spawn.started)
        error = await self.assertFailure(spawn.result, MonitorError)
        self.assertEqual(str(error), "cannot open stdout %s: Is a directory" % (self.dir,))

    async def test_kill(self):
        """
        Spawn.kill signals the running command; afterwards it is an error.
        """
        client = await self.connect()
        spawn = client.spawn(["/bin/sleep", "30"])
        pid = await spawn.started
        self.assertTrue(alive(pid))
        await spawn.kill(signal.SIGTERM)
        self.assertEqual((await spawn.result).status, 143)
        error = await self.assertFailure(spawn.kill(), MonitorError)
        self.assertEqual(str(error), "no running spawn with tag %d" % (spawn.tag,))

    async def test_exit_notification(self):
        """
        A registered process's exit reaches the handler given to
        report_exits_to with the exact status, after its record is on disk.
        """
        client = await self.connect()
        exits = []
        seen_record = []
        record = os.path.join(self.dir, "exit-init.json")
        client.report_exits_to(lambda e: (exits.append(e), seen_record.append(os.path.exists(record))))
        result = await self.sleeper(client).result
        self.assertEqual(result.status, 0)
        self.assertEqual(proc_table()[result.pid][0], client.monitor_pid)
        os.kill(result.pid, signal.SIGKILL)
        await wait_until(lambda: exits, message="exit notification")
        self.assertEqual(
            {k: exits[0][k] for k in ("event", "container", "process", "pid", "status")},
            {"event": "exit", "container": "c1", "process": "init", "pid": result.pid, "status": 137},
        )
        self.assertEqual(seen_record, [True])

    async def test_reconnect(self):
        """
        After the daemon disconnects, the monitor keeps the process; a new
        client sees it in hello and gets its exit.
        """
        lost = []
        client = await self.connect(on_lost=lost.append)
        monitor_pid = client.monitor_pid
        pid = (await self.sleeper(client).result).pid
        await client.disconnect()
        self.assertEqual(lost, [])  # a deliberate disconnect is not a loss
        await self.assertFailure(client.forget("c1", "init"), MonitorLost)
        self.assertTrue(alive(monitor_pid))
        again = await self.connect()
        self.assertEqual(again.monitor_pid, monitor_pid)
        self.assertEqual(described(again.processes), [{"container": "c1", "process": "init", "pid": pid, "tty": False,
                                                       "record_dir": self.dir, "fostered": False}])
        exits = []
        again.report_exits_to(exits.append)
        os.kill(pid, signal.SIGTERM)
        await wait_until(lambda: exits, message="exit notification")
        self.assertEqual(exits[0]["status"], 143)

    async def test_monitor_lost(self):
        """
        When the monitor dies, pending requests and spawns fail with
        MonitorLost and on_lost is called.
        """
        lost = []
        client = await self.connect(on_lost=lost.append)
        watcher = client.monitor_process
        os.kill(client.monitor_pid, signal.SIGSTOP)
        pending = client.close_stdin("c1", "init")
        spawn = client.spawn(["/bin/sleep", "30"])
        os.kill(client.monitor_pid, signal.SIGKILL)
        await self.assertFailure(pending, MonitorLost)
        await self.assertFailure(spawn.result, MonitorLost)
        self.assertIsNone(await spawn.started)
        self.assertEqual(len(lost), 1)
        await watcher.whenEnded()
        later = client.spawn(["/bin/true"])
        await self.assertFailure(later.result, MonitorLost)

    async def test_concurrent_connect(self):
        """
        Two connects racing on a fresh state dir end up on one monitor.
        """
        first, second = await defer.gatherResults(
            [defer.ensureDeferred(self.connect()), defer.ensureDeferred(self.connect())]
        )
        self.assertEqual(first.monitor_pid, second.monitor_pid)
        monitors = [
            p
            for p in proc_table()
            if p != os.getpid() and _cmdline(p).endswith("--state-dir\0%s\0--idle-exit\x000.0" % (self.dir,))
        ]
        self.assertEqual(monitors, [first.monitor_pid])

    async def test_idle_exit_and_restart(self):
        """
        A monitor with nothing to do exits; the next connect starts another.
        """
        client = await self.connect(idle_exit=0.2)
        watcher = client.monitor_process
        await client.disconnect()
        await watcher.whenEnded()
        self.assertFalse(os.path.exists(os.path.join(self.dir, "monitor.sock")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "monitor.pid")))
        again = await self.connect()
        self.assertIsNotNone(again.monitor_process)
        self.assertNotEqual(again.monitor_pid, client.monitor_pid)

    async def test_requests(self):
        """
        resize, close_stdin, adopt and forget reach the monitor; failures come
        back as MonitorError with the monitor's message.
        """
        client = await self.connect()
        await self.sleeper(client).result
        error = await self.assertFailure(client.resize("c1", "init", 80, 24), MonitorError)
        self.assertEqual(str(error), "process init of container c1 has no terminal")
        error = await self.assertFailure(client.close_stdin("c1", "nope"), MonitorError)
        self.assertEqual(str(error), "no such process nope of container c1")
        self.assertTrue((await client.close_stdin("c1", "init"))["ok"])

        sleeper = subprocess.Popen(["/bin/sleep", "30"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        reply = await client.adopt("c2", "init", sleeper.pid, self.dir)
        self.assertEqual(reply["pid"], sleeper.pid)
        await client.forget("c2", "init")
        other = await self.connect()
        self.assertEqual([p["container"] for p in other.processes], ["c1"])
        error = await self.assertFailure(other.adopt("c3", "init", 2**22 + 12345, self.dir), MonitorError)
        self.assertIn("is not alive", str(error))

    async def test_connect_defaults(self):
        """
        Without the keywords, connect leaves the client as it was: nobody told of a loss, no takeover, no
        request timeout, no exit handler, and no upgrade asked for.
        """
        client = await self.connect(cls=RecordingClient)
        self.assertEqual((client.on_lost, client.survive, client.timeout, client.on_exit), (None, False, None, None))
        self.assertEqual(client.upgraded_with, [])
        self.assertNotIn("start_by_ns", client.sent[-1])

    async def test_connect_configures(self):
        """
        connect sets on_lost and survive before the upgrade, and the request timeout only after it: the
        upgrade (a re-execution) is not subject to the watchdog, the requests after it are.
        """
        lost = []
        client = await self.connect(cls=RecordingClient, on_lost=lost.append, survive=True, request_timeout=2.5,
                                    upgrade=True)
        self.assertEqual(client.upgraded_with, [(lost.append, True, None)])
        self.assertEqual((client.on_lost, client.survive, client.timeout), (lost.append, True, 2.5))
        self.assertNotIn("start_by_ns", client.sent[-1])  # the hello
        result = await client.spawn([SH, "-c", "true"], capture=True).result
        self.assertEqual(result.status, 0)
        self.assertEqual(client.sent[-1]["op"], "spawn")
        self.assertIn("start_by_ns", client.sent[-1])

    async def test_connect_upgrade_fails(self):
        """
        An upgrade that fails fails the connect, and the client it made is disconnected (nobody else holds it).
        """
        made = []

        class Failing(RecordingClient):
            def __init__(self, *args):
                super().__init__(*args)
                made.append(self)

            async def upgrade(self):
                raise MonitorError("no upgrade today")

        with self.assertRaises(MonitorError):
            await self.connect(cls=Failing, upgrade=True, request_timeout=2.5)
        [client] = made
        if client.monitor_process is not None:
            self.watchers.append(client.monitor_process)
        await client._connection.whenLost()
        self.assertEqual((client._connected, client.timeout), (False, None))


class RecordingClient(MonitorClient):
    """
    A L{MonitorClient} that records, when L{upgrade} is called, its C{(on_lost, survive, timeout)}, and every
    message it sends on any of its connections (pings aside).
    """

    def __init__(self, reactor, connection, state_dir):
        self.upgraded_with = []
        self.sent = []
        super().__init__(reactor, connection, state_dir)
        self._record(connection)

    def _attach(self, connection):
        self._record(connection)
        super()._attach(connection)

    def _record(self, connection):
        send = connection.send

        def recorded(message):
            if message.get("op") != "ping":
                self.sent.append(message)
            return send(message)

        connection.send = recorded

    async def upgrade(self):
        self.upgraded_with.append((self.on_lost, self.survive, self.timeout))
        return await super().upgrade()


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % (pid,)) as f:
            return f.read().rstrip("\0")
    except OSError:
        return ""


def _read_line(stream, chunks):
    """
    Accumulate what the pipe holds in C{chunks} without blocking; return
    the first complete line, or None.
    """
    os.set_blocking(stream.fileno(), False)
    try:
        data = os.read(stream.fileno(), 4096)
    except BlockingIOError:
        data = b""
    chunks.append(data)
    joined = b"".join(chunks)
    return joined.split(b"\n", 1)[0] if b"\n" in joined else None


class _Recorder:
    """Stands for the L{MonitorClient} behind a connection: what it was handed."""

    def __init__(self):
        self.messages = []
        self.lost = []

    def _message(self, message):
        self.messages.append(message)

    def _connectionLost(self, reason):
        self.lost.append(reason)


class MonitorConnectionTests(unittest.SynchronousTestCase):
    """
    L{MonitorConnection}: the monitor's lines, bounded, and the fds that come with them.
    """

    def setUp(self):
        from twisted.internet.testing import StringTransport

        self.connection = MonitorConnection()
        self.client = self.connection.client = _Recorder()
        self.transport = StringTransport()
        self.connection.makeConnection(self.transport)

    def test_lines_across_reads(self):
        """
        A line is delivered once its end has come, however many reads it took; several lines in one read are
        delivered in order.
        """
        long_line = json.dumps({"tag": 1, "stdout": "x" * (1024 * 1024)}).encode()
        chunks = [long_line[i:i + 65536] for i in range(0, len(long_line), 65536)]
        for chunk in chunks[:-1]:
            self.connection.dataReceived(chunk)
        self.assertEqual(self.client.messages, [])
        self.connection.dataReceived(chunks[-1] + b'\n{"tag": 2}\n{"event": "exit"')
        self.assertEqual(self.client.messages, [json.loads(long_line), {"tag": 2}])
        self.connection.dataReceived(b', "pid": 3}\n')
        self.assertEqual(self.client.messages[2:], [{"event": "exit", "pid": 3}])
        self.assertFalse(self.transport.disconnecting)

    def test_line_too_long(self):
        """A line longer than MAX_LENGTH is not kept: the connection is dropped."""
        self.connection.MAX_LENGTH = 1000
        self.connection.dataReceived(b'{"tag": 1, "stdout": "' + b"x" * 600)
        self.assertFalse(self.transport.disconnecting)
        self.connection.dataReceived(b"x" * 600)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.client.messages, [])
        self.assertEqual(MonitorConnection.MAX_LENGTH, MAX_LINE)
        self.assertGreater(MAX_LINE, 2 * 4 * 16 * 1024 * 1024 // 3)

    def test_not_json(self):
        """A line that is not JSON is logged and skipped; the next one is delivered."""
        self.connection.dataReceived(b'garbage\n{"tag": 5}\n')
        self.assertEqual(self.client.messages, [{"tag": 5}])

    def test_fds_in_order(self):
        """Received fds are queued close-on-exec, in order, and taken by count; the rest closed at the end."""
        fds = [os.dup(0) for _ in range(3)]
        for fd in fds:
            os.set_inheritable(fd, True)
            self.connection.fileDescriptorReceived(fd)
        self.assertEqual(self.connection.take_fds(2), fds[:2])
        self.assertFalse(os.get_inheritable(fds[0]))
        for fd in fds[:2]:
            os.close(fd)
        self.connection.connectionLost(None)
        self.assertRaises(OSError, os.fstat, fds[2])
        self.assertEqual(self.client.lost, [None])

    def test_send(self):
        """A message goes out as one compact JSON line."""
        self.connection.send({"op": "hello", "tag": 1})
        self.assertEqual(self.transport.value(), b'{"op":"hello","tag":1}\n')
