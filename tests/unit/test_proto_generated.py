"""The generated gRPC code is fresh, and the proto meets the wire contract.

Two things are checked here:

* containerd_tx/api/ is exactly what scripts/gen-proto produces from proto/
  (regenerated into a temporary directory and compared byte for byte);
* the compiled descriptor (containerd_pb2.DESCRIPTOR) matches the wire contract
  of docs/api-contract.md: every message, field number, name and type, the reserved
  (retired) numbers, and the 12 methods of service types.API.

The contract tables below are transcribed from docs/api-contract.md and are the
reference: do not "fix" them to match a changed proto. The contract allows
additions (new methods, new fields with new numbers, new messages); list those
in the PROJECT_* tables so that they are checked too.
"""

import difflib
import os
import subprocess
import sys

from google.protobuf import descriptor_pb2
from twisted.trial.unittest import SkipTest, TestCase

from containerd_tx.api import containerd_pb2, containerd_pb2_grpc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN_PROTO = os.path.join(ROOT, "scripts", "gen-proto")
API_DIR = os.path.join(ROOT, "containerd_tx", "api")
GENERATED = ("__init__.py", "containerd_pb2.py", "containerd_pb2_grpc.py")

STALE = "generated code is stale: run scripts/gen-proto"

TIMESTAMP = "google.protobuf.Timestamp"

# Message name -> [(number, name, type)], from docs/api-contract.md "Messages".
# A type is a scalar ("uint32"), a message name ("User", TIMESTAMP), or
# "repeated T" or "map<K, V>".
CONTRACT_MESSAGES = {
    'GetServerVersionRequest': [],
    'GetServerVersionResponse': [
        (1, 'major', 'uint32'),
        (2, 'minor', 'uint32'),
        (3, 'patch', 'uint32'),
        (4, 'revision', 'string'),
    ],
    'UpdateProcessRequest': [
        (1, 'id', 'string'),
        (2, 'pid', 'string'),
        (3, 'closeStdin', 'bool'),
        (4, 'width', 'uint32'),
        (5, 'height', 'uint32'),
    ],
    'UpdateProcessResponse': [],
    'CreateContainerRequest': [
        (1, 'id', 'string'),
        (2, 'bundlePath', 'string'),
        (3, 'checkpoint', 'string'),
        (4, 'stdin', 'string'),
        (5, 'stdout', 'string'),
        (6, 'stderr', 'string'),
        (7, 'labels', 'repeated string'),
        (8, 'noPivotRoot', 'bool'),
        (9, 'runtime', 'string'),
        (10, 'runtimeArgs', 'repeated string'),
        (11, 'checkpointDir', 'string'),
    ],
    'CreateContainerResponse': [
        (1, 'container', 'Container'),
    ],
    'SignalRequest': [
        (1, 'id', 'string'),
        (2, 'pid', 'string'),
        (3, 'signal', 'uint32'),
    ],
    'SignalResponse': [],
    'AddProcessRequest': [
        (1, 'id', 'string'),
        (2, 'terminal', 'bool'),
        (3, 'user', 'User'),
        (4, 'args', 'repeated string'),
        (5, 'env', 'repeated string'),
        (6, 'cwd', 'string'),
        (7, 'pid', 'string'),
        (8, 'stdin', 'string'),
        (9, 'stdout', 'string'),
        (10, 'stderr', 'string'),
        (11, 'capabilities', 'repeated string'),
        (12, 'apparmorProfile', 'string'),
        (13, 'selinuxLabel', 'string'),
        (14, 'noNewPrivileges', 'bool'),
        (15, 'rlimits', 'repeated Rlimit'),
    ],
    'Rlimit': [
        (1, 'type', 'string'),
        (2, 'soft', 'uint64'),
        (3, 'hard', 'uint64'),
    ],
    'User': [
        (1, 'uid', 'uint32'),
        (2, 'gid', 'uint32'),
        (3, 'additionalGids', 'repeated uint32'),
    ],
    'AddProcessResponse': [
        (1, 'systemPid', 'uint32'),
    ],
    'CreateCheckpointRequest': [
        (1, 'id', 'string'),
        (2, 'checkpoint', 'Checkpoint'),
        (3, 'checkpointDir', 'string'),
    ],
    'CreateCheckpointResponse': [],
    'DeleteCheckpointRequest': [
        (1, 'id', 'string'),
        (2, 'name', 'string'),
        (3, 'checkpointDir', 'string'),
    ],
    'DeleteCheckpointResponse': [],
    'ListCheckpointRequest': [
        (1, 'id', 'string'),
        (2, 'checkpointDir', 'string'),
    ],
    'Checkpoint': [
        (1, 'name', 'string'),
        (2, 'exit', 'bool'),
        (3, 'tcp', 'bool'),
        (4, 'unixSockets', 'bool'),
        (5, 'shell', 'bool'),
        (6, 'emptyNS', 'repeated string'),
    ],
    'ListCheckpointResponse': [
        (1, 'checkpoints', 'repeated Checkpoint'),
    ],
    'StateRequest': [
        (1, 'id', 'string'),
    ],
    'ContainerState': [
        (1, 'status', 'string'),
    ],
    'Process': [
        (1, 'pid', 'string'),
        (2, 'terminal', 'bool'),
        (3, 'user', 'User'),
        (4, 'args', 'repeated string'),
        (5, 'env', 'repeated string'),
        (6, 'cwd', 'string'),
        (7, 'systemPid', 'uint32'),
        (8, 'stdin', 'string'),
        (9, 'stdout', 'string'),
        (10, 'stderr', 'string'),
        (11, 'capabilities', 'repeated string'),
        (12, 'apparmorProfile', 'string'),
        (13, 'selinuxLabel', 'string'),
        (14, 'noNewPrivileges', 'bool'),
        (15, 'rlimits', 'repeated Rlimit'),
    ],
    'Container': [
        (1, 'id', 'string'),
        (2, 'bundlePath', 'string'),
        (3, 'processes', 'repeated Process'),
        (4, 'status', 'string'),
        (5, 'labels', 'repeated string'),
        (6, 'pids', 'repeated uint32'),
        (7, 'runtime', 'string'),
    ],
    'Machine': [
        (1, 'cpus', 'uint32'),
        (2, 'memory', 'uint64'),
    ],
    'StateResponse': [
        (1, 'containers', 'repeated Container'),
        (2, 'machine', 'Machine'),
    ],
    'UpdateContainerRequest': [
        (1, 'id', 'string'),
        (2, 'pid', 'string'),
        (3, 'status', 'string'),
        (4, 'resources', 'UpdateResource'),
    ],
    'UpdateResource': [
        (1, 'blkioWeight', 'uint64'),
        (2, 'cpuShares', 'uint64'),
        (3, 'cpuPeriod', 'uint64'),
        (4, 'cpuQuota', 'uint64'),
        (5, 'cpusetCpus', 'string'),
        (6, 'cpusetMems', 'string'),
        (7, 'memoryLimit', 'uint64'),
        (8, 'memorySwap', 'uint64'),
        (9, 'memoryReservation', 'uint64'),
        (10, 'kernelMemoryLimit', 'uint64'),
        (11, 'kernelTCPMemoryLimit', 'uint64'),
        (12, 'blkioLeafWeight', 'uint64'),
        (13, 'blkioWeightDevice', 'repeated WeightDevice'),
        (14, 'blkioThrottleReadBpsDevice', 'repeated ThrottleDevice'),
        (15, 'blkioThrottleWriteBpsDevice', 'repeated ThrottleDevice'),
        (16, 'blkioThrottleReadIopsDevice', 'repeated ThrottleDevice'),
        (17, 'blkioThrottleWriteIopsDevice', 'repeated ThrottleDevice'),
        (18, 'pidsLimit', 'uint64'),
    ],
    'BlockIODevice': [
        (1, 'major', 'int64'),
        (2, 'minor', 'int64'),
    ],
    'WeightDevice': [
        (1, 'blkIODevice', 'BlockIODevice'),
        (2, 'weight', 'uint32'),
        (3, 'leafWeight', 'uint32'),
    ],
    'ThrottleDevice': [
        (1, 'blkIODevice', 'BlockIODevice'),
        (2, 'rate', 'uint64'),
    ],
    'UpdateContainerResponse': [],
    'EventsRequest': [
        (2, 'timestamp', 'google.protobuf.Timestamp'),
        (3, 'storedOnly', 'bool'),
        (4, 'id', 'string'),
    ],
    'Event': [
        (1, 'type', 'string'),
        (2, 'id', 'string'),
        (3, 'status', 'uint32'),
        (4, 'pid', 'string'),
        (6, 'timestamp', 'google.protobuf.Timestamp'),
    ],
    'NetworkStats': [
        (1, 'name', 'string'),
        (2, 'rx_bytes', 'uint64'),
        (3, 'rx_Packets', 'uint64'),
        (4, 'Rx_errors', 'uint64'),
        (5, 'Rx_dropped', 'uint64'),
        (6, 'Tx_bytes', 'uint64'),
        (7, 'Tx_packets', 'uint64'),
        (8, 'Tx_errors', 'uint64'),
        (9, 'Tx_dropped', 'uint64'),
    ],
    'CpuUsage': [
        (1, 'total_usage', 'uint64'),
        (2, 'percpu_usage', 'repeated uint64'),
        (3, 'usage_in_kernelmode', 'uint64'),
        (4, 'usage_in_usermode', 'uint64'),
    ],
    'ThrottlingData': [
        (1, 'periods', 'uint64'),
        (2, 'throttled_periods', 'uint64'),
        (3, 'throttled_time', 'uint64'),
    ],
    'CpuStats': [
        (1, 'cpu_usage', 'CpuUsage'),
        (2, 'throttling_data', 'ThrottlingData'),
        (3, 'system_usage', 'uint64'),
    ],
    'PidsStats': [
        (1, 'current', 'uint64'),
        (2, 'limit', 'uint64'),
    ],
    'MemoryData': [
        (1, 'usage', 'uint64'),
        (2, 'max_usage', 'uint64'),
        (3, 'failcnt', 'uint64'),
        (4, 'limit', 'uint64'),
    ],
    'MemoryStats': [
        (1, 'cache', 'uint64'),
        (2, 'usage', 'MemoryData'),
        (3, 'swap_usage', 'MemoryData'),
        (4, 'kernel_usage', 'MemoryData'),
        (5, 'stats', 'map<string, uint64>'),
    ],
    'BlkioStatsEntry': [
        (1, 'major', 'uint64'),
        (2, 'minor', 'uint64'),
        (3, 'op', 'string'),
        (4, 'value', 'uint64'),
    ],
    'BlkioStats': [
        (1, 'io_service_bytes_recursive', 'repeated BlkioStatsEntry'),
        (2, 'io_serviced_recursive', 'repeated BlkioStatsEntry'),
        (3, 'io_queued_recursive', 'repeated BlkioStatsEntry'),
        (4, 'io_service_time_recursive', 'repeated BlkioStatsEntry'),
        (5, 'io_wait_time_recursive', 'repeated BlkioStatsEntry'),
        (6, 'io_merged_recursive', 'repeated BlkioStatsEntry'),
        (7, 'io_time_recursive', 'repeated BlkioStatsEntry'),
        (8, 'sectors_recursive', 'repeated BlkioStatsEntry'),
    ],
    'HugetlbStats': [
        (1, 'usage', 'uint64'),
        (2, 'max_usage', 'uint64'),
        (3, 'failcnt', 'uint64'),
        (4, 'limit', 'uint64'),
    ],
    'CgroupStats': [
        (1, 'cpu_stats', 'CpuStats'),
        (2, 'memory_stats', 'MemoryStats'),
        (3, 'blkio_stats', 'BlkioStats'),
        (4, 'hugetlb_stats', 'map<string, HugetlbStats>'),
        (5, 'pids_stats', 'PidsStats'),
    ],
    'StatsResponse': [
        (1, 'network_stats', 'repeated NetworkStats'),
        (2, 'cgroup_stats', 'CgroupStats'),
        (4, 'timestamp', 'google.protobuf.Timestamp'),
    ],
    'StatsRequest': [
        (1, 'id', 'string'),
    ],
}

# Numbers the contract marks as retired: they must be `reserved`, never used.
RETIRED = {
    "EventsRequest": {1},
    "Event": {5},
    "StatsResponse": {3},
}

# Method -> (request, response, server streaming), from docs/api-contract.md.
CONTRACT_METHODS = {
    "GetServerVersion": ("GetServerVersionRequest", "GetServerVersionResponse", False),
    "CreateContainer": ("CreateContainerRequest", "CreateContainerResponse", False),
    "UpdateContainer": ("UpdateContainerRequest", "UpdateContainerResponse", False),
    "Signal": ("SignalRequest", "SignalResponse", False),
    "UpdateProcess": ("UpdateProcessRequest", "UpdateProcessResponse", False),
    "AddProcess": ("AddProcessRequest", "AddProcessResponse", False),
    "CreateCheckpoint": ("CreateCheckpointRequest", "CreateCheckpointResponse", False),
    "DeleteCheckpoint": ("DeleteCheckpointRequest", "DeleteCheckpointResponse", False),
    "ListCheckpoint": ("ListCheckpointRequest", "ListCheckpointResponse", False),
    "State": ("StateRequest", "StateResponse", False),
    "Events": ("EventsRequest", "Event", True),
    "Stats": ("StatsRequest", "StatsResponse", False),
}

# Project additions the contract permits. Same shapes as above:
# new fields go in PROJECT_FIELDS as {message: [(number, name, type)]}, new
# messages in PROJECT_MESSAGES, new methods of types.API in PROJECT_METHODS.
PROJECT_FIELDS = {
    # The later containerd 0.2.x API's real-time CPU fields, as Docker 17.0x sends them.
    "UpdateResource": [
        (19, "cpuRealtimePeriod", "uint64"),
        (20, "cpuRealtimeRuntime", "int64"),
    ],
}
PROJECT_MESSAGES = {}
PROJECT_METHODS = {}


def _expected_messages():
    expected = {name: list(fields) for name, fields in CONTRACT_MESSAGES.items()}
    for name, fields in PROJECT_MESSAGES.items():
        assert name not in expected, name
        expected[name] = list(fields)
    for name, fields in PROJECT_FIELDS.items():
        expected[name] = expected[name] + list(fields)
    return expected


_SCALARS = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}


def _file_proto():
    """The FileDescriptorProto compiled into containerd_pb2."""
    return descriptor_pb2.FileDescriptorProto.FromString(
        containerd_pb2.DESCRIPTOR.serialized_pb)


def _type_name(full_name):
    """'.types.User' -> 'User'; '.google.protobuf.Timestamp' -> TIMESTAMP."""
    if full_name.startswith(".types."):
        return full_name[len(".types."):]
    return full_name.lstrip(".")


def _field_type(message, field):
    """Spell a field's type the way the contract tables do."""
    FDP = descriptor_pb2.FieldDescriptorProto
    if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_GROUP, FDP.TYPE_ENUM):
        if field.type != FDP.TYPE_MESSAGE:
            base = "%s %s" % (FDP.Type.Name(field.type), _type_name(field.type_name))
        else:
            base = _type_name(field.type_name)
        entry = _nested(message, field.type_name)
        if entry is not None and entry.options.map_entry:
            key, value = sorted(entry.field, key=lambda f: f.number)
            return "map<%s, %s>" % (
                _field_type(entry, key), _field_type(entry, value))
    else:
        base = _SCALARS[field.type]
    if field.label == FDP.LABEL_REPEATED:
        return "repeated " + base
    if field.proto3_optional:
        return "optional " + base
    if field.label == FDP.LABEL_REQUIRED:
        return "required " + base
    return base


def _nested(message, full_type_name):
    prefix = ".types.%s." % message.name
    if not full_type_name.startswith(prefix):
        return None
    for nested in message.nested_type:
        if nested.name == full_type_name[len(prefix):]:
            return nested
    return None


class GeneratedCodeTests(TestCase):
    """containerd_tx/api/ is what scripts/gen-proto makes of proto/."""

    def test_gen_proto_is_executable(self):
        self.assertTrue(os.access(GEN_PROTO, os.X_OK), GEN_PROTO)

    def test_generated_code_is_fresh(self):
        try:
            from grpc_tools import grpc_version
        except ImportError:
            raise SkipTest("grpcio-tools is not installed (pip install .[test])")
        # The output embeds the generator's version, so a different
        # grpcio-tools would differ without the proto having changed.
        committed_version = containerd_pb2_grpc.GRPC_GENERATED_VERSION
        if grpc_version.VERSION != committed_version:
            raise SkipTest(
                "containerd_tx/api/ was generated with grpcio-tools %s but %s is "
                "installed; install grpcio-tools==%s to check freshness"
                % (committed_version, grpc_version.VERSION, committed_version))

        out = os.path.abspath(self.mktemp())
        result = subprocess.run(
            [sys.executable, GEN_PROTO, out],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(
            result.returncode, 0,
            "scripts/gen-proto failed:\n" + result.stdout.decode("utf-8", "replace"))
        self.assertEqual(sorted(os.listdir(out)), sorted(GENERATED))

        problems = []
        for name in GENERATED:
            with open(os.path.join(out, name), "rb") as f:
                fresh = f.read()
            committed_path = os.path.join(API_DIR, name)
            if not os.path.exists(committed_path):
                problems.append("containerd_tx/api/%s is missing" % name)
                continue
            with open(committed_path, "rb") as f:
                committed = f.read()
            if committed != fresh:
                diff = difflib.unified_diff(
                    committed.decode("utf-8", "replace").splitlines(),
                    fresh.decode("utf-8", "replace").splitlines(),
                    "committed/" + name, "regenerated/" + name, lineterm="", n=1)
                # Lines are cut short: the serialized descriptor is one huge line.
                problems.append("\n".join(
                    line if len(line) <= 160 else line[:157] + "..."
                    for line in list(diff)[:40]))
        if problems:
            self.fail(STALE + "\n\n" + "\n\n".join(problems))

    def test_grpc_module_imports_pb2_relatively(self):
        # The generated stubs must use the containerd_tx.api package's own
        # containerd_pb2, not a top-level module of the same name.
        self.assertIs(containerd_pb2_grpc.containerd__pb2, containerd_pb2)
        with open(os.path.join(API_DIR, "containerd_pb2_grpc.py")) as f:
            source = f.read()
        self.assertIn("\nfrom . import containerd_pb2 as containerd__pb2\n", source)
        self.assertNotIn("\nimport containerd_pb2", source)


class WireContractTests(TestCase):
    """The compiled descriptor is the wire contract of docs/api-contract.md."""

    def setUp(self):
        self.file = _file_proto()
        self.messages = {m.name: m for m in self.file.message_type}

    def test_file(self):
        self.assertEqual(self.file.syntax, "proto3")
        self.assertEqual(self.file.package, "types")
        self.assertEqual(list(self.file.dependency), ["google/protobuf/timestamp.proto"])
        self.assertEqual(list(self.file.enum_type), [])
        self.assertEqual(list(self.file.extension), [])

    def test_message_set(self):
        expected = set(_expected_messages())
        actual = set(self.messages)
        self.assertEqual(
            (sorted(expected - actual), sorted(actual - expected)), ([], []),
            "(missing messages, messages not in the contract or PROJECT_MESSAGES)")

    def test_fields(self):
        problems = []
        for name, fields in sorted(_expected_messages().items()):
            message = self.messages.get(name)
            if message is None:
                problems.append("%s: message missing" % name)
                continue
            expected = sorted(fields)
            actual = sorted(
                (f.number, f.name, _field_type(message, f)) for f in message.field)
            if actual != expected:
                problems.append(
                    "%s:\n  contract: %s\n  proto:    %s"
                    % (name, expected, actual))
        if problems:
            self.fail("proto does not match the wire contract:\n" + "\n".join(problems))

    def test_field_names_and_encoding_not_customised(self):
        # Custom json_name would change the JSON view, a oneof the field's
        # presence semantics, [packed=...] the encoding of repeated scalars.
        problems = []
        for message in self.file.message_type:
            self.assertEqual(list(message.oneof_decl), [], message.name)
            self.assertEqual(list(message.enum_type), [], message.name)
            for field in message.field:
                if field.HasField("json_name"):
                    problems.append("%s.%s json_name" % (message.name, field.name))
                if field.HasField("oneof_index"):
                    problems.append("%s.%s oneof" % (message.name, field.name))
                if field.HasField("options"):
                    problems.append("%s.%s options %s"
                                    % (message.name, field.name, field.options))
            for nested in message.nested_type:
                if not nested.options.map_entry:
                    problems.append("%s.%s nested message" % (message.name, nested.name))
        self.assertEqual(problems, [])

    def test_retired_numbers_are_reserved(self):
        for name, message in sorted(self.messages.items()):
            reserved = set()
            for r in message.reserved_range:
                reserved.update(range(r.start, r.end))  # end is exclusive
            self.assertEqual(reserved, RETIRED.get(name, set()),
                             "reserved numbers of %s" % name)
            used = {f.number for f in message.field}
            self.assertEqual(used & RETIRED.get(name, set()), set(),
                             "%s uses a retired number" % name)

    def test_service(self):
        self.assertEqual([s.name for s in self.file.service], ["API"])
        service = self.file.service[0]
        expected = dict(CONTRACT_METHODS)
        expected.update(PROJECT_METHODS)
        actual = {
            m.name: (_type_name(m.input_type), _type_name(m.output_type),
                     m.server_streaming)
            for m in service.method
        }
        problems = [
            "%s: contract %s, proto %s" % (name, expected.get(name), actual.get(name))
            for name in sorted(set(expected) | set(actual))
            if expected.get(name) != actual.get(name)
        ]
        problems += ["%s: client streaming" % m.name
                     for m in service.method if m.client_streaming]
        self.assertEqual(problems, [], "service types.API does not match the contract "
                         "(request, response, server streaming)")
        self.assertEqual(len(CONTRACT_METHODS), 12)

    def test_runtime_descriptor(self):
        # The descriptor registered at import time (what gRPC reflection and
        # the stubs use) is the same one, under the contract's full names.
        service = containerd_pb2.DESCRIPTOR.services_by_name["API"]
        self.assertEqual(service.full_name, "types.API")
        events = service.methods_by_name["Events"]
        self.assertTrue(events.server_streaming)
        self.assertFalse(events.client_streaming)
        self.assertEqual(events.output_type.full_name, "types.Event")
        self.assertEqual(
            containerd_pb2.Event.DESCRIPTOR.fields_by_name["timestamp"].number, 6)
        stub_paths = [
            "/types.API/%s" % m.name for m in service.methods]
        self.assertEqual(sorted(stub_paths), sorted(
            "/types.API/%s" % name for name in CONTRACT_METHODS))

    def test_wire_bytes(self):
        # A few encodings spelled out: tag = number << 3 | wire type.
        self.assertEqual(
            containerd_pb2.SignalRequest(id="c", pid="init", signal=15)
            .SerializeToString(),
            b"\x0a\x01c" b"\x12\x04init" b"\x18\x0f")
        self.assertEqual(
            containerd_pb2.Event(type="exit", status=1).SerializeToString(),
            b"\x0a\x04exit" b"\x18\x01")
        self.assertEqual(
            containerd_pb2.BlockIODevice(major=-1).SerializeToString(),
            b"\x08" + b"\xff" * 9 + b"\x01")
        # Repeated scalars are packed, as proto3 does by default.
        self.assertEqual(
            containerd_pb2.Container(pids=[1, 2]).SerializeToString(),
            b"\x32\x02\x01\x02")
