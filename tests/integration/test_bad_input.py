"""
Bad input of every kind gets its status code and a one-line message; the daemon and the containers it already
runs are untouched.
"""

import json
import os
import stat

import grpc

from containerd_tx.api import containerd_pb2 as pb
from grpc_health.v1 import health_pb2
from tests.integration.test_lifecycle import LifecycleTestCase
from tests.support.daemon import create_request
from tests.support.ids import unique_id

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND

BAD_IDS = ["", "x" * 129, "../x", "a/b", "/abs", ".hidden", "-dash", "é", "tab\tid", "nl\nid", "nul\0id", " "]


class BadInputTests(LifecycleTestCase):

    def setUp(self):
        super().setUp()
        self.kid = unique_id("keeper")
        self.keeper = self.start(self.kid, "sleep", "1000")
        self.good_bundle = self.bundle("sleep", "1000")
        # Cleanups run last-in first-out: this one runs before the daemon is torn down.
        self.addCleanup(self._check_unharmed)

    def _check_unharmed(self):
        # Whatever was thrown at it, the daemon serves and the first container runs on.
        self.assertEqual(self.daemon.health(), health_pb2.HealthCheckResponse.SERVING)
        state = self.daemon.stub.State(pb.StateRequest(id=self.kid), timeout=10)
        self.assertEqual(state.containers[0].status, "running")
        self.assertEqual(state.containers[0].processes[0].systemPid, self.keeper.processes[0].systemPid)

    def test_bad_container_ids(self):
        for bad in BAD_IDS:
            self.assertStatus(INVALID, self.daemon.stub.CreateContainer, create_request(bad, self.good_bundle))
            self.assertStatus(INVALID, self.daemon.stub.Signal, pb.SignalRequest(id=bad, pid="init", signal=9))
        for bad in BAD_IDS[1:]:
            self.assertStatus(INVALID, self.daemon.stub.State, pb.StateRequest(id=bad))
            self.assertStatus(INVALID, lambda r, timeout: list(self.daemon.stub.Events(r, timeout=timeout)),
                              pb.EventsRequest(id=bad))
        self.assertEqual(os.listdir(os.path.join(self.daemon.state_dir, "containers")), [self.kid])

    def test_bad_bundles(self):
        work = self.daemon.workdir
        not_dir = os.path.join(work, "file")
        open(not_dir, "w").close()
        empty_dir = os.path.join(work, "noconfig")
        os.mkdir(empty_dir)
        cases = {
            "relative/bundle": "absolute",
            os.path.join(work, "missing"): "does not exist",
            not_dir: "not a directory",
            empty_dir: "no config.json",
        }
        for name, content in [("empty", ""), ("garbage", "{not json"), ("list", "[1, 2]"),
                              ("noargs", json.dumps({"process": {"args": []}, "root": {"path": "/"}}))]:
            path = os.path.join(work, name)
            os.mkdir(path)
            with open(os.path.join(path, "config.json"), "w") as f:
                f.write(content)
            cases[path] = "config.json"
        newone = unique_id("newone")
        for bundle, words in cases.items():
            self.assertStatus(INVALID, self.daemon.stub.CreateContainer, create_request(newone, bundle), words)
        self.assertNotIn(newone, self.state_ids())

    def test_duplicate_id(self):
        self.assertStatus(grpc.StatusCode.ALREADY_EXISTS, self.daemon.stub.CreateContainer,
                          create_request(self.kid, self.good_bundle), "already exists")

    def test_unknown_container_and_process(self):
        self.assertStatus(NOT_FOUND, self.daemon.stub.Signal, pb.SignalRequest(id="ghost", pid="init", signal=9))
        self.assertStatus(NOT_FOUND, self.daemon.stub.Signal,
                          pb.SignalRequest(id=self.kid, pid="ghost", signal=9), "ghost")
        self.assertStatus(NOT_FOUND, self.daemon.stub.State, pb.StateRequest(id="ghost"))

    def test_bad_signals(self):
        for signal in (0, 65, 999):
            self.assertStatus(INVALID, self.daemon.stub.Signal,
                              pb.SignalRequest(id=self.kid, pid="init", signal=signal), "signal")

    def test_bad_stdio_paths(self):
        directory = os.path.join(self.daemon.workdir, "adir")
        os.mkdir(directory)
        readonly = os.path.join(self.daemon.workdir, "readonly")
        open(readonly, "w").close()
        os.chmod(readonly, stat.S_IRUSR)
        for field, path, words in [("stdout", directory, "directory"), ("stderr", readonly, "not writable"),
                                   ("stdin", os.path.join(self.daemon.workdir, "nope"), "does not exist"),
                                   ("stdout", "relative/out", "absolute")]:
            self.assertStatus(INVALID, self.daemon.stub.CreateContainer,
                              create_request(unique_id("io"), self.good_bundle, **{field: path}), words)

    def test_stored_only_without_timestamp(self):
        self.assertStatus(INVALID, lambda r, timeout: list(self.daemon.stub.Events(r, timeout=timeout)),
                          pb.EventsRequest(storedOnly=True), "timestamp")

    def test_unknown_runtime(self):
        self.assertStatus(INVALID, self.daemon.stub.CreateContainer,
                          create_request(unique_id("rt"), self.good_bundle, runtime="no-such-runtime"), "not found")

    def test_runtime_rejects_config(self):
        # Valid JSON the runtime cannot run: the runtime's own words come back as INTERNAL.
        bundle = self.bundle("/no/such/binary")
        broken = unique_id("broken")
        details = self.assertStatus(grpc.StatusCode.INTERNAL, self.daemon.stub.CreateContainer,
                                    create_request(broken, bundle), "runc run failed")
        self.assertIn("no such file", details.lower())
        self.assertNotIn(broken, self.daemon.runtime_containers())
        self.assertNotIn(broken, self.state_ids())
