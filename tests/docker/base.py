"""
The tier's test case: a shared containerd-tx + dockerd stack per test class, cleaned after every test.
"""

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time

from twisted.trial import unittest

from tests.docker import engine
from tests.docker.engine import IMAGE, poll


class DockerTestCase(unittest.TestCase):
    """
    Tests that drive the real engine. C{self.stack}, C{self.docker} (the L{engine.Engine}) and C{self.daemon}
    (the containerd-tx L{engine.TxDaemon}) are shared by the tests of one class; every test's clean-up
    removes what it made and checks that nothing is left in the daemon or the runtime.

    @cvar engine_flags: extra dockerd flags of this class's engine.
    """

    skip = engine.skip_reason()
    engine_flags = ()
    timeout = 600

    def setUp(self):
        key = (type(self).__module__, type(self).__qualname__, tuple(self.engine_flags))
        self.stack = engine.shared_stack(key, self.engine_flags)
        try:
            self.stack.ensure_running()
        except BaseException:
            engine.destroy_shared()
            raise
        self.docker = self.stack.engine
        self.daemon = self.stack.daemon
        self.addCleanup(self._reset)

    def _reset(self):
        try:
            self.stack.reset()
        except BaseException as e:
            # The next test gets a fresh stack; this one reports what was wrong.
            try:
                engine.destroy_shared()
            except AssertionError as cleanup:
                raise AssertionError(f"{e}\nthen, taking the stack down: {cleanup}") from e
            raise

    # Helpers.

    def run_detached(self, name, *command, options=()):
        """C{docker run -d --name <name> --net=none <options> busybox <command>}; the container's id."""
        return self.docker.run("run", "-d", "--name", name, "--net=none", *options, IMAGE, *command).out.strip()

    def gate(self, name):
        """A host folder to bind at C{/gate} (see L{engine.Stack.gate})."""
        return self.stack.gate(name)

    def wait_file(self, path, message=None):
        poll(lambda: os.path.exists(path), message=message or f"{path} to appear")

    def wait_state(self, name, predicate, message):
        """Poll the container's C{.State} until C{predicate(state)}; return it."""
        found = []

        def check():
            state = self.docker.state(name)
            found[:] = [state]
            return predicate(state)

        try:
            poll(check, interval=0.2, message=message)
        except AssertionError as e:
            raise AssertionError(f"{e}; last state {found[0] if found else None}")
        return found[0]


def resize(rows, cols):
    """An action for L{run_on_pty}: the terminal is resized (its foreground process gets SIGWINCH)."""
    def action(master):
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return action


class PtyResult:
    """A command run on a pty: C{rc} and everything it wrote (C{output}, bytes)."""

    def __init__(self, rc, output):
        self.rc, self.output = rc, output

    def __repr__(self):
        return f"rc {self.rc}, output {self.output!r}"


def run_on_pty(argv, env, interactions=(), rows=33, cols=101, timeout=120.0):
    """
    Run C{argv} with a fresh pty as its stdin, stdout and stderr (C{rows} x C{cols}), as a user at a terminal.

    @param interactions: (expected bytes, action) pairs, each done once its expected output has been seen:
        bytes are typed, a callable is called with the pty's master fd (see L{resize}).
    @return: a L{PtyResult} once the command has exited and its output is drained.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    finally:
        os.close(slave)
    output = b""
    pending = list(interactions)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if pending and pending[0][0] in output:
                action = pending.pop(0)[1]
                if callable(action):
                    action(master)
                else:
                    os.write(master, action)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{argv} on a pty did not finish within {timeout}s; output {output!r}")
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed
                    chunk = b""
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None and not pending:
                # Exited; whatever it wrote has been read (a grandchild may still hold the slave).
                break
        return PtyResult(proc.wait(timeout=max(1.0, deadline - time.monotonic())), output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
