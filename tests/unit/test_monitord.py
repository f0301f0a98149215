# -*- test-case-name: tests.unit.test_monitord -*-
"""
Tests for L{containerd_tx.monitor.monitord}: the monitor process, driven over
its socket with a plain blocking client and real /bin/sh children (no runc).

Every test runs its own monitor in a temporary state dir; the cleanup kills
whatever the monitor still has as descendants, checks the monitor reaps them
all (no zombies left behind), then stops it.
"""

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

from twisted.trial import unittest

import containerd_tx
import containerd_tx.monitor
from containerd_tx import layout
from containerd_tx.monitor.loop import close_quietly, Loop
from containerd_tx.monitor.proxies import Proxies
from containerd_tx.monitor.pumps import Pump, PUMP_LIMIT
from containerd_tx.monitor.stdio import open_stdio, SharedOutputs, StdioError
from tests.support.daemon import wait_for

PYTHON = os.path.realpath(sys.executable)
MONITORD = os.path.join(os.path.dirname(containerd_tx.monitor.__file__), "monitord.py")
SH = "/bin/sh"


def proc_table():
    """
    @return: C{{pid: (ppid, state)}} for every process on the host.
    """
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % (name,), "rb") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()
        table[int(name)] = (int(fields[1]), fields[0].decode())
    return table


def descendants(root):
    """
    @return: C{{pid: state}} of every descendant of C{root} (zombies too).
    """
    table = proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = table[pid][1]
        todo.extend(children.get(pid, []))
    return found


def zombies_of(pid):
    """
    @return: pids of zombies whose parent is C{pid}.
    """
    return [p for p, (ppid, state) in proc_table().items() if ppid == pid and state == "Z"]


def read_file(path):
    """
    The bytes of C{path}, or None if it does not exist.
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def alive(pid):
    """
    True if C{pid} exists and is not a zombie.
    """
    entry = proc_table().get(pid)
    return entry is not None and entry[1] != "Z"


def described(processes):
    """
    The processes of a hello reply without their fd set ids (checked: one non-empty string each, all
    different).
    """
    ids = [p.pop("set") for p in processes]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids), ids
    return processes


class Client:
    """
    A blocking client for the monitor's protocol.
    """

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.tag = 0
        self.events = []
        self.replies = {}
        self.untagged = []

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_message(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no message from the monitor in %ss" % (timeout,))
            self.sock.settimeout(remaining)
            try:
                data = self.receive()
            except socket.timeout:
                continue
            if not data:
                raise EOFError("monitor closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def receive(self):
        """One read from the socket (a subclass may also take the fds that come with it)."""
        return self.sock.recv(1 << 20)

    def _dispatch(self, message):
        if "event" in message:
            self.events.append(message)
        elif "tag" in message:
            self.replies[message["tag"]] = message
        else:
            self.untagged.append(message)

    def send(self, op, **fields):
        self.tag += 1
        self.send_raw(json.dumps(dict(fields, op=op, tag=self.tag)).encode() + b"\n")
        return self.tag

    def reply(self, tag, timeout=10.0):
        deadline = time.monotonic() + timeout
        while tag not in self.replies:
            self._dispatch(self.read_message(max(0.001, deadline - time.monotonic())))
        return self.replies.pop(tag)

    def request(self, op, timeout=10.0, **fields):
        return self.reply(self.send(op, **fields), timeout)

    def next_untagged(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.untagged:
            self._dispatch(self.read_message(max(0.001, deadline - time.monotonic())))
        return self.untagged.pop(0)

    def event(self, timeout=10.0, **match):
        """
        The first event with the given fields (earlier others are kept).
        """
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if all(e.get(k) == v for k, v in match.items()):
                    self.events.remove(e)
                    return e
            self._dispatch(self.read_message(max(0.001, deadline - time.monotonic())))

    def spawn(self, argv, timeout=10.0, **fields):
        fields.setdefault("capture", False)
        return self.request("spawn", timeout=timeout, argv=argv, **fields)


class Monitor:
    """
    A monitord process for one test, stopped (with its descendants) in cleanup.
    """

    def __init__(self, case, idle_exit=0, state_dir=None, args=(), shell_prefix=None):
        """
        @param args: more monitord arguments.
        @param shell_prefix: shell commands run (by bash) before the monitor is exec'd in the same process.
        """
        self.case = case
        if state_dir is None:
            # short: unix socket paths are limited to 107 bytes
            state_dir = tempfile.mkdtemp(prefix="mond-", dir="/tmp")
            case.addCleanup(shutil.rmtree, state_dir, True)
        self.dir = state_dir
        self.sock = os.path.join(state_dir, "monitor.sock")
        self.clients = []
        with open(os.path.join(state_dir, "monitor.log"), "ab") as logfile:
            argv = [PYTHON, "-S", MONITORD, "--state-dir", state_dir, "--idle-exit", str(idle_exit), *args]
            if shell_prefix is not None:
                argv = ["bash", "-c", shell_prefix + '; exec "$@"', "bash", *argv]
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=logfile,
            )
        case.addCleanup(self.stop)
        self.pid = self.popen.pid
        self.ready_line = self._read_ready()

    def _read_ready(self):
        fd = self.popen.stdout.fileno()
        os.set_blocking(fd, False)
        data = b""
        deadline = time.monotonic() + 10
        while True:
            try:
                chunk = os.read(fd, 100)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                break
            if chunk:
                data += chunk
            elif time.monotonic() > deadline:
                raise AssertionError("monitor not ready: %r" % (data,))
            else:
                time.sleep(0.005)
        self.popen.stdout.close()
        return data

    def log(self):
        with open(os.path.join(self.dir, "monitor.log")) as f:
            return f.read()

    def connect(self):
        client = Client(self.sock)
        self.clients.append(client)
        return client

    def stop(self):
        """
        Kill the monitor's descendants, check it reaps all of them, stop it.
        """
        for client in self.clients:
            client.close()
        try:
            if self.popen.poll() is None:
                deadline = time.monotonic() + 10
                while True:
                    found = descendants(self.pid)
                    if not found:
                        break
                    if time.monotonic() > deadline:
                        raise AssertionError("monitor left descendants/zombies: %r" % (found,))
                    for pid, state in found.items():
                        if state != "Z":
                            try:
                                os.kill(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                    time.sleep(0.01)
        finally:
            if self.popen.poll() is None:
                self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def mkfifo(directory, name):
    path = os.path.join(directory, name)
    os.mkfifo(path, 0o600)
    return path


class Inotify:
    """
    Just enough inotify to see how files appear in a directory.
    """

    IN_CLOSE_WRITE = 0x08
    IN_MOVED_TO = 0x80
    IN_CREATE = 0x100

    def __init__(self, directory):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = self.IN_CREATE | self.IN_MOVED_TO | self.IN_CLOSE_WRITE
        if self.libc.inotify_add_watch(self.fd, directory.encode(), mask) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def events(self):
        """
        @return: list of C{(mask, name)} read so far.
        """
        out = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16 : offset + 16 + length].rstrip(b"\0").decode()
                out.append((mask, name))
                offset += 16 + length

    def close(self):
        os.close(self.fd)


# Forks a child that exits 5 at once, writes its pid, exits without waiting.
FORK_EXIT_5 = (
    "import os, sys, time\n"
    "pid = os.fork()\n"
    "if pid == 0: os._exit(5)\n"
    "open(sys.argv[1], \"w\").write(str(pid))\n"
    "while open(\"/proc/%d/stat\" % pid).read().split()[2] != \"Z\": time.sleep(0.001)\n"
)


# Emulates runc's side of a console socket: send a pty master, then detach a
# shell on the slave and write its pid (like `runc create --console-socket`).
PTY_HELPER = r"""
import os, socket, sys
sock_path, pid_file, command = sys.argv[1:4]
master, slave = os.openpty()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
socket.send_fds(s, [os.ttyname(slave).encode()], [master])
s.close()
pid = os.fork()
if pid == 0:
    os.close(master)
    os.login_tty(slave)
    os.execv("/bin/sh", ["sh", "-c", command])
os.close(master)
os.close(slave)
with open(pid_file, "w") as f:
    f.write("%d" % pid)
"""


class MonitordTests(unittest.TestCase):
    """
    The monitor process over its socket.
    """

    def setUp(self):
        self.monitor = Monitor(self)
        self.dir = self.monitor.dir
        self.client = self.monitor.connect()

    def register(self, container, process, command, **fields):
        """
        Spawn C{sh -c command} that backgrounds the real process and writes
        its pid to a pid file, as C{runc run -d} does; register it.
        """
        pid_file = os.path.join(self.dir, "%s-%s.pid" % (container, process))
        reply = self.client.spawn(
            [SH, "-c", command.replace("PIDFILE", pid_file)],
            pid_file=pid_file,
            register={"container": container, "process": process, "record_dir": self.dir},
            **fields,
        )
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["status"], 0)
        with open(pid_file) as f:
            self.assertEqual(reply["pid"], int(f.read()))
        return reply["pid"]

    def read_record(self, process):
        with open(os.path.join(self.dir, "exit-%s.json" % (process,))) as f:
            return json.load(f)

    def test_ready(self):
        """
        The monitor prints C{ready <pid>}, writes its pid file, listens on a
        0600 socket, runs in its own session, and answers hello.
        """
        self.assertEqual(self.monitor.ready_line, b"ready %d\n" % (self.monitor.pid,))
        with open(os.path.join(self.dir, "monitor.pid")) as f:
            self.assertEqual(int(f.read()), self.monitor.pid)
        mode = os.stat(self.monitor.sock).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertEqual(os.getsid(self.monitor.pid), self.monitor.pid)
        reply = self.client.request("hello")
        self.assertEqual(
            reply,
            {"tag": 1, "ok": True, "pid": self.monitor.pid, "protocol": 2, "processes": [], "exits": []},
        )

    def test_exit_statuses(self):
        """
        Spawn replies carry the exact status: the exit code, or 128 + signal.
        A C{spawned} event with the pid comes first.
        """
        cases = [("exit 0", 0), ("exit 7", 7), ("kill -KILL $$", 137), ("kill -TERM $$", 143)]
        for command, expected in cases:
            tag = self.client.send("spawn", argv=[SH, "-c", command], capture=False)
            reply = self.client.reply(tag)
            self.assertEqual((command, reply["ok"], reply["status"]), (command, True, expected))
            spawned = self.client.event(event="spawned", tag=tag)
            self.assertIsInstance(spawned["spawn_pid"], int)

    def test_unannounced_spawn(self):
        """
        With C{announce} false only the reply comes (with the exact status): no C{spawned} event before it,
        where it would have been sent. A non-boolean C{announce} is refused.
        """
        tag = self.client.send("spawn", argv=[SH, "-c", "exit 7"], capture=False, announce=False)
        reply = self.client.reply(tag)
        self.assertEqual((reply["ok"], reply["status"]), (True, 7))
        self.assertEqual([e for e in self.client.events if e.get("event") == "spawned"], [])
        refused = self.client.spawn([SH, "-c", "exit 0"], announce="no")
        self.assertEqual((refused["ok"], refused["error"]), (False, "bad request: announce must be a boolean"))

    def test_capture(self):
        """
        Captured stdout and stderr come back byte-exact (base64).
        """
        reply = self.client.spawn(
            [SH, "-c", r"printf 'a\000\377\n'; printf 'oops\n' >&2; exit 3"], capture=True
        )
        self.assertEqual(reply["status"], 3)
        self.assertEqual(base64.b64decode(reply["stdout"]), b"a\x00\xff\n")
        self.assertEqual(base64.b64decode(reply["stderr"]), b"oops\n")
        self.assertIsNone(reply["pid"])

    def test_capture_limit(self):
        """
        At most 16 MiB of captured output is kept; the child is not blocked
        by the excess.
        """
        size = 17 * 1024 * 1024
        reply = self.client.spawn(["/usr/bin/head", "-c", str(size), "/dev/zero"], capture=True, timeout=60)
        self.assertEqual(reply["status"], 0)
        self.assertEqual(len(base64.b64decode(reply["stdout"])), 16 * 1024 * 1024)

    def test_env(self):
        """
        C{env} replaces the child's environment; null passes the monitor's.
        """
        self.assertIn("HOME", os.environ)
        reply = self.client.spawn([SH, "-c", 'echo "$FOO:$HOME"'], capture=True, env={"FOO": "bar"})
        self.assertEqual(base64.b64decode(reply["stdout"]), b"bar:\n")
        reply = self.client.spawn([SH, "-c", 'echo "$HOME"'], capture=True, env=None)
        self.assertEqual(base64.b64decode(reply["stdout"]), os.environ["HOME"].encode() + b"\n")

    def test_spawn_errors(self):
        """
        Stdio that cannot be opened, a missing program, and a missing or
        garbage pid file are errors naming the cause; the monitor carries on.
        """
        reply = self.client.spawn([SH, "-c", "exit 0"], stdout=self.dir)
        self.assertEqual(reply["error"], "cannot open stdout %s: Is a directory" % (self.dir,))
        self.assertFalse(reply["ok"])
        reply = self.client.spawn([SH, "-c", "exit 0"], stdin=os.path.join(self.dir, "nope"))
        self.assertEqual(
            reply["error"], "cannot open stdin %s/nope: No such file or directory" % (self.dir,)
        )
        reply = self.client.spawn(["/nonexistent/prog"])
        self.assertEqual(reply["error"], "cannot execute /nonexistent/prog: No such file or directory")
        reply = self.client.spawn(["sh", "-c", "exit 0"])
        self.assertEqual(reply["error"], "bad request: argv[0] must be an absolute path")
        register = {"container": "c1", "process": "init", "record_dir": self.dir}
        reply = self.client.spawn([SH, "-c", "exit 0"], register=register)
        self.assertEqual(reply["error"], "bad request: register needs a pid_file")
        missing = os.path.join(self.dir, "missing.pid")
        reply = self.client.spawn([SH, "-c", "exit 0"], register=register, pid_file=missing)
        self.assertEqual(reply["error"], "pid file %s: No such file or directory" % (missing,))
        garbage = os.path.join(self.dir, "garbage.pid")
        reply = self.client.spawn(
            [SH, "-c", "echo abc > %s" % (garbage,)], register=register, pid_file=garbage
        )
        self.assertFalse(reply["ok"])
        self.assertIn("pid file %s: no pid" % (garbage,), reply["error"])
        # a failing command registers nothing and is no error
        reply = self.client.spawn([SH, "-c", "exit 2"], register=register, pid_file=missing)
        self.assertEqual((reply["ok"], reply["status"], reply["pid"]), (True, 2, None))
        self.assertEqual(described(self.client.request("hello")["processes"]), [])

    def test_child_hygiene(self):
        """
        Children get default signal dispositions, an empty signal mask, and
        no fd but their stdio (the monitor's fds are close-on-exec).
        """
        reply = self.client.spawn(["/bin/cat", "/proc/self/status"], capture=True)
        status = dict(
            line.split(":\t", 1) for line in base64.b64decode(reply["stdout"]).decode().splitlines()
        )
        # glibc's posix_spawn leaves its internal signals 32 and 33 ignored
        internal = (1 << 31) | (1 << 32)
        self.assertEqual(int(status["SigIgn"], 16) & ~internal, 0)
        self.assertEqual(status["SigBlk"], "0000000000000000")
        self.assertEqual(int(status["PPid"]), self.monitor.pid)
        reply = self.client.spawn(["/bin/ls", "/proc/self/fd"], capture=True)
        self.assertEqual(base64.b64decode(reply["stdout"]).split(), [b"0", b"1", b"2", b"3"])

    def test_no_fd_leak(self):
        """
        After spawns of every kind and their processes' exits, the monitor
        holds as many fds as before.
        """
        self.client.request("hello")
        before = sorted(os.listdir("/proc/%d/fd" % (self.monitor.pid,)))
        self.client.spawn([SH, "-c", "echo x"], capture=True)
        self.client.spawn([SH, "-c", "exit 0"], stdout=self.dir)  # fails
        fifo = mkfifo(self.dir, "in")
        feeder = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        self.addCleanup(os.close, feeder)
        os.write(feeder, b"line\n")
        reply = self.client.spawn([SH, "-c", "read x"], stdin=fifo, stdout=os.path.join(self.dir, "o"))
        self.assertEqual(reply["status"], 0)
        pid = self.register("c1", "init", "sleep 30 <&0 & echo $! > PIDFILE", stdin=fifo)
        os.kill(pid, signal.SIGKILL)
        self.client.event(event="exit", process="init")
        pid, _, _ = self.spawn_tty("p1", "exit 0")
        self.client.event(event="exit", process="p1")
        self.client.spawn(
            [SH, "-c", "exit 1"], console_socket=os.path.join(self.dir, "c.sock"), stdin=fifo
        )
        self.assertEqual(sorted(os.listdir("/proc/%d/fd" % (self.monitor.pid,))), before)

    def test_kill_spawn(self):
        """
        C{kill} signals a running spawn (a start timeout); an unknown target
        is an error.
        """
        tag = self.client.send("spawn", argv=["/bin/sleep", "30"], capture=True)
        spawned = self.client.event(event="spawned", tag=tag)
        self.assertTrue(alive(spawned["spawn_pid"]))
        self.assertEqual(self.client.request("kill", target=tag, signal=9), {"tag": tag + 1, "ok": True})
        self.assertEqual(self.client.reply(tag)["status"], 137)
        reply = self.client.request("kill", target=tag, signal=9)
        self.assertEqual(reply["error"], "no running spawn with tag %d" % (tag,))

    def test_detached_grandchild(self):
        """
        A process backgrounded by the spawned command (like runc -d's
        container init) is reparented to the monitor, registered from the pid
        file, reaped, and its exit record is written atomically (it appears
        by rename, never created in place) before the exit event.
        """
        watch = Inotify(self.dir)
        self.addCleanup(watch.close)
        pid = self.register("c1", "init", "sleep 30 >/dev/null 2>&1 & echo $! > PIDFILE")
        self.assertEqual(proc_table()[pid][0], self.monitor.pid)
        self.assertEqual(
            described(self.client.request("hello")["processes"]),
            [{"container": "c1", "process": "init", "pid": pid, "tty": False,
              "record_dir": self.dir, "fostered": False}],
        )
        os.kill(pid, signal.SIGTERM)
        event = self.client.event(event="exit")
        self.assertEqual(
            {k: event[k] for k in ("container", "process", "pid", "status")},
            {"container": "c1", "process": "init", "pid": pid, "status": 143},
        )
        record = self.read_record("init")
        self.assertEqual(record, {k: v for k, v in event.items() if k != "event"})
        self.assertLessEqual(abs(record["time_ns"] - time.time_ns()), 10 * 10**9)
        seen = [(mask, name) for mask, name in watch.events() if "exit-init" in name]
        self.assertIn((Inotify.IN_MOVED_TO, "exit-init.json"), seen)
        self.assertNotIn(Inotify.IN_CREATE, [mask for mask, name in seen if name == "exit-init.json"])
        self.assertEqual([n for n in os.listdir(self.dir) if layout.is_temp(n)], [])
        self.assertEqual(described(self.client.request("hello")["processes"]), [])

    def register_through_helper(self, process, init_code):
        """
        Register a process started the way crun's C{run -d} starts one: the spawned command forks a helper,
        the helper forks the process (running C{init_code} in Python), writes the pid file and outlives the
        command until the test opens the returned gate (a FIFO). Returns C{(pid, gate)}.
        """
        pid_file = os.path.join(self.dir, process + ".pid")
        gate = mkfifo(self.dir, process + ".gate")
        runtime = (
            "import os, sys, time\n"
            "pid_file, gate, code = sys.argv[1:4]\n"
            "if os.fork() == 0:\n"
            "    init = os.fork()\n"
            "    if init == 0:\n"
            "        exec(code)\n"
            "        os._exit(0)\n"
            "    with open(pid_file + '.tmp', 'w') as f:\n"
            "        f.write(str(init))\n"
            "    os.rename(pid_file + '.tmp', pid_file)\n"
            "    with open(gate) as f:\n"
            "        f.read()\n"
            "    os._exit(0)  # the helper ends without reaping the process\n"
            "while not os.path.exists(pid_file):\n"
            "    time.sleep(0.001)\n"
        )
        reply = self.client.spawn(
            [PYTHON, "-S", "-c", runtime, pid_file, gate, init_code],
            pid_file=pid_file,
            register={"container": "c1", "process": process, "record_dir": self.dir},
        )
        self.assertEqual((reply["ok"], reply.get("status")), (True, 0), reply)
        return reply["pid"], gate

    def open_gate(self, gate):
        with open(gate, "w"):
            pass

    def test_exit_while_runtime_helper_is_parent(self):
        """
        A process that exits while its runtime's helper is still its parent (a zombie the helper does not
        reap) gets its true status once the helper is gone, not the unknown 255: the monitor waits for the
        helper instead of watching a stranger.
        """
        pid, gate = self.register_through_helper("init", "os._exit(7)")
        hello = self.client.request("hello")
        self.assertEqual([p["pid"] for p in hello["processes"]], [pid])
        self.assertEqual([e for e in self.client.events if e.get("event") == "exit"], [])
        self.open_gate(gate)
        event = self.client.event(event="exit", process="init")
        self.assertEqual((event["pid"], event["status"], event.get("unknown", False)), (pid, 7, False))
        self.assertEqual(self.read_record("init")["status"], 7)

    def test_alive_after_runtime_helper_is_gone(self):
        """A process that outlives its runtime's helper is the monitor's child afterwards: its exit is exact."""
        pid, gate = self.register_through_helper("init", "import signal; signal.pause()")
        self.open_gate(gate)
        wait_for(lambda: proc_table()[pid][0] == self.monitor.pid, message="the process to be reparented")
        os.kill(pid, signal.SIGTERM)
        event = self.client.event(event="exit", process="init")
        self.assertEqual((event["pid"], event["status"], event.get("unknown", False)), (pid, 143, False))

    def test_fast_exit_before_registration(self):
        """
        A registered process that exited (and was reaped as an unknown child)
        before its pid file was read gets its true status.
        """
        # The intermediate never waits (a shell might): the exited child is
        # reparented to the monitor and reaped before the outer sh exits.
        pid = self.register("c1", "init", "%s -S -c '%s' PIDFILE; sleep 0.3" % (PYTHON, FORK_EXIT_5))
        event = self.client.event(event="exit", process="init")
        self.assertEqual((event["pid"], event["status"]), (pid, 5))
        self.assertEqual(self.read_record("init")["status"], 5)
        self.assertNotIn("vanished", self.monitor.log())

    def test_fifo_stdout_byte_exact(self):
        """
        A FIFO stdout gets every byte; a regular file stderr is appended to.
        """
        fifo = mkfifo(self.dir, "out")
        source = os.path.join(self.dir, "source")
        payload = bytes(range(256)) * 1200 + os.urandom(4096)  # > a pipe buffer
        with open(source, "wb") as f:
            f.write(payload)
        received = []

        def read():
            with open(fifo, "rb") as f:
                received.append(f.read())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        err = os.path.join(self.dir, "err.log")
        reply = self.client.spawn([SH, "-c", "cat %s; echo one >&2" % (source,)], stdout=fifo, stderr=err)
        self.assertEqual(reply["status"], 0)
        reader.join(10)
        self.assertEqual(received, [payload])
        self.client.spawn([SH, "-c", "echo two >&2"], stderr=err)
        with open(err) as f:
            self.assertEqual(f.read(), "one\ntwo\n")
        self.assertEqual(stat.S_IMODE(os.stat(err).st_mode) & 0o640, 0o640)

    def test_unread_fifo_does_not_block(self):
        """
        A spawn writing into a FIFO nobody reads blocks only itself: other
        spawns proceed, and it can be killed.
        """
        fifo = mkfifo(self.dir, "out")
        tag = self.client.send("spawn", argv=["/usr/bin/head", "-c", "1000000", "/dev/zero"], stdout=fifo)
        spawned = self.client.event(event="spawned", tag=tag)
        wait_for(lambda: proc_table().get(spawned["spawn_pid"], (0, ""))[1] == "S", message="writer blocked")
        started = time.monotonic()
        reply = self.client.spawn([SH, "-c", "echo ok"], capture=True)
        self.assertEqual(base64.b64decode(reply["stdout"]), b"ok\n")
        self.assertLess(time.monotonic() - started, 5)
        self.assertNotIn(tag, self.client.replies)
        self.client.request("kill", target=tag, signal=9)
        self.assertEqual(self.client.reply(tag)["status"], 137)

    def test_stdin_proxy_close_stdin(self):
        """
        A FIFO stdin is proxied through a pipe; close_stdin delivers what the
        FIFO holds and then EOF, so C{cat} finishes; it is idempotent.
        """
        fifo = mkfifo(self.dir, "in")
        out = os.path.join(self.dir, "cat.out")
        pid = self.register(
            "c1",
            "exec-1",
            "exec 3<&0; sh -c 'cat >%s; echo EOF >>%s; exec sleep 30' <&3 3<&- & echo $! > PIDFILE"
            % (out, out),
            stdin=fifo,
        )
        writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(writer, b"hello\n")
        # the proxy copies while the process runs
        wait_for(lambda: read_file(out) == b"hello\n", message="cat output")
        os.write(writer, b"world\n")
        os.close(writer)
        self.assertTrue(self.client.request("close_stdin", container="c1", process="exec-1")["ok"])
        self.assertTrue(self.client.request("close_stdin", container="c1", process="exec-1")["ok"])
        wait_for(lambda: read_file(out) == b"hello\nworld\nEOF\n", message="EOF")
        self.assertTrue(alive(pid))
        os.kill(pid, signal.SIGKILL)
        event = self.client.event(event="exit", process="exec-1")
        self.assertEqual((event["pid"], event["status"]), (pid, 137))
        reply = self.client.request("close_stdin", container="c1", process="exec-1")
        self.assertEqual(reply["error"], "no such process exec-1 of container c1")

    def test_registered_pid_reaped_elsewhere(self):
        """
        A registered pid that its own parent reaped before the monitor could
        is reported at once with the unknown status 255.
        """
        pid = self.register("c1", "init", "true & echo $! > PIDFILE; wait")
        event = self.client.event(event="exit", process="init")
        self.assertEqual((event["pid"], event["status"], event["unknown"]), (pid, 255, True))
        self.assertEqual(self.read_record("init")["unknown"], True)

    def spawn_tty(self, process, command):
        """
        Register a shell on a pty delivered through a console socket.
        """
        stdin = mkfifo(self.dir, process + ".in")
        stdout = os.path.join(self.dir, process + ".out")
        console = os.path.join(self.dir, process + ".sock")
        pid_file = os.path.join(self.dir, process + ".pid")
        reply = self.client.spawn(
            [PYTHON, "-S", "-c", PTY_HELPER, console, pid_file, command],
            capture=True,
            stdin=stdin,
            stdout=stdout,
            console_socket=console,
            pid_file=pid_file,
            register={"container": "c1", "process": process, "record_dir": self.dir},
        )
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["status"], 0, base64.b64decode(reply["stderr"]))
        self.assertFalse(os.path.exists(console))
        return reply["pid"], stdin, stdout

    def test_tty_resize(self):
        """
        A pty master received over the console socket is proxied: stdin FIFO
        to the terminal, terminal to stdout; resize is visible to C{stty size};
        the output is drained before the exit is reported.
        """
        pid, stdin, stdout = self.spawn_tty("p1", 'read line; stty size; echo "got:$line"; exit 3')
        # the received pty master is close-on-exec: later children do not get it
        reply = self.client.spawn(["/bin/ls", "/proc/self/fd"], capture=True)
        self.assertEqual(base64.b64decode(reply["stdout"]).split(), [b"0", b"1", b"2", b"3"])
        self.assertEqual(
            described(self.client.request("hello")["processes"]),
            [{"container": "c1", "process": "p1", "pid": pid, "tty": True,
              "record_dir": self.dir, "fostered": False}],
        )
        reply = self.client.request("resize", container="c1", process="p1", width=123, height=45)
        self.assertEqual(reply["ok"], True)
        writer = os.open(stdin, os.O_WRONLY | os.O_NONBLOCK)
        os.write(writer, b"go\n")
        os.close(writer)
        event = self.client.event(event="exit", process="p1")
        self.assertEqual((event["pid"], event["status"]), (pid, 3))
        with open(stdout, "rb") as f:
            output = f.read()
        self.assertIn(b"45 123\r\n", output)
        self.assertIn(b"got:go\r\n", output)

    def test_tty_close_stdin(self):
        """
        close_stdin on a terminal sends ^D after the pending input.
        """
        pid, stdin, stdout = self.spawn_tty("p2", "cat; exit 4")
        writer = os.open(stdin, os.O_WRONLY | os.O_NONBLOCK)
        os.write(writer, b"line\n")
        os.close(writer)
        self.assertTrue(alive(pid))
        self.client.request("close_stdin", container="c1", process="p2")
        event = self.client.event(event="exit", process="p2")
        self.assertEqual(event["status"], 4)
        with open(stdout, "rb") as f:
            self.assertEqual(f.read().count(b"line\r\n"), 2)  # echo + cat

    def test_resize_errors(self):
        """
        resize names the problem: no terminal, or no such process.
        """
        self.register("c1", "init", "sleep 30 >/dev/null 2>&1 & echo $! > PIDFILE")
        reply = self.client.request("resize", container="c1", process="init", width=80, height=24)
        self.assertEqual(reply["error"], "process init of container c1 has no terminal")
        reply = self.client.request("resize", container="c1", process="nope", width=80, height=24)
        self.assertEqual(reply["error"], "no such process nope of container c1")

    def test_exit_while_disconnected(self):
        """
        The monitor survives its client; an exit while no client is connected
        is written to the record; a new client sees it no longer registered.
        """
        pid = self.register("c1", "init", "sleep 30 >/dev/null 2>&1 & echo $! > PIDFILE")
        self.client.close()
        wait_for(lambda: "daemon connection closed" in self.monitor.log(), message="disconnect")
        os.kill(pid, signal.SIGKILL)
        record_path = os.path.join(self.dir, "exit-init.json")
        wait_for(lambda: os.path.exists(record_path), message="exit record")
        record = self.read_record("init")
        self.assertEqual((record["pid"], record["status"]), (pid, 137))
        self.assertIsNone(self.monitor.popen.poll())
        client = self.monitor.connect()
        self.assertEqual(described(client.request("hello")["processes"]), [])
        self.assertEqual(client.events, [])  # the exit was not held back for this client

    def test_hello_lists_live_processes(self):
        """
        A new connection's hello lists every live registered process; it
        replaces the previous connection.
        """
        pid1 = self.register("c1", "init", "sleep 30 >/dev/null 2>&1 & echo $! > PIDFILE")
        pid2 = self.register("c2", "init", "sleep 30 >/dev/null 2>&1 & echo $! > PIDFILE")
        other = self.monitor.connect()
        self.assertEqual(
            described(other.request("hello")["processes"]),
            [
                {"container": "c1", "process": "init", "pid": pid1, "tty": False,
              "record_dir": self.dir, "fostered": False},
                {"container": "c2", "process": "init", "pid": pid2, "tty": False,
              "record_dir": self.dir, "fostered": False},
            ],
        )
        self.assertRaises(EOFError, self.client.read_message)
        os.kill(pid2, signal.SIGKILL)
        self.assertEqual(other.event(event="exit")["container"], "c2")

    def test_second_monitor_refused(self):
        """
        A second monitor on the same state dir exits 1 with one line.
        """
        result = subprocess.run(
            [PYTHON, "-S", MONITORD, "--state-dir", self.dir],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, b"")
        self.assertEqual(
            result.stderr.decode(),
            "monitord: another monitor (pid %d) holds %s/monitor.lock\n" % (self.monitor.pid, self.dir),
        )
        self.assertEqual(self.client.request("hello")["pid"], self.monitor.pid)

    def test_garbage(self):
        """
        Malformed requests get a bad request reply (with the tag when there
        is one); the monitor stays up.
        """
        self.client.send_raw(b"garbage\n")
        reply = self.client.next_untagged()
        self.assertFalse(reply["ok"])
        self.assertTrue(reply["error"].startswith("bad request: not JSON"), reply)
        self.client.send_raw(b"[1, 2]\n\xff\xfe\n")
        self.assertEqual(self.client.next_untagged()["error"], "bad request: expected a JSON object")
        self.assertTrue(self.client.next_untagged()["error"].startswith("bad request: not JSON"))
        self.client.send_raw(b'{"op": "nope", "tag": 5}\n{"op": "hello"}\n')
        self.assertEqual(
            self.client.reply(5), {"tag": 5, "ok": False, "error": "bad request: unknown op 'nope'"}
        )
        self.assertEqual(self.client.next_untagged()["error"], "bad request: missing integer tag")
        self.client.send_raw(b'{"op": "spawn", "tag": 6, "argv": "x"}\n')
        self.assertEqual(
            self.client.reply(6)["error"], "bad request: argv must be a non-empty list of strings"
        )
        self.client.send_raw(b'{"op": "resize", "tag": 7, "container": "../x", "process": "p"}\n')
        self.assertEqual(self.client.reply(7)["error"], "bad request: container '../x' is not a valid name")
        self.client.send_raw(b"x" * (2 * 1024 * 1024) + b"\n")
        self.assertEqual(self.client.next_untagged()["error"], "bad request: line longer than 1048576 bytes")
        self.client.tag = 10
        self.assertTrue(self.client.request("hello")["ok"])
        self.assertIsNone(self.monitor.popen.poll())

    def test_no_zombies(self):
        """
        Orphans of unknown processes are reaped: none is left as a zombie.
        """
        reply = self.client.spawn(
            [SH, "-c", "for i in 1 2 3 4 5 6 7 8 9; do (sleep 0.3$i; exit $i) & done; exit 0"]
        )
        self.assertEqual(reply["status"], 0)
        orphans = descendants(self.monitor.pid)
        self.assertGreaterEqual(len(orphans), 9)
        table = proc_table()
        self.assertTrue(any(table[pid][0] == self.monitor.pid for pid in orphans))
        wait_for(lambda: not descendants(self.monitor.pid), message="orphans reaped")
        self.assertEqual(zombies_of(self.monitor.pid), [])
        self.assertTrue(self.client.request("hello")["ok"])

    def test_adopt(self):
        """
        An adopted pid that is not the monitor's child is watched; its exit is
        recorded with the unknown status 255.  A dead pid is refused.
        """
        sleeper = subprocess.Popen(["/bin/sleep", "30"])
        self.addCleanup(sleeper.wait)
        self.addCleanup(sleeper.kill)
        adopt = dict(container="c9", process="init", pid=sleeper.pid, record_dir=self.dir)
        reply = self.client.request("adopt", **adopt)
        self.assertEqual(reply, {"tag": 1, "ok": True, "pid": sleeper.pid})
        self.assertEqual(
            described(self.client.request("hello")["processes"]),
            [{"container": "c9", "process": "init", "pid": sleeper.pid, "tty": False,
              "record_dir": self.dir, "fostered": False}],
        )
        sleeper.kill()
        event = self.client.event(event="exit")
        self.assertEqual(
            (event["container"], event["pid"], event["status"], event["unknown"]),
            ("c9", sleeper.pid, 255, True),
        )
        self.assertEqual(self.read_record("init")["unknown"], True)
        sleeper.wait()
        reply = self.client.request("adopt", **adopt)
        self.assertEqual(reply["error"], "pid %d is not alive" % (sleeper.pid,))

    def test_forget(self):
        """
        A forgotten process exits without a record or an event, and is reaped.
        """
        pid = self.register("c1", "init", "sleep 30 >/dev/null 2>&1 & echo $! > PIDFILE")
        self.assertEqual(self.client.request("forget", container="c1", process="init")["ok"], True)
        self.assertEqual(self.client.request("forget", container="c1", process="init")["ok"], True)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not descendants(self.monitor.pid), message="reaped")
        self.assertEqual(described(self.client.request("hello")["processes"]), [])
        self.assertEqual([e for e in self.client.events if e["event"] == "exit"], [])
        self.assertFalse(os.path.exists(os.path.join(self.dir, "exit-init.json")))

    def test_sigterm(self):
        """
        SIGTERM stops the monitor cleanly: exit 0, socket and pid file gone.
        """
        self.monitor.popen.terminate()
        self.assertEqual(self.monitor.popen.wait(10), 0)
        self.assertEqual(sorted(os.listdir(self.dir)), ["monitor.lock", "monitor.log"])


class IdleExitTests(unittest.TestCase):
    """
    C{--idle-exit}: the monitor leaves when it has nothing to do.
    """

    def test_idle_exit(self):
        """
        With no client, process or spawn, the monitor exits after the idle
        time and removes its socket and pid file; a connected client or a
        registered process keeps it alive.
        """
        monitor = Monitor(self, idle_exit=0.3)
        client = monitor.connect()
        pid_file = os.path.join(monitor.dir, "p.pid")
        reply = client.spawn(
            [SH, "-c", "sleep 30 >/dev/null 2>&1 & echo $! > %s" % (pid_file,)],
            pid_file=pid_file,
            register={"container": "c", "process": "init", "record_dir": monitor.dir},
        )
        time.sleep(0.6)
        self.assertIsNone(monitor.popen.poll())
        client.close()
        time.sleep(0.6)
        self.assertIsNone(monitor.popen.poll())  # a registered process
        os.kill(reply["pid"], signal.SIGKILL)
        self.assertEqual(monitor.popen.wait(10), 0)
        self.assertEqual(
            sorted(os.listdir(monitor.dir)), ["exit-init.json", "monitor.lock", "monitor.log", "p.pid"]
        )
        self.assertIn("idle for 0.3s: exiting", monitor.log())

    def test_idle_exit_disabled(self):
        """
        C{--idle-exit 0} never exits on its own.
        """
        monitor = Monitor(self, idle_exit=0)
        time.sleep(0.5)
        self.assertIsNone(monitor.popen.poll())


class StdioHelperTests(unittest.TestCase):
    """
    The monitor's stdio helpers, in this process (they are stdlib only).
    """

    def setUp(self):
        self.loop = Loop()
        self.addCleanup(self.loop.selector.close)
        self.fds = []
        self.addCleanup(lambda: [close_quietly(fd) for fd in self.fds])

    def test_one_file_shares_one_offset(self):
        """
        stdout and stderr (or two processes) writing one regular file share its offset: without O_APPEND,
        two descriptions of one file would write over each other.
        """
        path = os.path.join(self.mktemp() + "-out.log")
        with open(path, "wb") as f:
            f.write(b"before\n")
        outputs = SharedOutputs()
        out, _ = outputs.open(path, "stdout")
        err, _ = outputs.open(path, "stderr")
        self.fds += [out, err]
        self.assertNotEqual(out, err)
        os.write(out, b"out 1\n")
        os.write(err, b"err 1\n")
        os.write(out, b"out 2\n")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"before\nout 1\nerr 1\nout 2\n")

    def test_shared_only_while_a_writer_is_open(self):
        """A closed fd whose number now names something else is not shared."""
        path = self.mktemp() + "-a.log"
        other = self.mktemp() + "-b.log"
        outputs = SharedOutputs()
        first, _ = outputs.open(path, "stdout")
        os.close(first)
        reused = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)  # likely takes the same number
        self.fds.append(reused)
        second, _ = outputs.open(path, "stdout")
        self.fds.append(second)
        os.write(second, b"x")
        with open(path, "rb") as f, open(other, "rb") as g:
            self.assertEqual((f.read(), g.read()), (b"x", b""))

    def pipe(self):
        r, w = os.pipe()
        self.fds += [r, w]
        return r, w

    def spin(self, times=5):
        for _ in range(times):
            self.loop.run_once(0.01)

    def test_pump_backpressure(self):
        """
        A pump stops reading its source while its buffer is full, and
        resumes when the destination drains; no byte is lost.
        """
        src_r, src_w = self.pipe()
        dst_r, dst_w = self.pipe()
        for fd in (src_w, dst_w, dst_r):
            os.set_blocking(fd, False)
        pump = Pump(self.loop, src_r, dst_w, "test", own_src=False, own_dst=False)
        sent = bytearray()
        for _ in range(64):
            try:
                n = os.write(src_w, os.urandom(65536))
            except BlockingIOError:
                pass
            else:
                sent += b"x" * n
            self.spin(1)
        self.assertEqual(len(pump.buf), PUMP_LIMIT)
        self.assertNotIn(src_r, self.loop._readers)  # paused
        self.assertIn(dst_w, self.loop._writers)
        received = 0
        deadline = time.monotonic() + 10
        while received < len(sent) and time.monotonic() < deadline:
            try:
                received += len(os.read(dst_r, 1 << 20))
            except BlockingIOError:
                pass
            self.spin(1)
        self.assertEqual(received, len(sent))
        self.assertIn(src_r, self.loop._readers)  # reading again
        pump.close()

    def test_close_input(self):
        """
        close_input takes what is readable now, appends the trailer, and
        closes the destination when flushed; a second call does nothing.
        """
        src_r, src_w = self.pipe()
        dst_r, dst_w = self.pipe()
        os.set_blocking(dst_w, False)
        pump = Pump(self.loop, src_r, dst_w, "test", own_src=True, own_dst=True)
        os.write(src_w, b"abc")
        pump.close_input(trailer=b"\x04", close_dst=True)
        pump.close_input(trailer=b"\x04", close_dst=True)
        self.fds.remove(src_r)
        self.fds.remove(dst_w)
        self.assertEqual(os.read(dst_r, 100), b"abc\x04")
        self.assertEqual(os.read(dst_r, 100), b"")  # EOF: the writer is closed
        self.assertRaises(OSError, os.fstat, src_r)

    def test_terminal_drained_on_close(self):
        """
        Closing a pty proxy with drain moves what the master still holds to
        stdout even if the loop never ran; without drain it is dropped.
        """
        for drain, expected in ((True, b"bye\r\n"), (False, b"")):
            master, slave = os.openpty()
            out_path = self.mktemp()
            out, _ = open_stdio(out_path, "stdout")
            proxies = Proxies(self.loop, "test")
            proxies.expect_terminal(out, None)
            proxies.set_master(master)
            os.write(slave, b"bye\n")
            os.close(slave)
            proxies.close(drain=drain)
            with open(out_path, "rb") as f:
                self.assertEqual(f.read(), expected)
            self.assertRaises(OSError, os.fstat, master)

    def test_open_stdio(self):
        """
        FIFOs open read-write without blocking; files are written at their end
        without O_APPEND (splice refuses it); directories and missing stdin are
        errors naming the path.
        """
        directory = self.mktemp()
        os.mkdir(directory)
        fifo = os.path.join(directory, "f")
        os.mkfifo(fifo)
        fd, is_fifo = open_stdio(fifo, "stdout")  # no reader: still no block
        self.fds.append(fd)
        self.assertTrue(is_fifo)
        self.assertEqual(fcntl_flags(fd) & os.O_ACCMODE, os.O_RDWR)
        path = os.path.join(directory, "log")
        with open(path, "wb") as f:
            f.write(b"earlier\n")
        fd, is_fifo = open_stdio(path, "stderr")
        self.fds.append(fd)
        self.assertFalse(is_fifo)
        self.assertFalse(fcntl_flags(fd) & os.O_APPEND)
        self.assertEqual(os.lseek(fd, 0, os.SEEK_CUR), len(b"earlier\n"))
        self.assertTrue(fcntl_flags(fd) & os.O_NONBLOCK)
        e = self.assertRaises(StdioError, open_stdio, directory, "stdin")
        self.assertEqual(str(e), "cannot open stdin %s: Is a directory" % (directory,))


def fcntl_flags(fd):
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFL)


class StandardLibraryOnlyTests(unittest.TestCase):
    """
    The monitor runs as C{python -S monitord.py}: its modules need nothing but the standard library and
    L{containerd_tx.layout}.
    """

    def test_server_imports_only_the_standard_library(self):
        root = os.path.dirname(os.path.dirname(os.path.abspath(containerd_tx.__file__)))
        code = (
            "import sys; sys.path.insert(0, %r); from containerd_tx.monitor import server; "
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)"
            " - set(sys.builtin_module_names) - {'__main__'}))" % (root,)
        )
        out = subprocess.run([PYTHON, "-S", "-c", code], check=True, capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "['containerd_tx']")


class HelperWaitTests(unittest.TestCase):
    """
    The monitor's wait for a runtime's helper (in process): while a registered process is the child of a
    descendant of the monitor it waits on that helper's pidfd, and a helper that outlives
    C{HELPER_WAIT_SECONDS} makes the monitor watch the process as a stranger instead (status unknown).
    """

    def setUp(self):
        from containerd_tx.monitor import registry, server
        self.registry = registry
        self.monitor = server.Monitor(self.mktemp(), idle_exit=0)
        self.addCleanup(self.monitor.loop.selector.close)
        # The helper is this test process's child, as crun's helper is the monitor's once crun has exited.
        self.helper = subprocess.Popen(
            [PYTHON, "-S", "-c", "import os, time\nchild = os.fork()\nif child == 0:\n    time.sleep(60)\n"
             "    os._exit(0)\nprint(child, flush=True)\ntime.sleep(60)\n"],
            stdout=subprocess.PIPE)
        self.init_pid = int(self.helper.stdout.readline())
        self.addCleanup(self.stop)
        self.proc = registry.Proc("c1", "init", self.init_pid, "/nonexistent", None)
        self.logged = []
        self.patch(registry, "log", self.logged.append)
        self.monitor.procs[self.proc.key] = self.proc
        self.monitor.procs_by_pid[self.init_pid] = self.proc

    def stop(self):
        for pid in (self.init_pid, self.helper.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.helper.wait()
        self.helper.stdout.close()
        self.monitor.unregister(self.proc)

    def test_stale_unclaimed_status_is_another_process(self):
        """
        An unclaimed status of the same pid reaped before the spawn began belongs to an earlier process (pids
        wrap around): the live process is not reported as exited with it.
        """
        self.monitor.unclaimed[self.init_pid] = (0, time.time_ns() - 10**9)
        self.proc.spawned_ns = time.time_ns()
        self.monitor.resolve(self.proc)
        self.assertIn(self.proc, self.monitor.helper_waits)
        self.assertNotIn(self.init_pid, self.monitor.unclaimed)

    def test_recent_unclaimed_status_is_its_own(self):
        """A status reaped after the spawn began is the process's own (it exited before its pid file was read)."""
        exits = []
        self.monitor.proc_exited = lambda proc, status, time_ns, **more: exits.append((proc, status))
        self.proc.spawned_ns = time.time_ns()
        self.monitor.unclaimed[self.init_pid] = (7, self.proc.spawned_ns + 1)
        self.monitor.resolve(self.proc)
        self.assertEqual(exits, [(self.proc, 7)])
        self.assertEqual(self.monitor.helper_waits, set())

    def test_waits_for_the_helper_then_watches_a_stranger(self):
        self.monitor.resolve(self.proc)
        self.assertIn(self.proc, self.monitor.helper_waits)
        self.assertIsNotNone(self.proc.helper_pidfd)
        self.assertIsNone(self.proc.pidfd)
        wait = self.monitor.expire_helper_waits()
        self.assertTrue(0 < wait <= self.registry.HELPER_WAIT_SECONDS)
        self.proc.helper_deadline = time.monotonic() - 1
        self.assertIsNone(self.monitor.expire_helper_waits())
        self.assertEqual(self.monitor.helper_waits, set())
        self.assertIsNone(self.proc.helper_pidfd)
        self.assertIsNotNone(self.proc.pidfd)  # watched as a stranger now
        self.assertEqual(self.logged, [
            "c1/init: pid %d is still its runtime helper's child after 10s" % (self.init_pid,),
            "c1/init: pid %d is not our child; watching it" % (self.init_pid,),
        ])
