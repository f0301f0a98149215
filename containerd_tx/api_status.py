# -*- test-case-name: tests.unit.test_api_status -*-
"""
The status codes of the wire contract: which gRPC status code each of the daemon's errors
(L{containerd_tx.errors}) becomes, and the one way an API call ends with an error.

Only the API layer (L{containerd_tx.api_service}) uses this: the errors themselves, and everything below the
API that raises them, know nothing of gRPC.
"""

import grpc
from twisted.logger import Logger
from twisted.python.failure import Failure

from containerd_tx import errors

log = Logger()

#: Error class -> the status code clients see for it. A subclass not listed gets its nearest listed base's.
STATUS_CODES = {
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


def status_code(error):
    """
    The status code of a L{containerd_tx.errors.ContainerdError} (an instance or a class): its class's, else
    its nearest base's in L{STATUS_CODES}.
    """
    kind = error if isinstance(error, type) else type(error)
    for base in kind.__mro__:
        code = STATUS_CODES.get(base)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN


def abort_with(context, error):
    """
    End a gRPC call with the status code and one-line message of C{error}.

    Unexpected exceptions become INTERNAL with their one-line text (and a logged traceback), never a
    traceback on the wire.
    """
    if isinstance(error, errors.ContainerdError):
        context.abort(status_code(error), error.message)
    # Failure(error), not Failure(): callers may be outside their except block, where there is no current
    # exception (Failure() would raise NoCurrentExceptionError instead of aborting the call).
    log.failure("unexpected error in an API call", failure=Failure(error))
    text = " ".join(str(error).split()) or type(error).__name__
    context.abort(grpc.StatusCode.INTERNAL, f"internal error: {text}")
