"""
Tests for L{containerd_tx.errors}: each error's status code and its one-line message.
"""

import grpc
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import errors

CODES = {
    errors.ContainerdError: grpc.StatusCode.UNKNOWN,
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.RuntimeFailure: grpc.StatusCode.INTERNAL,
}


class ErrorTests(SynchronousTestCase):
    """
    Every ContainerdError carries its contract status code and a one-line message.
    """

    def test_codes(self):
        """
        Each error class has the status code the wire contract promises, on the class and on instances.
        """
        for error_type, code in CODES.items():
            self.assertIs(error_type.code, code, error_type)
            self.assertIs(error_type("x").code, code, error_type)

    def test_every_error_covered(self):
        """
        Every ContainerdError subclass the module defines is listed above (a new one needs a code test).
        """
        defined = {
            value
            for value in vars(errors).values()
            if isinstance(value, type) and issubclass(value, errors.ContainerdError)
        }
        self.assertEqual(defined, set(CODES))

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
