# -*- test-case-name: tests.unit.test_ctr_client -*-
"""
The connection to the daemon: parse the address, dial, check health, and turn gRPC errors into one line.

Nothing here knows about click, so the same connection serves every command. gRPC and the generated code
are imported when a connection is made, not before: C{--help}, C{--version} and completion never load them.
"""

import errno
import socket
import time
from collections import namedtuple

from containerd_tx import addresses
from ctr.errors import ClientError, ConnectError, describe_rpc_error

__all__ = ["ADDRESS_ENV", "DEFAULT_ADDRESS", "Address", "Client", "ClientError", "ConnectError", "connect",
           "describe_rpc_error", "parse_address"]

#: Where the daemon listens unless --address or CONTAINERD_ADDRESS says otherwise.
DEFAULT_ADDRESS = addresses.DEFAULT_ADDRESS

#: The environment variable that sets the address (the --address flag wins over it).
ADDRESS_ENV = "CONTAINERD_ADDRESS"

#: grpc.health.v1.HealthCheckResponse.ServingStatus values (the health reply is read by hand: see L{health_status}).
HEALTH_STATUSES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVING = 1
_HEALTH_CHECK = "/grpc.health.v1.Health/Check"

_NOT_RUNNING = (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK, errno.ENOTDIR)
_DENIED = (errno.EACCES, errno.EPERM)


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
    path = addresses.socket_path(text)
    return Address(path, "unix://" + path, "unix:" + path)


def health_status(data):
    """
    The status of a serialized C{grpc.health.v1.HealthCheckResponse} (field 1, a varint enum; absent means
    UNKNOWN). Read by hand, so that the health check needs no generated code.

    @raise ValueError: when C{data} is not such a message.
    """
    status, position = 0, 0
    while position < len(data):
        key, position = _varint(data, position)
        if key >> 3 == 1 and key & 7 == 0:
            status, position = _varint(data, position)
        elif key & 7 == 0:
            _, position = _varint(data, position)
        elif key & 7 == 2:
            size, position = _varint(data, position)
            position += size
        else:
            raise ValueError("not a HealthCheckResponse")
    if position != len(data):
        raise ValueError("truncated HealthCheckResponse")
    return status


def _varint(data, position):
    value = shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


class Client:
    """
    An open connection to the daemon.

    @ivar api: the C{types.API} stub.
    @ivar address: the L{Address} connected to.
    """

    def __init__(self, channel, address, closer=None):
        from containerd_tx.api import containerd_pb2_grpc

        self._close = closer or channel.close
        self.address = address
        self.api = containerd_pb2_grpc.APIStub(channel)

    def close(self):
        """Close the channel; calls still running are cancelled."""
        self._close()


def probe(address, timeout, log=None):
    """
    Connect once by hand, so that a missing socket, a refused connection or a socket the user may not use
    fails at once, with its own message.

    @raise ConnectError: when nobody listens or the socket is not accessible.
    """
    note = log or (lambda line: None)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address.path)
    except OSError as error:
        note(f"connect {address.path}: {error}")
        if error.errno in _DENIED:
            raise ConnectError(f"cannot connect to containerd at {address.display}: permission denied") from None
        if error.errno in _NOT_RUNNING or isinstance(error, socket.timeout):
            raise _not_running(address) from None
        raise ConnectError(f"cannot connect to containerd at {address.display}: {error.strerror or error}") from None
    finally:
        sock.close()


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
    probe(address, timeout, note)  # before loading gRPC: no daemon is told at once
    import grpc

    channel = grpc.insecure_channel(address.target)
    try:
        _wait_healthy(channel, address, deadline, note)
    except BaseException:
        channel.close()
        raise
    if log is not None:
        return Client(grpc.intercept_channel(channel, _log_calls(log)), address, closer=channel.close)
    return Client(channel, address)


def _wait_healthy(channel, address, deadline, log):
    """Ask grpc.health.v1.Health/Check until it says SERVING or the deadline passes."""
    import grpc

    check = channel.unary_unary(_HEALTH_CHECK, request_serializer=lambda request: b"",
                                response_deserializer=health_status)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _not_running(address)
        try:
            status = check(None, timeout=remaining, wait_for_ready=True)
        except grpc.RpcError as error:
            log(f"health check: {describe_rpc_error(error)}")
            raise _not_running(address) from None
        log(f"health check: {HEALTH_STATUSES.get(status, status)}")
        if status == SERVING:
            return
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _not_running(address):
    return ConnectError(f"cannot connect to containerd at {address.display}: is the daemon running?")


def _log_calls(log):
    """@return: a gRPC interceptor that logs every call's method and request (for --debug)."""
    import grpc
    from google.protobuf import text_format

    class LogCalls(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
        def _note(self, details, request):
            log(f"{details.method} {text_format.MessageToString(request, as_one_line=True)}".rstrip())

        def intercept_unary_unary(self, continuation, client_call_details, request):
            self._note(client_call_details, request)
            return continuation(client_call_details, request)

        def intercept_unary_stream(self, continuation, client_call_details, request):
            self._note(client_call_details, request)
            return continuation(client_call_details, request)

    return LogCalls()
