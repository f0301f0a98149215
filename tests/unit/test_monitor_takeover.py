"""
Monitor death survived, at the monitor's level: splice pumps hold no byte in memory, the monitor hands a copy
of every stdio fd to its daemon, and a second monitor given those fds goes on without a byte lost or doubled.
"""

import array
import json
import os
import signal
import socket
import time

from twisted.trial import unittest

from containerd_tx.monitor_client import takeover
from containerd_tx.monitor.loop import Loop
from containerd_tx.monitor.pumps import SplicePump
from containerd_tx.monitor.stdio import open_stdio
from tests.support import processes
from tests.support.daemon import wait_for
from tests.unit.test_monitord import SH, Client, Monitor, mkfifo


class FdClient(Client):
    """The test client, also receiving the fds that come with messages (as the daemon does)."""

    def __init__(self, path):
        super().__init__(path)
        self.fds = []

    def receive(self):
        data, ancdata, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(253 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % 4])
                self.fds.extend(fds)
        return data

    def read_message(self, timeout=10.0):
        message = super().read_message(timeout)
        if message.get("event") == "fds":
            names = message["names"]
            message["fds"] = dict(zip(names, self.fds[: len(names)]))
            del self.fds[: len(names)]
        return message

    def send_with_fds(self, op, fds, **fields):
        self.tag += 1
        data = json.dumps(dict(fields, op=op, tag=self.tag)).encode() + b"\n"
        self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
        return self.reply(self.tag)


class SplicePumpTests(unittest.TestCase):

    def setUp(self):
        self.loop = Loop()
        self.addCleanup(self.loop.selector.close)

    def spin(self, times=5):
        for _ in range(times):
            self.loop.run_once(0.01)

    def test_full_destination_leaves_bytes_in_the_pipe(self):
        """
        While the destination FIFO is full, the bytes wait in the source pipe (nothing in the monitor's
        memory); drained, every byte arrives once and in order.
        """
        src_r, src_w = os.pipe()
        dst_r, dst_w = os.pipe()
        os.set_blocking(src_w, False)
        os.set_blocking(dst_r, False)
        pump = SplicePump(self.loop, src_r, dst_w, "test")
        pump.on_src_end = lambda error: pump.close_input(close_dst=True)
        sent = bytearray()
        for i in range(200000):
            line = b"%d\n" % (i,)
            try:
                os.write(src_w, line)
            except BlockingIOError:
                break
            sent += line
            if i % 1000 == 0:
                self.spin(1)
        self.spin()
        self.assertEqual(pump._waiting, "dst")  # the destination is full
        self.assertGreater(len(sent), 65536)  # more than the destination holds: the rest waits in the source
        received = bytearray()
        deadline = time.monotonic() + 10
        while len(received) < len(sent) and time.monotonic() < deadline:
            try:
                received += os.read(dst_r, 1 << 16)
            except BlockingIOError:
                pass
            self.spin(1)
        self.assertEqual(bytes(received), bytes(sent))
        os.close(src_w)
        self.spin()
        self.assertFalse(pump.is_open())  # EOF: both ends closed
        self.assertEqual(os.read(dst_r, 10), b"")
        os.close(dst_r)

    def test_file_destination(self):
        """A file opened by open_stdio (no O_APPEND) gets the bytes after what it held."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"before\n")
        dst, _ = open_stdio(path, "stdout")
        src_r, src_w = os.pipe()
        pump = SplicePump(self.loop, src_r, dst, "test")
        pump.on_src_end = lambda error: pump.close_input(close_dst=True)
        os.write(src_w, b"after\n")
        os.close(src_w)
        self.spin()
        self.assertFalse(pump.is_open())
        self.assertIsNone(pump.fallback)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"before\nafter\n")


class TakeoverTests(unittest.TestCase):

    def test_second_monitor_goes_on(self):
        """
        A process writes numbered lines to a FIFO; its monitor is SIGKILLed; a second monitor given the fds
        (takeover) goes on: no line lost or doubled, and the FIFO's reader never sees EOF meanwhile.
        The process, re-parented to this test (a subreaper, as the daemon is), is reaped here with its
        true status.
        """
        processes.become_subreaper()
        first = Monitor(self)
        client = FdClient(first.sock)
        first.clients.append(client)
        fifo = mkfifo(first.dir, "out")
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        pid_file = os.path.join(first.dir, "w.pid")
        # It writes until told to stop, after the takeover: however slow this machine, the kill lands mid-stream.
        stop_file = os.path.join(first.dir, "stop")
        script = "i=0; while [ ! -e %s ]; do echo $i; i=$((i+1)); sleep 0.005; done; echo end; exit 7" % (stop_file,)
        reply = client.spawn([SH, "-c", "(%s) & echo $! > %s" % (script, pid_file)], pid_file=pid_file,
                             stdout=fifo, register={"container": "c1", "process": "init", "record_dir": first.dir})
        self.assertEqual(reply["status"], 0)
        pid = reply["pid"]
        fdset = client.event(event="fds", container="c1")
        self.assertEqual(sorted(fdset["fds"]), ["stdout_dst", "stdout_src"])
        self.assertEqual(fdset["pid"], pid)
        got = bytearray()

        def read():
            try:
                chunk = os.read(reader, 1 << 16)
            except BlockingIOError:
                return
            self.assertNotEqual(chunk, b"", "EOF while the process writes")
            got.extend(chunk)

        wait_for(lambda: read() or got.count(b"\n") > 50, message="lines through the first monitor")
        os.kill(first.pid, signal.SIGKILL)
        first.popen.wait()
        try:
            wait_for(lambda: (takeover.proc_stat(pid) or (None, None))[1] == os.getpid(), timeout=30,
                     message="the writer re-parented here")
        except AssertionError as e:
            lines = got.count(b"\n")
            raise AssertionError(f"{e}: the writer {pid} is {takeover.proc_stat(pid)} (state, parent), this test is "
                                 f"{os.getpid()}, {lines} lines read") from None
        read()
        second = Monitor(self, state_dir=first.dir)
        client2 = FdClient(second.sock)
        second.clients.append(client2)
        client2.request("hello")
        names = sorted(fdset["fds"])
        entry = {key: fdset[key] for key in ("set", "container", "process", "pid", "record_dir", "tty",
                                             "exited")}
        reply = client2.send_with_fds("takeover", [fdset["fds"][n] for n in names],
                                      sets=[dict(entry, names=names)])
        self.assertTrue(reply["ok"], reply)
        for fd in fdset["fds"].values():
            os.close(fd)
        self.assertEqual(client2.request("hello")["processes"][0]["fostered"], True)
        before_stop = got.count(b"\n")
        wait_for(lambda: read() or got.count(b"\n") > before_stop + 50, timeout=60,
                 message="lines through the second monitor")
        open(stop_file, "w").close()
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 7)
        self.assertTrue(client2.request("ended", container="c1", process="init", pid=pid)["ok"])
        # Its last line says it is done (this test holds copies of the FIFO's fds, so no EOF comes).
        wait_for(lambda: read() or got.endswith(b"end\n"), timeout=60, message="the last line")
        lines = got.decode().splitlines()
        self.assertEqual(lines[-1], "end")
        lines = lines[:-1]
        self.assertGreater(len(lines), before_stop)
        self.assertEqual(lines, [str(i) for i in range(len(lines))])


class ReexecTests(unittest.TestCase):

    def test_older_monitor_upgraded_in_place(self):
        """
        A monitor that says it speaks an older protocol re-executes itself in place when asked: same pid,
        its registered processes and fd sets kept, output flowing with no line lost or doubled, and an exit
        after the upgrade reported with its true status (the processes are still its children).
        """
        monitor = Monitor(self, args=("--protocol", "1"))
        client = FdClient(monitor.sock)
        monitor.clients.append(client)
        self.assertEqual(client.request("hello")["protocol"], 1)
        fifo = mkfifo(monitor.dir, "out")
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        pid_file = os.path.join(monitor.dir, "w.pid")
        script = "i=0; while [ $i -lt 300 ]; do echo $i; i=$((i+1)); sleep 0.005; done; exit 9"
        reply = client.spawn([SH, "-c", "(%s) & echo $! > %s" % (script, pid_file)], pid_file=pid_file,
                             stdout=fifo, register={"container": "c1", "process": "init", "record_dir": monitor.dir})
        pid = reply["pid"]
        got = bytearray()

        def read():
            try:
                got.extend(os.read(reader, 1 << 16))
            except BlockingIOError:
                pass

        wait_for(lambda: read() or got.count(b"\n") > 30, message="lines before the upgrade")
        self.assertTrue(client.request("reexec")["ok"])
        client.close()

        def connected():
            try:
                return FdClient(monitor.sock)
            except OSError:
                return None

        again = wait_for(connected, message="the re-executed monitor to listen")
        monitor.clients.append(again)
        hello = again.request("hello")
        self.assertEqual((hello["pid"], hello["protocol"]), (monitor.pid, 2))
        self.assertEqual([(p["container"], p["pid"], p["fostered"]) for p in hello["processes"]],
                         [("c1", pid, False)])
        self.assertEqual(again.event(event="fds", container="c1")["names"], ["stdout_dst", "stdout_src"])
        self.assertEqual(again.event(event="exit", container="c1", timeout=30)["status"], 9)
        wait_for(lambda: read() or got.count(b"\n") >= 300, message="every line")
        self.assertEqual(got.decode().splitlines(), [str(i) for i in range(300)])
        self.assertIn("re-executed: protocol 2, 1 processes", monitor.log())


class DaemonUpgradeTests(unittest.TestCase):

    async def _upgrade(self):
        from twisted.internet import reactor

        from containerd_tx.monitor_client.client import PROTOCOL, MonitorClient

        monitor = Monitor(self, args=("--protocol", "1"))
        blocking = monitor.connect()
        pid_file = os.path.join(monitor.dir, "s.pid")
        reply = blocking.spawn([SH, "-c", "sleep 1000 & echo $! > %s" % (pid_file,)],
                               pid_file=pid_file, stdout=os.path.join(monitor.dir, "out"),
                               register={"container": "c1", "process": "init", "record_dir": monitor.dir})
        pid = reply["pid"]
        self.addCleanup(lambda: processes.alive(pid) and os.kill(pid, signal.SIGKILL))
        blocking.close()
        client = await MonitorClient.connect(reactor, monitor.dir)
        self.addCleanup(client.disconnect)
        self.assertEqual(client.protocol, 1)
        self.assertTrue(await client.upgrade())
        self.assertEqual((client.monitor_pid, client.protocol), (monitor.pid, PROTOCOL))
        self.assertEqual([(p["container"], p["pid"]) for p in client.processes], [("c1", pid)])
        from twisted.internet.task import deferLater

        deadline = time.monotonic() + 10
        while not client.fdstore.sets and time.monotonic() < deadline:
            await deferLater(reactor, 0.02, lambda: None)  # the fd sets follow the hello reply
        [entry] = client.fdstore.sets.values()
        self.assertEqual((entry.pid, sorted(entry.fds)), (pid, ["stdout_dst", "stdout_src"]))
        exits = []
        client.report_exits_to(exits.append)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not exits and time.monotonic() < deadline:
            from twisted.internet.task import deferLater

            await deferLater(reactor, 0.02, lambda: None)
        self.assertEqual([(e["process"], e["status"]) for e in exits], [("init", 137)])

    async def _connect_upgrading(self):
        from twisted.internet import reactor

        from containerd_tx.monitor_client.client import PROTOCOL
        from tests.unit.test_monitor_client import RecordingClient

        monitor = Monitor(self, args=("--protocol", "1"))
        lost = []
        client = await RecordingClient.connect(reactor, monitor.dir, on_lost=lost.append, survive=True,
                                               request_timeout=5.0, upgrade=True)
        self.addCleanup(client.disconnect)
        self.assertEqual((client.monitor_pid, client.protocol), (monitor.pid, PROTOCOL))
        # The re-execution was asked for with on_lost and survive set and no request timeout yet.
        self.assertEqual(client.upgraded_with, [(lost.append, True, None)])
        ops = [(m["op"], "start_by_ns" in m) for m in client.sent]
        self.assertEqual(ops, [("hello", False), ("reexec", False), ("hello", False)])
        self.assertEqual((client.on_lost, client.survive, client.timeout), (lost.append, True, 5.0))
        await client.close_stdin("nope", "init").addErrback(lambda f: None)
        self.assertEqual((client.sent[-1]["op"], "start_by_ns" in client.sent[-1]), ("close_stdin", True))
        self.assertEqual(lost, [])

    def test_connect_upgrades_before_the_request_timeout(self):
        """
        connect(upgrade=True), as the daemon calls it, has an older monitor re-execute itself before the request
        timeout is set: neither the reexec nor the hello after it carries a deadline, the requests after do.
        """
        from twisted.internet import defer

        return defer.ensureDeferred(self._connect_upgrading())

    def test_newer_daemon_upgrades_older_monitor(self):
        """
        A newer daemon meeting an older monitor (its hello says protocol 1) has it re-execute itself in place:
        same pid, the registered process and its fds kept, its exit reported with its true status.
        """
        from twisted.internet import defer

        return defer.ensureDeferred(self._upgrade())
