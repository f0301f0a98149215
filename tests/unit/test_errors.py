"""
Tests for L{containerd_tx.errors}: the errors and their one-line messages (their status codes are the API
layer's: see L{tests.unit.test_api_status}).
"""

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import errors
from tests.unit.test_api_status import CODES


class ErrorTests(SynchronousTestCase):
    """
    Every ContainerdError has a one-line message and knows nothing of gRPC.
    """

    def test_free_of_grpc(self):
        """
        The errors module loads no gRPC: a fresh interpreter importing it has no grpc module, and no error
        carries a status code.
        """
        loaded = subprocess.run(
            [sys.executable, "-c", "import sys, containerd_tx.errors; print('grpc' in sys.modules)"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        self.assertEqual(loaded, "False")
        for error_type in CODES:
            self.assertFalse(hasattr(error_type("x"), "code"), error_type)

    def test_hierarchy(self):
        """
        Every error is a ContainerdError and an Exception, so callers can catch them all at once.
        """
        for error_type in CODES:
            self.assertTrue(issubclass(error_type, errors.ContainerdError))
            self.assertTrue(issubclass(error_type, Exception))

    def test_one_line(self):
        """
        A multi-line message is folded into one line: every run of whitespace becomes one space, and leading
        and trailing whitespace goes.
        """
        for error_type in CODES:
            error = error_type("  runc: container_linux.go:380:\n\tstarting container process caused:\r\n  exec: "
                               "\"nope\": executable file not found in $PATH\n\n")
            expected = ('runc: container_linux.go:380: starting container process caused: exec: "nope": '
                        "executable file not found in $PATH")
            self.assertEqual(error.message, expected)
            self.assertEqual(str(error), expected)
            self.assertEqual(error.args, (expected,))

    def test_single_line_unchanged(self):
        """
        A one-line message is kept as is.
        """
        self.assertEqual(errors.NotFound("no such container 'web'").message, "no such container 'web'")

    def test_non_string_message(self):
        """
        A message that is not a string (an exception, bytes of text) is turned into its text.
        """
        self.assertEqual(errors.RuntimeFailure(ValueError("bad\nthing")).message, "bad thing")
        self.assertEqual(errors.InvalidArgument(42).message, "42")

    def test_empty_message(self):
        """
        An empty or blank message stays empty (no crash).
        """
        self.assertEqual(errors.Unavailable("").message, "")
        self.assertEqual(errors.Unavailable(" \n ").message, "")

    def test_raise_and_catch(self):
        """
        Errors raise and keep their message when caught as ContainerdError.
        """
        with self.assertRaises(errors.ContainerdError) as caught:
            raise errors.AlreadyExists("container 'a'\nalready exists")
        self.assertIsInstance(caught.exception, errors.AlreadyExists)
        self.assertEqual(caught.exception.message, "container 'a' already exists")
