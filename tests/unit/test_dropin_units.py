"""
Unit tests of containerd 0.2.9 drop-in behaviour: OOM events on by default, the real-time CPU fields of
UpdateResource, a revision that is never empty, State answers that fit a default client, config types checked
with one line, unix socket paths of any length, and streams that end with an error.
"""

import json
import os
import queue
import socket
import sys
import tempfile

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import revision as revision_module
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api_convert import TRUNCATED_LABEL, fit_state, resources_from_proto
from containerd_tx.api_service import STATE_LIMIT
from containerd_tx.bridge import StreamFeed
from containerd_tx.errors import InvalidArgument, Unavailable
from containerd_tx.options import DaemonOptions
from containerd_tx.resources import linux_resources
from containerd_tx.unix_path import fits, reachable
from containerd_tx.validation import load_bundle_config, validate_stdio_path

CONFIG = {
    "ociVersion": "1.0.2",
    "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["A=b"],
                "capabilities": {"bounding": ["CAP_KILL"]}, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1, "soft": 1}]},
    "root": {"path": "rootfs"},
}


def _parse(case, *args):
    options = DaemonOptions()
    options.parseOptions(["--state-dir", case.mktemp(), "--runtime", sys.executable, *args])
    return options


class OomOptionTests(SynchronousTestCase):
    """OOM events are on unless --no-oom-notify; --oom-notify is still accepted."""

    def test_default_on(self):
        self.assertTrue(_parse(self)["oom-notify"])

    def test_old_flag_accepted(self):
        self.assertTrue(_parse(self, "--oom-notify")["oom-notify"])

    def test_off(self):
        self.assertFalse(_parse(self, "--no-oom-notify")["oom-notify"])

    def test_both(self):
        self.assertRaises(usage.UsageError, _parse, self, "--oom-notify", "--no-oom-notify")


class RealtimeResourcesTests(SynchronousTestCase):
    """UpdateResource's fields 19 and 20 reach runc update as cpu.realtimePeriod/realtimeRuntime."""

    def test_fields_passed(self):
        message = pb.UpdateResource(cpuRealtimePeriod=1000000, cpuRealtimeRuntime=950000)
        self.assertEqual(pb.UpdateResource.DESCRIPTOR.fields_by_name["cpuRealtimePeriod"].number, 19)
        self.assertEqual(pb.UpdateResource.DESCRIPTOR.fields_by_name["cpuRealtimeRuntime"].number, 20)
        resources = linux_resources(resources_from_proto(message))
        self.assertEqual(resources, {"cpu": {"realtimePeriod": 1000000, "realtimeRuntime": 950000}})

    def test_runtime_above_period(self):
        message = pb.UpdateResource(cpuRealtimePeriod=100000, cpuRealtimeRuntime=200000)
        self.assertRaises(InvalidArgument, linux_resources, resources_from_proto(message))


class RevisionTests(SynchronousTestCase):
    """GetServerVersion's revision is never empty."""

    def test_never_empty(self):
        self.assertTrue(revision_module.revision())

    def test_from_git_checkout(self):
        top = self.mktemp()
        os.makedirs(os.path.join(top, ".git", "refs", "heads"))
        with open(os.path.join(top, ".git", "HEAD"), "w") as f:
            f.write("ref: refs/heads/main\n")
        with open(os.path.join(top, ".git", "refs", "heads", "main"), "w") as f:
            f.write("a" * 40 + "\n")
        self.assertEqual(revision_module._git_checkout(top), "a" * 40)

    def test_from_packed_refs(self):
        top = self.mktemp()
        os.makedirs(os.path.join(top, ".git"))
        with open(os.path.join(top, ".git", "HEAD"), "w") as f:
            f.write("ref: refs/heads/main\n")
        with open(os.path.join(top, ".git", "packed-refs"), "w") as f:
            f.write("# pack-refs\n" + "b" * 40 + " refs/heads/main\n")
        self.assertEqual(revision_module._git_checkout(top), "b" * 40)

    def test_baked(self):
        top = self.mktemp()
        os.makedirs(top)
        with open(os.path.join(top, "REVISION"), "w") as f:
            f.write("c" * 40 + "\n")
        self.assertEqual(revision_module._baked(top), "c" * 40)


class FitStateTests(SynchronousTestCase):
    """A State answer always fits the limit; what is trimmed is marked."""

    def test_labels_trimmed_to_fit(self):
        response = pb.StateResponse(containers=[
            pb.Container(id=f"c{n}", status="running", labels=["x" * 4096] * 256,
                         processes=[pb.Process(pid="init", args=["sh"], systemPid=n + 1)])
            for n in range(20)
        ])
        self.assertGreater(response.ByteSize(), STATE_LIMIT)
        self.assertTrue(fit_state(response, STATE_LIMIT))
        self.assertLessEqual(response.ByteSize(), STATE_LIMIT)
        self.assertEqual([c.id for c in response.containers], [f"c{n}" for n in range(20)])
        self.assertTrue(any(list(c.labels) == [TRUNCATED_LABEL] for c in response.containers))
        self.assertEqual({c.processes[0].systemPid for c in response.containers}, set(range(1, 21)))

    def test_env_trimmed_when_labels_are_not_enough(self):
        response = pb.StateResponse(containers=[
            pb.Container(id=f"c{n}", processes=[pb.Process(pid="init", args=["sh"], env=["e" * 4096] * 200)])
            for n in range(10)
        ])
        fit_state(response, STATE_LIMIT)
        self.assertLessEqual(response.ByteSize(), STATE_LIMIT)

    def test_small_untouched(self):
        response = pb.StateResponse(containers=[pb.Container(id="a", labels=["k=v"])])
        self.assertFalse(fit_state(response, STATE_LIMIT))
        self.assertEqual(list(response.containers[0].labels), ["k=v"])


class ConfigTypesTests(SynchronousTestCase):
    """Wrongly typed config fields are INVALID_ARGUMENT with one line naming the field."""

    def load(self, edit=None, text=None):
        bundle = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(bundle))
        config = json.loads(json.dumps(CONFIG))
        if edit:
            edit(config)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            f.write(text if text is not None else json.dumps(config))
        return load_bundle_config(bundle)

    def assertInvalid(self, words, edit=None, text=None):
        with self.assertRaises(InvalidArgument) as raised:
            self.load(edit, text)
        self.assertNotIn("\n", raised.exception.message)
        self.assertIn(words, raised.exception.message)

    def test_good(self):
        self.assertEqual(self.load()["process"]["user"], {"uid": 0, "gid": 0})

    def test_pre_rc5_capabilities(self):
        self.assertInvalid("1.0.0-rc5", lambda c: c["process"].update(capabilities=["CAP_KILL"]))

    def test_wrong_types(self):
        self.assertInvalid("process.user.uid", lambda c: c["process"]["user"].update(uid="root"))
        self.assertInvalid("process.user.uid", lambda c: c["process"]["user"].update(uid=True))
        self.assertInvalid("process.user.gid", lambda c: c["process"]["user"].update(gid=-1))
        self.assertInvalid("process.env", lambda c: c["process"].update(env=5))
        self.assertInvalid("process.rlimits", lambda c: c["process"].update(rlimits="x"))
        self.assertInvalid("process.rlimits", lambda c: c["process"].update(rlimits=[{"type": 1}]))
        self.assertInvalid("process.terminal", lambda c: c["process"].update(terminal="yes"))
        self.assertInvalid("process.capabilities.bounding",
                           lambda c: c["process"]["capabilities"].update(bounding="CAP_KILL"))

    def test_deep_nesting(self):
        self.assertInvalid("nested too deeply", text="[" * 100000 + "]" * 100000)

    def test_nul_in_stdio_path(self):
        with self.assertRaises(InvalidArgument) as raised:
            validate_stdio_path("/tmp/a\0b", "stdout")
        self.assertIn("NUL", raised.exception.message)


class UnixPathTests(SynchronousTestCase):
    """A socket past 107 bytes of path is bound and reached through its folder's descriptor."""

    def test_long_path(self):
        top = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(top))
        deep = os.path.join(top, "d" * 100, "e" * 40)
        os.makedirs(deep)
        path = os.path.join(deep, "x.sock")
        self.assertFalse(fits(path))
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(server.close)
        with reachable(path) as address:
            server.bind(address)
        server.listen(1)
        self.assertTrue(os.path.exists(path))
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(client.close)
        with reachable(path) as address:
            client.connect(address)

    def test_short_path_unchanged(self):
        with reachable("/tmp/x.sock") as address:
            self.assertEqual(address, "/tmp/x.sock")


class _Context:
    def is_active(self):
        return True


class _Reactor:
    def callFromThread(self, f, *args):
        f(*args)


class FeedErrorTests(SynchronousTestCase):
    """A feed finished with an error ends its stream with that error, after what was pushed."""

    def test_finish_with_error(self):
        feed = StreamFeed(_Reactor(), 10)
        feed.push("a")
        feed.finish(Unavailable("daemon is shutting down"))
        items = feed.items(_Context(), poll=0.01)
        self.assertEqual(next(items), "a")
        self.assertRaises(Unavailable, next, items)

    def test_stalled_for(self):
        feed = StreamFeed(_Reactor(), 10)
        self.assertEqual(feed.stalled_for(), 0.0)
        feed.push("a")
        self.assertGreaterEqual(feed.stalled_for(feed.last_taken + 5), 5)
        self.assertEqual(feed.backlog, 1)
