"""
Who may use the daemon: the socket is 0660 root:root (root:<group> with --group), the state dir is 0700, a
user outside the group is refused by the kernel before any gRPC byte is read, and paths built from client
input never leave the state dir or the checkpoint dir.

The non-root client runs C{ctr} with the same interpreter as the tests. That interpreter lives under /root
(mode 0700 here), which other users cannot traverse; rather than loosening /root, the client runs in a private
mount namespace where /root is a fresh 0755 tmpfs with only /root/.pyenv bind-mounted back in: same paths, the
host untouched, and nothing left behind when the namespace goes.
"""

import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys

import grpc
from twisted.trial.unittest import SkipTest, TestCase

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_bad_input_all import BadInputTestCase
from containerd_tx.layout import TEMP_PREFIX as _TMP_PREFIX
from tests.support.daemon import Daemon, create_request
from tests.support.ids import unique_id

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(argv):
    return subprocess.run(argv, capture_output=True, text=True)


def _add_group(testcase, name):
    out = _run(["groupadd", name])
    if out.returncode != 0:
        raise SkipTest(f"groupadd {name} failed: {out.stderr.strip()}")
    testcase.addCleanup(_run, ["groupdel", name])
    return grp.getgrnam(name).gr_gid


def _add_user(testcase, name, groups=()):
    argv = ["useradd", "-M", "-N", "-s", "/usr/sbin/nologin"]
    if groups:
        argv += ["-G", ",".join(groups)]
    out = _run(argv + [name])
    if out.returncode != 0:
        raise SkipTest(f"useradd {name} failed: {out.stderr.strip()}")
    # Cleanups run last-in first-out: the user goes before its groups.
    testcase.addCleanup(_run, ["userdel", name])
    return pwd.getpwnam(name).pw_uid


class ClientAs:
    """
    Runs C{python -m ctr.main ...} as another user, with the tests' interpreter reachable for that user.
    """

    def __init__(self, testcase, user):
        self.user = user
        for tool in ("unshare", "runuser", "mount"):
            if shutil.which(tool) is None:
                raise SkipTest(f"{tool} is not installed: cannot run a client as another user")
        self.python = os.path.realpath(sys.executable)
        self.scratch = testcase.mktemp()
        os.makedirs(self.scratch)
        self.scratch = os.path.abspath(self.scratch)
        self.pyenv_home = self._pyenv_home()

    def _pyenv_home(self):
        """The top folder under /root holding the interpreter (None when it is not under /root)."""
        if not self.python.startswith("/root/"):
            return None
        return "/root/" + self.python.split("/")[2]

    def command(self, *args):
        """The shell command line running ctr as the user."""
        inner = ["runuser", "-u", self.user, "--", "env", f"PYTHONPATH={REPO}", "PYTHONDONTWRITEBYTECODE=1",
                 self.python, "-m", "ctr.main", *args]
        if self.pyenv_home is None:
            return inner
        hold = os.path.join(self.scratch, "hold")
        os.makedirs(hold, exist_ok=True)
        script = (
            'set -e; mount --bind "$1" "$2"; mount -t tmpfs -o mode=0755,size=1m tmpfs /root; '
            'mkdir "$1"; mount --bind "$2" "$1"; shift 2; cd /; exec "$@"'
        )
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", self.pyenv_home, hold,
                *inner]

    def run(self, *args, timeout=60):
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout)


class SocketAccessTests(TestCase):

    def daemon(self, args=()):
        daemon = Daemon.for_test(self, args=args)
        # Let other users reach the socket's folder, so that the socket's own mode decides (the state dir
        # inside stays 0700).
        os.chmod(daemon.workdir, 0o711)
        return daemon

    def test_socket_root_root_0660_and_private_state(self):
        daemon = self.daemon()
        st = os.stat(daemon.socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(0o660))
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        self.assertEqual(oct(stat.S_IMODE(os.stat(daemon.state_dir).st_mode)), oct(0o700))
        # Nothing in the state dir is writable by others, and the records are not readable by them.
        rootfs = bundles_rootfs(daemon)
        c1 = unique_id("c1")
        daemon.stub.CreateContainer(create_request(c1, make_sleeper(daemon, rootfs)), timeout=60)
        loose = []
        for directory, dirs, files in os.walk(daemon.state_dir):
            for name in dirs + files:
                path = os.path.join(directory, name)
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    # The writer renamed a temporary file into place between the listing and here.
                    if name.startswith(_TMP_PREFIX):
                        continue
                    raise
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    continue
                if mode & 0o002:
                    loose.append(f"{path} {oct(mode)} world-writable")
        self.assertEqual(loose, [])
        for path in ("containers", f"containers/{c1}", "runtime", "sockets"):
            mode = stat.S_IMODE(os.stat(os.path.join(daemon.state_dir, path)).st_mode)
            self.assertEqual(mode & 0o077, 0, f"{path} is {oct(mode)}")
        for path in ("events.log", f"containers/{c1}/container.json", f"containers/{c1}/process-init.json"):
            mode = stat.S_IMODE(os.stat(os.path.join(daemon.state_dir, path)).st_mode)
            self.assertEqual(mode & 0o077, 0, f"{path} is {oct(mode)}")
        daemon.stub.Signal(pb.SignalRequest(id=c1, pid="init", signal=9), timeout=10)

    def test_group_option_sets_socket_group(self):
        name = unique_id("ctxg")
        gid = _add_group(self, name)
        daemon = self.daemon(("--group", name))
        st = os.stat(daemon.socket)
        self.assertEqual(oct(stat.S_IMODE(st.st_mode)), oct(0o660))
        self.assertEqual((st.st_uid, st.st_gid), (0, gid))

    def test_unknown_group_refused_at_start(self):
        daemon = Daemon.for_test(self, start=False)
        out = subprocess.run(daemon.command(("--group", "no-such-group-ctx")), capture_output=True, text=True,
                             timeout=60, cwd=daemon.workdir)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("no such group", out.stdout + out.stderr)
        self.assertFalse(os.path.exists(daemon.socket))

    def _version_as(self, user, daemon):
        out = ClientAs(self, user).run("--address", daemon.address, "--connect-timeout", "5s", "version")
        return out.returncode, out.stdout, out.stderr

    def test_non_root_user_refused(self):
        user = unique_id("ctxu")
        _add_user(self, user)
        daemon = self.daemon()
        code, stdout, stderr = self._version_as(user, daemon)
        self.assertNotEqual(code, 0, stdout)
        lines = stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, stderr)
        self.assertIn("permission", lines[0].lower())
        self.assertNotIn("Traceback", stderr)
        self.assertNotIn("Server:", stdout)

    def test_group_member_allowed_non_member_refused(self):
        group = unique_id("ctxg")
        _add_group(self, group)
        member, outsider = unique_id("ctxm"), unique_id("ctxo")
        _add_user(self, member, groups=(group,))
        _add_user(self, outsider)
        daemon = self.daemon(("--group", group))
        # The same client, the same socket: the member gets through (so the refusal below is the socket's
        # mode at work, not an unusable client).
        code, stdout, stderr = self._version_as(member, daemon)
        self.assertEqual(code, 0, stderr)
        self.assertIn("Server: ", stdout)
        code, stdout, stderr = self._version_as(outsider, daemon)
        self.assertNotEqual(code, 0, stdout)
        self.assertEqual(len(stderr.strip().splitlines()), 1, stderr)
        self.assertIn("permission", stderr.lower())


def bundles_rootfs(daemon):
    from tests.support import bundles

    return bundles.make_rootfs(os.path.join(daemon.workdir, "rootfs"))


def make_sleeper(daemon, rootfs):
    from tests.support import bundles

    return bundles.make_bundle(os.path.join(daemon.workdir, "sleeper"), ["sleep", "1000"], rootfs)


class ContainmentTests(BadInputTestCase):
    """
    Ids and checkpoint dirs from clients never name a path outside where they belong (and, as for all bad
    input, the keeper container and the state dir are left as they were).
    """

    def assertInvalid(self, call, request, words):
        with self.assertRaises(grpc.RpcError) as raised:
            call(request, timeout=30)
        self.assertEqual(raised.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, raised.exception.details())
        self.assertIn(words, raised.exception.details())
        self.assertNotIn("\n", raised.exception.details())

    def test_relative_checkpoint_dir_refused(self):
        stub = self.daemon.stub
        outside = os.path.join(self.daemon.workdir, "outside")
        for relative in ("relative/dir", "../escape", ".", "checkpoints"):
            self.assertInvalid(stub.CreateCheckpoint, pb.CreateCheckpointRequest(
                id=self.kid, checkpoint=pb.Checkpoint(name="cp"), checkpointDir=relative), "checkpointDir")
            self.assertInvalid(stub.ListCheckpoint, pb.ListCheckpointRequest(id=self.kid, checkpointDir=relative),
                               "checkpointDir")
            self.assertInvalid(stub.DeleteCheckpoint, pb.DeleteCheckpointRequest(
                id=self.kid, name="cp", checkpointDir=relative), "checkpointDir")
            self.assertInvalid(stub.CreateContainer, create_request(
                "restored", self.good_bundle, checkpoint="cp", checkpointDir=relative), "checkpointDir")
        self.assertInvalid(stub.ListCheckpoint, pb.ListCheckpointRequest(id=self.kid, checkpointDir="/a\0b"),
                           "checkpointDir")
        # Nothing was made relative to the daemon's working directory (its workdir) or the bundle.
        for path in ("relative", "escape", "checkpoints", "cp"):
            self.assertFalse(os.path.lexists(os.path.join(self.daemon.workdir, path)), path)
        self.assertFalse(os.path.exists(os.path.join(self.good_bundle, "checkpoints")))
        self.assertFalse(os.path.exists(outside))

    def test_ids_that_would_escape_are_refused(self):
        stub = self.daemon.stub
        checkpoints = os.path.join(self.daemon.workdir, "cps")
        os.mkdir(checkpoints)
        for bad in (f"../{self.kid}", "../../etc", "a/../../b", "/etc", "..", "."):
            self.assertInvalid(stub.CreateContainer, create_request(bad, self.good_bundle), "container id")
            self.assertInvalid(stub.Signal, pb.SignalRequest(id=self.kid, pid=bad, signal=9), "process id")
            self.assertInvalid(stub.CreateCheckpoint, pb.CreateCheckpointRequest(
                id=self.kid, checkpoint=pb.Checkpoint(name=bad), checkpointDir=checkpoints), "checkpoint name")
            self.assertInvalid(stub.DeleteCheckpoint, pb.DeleteCheckpointRequest(
                id=self.kid, name=bad, checkpointDir=checkpoints), "checkpoint name")
        self.assertEqual(os.listdir(checkpoints), [])
        self.assertEqual(sorted(os.listdir(os.path.join(self.daemon.state_dir, "containers"))), [self.kid])
        # Dots inside an id are fine and stay inside containers/.
        dots = unique_id("a..b")
        self.start(dots, "sh", "-c", "exit 0")
        self.assertEqual(self.events.wait("exit", dots, "init").status, 0)
        self.assertFalse(os.path.lexists(os.path.join(self.daemon.state_dir, dots)))
