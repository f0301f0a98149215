"""
Tests for L{ctr.stdio}: the FIFOs, raw mode, window size, and attaching with a terminal.
"""

import fcntl
import io
import os
import signal
import stat
import struct
import termios
import threading
import time

from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from ctr import client, stdio
from tests.unit.test_ctr_cli import FakeDaemon, make_event


def _pty(test, rows=40, columns=100):
    """A pty pair (master fd, slave fd) of the given size, closed at cleanup (master first)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    test.addCleanup(_close_pty, master, slave)
    return master, slave


def _wait_drained(fifo, timeout=30.0):
    """Block until the reader of C{fifo} (a writable FIFO file object) has taken every byte written to it."""
    fifo.flush()
    deadline = time.monotonic() + timeout
    while struct.unpack("i", fcntl.ioctl(fifo.fileno(), termios.FIONREAD, b"\0" * 4))[0]:
        if time.monotonic() > deadline:
            raise AssertionError(f"nobody read the FIFO within {timeout}s")
        time.sleep(0.005)


def _close_pty(master, slave):
    os.close(master)  # hangs up the slave, so a thread reading it returns
    for thread in threading.enumerate():
        if thread.name == "ctr-stdin":
            thread.join(5)
    os.close(slave)


def _canonical(fd):
    return bool(termios.tcgetattr(fd)[3] & termios.ICANON)


class FifosTests(TestCase):
    def test_createdPrivateAndRemoved(self):
        with stdio.Fifos() as fifos:
            paths = [fifos.stdin, fifos.stdout, fifos.stderr]
            self.assertEqual([os.path.dirname(p) for p in paths], [fifos.dir] * 3)
            for path in paths:
                mode = os.stat(path).st_mode
                self.assertTrue(stat.S_ISFIFO(mode))
                self.assertEqual(stat.S_IMODE(mode), 0o600)
            self.assertEqual(stat.S_IMODE(os.stat(fifos.dir).st_mode), 0o700)
        self.assertFalse(os.path.exists(fifos.dir))
        self.assertIsNone(fifos.stdout_fd)

    def test_outputEmptyUntilReleased(self):
        """Before release, a FIFO nobody wrote reads as empty, not at EOF; after it, EOF."""
        with stdio.Fifos() as fifos:
            self.assertRaises(BlockingIOError, os.read, fifos.stdout_fd, 10)
            writer = os.open(fifos.stdout, os.O_WRONLY)
            os.write(writer, b"hi")
            os.close(writer)
            self.assertEqual(os.read(fifos.stdout_fd, 10), b"hi")
            self.assertRaises(BlockingIOError, os.read, fifos.stdout_fd, 10)
            fifos.release()
            self.assertEqual(os.read(fifos.stdout_fd, 10), b"")

    def test_stdinOpensWithoutBlocking(self):
        with stdio.Fifos() as fifos:
            reader = os.open(fifos.stdin, os.O_RDONLY)  # would block if nobody held the FIFO
            os.write(fifos.stdin_fd, b"in")
            self.assertEqual(os.read(reader, 10), b"in")
            os.close(reader)
            os.close(fifos.take_stdin())
            self.assertIsNone(fifos.stdin_fd)


class RawTerminalTests(TestCase):
    def test_rawThenRestored(self):
        master, slave = _pty(self)
        before = termios.tcgetattr(slave)
        self.assertTrue(_canonical(slave))
        with stdio.raw_terminal(slave):
            self.assertFalse(_canonical(slave))
            self.assertFalse(termios.tcgetattr(slave)[3] & termios.ECHO)
        self.assertEqual(termios.tcgetattr(slave), before)

    def test_restoredOnError(self):
        master, slave = _pty(self)
        before = termios.tcgetattr(slave)
        with self.assertRaises(RuntimeError):
            with stdio.raw_terminal(slave):
                raise RuntimeError("boom")
        self.assertEqual(termios.tcgetattr(slave), before)


class ResizerTests(TestCase):
    def test_sendsSizeNowAndOnWinch(self):
        master, slave = _pty(self, rows=40, columns=100)
        sent = []
        changed = threading.Event()

        def send(width, height):
            sent.append((width, height))
            changed.set()

        resizer = stdio.Resizer(slave, send)
        resizer.start()
        self.addCleanup(resizer.stop)
        self.assertEqual(sent, [(100, 40)])
        changed.clear()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        os.kill(os.getpid(), signal.SIGWINCH)  # what the kernel sends a terminal's foreground process
        self.assertTrue(changed.wait(5))
        self.assertEqual(sent[-1], (132, 50))

    def test_stopRestoresHandler(self):
        master, slave = _pty(self)
        previous = signal.getsignal(signal.SIGWINCH)
        resizer = stdio.Resizer(slave, lambda width, height: None)
        resizer.start()
        self.assertIsNot(signal.getsignal(signal.SIGWINCH), previous)
        resizer.stop()
        self.assertIs(signal.getsignal(signal.SIGWINCH), previous)


class AttachTests(TestCase):
    """L{stdio.attach} called directly, as exec will call it, against the fake daemon."""

    def setUp(self):
        self.daemon = FakeDaemon()
        self.addCleanup(self.daemon.stop)
        self.client = client.connect(client.parse_address(self.daemon.address), 3)
        self.addCleanup(self.client.close)

    def test_tty(self):
        """With a terminal: raw mode while attached, the size sent after the start, settings restored."""
        master, slave = _pty(self, rows=40, columns=100)
        before = termios.tcgetattr(slave)
        local_in = io.FileIO(slave, "rb", closefd=False)
        out, err = io.BytesIO(), io.BytesIO()
        seen = {}

        def start(stdin, stdout, stderr):
            seen["raw"] = not _canonical(slave)
            seen["updates"] = list(self.daemon.api.requests_of("UpdateProcess"))
            with open(stdout, "wb") as fifo:
                fifo.write(b"hello\r\n")
            self.daemon.api.publish(make_event("exit", "web", pid="shell", status=7))

        status = stdio.attach(self.client.api, "web", "shell", start, tty=True, stdin=local_in, stdout=out,
                              stderr=err)
        self.assertEqual(status, 7)
        self.assertEqual(out.getvalue(), b"hello\r\n")
        self.assertTrue(seen["raw"])
        self.assertEqual(seen["updates"], [])  # the size is sent once the process exists
        self.assertIn(pb.UpdateProcessRequest(id="web", pid="shell", width=100, height=40),
                      self.daemon.api.requests_of("UpdateProcess"))
        self.assertEqual(termios.tcgetattr(slave), before)

    def test_startFails(self):
        """An error from the start call propagates; the terminal is restored and the FIFOs removed."""
        master, slave = _pty(self)
        before = termios.tcgetattr(slave)
        dirs = []

        def start(stdin, stdout, stderr):
            dirs.append(os.path.dirname(stdin))
            raise RuntimeError("start failed")

        with self.assertRaises(RuntimeError):
            stdio.attach(self.client.api, "web", "init", start, tty=True,
                         stdin=io.FileIO(slave, "rb", closefd=False), stdout=io.BytesIO(), stderr=io.BytesIO())
        self.assertEqual(termios.tcgetattr(slave), before)
        self.assertFalse(os.path.exists(dirs[0]))

    def test_runtimeOutputDroppedWhenStartFails(self):
        """
        What reaches the FIFOs before a failed start call (the runtime's own error, which the daemon's
        error repeats) is not shown.
        """
        def start(stdin, stdout, stderr):
            with open(stderr, "wb") as fifo:
                fifo.write(b"exec failed: executable file not found\n")
                _wait_drained(fifo)  # ctr's pump holds it now: only its handling decides what is shown
            raise RuntimeError("start failed")

        err = io.BytesIO()
        with self.assertRaises(RuntimeError):
            stdio.attach(self.client.api, "web", "p1", start, stdin=io.BytesIO(b""), stdout=io.BytesIO(), stderr=err)
        self.assertEqual(err.getvalue(), b"")

    def test_outputBeforeStartReturnsIsKept(self):
        """Output held back while the start call runs is shown, in order, once it succeeds."""
        def start(stdin, stdout, stderr):
            with open(stdout, "wb") as fifo:
                fifo.write(b"early\n")
                _wait_drained(fifo)  # read (and held back) while the start call still runs
                fifo.write(b"later\n")
            self.daemon.api.publish(make_event("exit", "web", pid="p1", status=0))

        out = io.BytesIO()
        status = stdio.attach(self.client.api, "web", "p1", start, stdin=io.BytesIO(b""), stdout=out,
                              stderr=io.BytesIO())
        self.assertEqual((status, out.getvalue()), (0, b"early\nlater\n"))

    def test_otherEventsIgnored(self):
        """Only the exit of the given process of the given container ends the attach."""
        def start(stdin, stdout, stderr):
            for event in (make_event("exit", "web", pid="other", status=1),
                          make_event("start-process", "web", pid="p1"),
                          make_event("exit", "web", pid="p1", status=4)):
                self.daemon.api.publish(event)

        status = stdio.attach(self.client.api, "web", "p1", start, stdin=io.BytesIO(b""), stdout=io.BytesIO(),
                              stderr=io.BytesIO())
        self.assertEqual(status, 4)

    def test_streamEndsFirst(self):
        self.daemon.api.end_after_live = True
        self.assertRaises(client.ClientError, stdio.attach, self.client.api, "web", "init",
                          lambda *paths: None, stdin=io.BytesIO(b""), stdout=io.BytesIO(), stderr=io.BytesIO())
