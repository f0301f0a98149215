# -*- test-case-name: tests.unit.test_bridge -*-
"""
The daemon's errors, each tied to the gRPC status code the wire contract promises for it.

Logic raises these; only the gRPC layer turns them into status codes (see L{containerd_tx.bridge}).
Messages are one line, meant for the person at the other end of the socket.
"""

import grpc


class ContainerdError(Exception):
    """
    Base of every error the API reports on purpose.

    @cvar code: the gRPC status code clients see.
    """

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message):
        # One line, always: a multi-line runtime message is folded.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self):
        """The one-line message."""
        return self.args[0]


class InvalidArgument(ContainerdError):
    """Malformed input: bad id, bad path, bad signal, bad resource value."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ContainerdError):
    """Unknown container, process or checkpoint."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ContainerdError):
    """Duplicate container id, process id or checkpoint name."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ContainerdError):
    """The container's state forbids the action (exec into a stopped container, ...)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(ContainerdError):
    """A start did not finish within --start-timeout."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class ResourceExhausted(ContainerdError):
    """A bounded resource is full: too many subscribers, a subscriber too slow."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ContainerdError):
    """The daemon is starting or stopping and cannot serve the call now."""

    code = grpc.StatusCode.UNAVAILABLE


class RuntimeFailure(ContainerdError):
    """The OCI runtime (or CRIU) failed; the message carries its own words."""

    code = grpc.StatusCode.INTERNAL
