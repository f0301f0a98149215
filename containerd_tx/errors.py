# -*- test-case-name: tests.unit.test_errors,tests.unit.test_api_status -*-
"""
The daemon's errors, one class per kind of failure a client is told about.

Logic raises these; only the API layer turns them into status codes (see L{containerd_tx.api_status}), so
nothing here knows of gRPC. Messages are one line, meant for the person at the other end of the socket.
"""


class ContainerdError(Exception):
    """
    Base of every error the API reports on purpose.
    """

    def __init__(self, message):
        # One line, always: a multi-line runtime message is folded.
        super().__init__(" ".join(str(message).split()))

    @property
    def message(self):
        """The one-line message."""
        return self.args[0]


class InvalidArgument(ContainerdError):
    """Malformed input: bad id, bad path, bad signal, bad resource value."""


class NotFound(ContainerdError):
    """Unknown container, process or checkpoint."""


class AlreadyExists(ContainerdError):
    """Duplicate container id, process id or checkpoint name."""


class FailedPrecondition(ContainerdError):
    """The container's state forbids the action (exec into a stopped container, ...)."""


class DeadlineExceeded(ContainerdError):
    """A start did not finish within --start-timeout."""


class ResourceExhausted(ContainerdError):
    """A bounded resource is full: too many subscribers, a subscriber too slow."""


class Unavailable(ContainerdError):
    """The daemon is starting or stopping and cannot serve the call now."""


class RuntimeFailure(ContainerdError):
    """The OCI runtime (or CRIU) failed; the message carries its own words."""
