"""
End-to-end tests' common ground: C{ctr} run as a subprocess, exactly as a user runs it, against a real
daemon subprocess (L{tests.support.daemon.Daemon}) with busybox bundles.

Each test gets its own daemon, state dir and rootfs; the harness removes every container when the test
ends, pass or fail. Background ctr processes and tmux servers a test starts are ended in its clean-ups.
"""

import json
import os
import queue
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time

from twisted.trial.unittest import SkipTest, TestCase

from tests.support import bundles, processes
from tests.support.daemon import Daemon, wait_for

#: The working tree, so that the ctr under test is the one run.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: How ctr is run: the module of the working tree, with the interpreter running the tests.
CTR = [sys.executable, "-m", "ctr.main"]

#: Init processes: one that sleeps (and, as PID 1, ignores TERM), one that ends on TERM with status 0 (it
#: touches /tmp/trapped once its trap is set: PID 1 ignores a TERM that comes before).
SLEEPER = ("sleep", "1000")
TRAPPER = ("sh", "-c", 'trap "exit 0" TERM; touch /tmp/trapped; while true; do sleep 0.1; done')


def ctr_env(**extra):
    """The environment ctr runs in: ours, without CONTAINERD_ADDRESS, with the working tree importable."""
    env = {k: v for k, v in os.environ.items() if k != "CONTAINERD_ADDRESS"}
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


def run_ctr(args, address=None, input=None, timeout=60, env=None):
    """
    Run ctr to its end.

    @param address: passed as --address when given.
    @param input: bytes or str for its stdin (else /dev/null).
    @return: a L{subprocess.CompletedProcess} with text stdout and stderr.
    """
    prefix = ["--address", address] if address else []
    if isinstance(input, str):
        input = input.encode()
    stdin = None if input is not None else subprocess.DEVNULL
    done = subprocess.run(CTR + prefix + list(args), input=input, stdin=stdin, capture_output=True, timeout=timeout,
                          cwd=REPO, env=env or ctr_env())
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                       done.stderr.decode(errors="replace"))


def json_lines(text):
    """@return: the objects of ctr's JSON output: one per line, one line per item."""
    return [json.loads(line) for line in text.splitlines()]


def now_stamp():
    """The current time as ctr's --since takes it (unix seconds with nanoseconds)."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return f"{seconds}.{nanos:09d}"


class LineReader:
    """The lines a background process prints, read in a thread; L{next_matching} waits for one."""

    def __init__(self, stream):
        self._lines = queue.Queue()
        self.seen = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in iter(stream.readline, b""):
            self._lines.put(line.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def next_matching(self, predicate, timeout=20.0):
        """@return: the next line for which C{predicate} is true; AssertionError after C{timeout} or at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching line within {timeout}s; saw {self.seen!r}")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"output ended without a matching line; saw {self.seen!r}")
            self.seen.append(line)
            if predicate(line):
                return line


#: Container ids the tests use, as attributes (C{self.box}): each test gets them with its own suffix.
NAMES = ("box", "busy", "cat", "clone", "five", "origin", "shortlived", "sleeper", "talker", "trapper", "ttybox",
         "web")


class CtrTestCase(TestCase):
    """
    A real daemon, a busybox rootfs, and ctr as a subprocess.

    Container ids are unique to the test (C{self.box} is C{box-<6 hex digits>}): runc puts a container
    whose bundle names no cgroupsPath in the cgroups C{/<id>}, which another daemon's container of the
    same id (another suite running at the same time) would share.
    """

    def setUp(self):
        suffix = secrets.token_hex(3)
        for name in NAMES:
            setattr(self, name, f"{name}-{suffix}")
        self.daemon = Daemon.for_test(self)
        self.rootfs = bundles.make_rootfs(os.path.join(self.daemon.workdir, "rootfs"))
        self._bundles = 0

    def bundle(self, *args, **kw):
        """A new bundle whose init runs C{args} (keywords as L{bundles.make_bundle})."""
        self._bundles += 1
        return bundles.make_bundle(os.path.join(self.daemon.workdir, f"bundle{self._bundles}"), args, self.rootfs,
                                   **kw)

    def ctr(self, *args, **kw):
        """Run ctr against this test's daemon; see L{run_ctr}."""
        return run_ctr(args, self.daemon.address, **kw)

    def ctr_ok(self, *args, **kw):
        """Run ctr; it must succeed with nothing on stderr. @return: its stdout."""
        done = self.ctr(*args, **kw)
        self.assertEqual((done.returncode, done.stderr), (0, ""), f"ctr {shlex.join(args)}: {done.stdout}")
        return done.stdout

    def ctr_background(self, *args):
        """Start ctr in the background (stdout piped, read by a L{LineReader}); it is killed at clean-up."""
        process = subprocess.Popen(CTR + ["--address", self.daemon.address] + list(args), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO, env=ctr_env())
        self.addCleanup(_end, process)
        return process, LineReader(process.stdout)

    def start(self, container_id, *args, **kw):
        """C{ctr containers start} a container running C{args}; @return: its bundle."""
        bundle = self.bundle(*args, **kw)
        self.assertEqual(self.ctr_ok("containers", "start", container_id, bundle), "")
        return bundle

    def listed(self):
        """@return: C{ctr containers --format json}, by id."""
        return {c["id"]: c for c in json_lines(self.ctr_ok("containers", "list", "--format", "json"))}

    def pid1(self, container_id):
        """@return: the host pid of a container's init, from ctr."""
        return self.listed()[container_id]["pid1"]

    def stored_events(self, since, container_id=""):
        """@return: the stored events newer than C{since}, as the dicts of C{ctr events --format json}."""
        args = ["events", "--since", since, "--stored-only", "--format", "json"]
        if container_id:
            args += ["--id", container_id]
        return json_lines(self.ctr_ok(*args))

    def wait_exit(self, since, container_id, pid="init", timeout=20.0):
        """@return: the C{exit} event of a process (from C{ctr events --stored-only}), waiting for it."""
        def find():
            for event in self.stored_events(since, container_id):
                if event["type"] == "exit" and event["pid"] == pid:
                    return event
            return None

        return wait_for(find, timeout, interval=0.2, message=f"the exit of {container_id}/{pid}")

    def cgroup_file(self, pid, subsystem, name):
        """@return: the content of a cgroup v1 file of process C{pid}."""
        return processes.cgroup_file(pid, subsystem, name)


_end = processes.end


class Tmux:
    """
    A private tmux server (its own socket) with one session running an interactive bash whose prompt is
    C{host$ }: keys are typed into it and the screen read back. The server is killed at clean-up.
    """

    PROMPT = "host$ "

    def __init__(self, testcase, directory, width=120, height=40):
        if shutil.which("tmux") is None:
            raise SkipTest("tmux is not installed")
        self.socket = os.path.join(directory, "tmux.sock")
        self.session = "ctr"
        shell = shlex.join(["env", f"PS1={self.PROMPT}", f"PYTHONPATH={REPO}", "bash", "--norc", "--noprofile", "-i"])
        self._tmux("-f", "/dev/null", "new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height),
                   "-c", REPO, shell)
        testcase.addCleanup(self.kill)
        self.wait_for(lambda screen: screen.rstrip().endswith(self.PROMPT.rstrip()), "the first prompt")

    def _tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.socket] + list(args), capture_output=True, text=True, timeout=10,
                              env=ctr_env())

    def type(self, text):
        """Type C{text} and Enter."""
        self._tmux("send-keys", "-t", self.session, "-l", text)
        self._tmux("send-keys", "-t", self.session, "Enter")

    def screen(self):
        """@return: the pane's text, wrapped lines joined."""
        return self._tmux("capture-pane", "-p", "-J", "-t", self.session).stdout

    def resize(self, width, height):
        """Resize the window (the pane's terminal gets SIGWINCH)."""
        self._tmux("resize-window", "-t", self.session, "-x", str(width), "-y", str(height))

    def wait_for(self, predicate, message, timeout=20.0):
        """@return: the screen once C{predicate(screen)} is true; AssertionError with the screen otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {message}; the screen:\n{screen}")
            time.sleep(0.1)

    def wait_for_text(self, pattern, message=None, timeout=20.0):
        """@return: the first match of the regular expression C{pattern} on the screen, waiting for it."""
        found = []

        def match(screen):
            found[:] = [re.search(pattern, screen, re.MULTILINE)]
            return found[0] is not None

        self.wait_for(match, message or repr(pattern), timeout)
        return found[0]

    def kill(self):
        """End the tmux server (and the shells in it)."""
        self._tmux("kill-server")
