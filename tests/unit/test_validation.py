"""
Tests for L{containerd_tx.validation}: ids, bundles, stdio paths and signals, and each API request's checks,
done before any work starts.
"""

import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import validation
from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.errors import InvalidArgument
from containerd_tx.validation import (
    load_bundle_config,
    validate_id,
    validate_signal,
    validate_stdio_path,
)

VALID_CONFIG = {
    "ociVersion": "1.0.2",
    "process": {"args": ["sh", "-c", "true"], "cwd": "/"},
    "root": {"path": "rootfs"},
}


class IdTests(SynchronousTestCase):
    """
    L{validate_id} applies the contract's id rule.
    """

    def assertInvalid(self, value, *words):
        with self.assertRaises(InvalidArgument, msg=repr(value)) as caught:
            validate_id(value)
        self.assertNotIn("\n", caught.exception.message)
        for word in words:
            self.assertIn(word, caught.exception.message)

    def test_valid(self):
        """
        Ids of 1 to 128 allowed characters are returned unchanged.
        """
        for value in ("a", "0", "A", "a.b+c-d_e", "x" * 128, "abc123", "_x", "+x", "Z.9", "init"):
            self.assertEqual(validate_id(value), value)

    def test_empty(self):
        """
        An empty id is refused.
        """
        self.assertInvalid("", "empty")

    def test_too_long(self):
        """
        129 characters are one too many.
        """
        self.assertInvalid("x" * 129, "128")

    def test_path_like(self):
        """
        Anything that could name a path outside the id's folder is refused.
        """
        for value in ("../x", "a/b", "/a", "..", ".", "a\\b"):
            self.assertInvalid(value)

    def test_leading_dot_or_dash(self):
        """
        Ids must not start with "." or "-".
        """
        self.assertInvalid(".x", "'.x'")
        self.assertInvalid("-x", "'-x'")

    def test_unicode_and_control(self):
        """
        Non-ASCII letters, control characters, spaces and NUL are refused, with a one-line message.
        """
        for value in ("é", "caf\u00e9", "a\n", "\n", "a\nb", "a b", "a\x00", "a\t", "\u0661"):
            self.assertInvalid(value)

    def test_what(self):
        """
        The message names what was checked.
        """
        with self.assertRaises(InvalidArgument) as caught:
            validate_id("", "process id")
        self.assertIn("process id", caught.exception.message)
        with self.assertRaises(InvalidArgument) as caught:
            validate_id("a/b", "checkpoint name")
        self.assertIn("checkpoint name", caught.exception.message)


class BundleTests(SynchronousTestCase):
    """
    L{load_bundle_config} checks the bundle and returns its parsed config.
    """

    def make_bundle(self, content=None):
        """
        A bundle directory whose config.json holds C{content} (bytes, str or a JSON-able object; None: no file).
        """
        bundle = os.path.abspath(self.mktemp())
        os.makedirs(bundle)
        if content is not None:
            if not isinstance(content, (bytes, str)):
                content = json.dumps(content)
            if isinstance(content, str):
                content = content.encode()
            with open(os.path.join(bundle, "config.json"), "wb") as f:
                f.write(content)
        return bundle

    def assertInvalid(self, bundle, *words):
        with self.assertRaises(InvalidArgument) as caught:
            load_bundle_config(bundle)
        self.assertNotIn("\n", caught.exception.message)
        for word in words:
            self.assertIn(word, caught.exception.message)

    def test_valid(self):
        """
        A directory with a valid config.json gives the parsed config.
        """
        self.assertEqual(load_bundle_config(self.make_bundle(VALID_CONFIG)), VALID_CONFIG)

    def test_empty_path(self):
        """
        An empty bundle path is refused.
        """
        self.assertInvalid("", "bundlePath")

    def test_relative(self):
        """
        A relative bundle path is refused, even when it exists.
        """
        bundle = self.make_bundle(VALID_CONFIG)
        relative = os.path.relpath(bundle)
        self.assertTrue(os.path.isdir(relative))
        self.assertInvalid(relative, "absolute")

    def test_missing(self):
        """
        A bundle that does not exist is refused.
        """
        missing = os.path.abspath(self.mktemp())
        self.assertInvalid(missing, missing, "does not exist")

    def test_not_a_directory(self):
        """
        A bundle that is a regular file is refused.
        """
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            json.dump(VALID_CONFIG, f)
        self.assertInvalid(path, path, "not a directory")

    def test_no_config(self):
        """
        A bundle without config.json is refused.
        """
        bundle = self.make_bundle()
        self.assertInvalid(bundle, "no config.json")

    def test_config_is_directory(self):
        """
        A config.json that cannot be read (here: a directory) is refused.
        """
        bundle = self.make_bundle()
        os.mkdir(os.path.join(bundle, "config.json"))
        self.assertInvalid(bundle, "config.json")

    def test_empty_config(self):
        """
        An empty (or blank) config.json is refused.
        """
        self.assertInvalid(self.make_bundle(b""), "empty")
        self.assertInvalid(self.make_bundle(b" \n\t"), "empty")

    def test_not_json(self):
        """
        A config.json that is not JSON (or not UTF-8) is refused.
        """
        self.assertInvalid(self.make_bundle(b"{not json"), "not valid JSON")
        self.assertInvalid(self.make_bundle(b'{"process": 1,\n\n'), "not valid JSON")
        self.assertInvalid(self.make_bundle(b"\xff\xfe\x00garbage"), "not valid JSON")

    def test_top_level_not_object(self):
        """
        A config whose top level is not an object is refused.
        """
        for content in ([], [VALID_CONFIG], "string", 5, None):
            self.assertInvalid(self.make_bundle(json.dumps(content)), "top level")

    def test_missing_process(self):
        """
        A config without a process object is refused.
        """
        config = dict(VALID_CONFIG)
        del config["process"]
        self.assertInvalid(self.make_bundle(config), "process")
        config["process"] = ["sh"]
        self.assertInvalid(self.make_bundle(config), "process")

    def test_missing_args(self):
        """
        process.args must be a non-empty list of strings.
        """
        for args in (None, [], "sh", ["sh", 1], [None]):
            config = json.loads(json.dumps(VALID_CONFIG))
            if args is None:
                del config["process"]["args"]
            else:
                config["process"]["args"] = args
            self.assertInvalid(self.make_bundle(config), "process.args")

    def test_missing_root_path(self):
        """
        root.path must be a string.
        """
        for root in (None, {}, {"path": 1}, "rootfs"):
            config = json.loads(json.dumps(VALID_CONFIG))
            if root is None:
                del config["root"]
            else:
                config["root"] = root
            self.assertInvalid(self.make_bundle(config), "root.path")

    def test_oci_version_not_string(self):
        """
        ociVersion, when present, must be a string.
        """
        config = dict(VALID_CONFIG, ociVersion=1)
        self.assertInvalid(self.make_bundle(config), "ociVersion")
        config = dict(VALID_CONFIG)
        del config["ociVersion"]
        self.assertEqual(load_bundle_config(self.make_bundle(config)), config)

    def test_too_large(self):
        """
        A config.json over 16 MiB is refused without being parsed.
        """
        self.assertInvalid(self.make_bundle(b" " * (16 * 1024 * 1024 + 1)), "16 MiB")


class StdioTests(SynchronousTestCase):
    """
    L{validate_stdio_path} checks stdio paths given by clients.
    """

    def setUp(self):
        # Short and under /tmp: test_socket binds a unix socket here, whose
        # path must fit in 108 bytes wherever the checkout lives.
        self.dir = tempfile.mkdtemp(prefix="stdio-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def assertInvalid(self, path, name, *words):
        with self.assertRaises(InvalidArgument, msg=f"{name} {path!r}") as caught:
            validate_stdio_path(path, name)
        self.assertNotIn("\n", caught.exception.message)
        self.assertIn(name, caught.exception.message)
        for word in words:
            self.assertIn(word, caught.exception.message)

    def test_empty_is_dev_null(self):
        """
        An empty path means /dev/null: None.
        """
        for name in ("stdin", "stdout", "stderr"):
            self.assertIsNone(validate_stdio_path("", name))

    def test_relative(self):
        """
        A relative path is refused.
        """
        for name in ("stdin", "stdout", "stderr"):
            self.assertInvalid("relative/out", name, "absolute")

    def test_directory(self):
        """
        A directory is refused.
        """
        for name in ("stdin", "stdout", "stderr"):
            self.assertInvalid(self.dir, name, "directory")

    def test_missing_file_in_existing_directory(self):
        """
        A missing file in an existing directory is fine for output (it will be created), not for stdin.
        """
        path = os.path.join(self.dir, "out.log")
        self.assertEqual(validate_stdio_path(path, "stdout"), path)
        self.assertEqual(validate_stdio_path(path, "stderr"), path)
        self.assertInvalid(path, "stdin", "does not exist")
        self.assertFalse(os.path.exists(path))

    def test_missing_directory(self):
        """
        A file in a missing directory is refused for every stream.
        """
        path = os.path.join(self.dir, "missing", "out.log")
        for name in ("stdin", "stdout", "stderr"):
            self.assertInvalid(path, name, "does not exist")

    def test_under_regular_file(self):
        """
        A path "under" a regular file is refused.
        """
        path = os.path.join(self.dir, "file")
        with open(path, "w"):
            pass
        for name in ("stdin", "stdout"):
            self.assertInvalid(os.path.join(path, "x"), name)

    def test_fifo(self):
        """
        A FIFO is fine for every stream.
        """
        path = os.path.join(self.dir, "fifo")
        os.mkfifo(path)
        for name in ("stdin", "stdout", "stderr"):
            self.assertEqual(validate_stdio_path(path, name), path)

    def test_regular_file(self):
        """
        A readable and writable regular file is fine for every stream.
        """
        path = os.path.join(self.dir, "file")
        with open(path, "w"):
            pass
        os.chmod(path, 0o644)
        for name in ("stdin", "stdout", "stderr"):
            self.assertEqual(validate_stdio_path(path, name), path)

    def test_read_only_file_for_output(self):
        """
        A regular file with mode 0444 is refused for output (also when running as root), but fine for stdin.
        """
        path = os.path.join(self.dir, "ro")
        with open(path, "w"):
            pass
        os.chmod(path, 0o444)
        self.assertInvalid(path, "stdout", "not writable")
        self.assertInvalid(path, "stderr", "not writable")
        self.assertEqual(validate_stdio_path(path, "stdin"), path)

    def test_unreadable_file_for_stdin(self):
        """
        A regular file with no read bit is refused for stdin (also when running as root).
        """
        path = os.path.join(self.dir, "wo")
        with open(path, "w"):
            pass
        os.chmod(path, 0o200)
        self.assertInvalid(path, "stdin", "not readable")
        self.assertEqual(validate_stdio_path(path, "stdout"), path)

    def test_char_device(self):
        """
        A character device such as /dev/null is fine.
        """
        for name in ("stdin", "stdout", "stderr"):
            self.assertEqual(validate_stdio_path("/dev/null", name), "/dev/null")

    def test_socket(self):
        """
        Other file types (here a unix socket) are refused.
        """
        import socket

        path = os.path.join(self.dir, "s")
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(path)
        self.assertInvalid(path, "stdout", "not a FIFO")


class SignalTests(SynchronousTestCase):
    """
    L{validate_signal} accepts 1 to SIGRTMAX (64 on Linux).
    """

    def test_valid(self):
        """
        Signals 1 to 64 are returned as ints.
        """
        for number in (1, 2, 9, 15, 34, 64):
            self.assertEqual(validate_signal(number), number)
            self.assertIs(type(validate_signal(number)), int)

    def test_invalid(self):
        """
        0, negative numbers and numbers above SIGRTMAX are refused with a one-line message naming the number.
        """
        for number in (0, -1, -9, 65, 999, 2**32):
            with self.assertRaises(InvalidArgument, msg=number) as caught:
                validate_signal(number)
            self.assertIn(str(number), caught.exception.message)
            self.assertIn("64", caught.exception.message)
            self.assertNotIn("\n", caught.exception.message)


class RequestCheckTests(SynchronousTestCase):
    """
    The checks of each API request, in the order its fields are checked (the first failure is reported).
    """

    def setUp(self):
        self.bundle = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.bundle)
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(VALID_CONFIG, f)

    def assertMessage(self, check, request, message, *args):
        with self.assertRaises(InvalidArgument) as caught:
            check(request, *args)
        self.assertEqual(caught.exception.message, message)

    def test_create_container(self):
        """
        A valid create gives the parsed config and stdio ("" for /dev/null); ids, checkpointDir, bundle,
        stdio, labels, runtime args and runtime name are checked in that order.
        """
        out = os.path.join(self.bundle, "out")
        config, stdio = validation.check_create_container(
            pb.CreateContainerRequest(id="web", bundlePath=self.bundle, stdout=out, labels=["a=b"]))
        self.assertEqual(config, VALID_CONFIG)
        self.assertEqual(stdio, ("", out, ""))
        check = validation.check_create_container
        self.assertMessage(check, pb.CreateContainerRequest(id="", bundlePath="relative"),
                           "container id must not be empty")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", checkpoint="../x", bundlePath="rel"),
                           "invalid checkpoint name '../x': use 1-128 of [A-Za-z0-9_.+-], not starting with "
                           "'.' or '-'")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", checkpointDir="rel", bundlePath="rel"),
                           "checkpointDir 'rel' must be an absolute path")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", bundlePath="rel", stdout="rel"),
                           "bundlePath 'rel' must be an absolute path")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", bundlePath=self.bundle, stdout="rel",
                                                            labels=["x\0"]),
                           "stdout path 'rel' must be absolute")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", bundlePath=self.bundle,
                                                            labels=["x"] * (validation.MAX_LABELS + 1)),
                           f"too many labels: {validation.MAX_LABELS + 1} (at most {validation.MAX_LABELS})")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", bundlePath=self.bundle,
                                                            labels=["x" * 4000] * 70),
                           "labels too large: 280000 bytes in all (at most 262144 per container, so that "
                           "State answers clients with grpc's default 4 MiB limit)")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", bundlePath=self.bundle,
                                                            runtimeArgs=["--x"] * 65),
                           "too many runtimeArgs: 65 (at most 64)")
        self.assertMessage(check, pb.CreateContainerRequest(id="a", bundlePath=self.bundle, runtime="r\0"),
                           "invalid runtime name")

    def test_create_container_terminal_stdin(self):
        """A process with a terminal takes its stdin from a FIFO only."""
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(dict(VALID_CONFIG, process=dict(VALID_CONFIG["process"], terminal=True)), f)
        stdin = os.path.join(self.bundle, "in")
        open(stdin, "w").close()
        self.assertMessage(validation.check_create_container,
                           pb.CreateContainerRequest(id="a", bundlePath=self.bundle, stdin=stdin),
                           f"stdin path {stdin} of a process with a terminal must be a FIFO")

    def test_signal(self):
        """Ids, then the signal number, which is returned."""
        self.assertEqual(validation.check_signal(pb.SignalRequest(id="a", pid="init", signal=15)), 15)
        self.assertMessage(validation.check_signal, pb.SignalRequest(id="a", pid="", signal=0),
                           "process id must not be empty")
        self.assertMessage(validation.check_signal, pb.SignalRequest(id="a", pid="p", signal=0),
                           f"invalid signal 0: must be between 1 and {int(validation.MAX_SIGNAL)}")

    def test_state(self):
        """An empty id lists everything; another must be valid."""
        validation.check_state(pb.StateRequest())
        self.assertMessage(validation.check_state, pb.StateRequest(id="-a"),
                           "invalid container id '-a': use 1-128 of [A-Za-z0-9_.+-], not starting with '.' or '-'")

    def test_add_process(self):
        """Ids, args, string lists, a terminal's stdin, then stdio paths (returned)."""
        out = os.path.join(self.bundle, "out")
        self.assertEqual(validation.check_add_process(pb.AddProcessRequest(id="a", pid="p", args=["sh"],
                                                                           stdout=out)), ("", out, ""))
        check = validation.check_add_process
        self.assertMessage(check, pb.AddProcessRequest(id="a", pid="p"), "args must not be empty")
        self.assertMessage(check, pb.AddProcessRequest(id="a", pid="p", args=["sh"], env=["A\0"]),
                           "invalid entry in env: too long or contains NUL")
        self.assertMessage(check, pb.AddProcessRequest(id="a", pid="p", args=["sh"], terminal=True,
                                                       stdin="rel"),
                           "stdin path rel: No such file or directory")
        self.assertMessage(check, pb.AddProcessRequest(id="a", pid="p", args=["sh"], stdin="rel"),
                           "stdin path 'rel' must be absolute")

    def test_update_process(self):
        """Width and height come together, each at most 65535."""
        validation.check_update_process(pb.UpdateProcessRequest(id="a", pid="p", width=80, height=24))
        self.assertMessage(validation.check_update_process, pb.UpdateProcessRequest(id="a", pid="p", width=80),
                           "width and height must be given together")
        self.assertMessage(validation.check_update_process,
                           pb.UpdateProcessRequest(id="a", pid="p", width=65536, height=1),
                           "width and height must be at most 65535")

    def test_update_container(self):
        """The pid may be empty or init; something must be asked for, a status only paused or running."""
        validation.check_update_container(pb.UpdateContainerRequest(id="a", pid="init"))
        self.assertMessage(validation.check_update_container, pb.UpdateContainerRequest(id="a", pid="../x"),
                           "invalid process id '../x': use 1-128 of [A-Za-z0-9_.+-], not starting with '.' or '-'")
        validation.check_update("paused", None)
        validation.check_update("", {"pids": {"limit": 1}})
        self.assertMessage(validation.check_update, "", "nothing to update: give a status or resources", None)
        self.assertMessage(validation.check_update, "stopped", 'invalid status \'stopped\': use "paused" or "running"',
                           None)

    def test_checkpoints(self):
        """Ids, names, folders and the namespaces a checkpoint may leave empty."""
        validation.check_create_checkpoint(pb.CreateCheckpointRequest(
            id="a", checkpoint=pb.Checkpoint(name="c", emptyNS=["network"]), checkpointDir="/srv/c"))
        self.assertMessage(validation.check_create_checkpoint, pb.CreateCheckpointRequest(
            id="a", checkpoint=pb.Checkpoint(name="c", emptyNS=["net"])),
            "invalid emptyNS entry 'net': use one of network, pid, ipc, uts, mount, user, cgroup")
        self.assertMessage(validation.check_list_checkpoint,
                           pb.ListCheckpointRequest(id="a", checkpointDir="/x\0"),
                           "checkpointDir '/x\\x00' must be an absolute path")
        self.assertMessage(validation.check_delete_checkpoint, pb.DeleteCheckpointRequest(id="a", name=""),
                           "checkpoint name must not be empty")

    def test_stats_and_events(self):
        """Stats needs an id; a stored-only events replay needs a timestamp."""
        self.assertMessage(validation.check_stats, pb.StatsRequest(), "container id must not be empty")
        validation.check_events(pb.EventsRequest(storedOnly=True), 5)
        self.assertMessage(validation.check_events, pb.EventsRequest(storedOnly=True),
                           "storedOnly needs a timestamp", None)
