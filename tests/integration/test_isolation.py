"""
runc's isolation features pass through the daemon intact: user namespaces, seccomp, capabilities,
no-new-privileges, rlimits, read-only roots, masked and read-only paths.
"""

import os
import stat

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase, _read_until_eof
from tests.support.bundles import runc_spec
from tests.support.ids import unique_id

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

    def run_container(self, name, script, edit=None, **request):
        """Run `sh -c script` to completion in a container named after C{name}; return (exit status, output)."""
        container_id = unique_id(name)
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
        workdir = self.daemon.workdir
        os.mkdir(os.path.join(self.rootfs, "work"))

        def edit(config):
            user_namespace(config)
            # The test's dir (state dir, socket, rootfs inside) seen from the container, so that what keeps
            # the mapped root out of the state dir is its mode, not its absence.
            config["mounts"].append({"destination": "/work", "type": "bind", "source": workdir,
                                     "options": ["rbind", "ro"]})

        bundle = self.bundle("sh", "-c", "id -u; sleep 1000", edit=edit)
        stdout = self.fifo("userns-out")
        reader = os.open(stdout, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        mapped = unique_id("mapped")
        container = self.daemon.stub.CreateContainer(pb.CreateContainerRequest(
            id=mapped, bundlePath=bundle, stdout=stdout), timeout=60).container
        pid = container.processes[0].systemPid
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        self.assertEqual(set(uids), {str(HOST_ID)})
        status, output = self.exec_in(mapped, "whoami", "id", "-u")
        self.assertEqual((status, output), (0, "0\n"))
        # The mapped root reaches the test's dir and lists what others may list (the rootfs)...
        status, output = self.exec_in(mapped, "look", "ls", "/work/rootfs")
        self.assertEqual(status, 0, output)
        self.assertIn("bin", output.split())
        # ...but not the state dir, which belongs to the real root with no access for others.
        state = "/work/" + os.path.relpath(self.daemon.state_dir, workdir)
        status, output = self.exec_in(mapped, "peek", "ls", state)
        self.assertNotEqual(status, 0, output)
        self.assertIn("Permission denied", output)
        self.assertEqual(stat.S_IMODE(os.stat(self.daemon.state_dir).st_mode) & 0o007, 0)
        self.assertEqual(stat.S_IMODE(os.stat(self.daemon.socket).st_mode) & 0o007, 0)
        self.daemon.stub.Signal(pb.SignalRequest(id=mapped, pid="init", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", mapped, "init").status, 137)
        self.assertEqual(_read_until_eof(reader).splitlines()[0], b"0")


class SeccompTests(IsolationTestCase):

    def test_profile_denies_mkdir_for_init_and_exec(self):
        def edit(config):
            config["linux"]["seccomp"] = DENY_MKDIR

        status, output = self.run_container("sec-init", "mkdir /tmp/x; echo status=$?", edit=edit)
        self.assertIn("Operation not permitted", output)
        self.assertIn("status=1", output)
        bundle = self.bundle("sleep", "1000", edit=edit)
        sec = unique_id("sec")
        self.daemon.stub.CreateContainer(pb.CreateContainerRequest(id=sec, bundlePath=bundle), timeout=60)
        status, output = self.exec_in(sec, "mk", "mkdir", "/tmp/y")
        self.assertNotEqual(status, 0)
        self.assertIn("Operation not permitted", output)
        status, _ = self.exec_in(sec, "touch", "touch", "/tmp/allowed")
        self.assertEqual(status, 0)


class CapabilityTests(IsolationTestCase):

    def setUp(self):
        super().setUp()
        bundle = self.bundle("sleep", "1000")
        self.caps = unique_id("caps")
        self.daemon.stub.CreateContainer(pb.CreateContainerRequest(id=self.caps, bundlePath=bundle), timeout=60)

    def test_no_net_raw_means_no_ping(self):
        status, output = self.run_container("pinger", "ping -c 1 127.0.0.1")
        self.assertNotEqual(status, 0)
        self.assertIn("permission denied", output.lower())
        status, output = self.exec_in(self.caps, "ping", "ping", "-c", "1", "127.0.0.1")
        self.assertNotEqual(status, 0)
        self.assertIn("permission denied", output.lower())

    def test_exec_inherits_bundle_caps_unless_named(self):
        _, inherited = self.exec_in(self.caps, "inherit", "grep", "CapEff", "/proc/self/status")
        _, init = self.exec_in(self.caps, "init-caps", "grep", "CapEff", "/proc/1/status")
        self.assertEqual(inherited, init)
        _, named = self.exec_in(self.caps, "named", "grep", "CapEff", "/proc/self/status",
                                capabilities=["CAP_NET_RAW"])
        self.assertEqual(int(named.split()[1], 16), 1 << 13)  # CAP_NET_RAW alone

    def test_no_new_privileges_visible(self):
        status, output = self.run_container("nnp", "grep NoNewPrivs /proc/self/status")
        self.assertEqual(output.split(), ["NoNewPrivs:", "1"])
        _, output = self.exec_in(self.caps, "nnp", "grep", "NoNewPrivs", "/proc/self/status")
        self.assertEqual(output.split(), ["NoNewPrivs:", "1"])

    def test_rlimits_for_init_and_narrowed_exec(self):
        status, output = self.run_container("limits", "ulimit -n")
        self.assertEqual(output.strip(), "1024")  # runc spec's RLIMIT_NOFILE
        _, output = self.exec_in(self.caps, "narrow", "sh", "-c", "ulimit -n",
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
