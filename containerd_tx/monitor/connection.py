# -*- test-case-name: tests.unit.test_monitord -*-
"""
The daemon's connection to the monitor (L{Connection}: newline-delimited JSON in, with file descriptors over
SCM_RIGHTS; queued non-blocking writes out), the request errors and field checks, and the listening socket's
bind (L{bind_long}).

Standard library only (see C{monitord.py}, which documents the wire protocol).
"""

import array
import binascii
import fcntl
import json
import os
import socket
from collections import deque

from containerd_tx.monitor.loop import close_quietly, log


#: Most fds received in one message.
FDS_PER_MESSAGE = 253

#: Longest request line accepted.
LINE_LIMIT = 1024 * 1024

#: Replies queued for a daemon that does not read before it is dropped.
OUTPUT_LIMIT = 256 * 1024 * 1024



class BadRequest(Exception):
    """
    The request is malformed; answered with C{bad request: ...}.
    """


class RequestFailed(Exception):
    """
    The request is well-formed but could not be done.
    """


def b64(data):
    """
    Bytes as a base64 string for the wire.
    """
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def fd_identity(fd):
    """C{[st_dev, st_ino]} of an open fd (the daemon checks what it received against it)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return [0, 0]
    return [st.st_dev, st.st_ino]


def get_str(req, key, optional=False, path=False):
    value = req.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise BadRequest("%s must be a non-empty string" % (key,))
    if path and not value.startswith("/"):
        raise BadRequest("%s must be an absolute path" % (key,))
    return value


def get_name(req, key):
    value = get_str(req, key)
    if "/" in value or value in (".", "..") or len(value) > 200:
        raise BadRequest("%s %r is not a valid name" % (key, value))
    return value


def get_int(req, key, low, high, default=None):
    value = req.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest("%s must be an integer in [%d, %d]" % (key, low, high))
    return value


class Connection:
    """
    The daemon's connection: line framing in, queued non-blocking writes out.
    """

    serials = 0

    def __init__(self, monitor, sock):
        Connection.serials += 1
        self.serial = Connection.serials
        self.monitor = monitor
        self.loop = monitor.loop
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        #: fds received, in order, for the requests that say how many they carry.
        self.fds_in = deque()
        self.discarding = False
        self.out = deque()
        self.out_size = 0
        self.writing = False
        self.closed = False
        self.loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self):
        try:
            data, ancdata, flags, _ = self.sock.recvmsg(
                256 * 1024, socket.CMSG_SPACE(FDS_PER_MESSAGE * 4), socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.monitor.connection_lost(self, e.strerror)
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self.fds_in.extend(fds)
        if flags & socket.MSG_CTRUNC:
            log("file descriptors from the daemon were dropped (open files limit?)")
        if not data:
            self.monitor.connection_lost(self, "closed by the daemon")
            return
        self.inbuf += data
        while not self.closed:
            i = self.inbuf.find(b"\n")
            if i < 0:
                break
            line = bytes(self.inbuf[:i])
            del self.inbuf[: i + 1]
            if self.discarding:
                self.discarding = False
                continue
            if line.strip():
                self.monitor.handle_line(self, line)
        if len(self.inbuf) > LINE_LIMIT and not self.closed:
            self.inbuf = bytearray()
            if not self.discarding:
                self.discarding = True
                log("request line longer than %d bytes dropped" % (LINE_LIMIT,))
                self.send({"ok": False, "error": "bad request: line longer than %d bytes" % (LINE_LIMIT,)})

    def take_fds(self, count):
        """The next C{count} fds received; BadRequest if fewer came."""
        if len(self.fds_in) < count:
            got = len(self.fds_in)
            while self.fds_in:
                close_quietly(self.fds_in.popleft())
            raise BadRequest("expected %d file descriptors, received %d" % (count, got))
        return [self.fds_in.popleft() for _ in range(count)]

    def send(self, message, fds=()):
        """
        Queue one JSON message (with copies of C{fds}, sent with its first
        byte); drop the connection if it stopped reading.
        """
        if self.closed:
            return
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        copies = []
        for fd in fds:
            try:
                copies.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
            except OSError as e:
                log("cannot copy fd %d for the daemon: %s" % (fd, e.strerror))
        self.out.append([memoryview(data), copies])
        self.out_size += len(data)
        if self.out_size > OUTPUT_LIMIT:
            self.monitor.connection_lost(self, "daemon does not read its replies")
            return
        self._flush()

    def _flush(self):
        while self.out:
            entry = self.out[0]
            head, fds = entry
            try:
                if fds:
                    n = self.sock.sendmsg(
                        [head], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())])
                    for fd in fds:
                        close_quietly(fd)
                    entry[1] = fds = []
                else:
                    n = self.sock.send(head)
            except (BlockingIOError, InterruptedError):
                if not self.writing:
                    self.loop.add_writer(self.fd, self._flush)
                    self.writing = True
                return
            except OSError as e:
                self.monitor.connection_lost(self, e.strerror)
                return
            self.out_size -= n
            if n == len(head):
                self.out.popleft()
            else:
                entry[0] = head[n:]
        if self.writing:
            self.loop.remove_writer(self.fd)
            self.writing = False

    def close(self):
        """
        Close the socket; queued messages are dropped.
        """
        if not self.closed:
            self.closed = True
            self.loop.discard(self.fd)
            self.sock.close()
            for _, fds in self.out:
                for fd in fds:
                    close_quietly(fd)
            self.out.clear()
            while self.fds_in:
                close_quietly(self.fds_in.popleft())


def bind_long(sock, path):
    """
    Bind a unix socket to C{path} of any length: a path past the 107 bytes a socket address holds is reached
    through its folder's descriptor (C{/proc/self/fd/N/name}).
    """
    if len(os.fsencode(path)) <= 107:
        sock.bind(path)
        return
    directory, name = os.path.split(path)
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock.bind("/proc/self/fd/%d/%s" % (fd, name))
    finally:
        os.close(fd)
