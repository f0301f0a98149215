"""
Checkpoint and restore with CRIU through the daemon: continuing, cloning, live migration, TCP, stdio.
"""

import os
import shutil
import subprocess

import grpc
from twisted.trial.unittest import SkipTest

from containerd_tx.api import containerd_pb2 as pb
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import Daemon, create_request, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id
from tests.support.processes import read_counter

COUNTER = ("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; echo $i; sleep 0.1; done")


LOOPBACK_UP = "ip link set lo up && "


def with_net_admin(config):
    """Let the container bring up its loopback interface (a new network namespace starts with it down)."""
    for kind, caps in config["process"]["capabilities"].items():
        caps.append("CAP_NET_ADMIN")


def criu_missing():
    criu = shutil.which("criu")
    if criu is None:
        return "criu is not installed (run scripts/setup-system)"
    if subprocess.run([criu, "check"], capture_output=True).returncode != 0:
        return f"{criu} fails `criu check` (run scripts/setup-system to build CRIU 4)"
    return None




class CheckpointTestCase(LifecycleTestCase):

    def setUp(self):
        reason = criu_missing()
        if reason:
            raise SkipTest(reason)
        super().setUp()
        self.checkpoints = os.path.join(self.daemon.workdir, "checkpoints")
        self.origin = unique_id("origin")

    def checkpoint(self, container_id, name, daemon=None, **options):
        (daemon or self.daemon).stub.CreateCheckpoint(pb.CreateCheckpointRequest(
            id=container_id, checkpoint=pb.Checkpoint(name=name, **options), checkpointDir=self.checkpoints),
            timeout=120)

    def restore(self, container_id, name, bundle, daemon=None, **request):
        response = (daemon or self.daemon).stub.CreateContainer(create_request(
            container_id, bundle, checkpoint=name, checkpointDir=self.checkpoints, **request), timeout=120)
        return response.container

    def counting(self, container_id=None, **request):
        container_id = container_id or self.origin
        bundle = self.bundle(*COUNTER)
        container = self.daemon.stub.CreateContainer(create_request(container_id, bundle, **request),
                                                     timeout=60).container
        pid = container.processes[0].systemPid
        wait_for(lambda: read_counter(pid) >= 5, message="the counter to reach 5")
        return bundle, pid


class CheckpointRestoreTests(CheckpointTestCase):

    def test_checkpoint_keeps_running_and_restore_continues(self):
        bundle, pid = self.counting()
        before = read_counter(pid)
        self.checkpoint(self.origin, "snap")
        after = read_counter(pid)
        self.assertGreaterEqual(after, before)
        wait_for(lambda: read_counter(pid) > after + 3, message="the original to keep counting")
        clone_id = unique_id("clone")
        clone = self.restore(clone_id, "snap", bundle)
        self.assertEqual(clone.status, "running")
        clone_pid = clone.processes[0].systemPid
        value = read_counter(clone_pid)
        self.assertGreaterEqual(value, before)
        wait_for(lambda: read_counter(clone_pid) > value + 2, message="the clone to count on")
        self.assertEqual(self.state_ids(), sorted([clone_id, self.origin]))
        # The restored container is supervised like any other.
        self.daemon.stub.Signal(pb.SignalRequest(id=clone_id, pid="init", signal=9), timeout=10)
        self.assertEqual(self.events.wait("exit", clone_id, "init").status, 137)

    def test_clone_twice(self):
        bundle, pid = self.counting()
        before = read_counter(pid)
        self.checkpoint(self.origin, "snap")
        clones = [unique_id(f"clone{i}") for i in (1, 2)]
        pids = [self.restore(clone, "snap", bundle).processes[0].systemPid for clone in clones]
        for clone_pid in pids:
            self.assertGreaterEqual(read_counter(clone_pid), before)
        for clone_pid in pids:
            start = read_counter(clone_pid)
            wait_for(lambda: read_counter(clone_pid) > start + 2, message="each clone to count on")
        exec_out = os.path.join(self.daemon.workdir, "exec.txt")
        self.daemon.stub.AddProcess(pb.AddProcessRequest(id=clones[1], pid="look", args=["cat", "/tmp/counter"],
                                                         stdout=exec_out), timeout=60)
        self.assertEqual(self.events.wait("exit", clones[1], "look").status, 0)
        with open(exec_out) as f:
            self.assertGreaterEqual(int(f.read()), before)

    def test_restore_reconnects_new_stdio(self):
        first_out = os.path.join(self.daemon.workdir, "first.txt")
        bundle, pid = self.counting(stdout=first_out)
        self.checkpoint(self.origin, "snap", exit=True)
        self.assertEqual(self.events.wait("exit", self.origin, "init").status, 137)
        with open(first_out) as f:
            last_before = int(f.read().split()[-1])
        second_out = os.path.join(self.daemon.workdir, "second.txt")
        self.restore(unique_id("again"), "snap", bundle, stdout=second_out)

        def numbers():
            with open(second_out) as f:
                return [int(n) for n in f.read().split()]
        wait_for(lambda: len(numbers()) >= 3, message="output in the new stdout")
        self.assertGreaterEqual(numbers()[0], last_before)

    def test_list_and_delete(self):
        self.counting()
        self.checkpoint(self.origin, "plain")
        self.checkpoint(self.origin, "withopts", tcp=True, unixSockets=True, shell=False)
        listed = self.daemon.stub.ListCheckpoint(pb.ListCheckpointRequest(id=self.origin,
                                                                          checkpointDir=self.checkpoints),
                                                 timeout=10).checkpoints
        self.assertEqual([(c.name, c.tcp, c.unixSockets, c.shell, c.exit) for c in listed],
                         [("plain", False, False, False, False), ("withopts", True, True, False, False)])
        self.assertTrue(os.path.isfile(os.path.join(self.checkpoints, "plain", "config.json")))
        with self.assertRaises(grpc.RpcError) as raised:
            self.checkpoint(self.origin, "plain")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        self.daemon.stub.DeleteCheckpoint(pb.DeleteCheckpointRequest(id=self.origin, name="plain",
                                                                     checkpointDir=self.checkpoints), timeout=30)
        self.assertFalse(os.path.exists(os.path.join(self.checkpoints, "plain")))
        listed = self.daemon.stub.ListCheckpoint(pb.ListCheckpointRequest(id=self.origin,
                                                                          checkpointDir=self.checkpoints),
                                                 timeout=10).checkpoints
        self.assertEqual([c.name for c in listed], ["withopts"])
        for call, request, code in [
            (self.daemon.stub.DeleteCheckpoint, pb.DeleteCheckpointRequest(
                id=self.origin, name="plain", checkpointDir=self.checkpoints), grpc.StatusCode.NOT_FOUND),
            (self.daemon.stub.ListCheckpoint, pb.ListCheckpointRequest(id="ghost"), grpc.StatusCode.NOT_FOUND),
            (self.daemon.stub.CreateCheckpoint, pb.CreateCheckpointRequest(
                id=self.origin, checkpoint=pb.Checkpoint(name="../evil")), grpc.StatusCode.INVALID_ARGUMENT),
            (self.daemon.stub.CreateCheckpoint, pb.CreateCheckpointRequest(
                id=self.origin, checkpoint=pb.Checkpoint(name="x"), checkpointDir="relative"),
             grpc.StatusCode.INVALID_ARGUMENT),
            (self.daemon.stub.CreateContainer, create_request(
                unique_id("nope"), self.bundle("true"), checkpoint="missing", checkpointDir=self.checkpoints),
             grpc.StatusCode.NOT_FOUND),
        ]:
            with self.assertRaises(grpc.RpcError) as raised:
                call(request, timeout=30)
            self.assertEqual(raised.exception.code(), code, raised.exception.details())

    def test_tcp_listener_survives_restore(self):
        serve = ("sh", "-c", LOOPBACK_UP + "mkdir -p /tmp/www; echo hello-from-httpd > /tmp/www/index.html; "
                             "exec httpd -f -p 127.0.0.1:8080 -h /tmp/www")
        bundle = self.bundle(*serve, edit=with_net_admin)
        web, web2 = unique_id("web"), unique_id("web2")
        pid = self.daemon.stub.CreateContainer(create_request(web, bundle), timeout=60).container.processes[0].systemPid
        wait_for(lambda: _listening(pid, 8080), message="httpd to listen on 8080")
        self.checkpoint(web, "web-snap", tcp=True)
        self.restore(web2, "web-snap", bundle)
        # runc restores into a fresh network namespace (its loopback down): networking is set up again after
        # a restore, as CNI does; the listening socket itself comes back from the image.
        self.daemon.stub.AddProcess(pb.AddProcessRequest(id=web2, pid="lo", args=["ip", "link", "set", "lo", "up"]),
                                    timeout=60)
        self.assertEqual(self.events.wait("exit", web2, "lo").status, 0)
        out = os.path.join(self.daemon.workdir, "wget.txt")
        self.daemon.stub.AddProcess(pb.AddProcessRequest(
            id=web2, pid="get", args=["wget", "-q", "-O-", "http://127.0.0.1:8080/index.html"], stdout=out,
            stderr=out + ".err"), timeout=60)
        status = self.events.wait("exit", web2, "get").status
        with open(out + ".err") as f:
            self.assertEqual(status, 0, f.read())
        with open(out) as f:
            self.assertEqual(f.read(), "hello-from-httpd\n")

    def test_criu_failure_leaves_container_running(self):
        # Both ends read a stdin that never ends, so the connection stays established.
        talk = ("sh", "-c", LOOPBACK_UP + "(sleep 1000 | nc -l -p 9000 > /dev/null) & sleep 0.3; "
                            "sleep 1000 | nc 127.0.0.1 9000")
        bundle = self.bundle(*talk, edit=with_net_admin)
        talker = unique_id("talker")
        pid = self.daemon.stub.CreateContainer(create_request(talker, bundle), timeout=60) \
            .container.processes[0].systemPid
        def connected():
            with open(f"/proc/{pid}/net/tcp") as f:
                return any(line.split()[3] == "01" for line in f.readlines()[1:])  # TCP_ESTABLISHED
        wait_for(connected, message="an established TCP connection in the container")
        with self.assertRaises(grpc.RpcError) as raised:
            self.checkpoint(talker, "nope")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        details = raised.exception.details()
        self.assertIn("criu", details.lower())
        self.assertIn("tcp", details.lower())
        self.assertNotIn("\n", details)
        state = self.daemon.stub.State(pb.StateRequest(id=talker), timeout=10).containers[0]
        self.assertEqual((state.status, state.processes[0].systemPid), ("running", pid))
        self.assertFalse(os.path.exists(os.path.join(self.checkpoints, "nope")))
        self.assertEqual([n for n in os.listdir(self.checkpoints) if not n.startswith("lost")], [])


class LiveMigrationTests(CheckpointTestCase):

    def test_migrate_between_two_daemons(self):
        bundle, pid = self.counting()
        before = read_counter(pid)
        target = Daemon.for_test(self)
        target_events = EventCollector(target.stub)
        self.addCleanup(target_events.close)
        self.checkpoint(self.origin, "move", exit=True)
        self.assertEqual(self.events.wait("exit", self.origin, "init").status, 137)
        wait_for(lambda: self.origin not in self.state_ids(), message="origin to leave the first daemon")
        moved = self.restore(self.origin, "move", bundle, daemon=target)
        target_events.wait("start-container", self.origin)
        moved_pid = moved.processes[0].systemPid
        value = read_counter(moved_pid)
        self.assertGreaterEqual(value, before)
        wait_for(lambda: read_counter(moved_pid) > value + 2, message="the migrated counter to go on")
        self.assertEqual([c.id for c in target.stub.State(pb.StateRequest(), timeout=10).containers], [self.origin])


def _listening(pid, port):
    """Whether the network namespace of process C{pid} has a TCP socket listening on C{port}."""
    with open(f"/proc/{pid}/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return any(row[1].endswith(f":{port:04X}") and row[3] == "0A" for row in rows)  # TCP_LISTEN
