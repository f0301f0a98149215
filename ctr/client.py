# -*- test-case-name: tests.unit.test_ctr_client -*-
"""
The connection to the daemon: parse the address, dial, check health, and turn gRPC errors into one line.

Nothing here knows about click, so the same connection serves every command.
"""

import errno
import socket
import time
from collections import namedtuple

import grpc
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from containerd_tx.api import containerd_pb2_grpc

#: Where the daemon listens unless --address or CONTAINERD_ADDRESS says otherwise.
DEFAULT_ADDRESS = "unix:///run/containerd/containerd.sock"

#: The environment variable that sets the address (the --address flag wins over it).
ADDRESS_ENV = "CONTAINERD_ADDRESS"

_NOT_RUNNING = (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK, errno.ENOTDIR)
_DENIED = (errno.EACCES, errno.EPERM)


class ClientError(Exception):
    """An error found on the client side; its message is one line for the user."""


class ConnectError(ClientError):
    """No daemon answered at the address."""


class Address(namedtuple("Address", "path display target")):
    """
    A daemon address.

    @ivar path: the unix socket's path (absolute or relative to the working directory).
    @ivar display: the address as messages show it (C{unix:///abs} or C{unix://rel}).
    @ivar target: the address as gRPC dials it (C{unix:path}).
    """


def parse_address(text):
    """
    Parse a daemon address: C{unix:///abs/path}, C{unix://relative/path}, C{unix:path} or a bare path.

    @raise ValueError: for an empty path or another scheme (the daemon only listens on unix sockets).
    """
    text = str(text).strip()
    if text.startswith("unix://"):
        path = text[len("unix://"):]
    elif text.startswith("unix:"):
        path = text[len("unix:"):]
    elif "://" in text:
        raise ValueError(f"unsupported address {text!r}: only unix sockets (unix:///path) are supported")
    else:
        path = text
    if not path:
        raise ValueError(f"invalid address {text!r}: the socket path is empty")
    return Address(path, "unix://" + path, "unix:" + path)


def describe_rpc_error(error):
    """
    @return: the one-line message of a L{grpc.RpcError}: its details, or its status code's name.
    """
    details = error.details() if hasattr(error, "details") else None
    if not details:
        code = error.code() if hasattr(error, "code") else None
        details = code.name if code is not None else str(error) or "unknown gRPC error"
    return " ".join(details.split())


class Client:
    """
    An open connection to the daemon.

    @ivar api: the C{types.API} stub.
    @ivar address: the L{Address} connected to.
    """

    def __init__(self, channel, address, closer=None):
        self._close = closer or channel.close
        self.address = address
        self.api = containerd_pb2_grpc.APIStub(channel)

    def close(self):
        """Close the channel; calls still running are cancelled."""
        self._close()


def connect(address, timeout=5.0, log=None):
    """
    Dial the daemon and wait until its health service answers SERVING.

    @param address: an L{Address}.
    @param timeout: seconds to wait for the daemon to be reachable and healthy.
    @param log: a callable taking one line, for --debug; every call is logged too.
    @return: a L{Client}.
    @raise ConnectError: when nobody listens, the socket is not accessible, or health is not SERVING in time.
    """
    note = log or (lambda line: None)
    deadline = time.monotonic() + timeout
    _probe(address, timeout, note)
    channel = grpc.insecure_channel(address.target)
    try:
        _wait_healthy(channel, address, deadline, note)
    except BaseException:
        channel.close()
        raise
    if log is not None:
        return Client(grpc.intercept_channel(channel, _LogCalls(log)), address, closer=channel.close)
    return Client(channel, address)


def _probe(address, timeout, log):
    """Connect once by hand, so that a missing socket or a refused connection fails at once."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(timeout)
    try:
        probe.connect(address.path)
    except OSError as error:
        log(f"connect {address.path}: {error}")
        if error.errno in _DENIED:
            raise ConnectError(f"cannot connect to containerd at {address.display}: permission denied") from None
        if error.errno in _NOT_RUNNING or isinstance(error, socket.timeout):
            raise _not_running(address) from None
        raise ConnectError(f"cannot connect to containerd at {address.display}: {error.strerror or error}") from None
    finally:
        probe.close()


def _wait_healthy(channel, address, deadline, log):
    """Ask grpc.health.v1.Health/Check until it says SERVING or the deadline passes."""
    health = health_pb2_grpc.HealthStub(channel)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _not_running(address)
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=remaining, wait_for_ready=True)
        except grpc.RpcError as error:
            log(f"health check: {describe_rpc_error(error)}")
            raise _not_running(address) from None
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        log(f"health check: {status}")
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _not_running(address):
    return ConnectError(f"cannot connect to containerd at {address.display}: is the daemon running?")


class _LogCalls(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Log every call's method and request (for --debug)."""

    def __init__(self, log):
        self._log = log

    def _note(self, details, request):
        self._log(f"{details.method} {text_format.MessageToString(request, as_one_line=True)}".rstrip())

    def intercept_unary_unary(self, continuation, client_call_details, request):
        self._note(client_call_details, request)
        return continuation(client_call_details, request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        self._note(client_call_details, request)
        return continuation(client_call_details, request)
