"""
Tests for L{containerd_tx.api_convert}: plain objects to and from the wire contract's messages (stats samples
in L{tests.unit.test_stats}, State trimming and resources in L{tests.unit.test_dropin_units}).
"""

from google.protobuf.timestamp_pb2 import Timestamp
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api_convert import (
    TRUNCATED_LABEL,
    checkpoint_options_from_proto,
    checkpoint_to_proto,
    container_to_proto,
    create_request_from_proto,
    event_to_proto,
    exec_request_from_proto,
    ns_from_timestamp,
    process_to_proto,
    state_to_proto,
    timestamp_from_ns,
)
from containerd_tx.events import EXIT, Event
from containerd_tx.model import INIT, RUNNING, Container, Process, User
from containerd_tx.supervisor import CreateRequest, ExecRequest, Machine


def _init():
    return Process(
        id=INIT,
        args=["sh", "-c", "sleep 1"],
        env=["PATH=/bin"],
        cwd="/srv",
        terminal=True,
        user=User(uid=1000, gid=100, additional_gids=[10, 11]),
        stdin="/tmp/in",
        stdout="/tmp/out",
        stderr="/tmp/err",
        capabilities=["CAP_KILL"],
        apparmor_profile="prof",
        selinux_label="label",
        no_new_privileges=True,
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}, {"type": "RLIMIT_CORE"}],
        system_pid=4242,
    )


class TimestampTests(SynchronousTestCase):
    """
    Nanoseconds since the epoch to protobuf Timestamps and back.
    """

    def test_split(self):
        """
        Seconds and nanos are split exactly.
        """
        timestamp = timestamp_from_ns(1_700_000_000_123_456_789)
        self.assertIsInstance(timestamp, Timestamp)
        self.assertEqual((timestamp.seconds, timestamp.nanos), (1_700_000_000, 123_456_789))

    def test_round_trip(self):
        """
        Every nanosecond survives the round trip (no float rounding), whole seconds and zero included.
        """
        for ns in (0, 1, 999_999_999, 1_000_000_000, 1_700_000_000_123_456_789, 1_700_000_000_000_000_001,
                   2**62 + 7):
            self.assertEqual(ns_from_timestamp(timestamp_from_ns(ns)), ns, ns)

    def test_nanos_in_range(self):
        """
        nanos is always 0..999999999 (a valid Timestamp), also before the epoch.
        """
        for ns in (-1, -1_500_000_000, 5, 10**18 + 999_999_999):
            timestamp = timestamp_from_ns(ns)
            self.assertTrue(0 <= timestamp.nanos < 1_000_000_000, ns)
            self.assertEqual(ns_from_timestamp(timestamp), ns)

    def test_from_wire(self):
        """
        A Timestamp as a client sends it is read to nanoseconds.
        """
        self.assertEqual(ns_from_timestamp(Timestamp(seconds=3, nanos=5)), 3_000_000_005)
        self.assertEqual(ns_from_timestamp(Timestamp()), 0)

    def test_serialised(self):
        """
        The Timestamp survives serialisation (what a client reads back).
        """
        ns = 1_700_000_000_123_456_789
        wire = pb.Event(timestamp=timestamp_from_ns(ns)).SerializeToString()
        self.assertEqual(ns_from_timestamp(pb.Event.FromString(wire).timestamp), ns)


class ProcessTests(SynchronousTestCase):
    """
    L{process_to_proto} carries every field of a process.
    """

    def test_fields(self):
        """
        Every field reaches the wire under its contract name.
        """
        message = process_to_proto(_init())
        self.assertEqual(message.pid, "init")
        self.assertTrue(message.terminal)
        self.assertEqual((message.user.uid, message.user.gid), (1000, 100))
        self.assertEqual(list(message.user.additionalGids), [10, 11])
        self.assertEqual(list(message.args), ["sh", "-c", "sleep 1"])
        self.assertEqual(list(message.env), ["PATH=/bin"])
        self.assertEqual(message.cwd, "/srv")
        self.assertEqual(message.systemPid, 4242)
        self.assertEqual((message.stdin, message.stdout, message.stderr), ("/tmp/in", "/tmp/out", "/tmp/err"))
        self.assertEqual(list(message.capabilities), ["CAP_KILL"])
        self.assertEqual(message.apparmorProfile, "prof")
        self.assertEqual(message.selinuxLabel, "label")
        self.assertTrue(message.noNewPrivileges)
        self.assertEqual(
            [(r.type, r.soft, r.hard) for r in message.rlimits],
            [("RLIMIT_NOFILE", 1024, 4096), ("RLIMIT_CORE", 0, 0)],
        )

    def test_defaults(self):
        """
        A minimal process converts with empty defaults.
        """
        message = process_to_proto(Process(id="e1", args=["ls"]))
        self.assertEqual(message.pid, "e1")
        self.assertEqual(message.cwd, "/")
        self.assertEqual(message.systemPid, 0)
        self.assertFalse(message.terminal)
        self.assertEqual(list(message.rlimits), [])


class ContainerTests(SynchronousTestCase):
    """
    L{container_to_proto} carries a container, its running processes and its pids.
    """

    def make_container(self):
        return Container(
            id="web",
            bundle="/bundles/web",
            runtime="crun",
            runtime_args=["--debug"],
            labels=["a=b", "tier=front"],
            status=RUNNING,
            processes={
                INIT: _init(),
                "e1": Process(id="e1", args=["ls"], system_pid=4343),
                "starting": Process(id="starting", args=["ls"], system_pid=0),
            },
        )

    def test_fields(self):
        """
        id, bundlePath, status, labels, pids and runtime reach the wire.
        """
        message = container_to_proto(self.make_container(), [4242, 4343, 5000])
        self.assertIsInstance(message, pb.Container)
        self.assertEqual(message.id, "web")
        self.assertEqual(message.bundlePath, "/bundles/web")
        self.assertEqual(message.status, "running")
        self.assertEqual(list(message.labels), ["a=b", "tier=front"])
        self.assertEqual(list(message.pids), [4242, 4343, 5000])
        self.assertEqual(message.runtime, "crun")

    def test_processes(self):
        """
        Processes with a host pid are listed with their systemPid; those without one (not started yet) are
        left out.
        """
        message = container_to_proto(self.make_container(), [])
        self.assertEqual([(p.pid, p.systemPid) for p in message.processes], [("init", 4242), ("e1", 4343)])
        self.assertEqual(message.processes[0], process_to_proto(_init()))

    def test_serialised(self):
        """
        The message serialises and parses back equal.
        """
        message = container_to_proto(self.make_container(), [1, 2])
        self.assertEqual(pb.Container.FromString(message.SerializeToString()), message)


class EventTests(SynchronousTestCase):
    """
    L{event_to_proto} carries an event as the wire contract spells it.
    """

    def test_fields(self):
        """
        type, id, status, pid and timestamp reach the wire; the host pid does not.
        """
        event = Event(EXIT, "web", "e1", 137, 1_700_000_000_000_000_042, system_pid=4343)
        message = event_to_proto(event)
        self.assertIsInstance(message, pb.Event)
        self.assertEqual(message.type, "exit")
        self.assertEqual(message.id, "web")
        self.assertEqual(message.status, 137)
        self.assertEqual(message.pid, "e1")
        self.assertTrue(message.HasField("timestamp"))
        self.assertEqual(ns_from_timestamp(message.timestamp), 1_700_000_000_000_000_042)
        self.assertNotIn("4343", str(message))

    def test_resume_timestamp(self):
        """
        The timestamp a client reads from an event, sent back as its resume point, is the event's own.
        """
        event = Event(EXIT, "web", "init", 0, 1_700_000_000_999_999_999)
        sent = event_to_proto(event).timestamp
        request_timestamp = pb.EventsRequest(timestamp=sent).timestamp
        self.assertEqual(ns_from_timestamp(request_timestamp), event.timestamp_ns)


class RequestTests(SynchronousTestCase):
    """
    Requests become the supervisor's plain request objects, field by field.
    """

    def test_create(self):
        request = pb.CreateContainerRequest(id="web", bundlePath="/b", labels=["a=b"], runtime="crun",
                                            runtimeArgs=["--debug"], noPivotRoot=True, checkpoint="c1",
                                            checkpointDir="/cp")
        create = create_request_from_proto(request, {"process": {}}, ("", "/o", ""))
        self.assertEqual(create, CreateRequest(id="web", bundle="/b", config={"process": {}}, stdio=("", "/o", ""),
                                               labels=["a=b"], runtime="crun", runtime_args=["--debug"],
                                               no_pivot_root=True, checkpoint="c1", checkpoint_dir="/cp"))

    def test_exec(self):
        request = pb.AddProcessRequest(
            id="web", pid="p1", args=["sh"], env=["A=b"], cwd="/srv", terminal=True,
            user=pb.User(uid=1, gid=2, additionalGids=[3]), capabilities=["CAP_KILL"], noNewPrivileges=True,
            rlimits=[pb.Rlimit(type="RLIMIT_NOFILE", soft=1, hard=2)], apparmorProfile="ap", selinuxLabel="se")
        self.assertEqual(exec_request_from_proto(request, ("/i", "", "")), ExecRequest(
            container_id="web", process_id="p1", args=["sh"], env=["A=b"], cwd="/srv", terminal=True, uid=1,
            gid=2, additional_gids=[3], capabilities=["CAP_KILL"], no_new_privileges=True,
            rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}], apparmor_profile="ap",
            selinux_label="se", stdio=("/i", "", "")))

    def test_checkpoint_options(self):
        checkpoint = pb.Checkpoint(name="c", exit=True, tcp=True, unixSockets=True, shell=True, emptyNS=["network"])
        options = checkpoint_options_from_proto(checkpoint)
        self.assertEqual(options, {"name": "c", "exit": True, "tcp": True, "unix_sockets": True, "shell": True,
                                   "empty_ns": ["network"]})
        self.assertEqual(checkpoint_to_proto(dict(options, timestamp=1.5)), checkpoint)
        self.assertEqual(checkpoint_to_proto({}), pb.Checkpoint())


class StateTests(SynchronousTestCase):
    """
    A listing becomes a StateResponse with the machine, trimmed to the limit.
    """

    def test_state(self):
        container = Container(id="c1", bundle="/b", runtime="runc", status=RUNNING, labels=["x" * 100],
                              processes={INIT: _init()})
        response = state_to_proto([(container, [4242])], Machine(cpus=2, memory=1024), 1 << 20)
        self.assertEqual((response.machine.cpus, response.machine.memory), (2, 1024))
        self.assertEqual(response.containers[0], container_to_proto(container, [4242]))
        trimmed = state_to_proto([(container, [4242])], Machine(cpus=2, memory=1024), 100)
        self.assertEqual(list(trimmed.containers[0].labels), [TRUNCATED_LABEL])
