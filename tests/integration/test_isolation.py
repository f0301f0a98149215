"""
runc's isolation features pass through the daemon intact: user namespaces, seccomp, capabilities,
no-new-privileges, rlimits, read-only roots, masked and read-only paths.
"""

import os
import stat

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase, _read_until_eof
from tests.support.bundles import runc_spec

HOST_ID = 200000


def user_namespace(config):
    """Map container root to an unprivileged host range."""
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    # A cgroup mount needs cgroup namespace privileges the mapped root lacks; sysfs is enough here.
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys/fs/cgroup"]


DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


class IsolationTestCase(LifecycleTestCase):

    def run_container(self, container_id, script, edit=None, **request):
        """Run `sh -c script` to completion; return (exit status, stdout+stderr)."""
        out = os.path.join(self.daemon.workdir, f"{container_id}.out")
        bundle = self.bundle("sh", "-c", script, edit=edit)
        self.daemon.stub.CreateContainer(pb.CreateContainerRequest(
            id=container_id, bundlePath=bundle, stdout=out, stderr=out, **request), timeout=60)
        status = self.events.wait("exit", container_id, "init").status
        with open(out) as f:
            return status, f.read()

    def exec_in(self, container_id, process_id, *args, **request):
        """Exec args to completion; return (exit status, stdout+stderr)."""
        out = os.path.join(self.daemon.workdir, f"{container_id}-{process_id}.out")
        self.daemon.stub.AddProcess(pb.AddProcessRequest(id=container_id, pid=process_id, args=args,
                                                         stdout=out, stderr=out, **request), timeout=60)
        status = self.events.wait("exit", container_id, process_id).status
        with open(out) as f:
            return status, f.read()


class UserNamespaceTests(IsolationTestCase):

    def test_mapped_root(self):
        # The mapped root must be able to reach the rootfs: the test's dir is made traversable (not readable).
        os.chmod(self.daemon.workdir, 0o711)
        bundle = self.bundle("sh", "-c", "id -u; sleep 1000", edit=user_namespace)
        stdout = self.fifo("userns-out")
        reader = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        container = self.daemon.stub.CreateContainer(pb.CreateContainerRequest(
            id="mapped", bundlePath=bundle, stdout=stdout), timeout=60).container
        pid = container.processes[0].systemPid
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        self.assertEqual(set(uids), {str(HOST_ID)})
        status, output = self.exec_in("mapped", "whoami", "id", "-u")
        self.assertEqual((status, output), (0, "0\n"))
        # The mapped root cannot reach the daemon's state dir or socket (they are not in its mount namespace,
        # and on the host they belong to the real root with no access for others).
        status, output = self.exec_in("mapped", "peek", "ls", self.daemon.state_dir)
        self.assertNotEqual(status, 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.daemon.state_dir).st_mode) & 0o007, 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.daemon.socket).st_mode) & 0o007, 0)
        self.daemon.stub.Signal(pb.SignalRequest(id="mapped", pid="init", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", "mapped", "init").status, 137)
        self.assertEqual(_read_until_eof(reader).splitlines()[0], b"0")


class SeccompTests(IsolationTestCase):

    def test_profile_denies_mkdir_for_init_and_exec(self):
        def edit(config):
            config["linux"]["seccomp"] = DENY_MKDIR

        status, output = self.run_container("sec-init", "mkdir /tmp/x; echo status=$?", edit=edit)
        self.assertIn("Operation not permitted", output)
        self.assertIn("status=1", output)
        bundle = self.bundle("sleep", "1000", edit=edit)
        self.daemon.stub.CreateContainer(pb.CreateContainerRequest(id="sec", bundlePath=bundle), timeout=60)
        status, output = self.exec_in("sec", "mk", "mkdir", "/tmp/y")
        self.assertNotEqual(status, 0)
        self.assertIn("Operation not permitted", output)
        status, _ = self.exec_in("sec", "touch", "touch", "/tmp/allowed")
        self.assertEqual(status, 0)


class CapabilityTests(IsolationTestCase):

    def setUp(self):
        super().setUp()
        bundle = self.bundle("sleep", "1000")
        self.daemon.stub.CreateContainer(pb.CreateContainerRequest(id="caps", bundlePath=bundle), timeout=60)

    def test_no_net_raw_means_no_ping(self):
        status, output = self.run_container("pinger", "ping -c 1 127.0.0.1")
        self.assertNotEqual(status, 0)
        self.assertIn("permission denied", output.lower())
        status, output = self.exec_in("caps", "ping", "ping", "-c", "1", "127.0.0.1")
        self.assertNotEqual(status, 0)
        self.assertIn("permission denied", output.lower())

    def test_exec_inherits_bundle_caps_unless_named(self):
        _, inherited = self.exec_in("caps", "inherit", "grep", "CapEff", "/proc/self/status")
        _, init = self.exec_in("caps", "init-caps", "grep", "CapEff", "/proc/1/status")
        self.assertEqual(inherited, init)
        _, named = self.exec_in("caps", "named", "grep", "CapEff", "/proc/self/status",
                                capabilities=["CAP_NET_RAW"])
        self.assertEqual(int(named.split()[1], 16), 1 << 13)  # CAP_NET_RAW alone

    def test_no_new_privileges_visible(self):
        status, output = self.run_container("nnp", "grep NoNewPrivs /proc/self/status")
        self.assertEqual(output.split(), ["NoNewPrivs:", "1"])
        _, output = self.exec_in("caps", "nnp", "grep", "NoNewPrivs", "/proc/self/status")
        self.assertEqual(output.split(), ["NoNewPrivs:", "1"])

    def test_rlimits_for_init_and_narrowed_exec(self):
        status, output = self.run_container("limits", "ulimit -n")
        self.assertEqual(output.strip(), "1024")  # runc spec's RLIMIT_NOFILE
        _, output = self.exec_in("caps", "narrow", "sh", "-c", "ulimit -n",
                                 rlimits=[pb.Rlimit(type="RLIMIT_NOFILE", soft=256, hard=256)])
        self.assertEqual(output.strip(), "256")


class FilesystemTests(IsolationTestCase):

    def test_read_only_root_and_tmpfs(self):
        status, output = self.run_container("ro", "touch /etc/x; echo root=$?; touch /tmp/x; echo tmp=$?")
        self.assertIn("Read-only file system", output)
        self.assertIn("root=1", output)
        self.assertIn("tmp=0", output)

    def test_masked_and_read_only_paths(self):
        masked = [p for p in runc_spec()["linux"]["maskedPaths"] if os.path.isfile(p) and os.path.getsize(p) >= 0
                  and _readable_nonempty(p)]
        self.assertTrue(masked, "no masked path of runc's spec exists on this host")
        status, output = self.run_container(
            "masked", f"wc -c < {masked[0]}; echo 1 > /proc/sys/kernel/domainname; echo sys=$?")
        self.assertEqual(output.splitlines()[0].strip(), "0")  # masked with /dev/null: reads nothing
        self.assertIn("sys=1", output)  # /proc/sys is read-only


def _readable_nonempty(path):
    try:
        with open(path, "rb") as f:
            return bool(f.read(1))
    except OSError:
        return False
