"""
Exec into running containers: users, cwd, env, exit statuses, terminals, stdin.
"""

import os
import time

import grpc

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase, _read_until_eof
from tests.support.daemon import wait_for
from tests.support.ids import unique_id


def _read_until(fd, needle, timeout=15.0):
    data = b""
    deadline = time.monotonic() + timeout
    while needle not in data:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not seen within {timeout}s; got {data!r}")
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.02)
            continue
        if not chunk:
            time.sleep(0.02)
        data += chunk
    return data


class ExecTestCase(LifecycleTestCase):

    def setUp(self):
        super().setUp()
        self.cid = unique_id("box")
        self.init = self.start(self.cid, "sleep", "1000").processes[0]

    def exec(self, pid, *args, **kw):
        request = pb.AddProcessRequest(id=self.cid, pid=pid, args=args, **kw)
        return self.daemon.stub.AddProcess(request, timeout=60).systemPid

    def reader(self, name):
        path = self.fifo(name)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, fd)
        return path, fd

    def writer(self, name):
        path = self.fifo(name)
        fd = os.open(path, os.O_RDWR)
        self.addCleanup(os.close, fd)
        return path, fd

    def processes(self):
        state = self.daemon.stub.State(pb.StateRequest(id=self.cid), timeout=10)
        return sorted(p.pid for p in state.containers[0].processes)


class ExecTests(ExecTestCase):

    def test_user_cwd_env_and_exit_status(self):
        out, fd = self.reader("out")
        pid = self.exec("probe", "sh", "-c", "id -u; id -g; pwd; echo $FOO; exit 3",
                        user=pb.User(uid=1000, gid=1000), cwd="/tmp", env=["FOO=bar", "PATH=/bin"], stdout=out)
        self.assertGreater(pid, 0)
        start = self.events.wait("start-process", self.cid, "probe")
        self.assertGreater(start.timestamp.seconds, 0)
        self.assertEqual(self.events.wait("exit", self.cid, "probe").status, 3)
        self.assertEqual(_read_until_eof(fd), b"1000\n1000\n/tmp\nbar\n")
        self.assertEqual(self.processes(), ["init"])
        self.assertEqual(self.daemon.stub.State(pb.StateRequest(id=self.cid), timeout=10).containers[0].status,
                         "running")

    def test_exec_listed_in_state_while_running_and_signalled(self):
        pid = self.exec("sleeper", "sleep", "1000")
        self.assertEqual(self.processes(), ["init", "sleeper"])
        state = self.daemon.stub.State(pb.StateRequest(id=self.cid), timeout=10)
        listed = {p.pid: p for p in state.containers[0].processes}
        self.assertEqual(listed["sleeper"].systemPid, pid)
        self.assertEqual(list(listed["sleeper"].args), ["sleep", "1000"])
        self.daemon.stub.Signal(pb.SignalRequest(id=self.cid, pid="sleeper", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", self.cid, "sleeper").status, 137)
        self.assertEqual(self.processes(), ["init"])

    def test_close_stdin_ends_cat(self):
        stdin, writer = self.writer("in")
        out, reader = self.reader("out")
        self.exec("cat", "cat", stdin=stdin, stdout=out)
        os.write(writer, b"through the pipe\n")
        self.assertEqual(_read_until(reader, b"through the pipe\n"), b"through the pipe\n")
        self.daemon.stub.UpdateProcess(pb.UpdateProcessRequest(id=self.cid, pid="cat", closeStdin=True), timeout=10)
        self.assertEqual(self.events.wait("exit", self.cid, "cat").status, 0)

    def test_tty_resize_seen_by_stty(self):
        stdin, writer = self.writer("in")
        out, reader = self.reader("out")
        self.exec("tty", "sh", terminal=True, stdin=stdin, stdout=out, env=["PATH=/bin", "PS1=$ "])
        self.daemon.stub.UpdateProcess(pb.UpdateProcessRequest(id=self.cid, pid="tty", width=123, height=45),
                                       timeout=10)
        os.write(writer, b"stty size\n")
        _read_until(reader, b"45 123")
        self.daemon.stub.UpdateProcess(pb.UpdateProcessRequest(id=self.cid, pid="tty", width=80, height=24),
                                       timeout=10)
        os.write(writer, b"stty size; exit 4\n")
        _read_until(reader, b"24 80")
        self.assertEqual(self.events.wait("exit", self.cid, "tty").status, 4)

    def test_tty_close_stdin_ends_cat(self):
        stdin, writer = self.writer("in")
        out, reader = self.reader("out")
        self.exec("ttycat", "cat", terminal=True, stdin=stdin, stdout=out)
        os.write(writer, b"typed\n")
        _read_until(reader, b"typed")
        self.daemon.stub.UpdateProcess(pb.UpdateProcessRequest(id=self.cid, pid="ttycat", closeStdin=True),
                                       timeout=10)
        self.assertEqual(self.events.wait("exit", self.cid, "ttycat").status, 0)

    def test_init_exit_reaps_execs(self):
        self.exec("a", "sleep", "1000")
        self.exec("b", "sleep", "1000")
        self.daemon.stub.Signal(pb.SignalRequest(id=self.cid, pid="init", signal=9), timeout=10)
        init_exit = self.events.wait("exit", self.cid, "init")
        self.assertEqual(init_exit.status, 137)
        for pid in ("a", "b"):
            self.assertEqual(self.events.wait("exit", self.cid, pid).status, 137)
        order = [e.pid for e in self.events.matching("exit", self.cid)]
        self.assertEqual(order[-1], "init")
        wait_for(lambda: self.cid not in self.state_ids(), message="the container to leave State")


class ExecBadInputTests(ExecTestCase):

    def assertCode(self, code, call, request):
        with self.assertRaises(grpc.RpcError) as raised:
            call(request, timeout=30)
        self.assertEqual(raised.exception.code(), code, raised.exception.details())
        self.assertNotIn("\n", raised.exception.details())
        return raised.exception.details()

    def test_bad_exec_requests(self):
        add = self.daemon.stub.AddProcess
        self.exec("taken", "sleep", "1000")
        cases = [
            (grpc.StatusCode.NOT_FOUND, pb.AddProcessRequest(id="ghost", pid="p", args=["true"])),
            (grpc.StatusCode.ALREADY_EXISTS, pb.AddProcessRequest(id=self.cid, pid="taken", args=["true"])),
            (grpc.StatusCode.ALREADY_EXISTS, pb.AddProcessRequest(id=self.cid, pid="init", args=["true"])),
            (grpc.StatusCode.INVALID_ARGUMENT, pb.AddProcessRequest(id=self.cid, pid="../p", args=["true"])),
            (grpc.StatusCode.INVALID_ARGUMENT, pb.AddProcessRequest(id=self.cid, pid="", args=["true"])),
            (grpc.StatusCode.INVALID_ARGUMENT, pb.AddProcessRequest(id=self.cid, pid="p", args=[])),
            (grpc.StatusCode.INVALID_ARGUMENT, pb.AddProcessRequest(id=self.cid, pid="p", args=["true"],
                                                                    cwd="relative")),
            (grpc.StatusCode.INVALID_ARGUMENT, pb.AddProcessRequest(
                id=self.cid, pid="p", args=["true"], rlimits=[pb.Rlimit(type="RLIMIT_BOGUS", soft=1, hard=1)])),
            (grpc.StatusCode.INVALID_ARGUMENT, pb.AddProcessRequest(
                id=self.cid, pid="p", args=["true"], rlimits=[pb.Rlimit(type="RLIMIT_NOFILE", soft=9, hard=1)])),
        ]
        if not os.path.isdir("/sys/kernel/security/apparmor"):
            cases.append((grpc.StatusCode.FAILED_PRECONDITION,
                          pb.AddProcessRequest(id=self.cid, pid="p", args=["true"], apparmorProfile="x")))
        if not os.path.isdir("/sys/fs/selinux"):
            cases.append((grpc.StatusCode.FAILED_PRECONDITION,
                          pb.AddProcessRequest(id=self.cid, pid="p", args=["true"], selinuxLabel="x")))
        for code, request in cases:
            self.assertCode(code, add, request)
        self.assertEqual(self.processes(), ["init", "taken"])

    def test_exec_failing_in_runtime(self):
        details = self.assertCode(grpc.StatusCode.INTERNAL, self.daemon.stub.AddProcess,
                                  pb.AddProcessRequest(id=self.cid, pid="nobin", args=["/no/such/binary"]))
        self.assertIn("exec failed", details)
        self.assertEqual(self.processes(), ["init"])

    def test_bad_update_process(self):
        self.exec("plain", "sleep", "1000")
        update = self.daemon.stub.UpdateProcess
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, update,
                        pb.UpdateProcessRequest(id=self.cid, pid="plain", width=80, height=24))
        self.assertCode(grpc.StatusCode.NOT_FOUND, update, pb.UpdateProcessRequest(id=self.cid, pid="nope",
                                                                                  closeStdin=True))
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, update,
                        pb.UpdateProcessRequest(id=self.cid, pid="plain", width=80))
