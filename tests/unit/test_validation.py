"""
Tests for L{containerd_tx.validation}: ids, bundles, stdio paths and signals, checked before any work starts.
"""

import json
import os
import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

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
