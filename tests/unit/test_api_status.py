# -*- test-case-name: tests.unit.test_api_status -*-
"""
Tests for L{containerd_tx.api_status}: the status code the wire contract promises for each of the daemon's
errors, and how an API call ends with an error.
"""

import grpc
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import errors
from containerd_tx.api_status import STATUS_CODES, abort_with, status_code
from containerd_tx.runtime.runc import CheckpointFailed
from tests.unit.test_bridge import Aborted, FakeContext

#: The wire contract's status code of every error.
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


class StatusCodeTests(SynchronousTestCase):
    """
    Every ContainerdError has the status code the contract promises.
    """

    def test_codes(self):
        """
        Each error class has the status code the wire contract promises, for the class and for instances.
        """
        for error_type, code in CODES.items():
            self.assertIs(status_code(error_type), code, error_type)
            self.assertIs(status_code(error_type("x")), code, error_type)

    def test_every_error_covered(self):
        """
        Every ContainerdError subclass the errors module defines has its own status code (a new one needs a
        code and a test).
        """
        defined = {
            value
            for value in vars(errors).values()
            if isinstance(value, type) and issubclass(value, errors.ContainerdError)
        }
        self.assertEqual(defined, set(CODES))
        self.assertEqual(set(STATUS_CODES), set(CODES))

    def test_subclass_gets_base_code(self):
        """
        An error class defined elsewhere as a subclass (CRIU's dump failure) has its base's code.
        """
        self.assertIs(status_code(CheckpointFailed("criu: no")), grpc.StatusCode.FAILED_PRECONDITION)


class AbortWithTests(SynchronousTestCase):
    """
    L{abort_with} turns errors into status codes with one-line messages.
    """

    def test_containerd_errors(self):
        """
        Each ContainerdError subclass ends the call with its own status code and its message.
        """
        for error_type, code in CODES.items():
            context = FakeContext()
            with self.assertRaises(Aborted):
                abort_with(context, error_type("it went\nwrong  here"))
            self.assertEqual(context.aborts, [(code, "it went wrong here")], error_type)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_unexpected_error(self):
        """
        An unexpected exception ends the call with INTERNAL and its one-line text (the traceback is logged,
        not sent), also when called after the except block that caught it, as the API handlers do.
        """
        try:
            {}["missing"]
        except KeyError as e:
            error = e
        context = FakeContext()
        with self.assertRaises(Aborted):
            abort_with(context, error)
        self.assertEqual(context.aborts, [(grpc.StatusCode.INTERNAL, "internal error: 'missing'")])
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_unexpected_error_inside_except(self):
        """
        Inside the except block it works the same.
        """
        context = FakeContext()
        try:
            raise ValueError("bad\nvalue\n")
        except ValueError as e:
            with self.assertRaises(Aborted):
                abort_with(context, e)
        self.assertEqual(context.aborts, [(grpc.StatusCode.INTERNAL, "internal error: bad value")])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_unexpected_error_without_text(self):
        """
        An exception without text is named by its type.
        """
        context = FakeContext()
        with self.assertRaises(Aborted):
            abort_with(context, ZeroDivisionError())
        self.assertEqual(context.aborts, [(grpc.StatusCode.INTERNAL, "internal error: ZeroDivisionError")])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
