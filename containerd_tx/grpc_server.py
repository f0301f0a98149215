# -*- test-case-name: tests.integration.test_daemon -*-
"""
The gRPC server on a unix socket: binding safely, the health service, and a clean stop.

grpcio runs its own worker threads; handlers reach daemon state only through the thread bridge.
"""

import errno
import fcntl
import os
import socket
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from containerd_tx.unix_path import reachable

API_SERVICE_NAME = "types.API"
#: Worker threads for unary calls, on top of one per allowed event stream.
UNARY_WORKERS = 32
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class SocketInUse(Exception):
    """Another live server answers on the socket path (or holds its lock)."""


class GrpcServer:
    """
    Serves the API and health services on a unix socket.

    @param path: absolute socket path.
    @param max_streams: how many long-lived streams to reserve threads for.
    @param group: gid that may use the socket (root's group when None).
    """

    def __init__(self, path, max_streams, group=None):
        self.path = path
        self._group = group
        self._workers = max_streams + UNARY_WORKERS
        self._lock_fd = None
        self._server = None
        self.health = health.HealthServicer()

    def claim(self):
        """
        Take the socket path: lock it, refuse when a live server answers there, remove a stale socket file.

        @raise SocketInUse: with a one-line reason.
        """
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SocketInUse(f"another daemon is serving on unix://{self.path}")
        if os.path.lexists(self.path):
            if _answers(self.path):
                self.release()
                raise SocketInUse(f"another server is answering on unix://{self.path}")
            if not _is_socket(self.path):
                self.release()
                raise SocketInUse(f"{self.path} exists and is not a socket; refusing to replace it")
            os.unlink(self.path)

    def start(self, api):
        """
        Bind and start serving C{api} (the C{types.API} servicer) and health; the socket is mode 0660, owned
        by root and C{group}.
        """
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="grpc"),
            maximum_concurrent_rpcs=self._workers,
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        pb_grpc.add_APIServicer_to_server(api, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self.set_serving(False)
        old_umask = os.umask(0o177)
        try:
            # A path past the 107 bytes of a socket address is bound through its folder's descriptor.
            with reachable(self.path) as address:
                self._server.add_insecure_port("unix:" + address)
            self._server.start()
        finally:
            os.umask(old_umask)
        os.chown(self.path, 0, self._group if self._group is not None else 0)
        os.chmod(self.path, 0o660)

    def set_serving(self, serving):
        """Answer health checks (overall and for C{types.API}) with SERVING or NOT_SERVING."""
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", API_SERVICE_NAME):
            self.health.set(name, status)

    def stop(self, grace):
        """
        Stop serving (in-flight calls get C{grace} seconds), remove the socket, release the lock.

        Blocks up to C{grace} seconds: call it from a thread, not the reactor.
        """
        if self._server is not None:
            self.set_serving(False)
            self._server.stop(grace).wait(grace + 1)
            self._server = None
        try:
            if _is_socket(self.path):
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.release()

    def release(self):
        """Let go of the socket lock."""
        if self._lock_fd is not None:
            # The lock file stays: unlinking it would let two daemons lock two different files.
            os.close(self._lock_fd)
            self._lock_fd = None


def _is_socket(path):
    import stat

    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _answers(path):
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        with reachable(path) as address:
            probe.connect(address)
        return True
    except OSError as e:
        return e.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK)
    finally:
        probe.close()
