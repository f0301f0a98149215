# -*- test-case-name: tests.unit.test_monitord -*-
"""
Opening a process's stdio, and the stdio of spawned commands.

- L{open_stdio}: the rules for opening a process's stdin/stdout/stderr path without ever blocking.
- L{SharedOutputs}: one open file description per output file, shared by every stream writing it.
- L{Capture}: collects a pipe's output up to a limit, dropping the excess.
- L{ConsoleListener}: the console socket on which runc sends a pty master.

The event loop is L{containerd_tx.monitor.loop}'s, the pumps that move the bytes
L{containerd_tx.monitor.pumps}', a process's proxies L{containerd_tx.monitor.proxies}'.

Standard library only (see C{monitord.py}).
"""

import errno
import fcntl
import os
import socket
import stat
import struct

from containerd_tx.monitor.loop import close_quietly, log
from containerd_tx.monitor.pumps import DRAIN_LIMIT


_NONBLOCK_OPEN = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC



class StdioError(Exception):
    """
    A stdio path could not be opened; the message says which and why.
    """


def open_stdio(path, which):
    """
    Open C{path} as C{which} ("stdin", "stdout" or "stderr") without blocking.

    A FIFO is opened read-write (never blocks, never ENXIO); a regular file or
    a missing path is opened for writing at its end (created 0640) for
    stdout/stderr, without O_APPEND (splice refuses an O_APPEND destination;
    the offset lives in the open file description, shared with every copy of
    the fd, so a monitor that takes the fd over goes on at the same place),
    and read-only for stdin; a directory is an error.  The fd is returned
    non-blocking and close-on-exec: the caller clears O_NONBLOCK on fds it
    hands to a child.

    @return: C{(fd, is_fifo)}
    @raise StdioError: with a one-line message naming the path.
    """
    try:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OSError(errno.EISDIR, os.strerror(errno.EISDIR))
        if st is not None and stat.S_ISFIFO(st.st_mode):
            fd = os.open(path, os.O_RDWR | _NONBLOCK_OPEN)
        elif which == "stdin":
            fd = os.open(path, os.O_RDONLY | _NONBLOCK_OPEN)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | _NONBLOCK_OPEN, 0o640)
            try:
                os.lseek(fd, 0, os.SEEK_END)
            except OSError:
                pass  # not seekable (a character device)
    except OSError as e:
        raise StdioError("cannot open %s %s: %s" % (which, path, e.strerror or e))
    try:
        is_fifo = stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        is_fifo = False
    return fd, is_fifo


class SharedOutputs:
    """
    Output paths that are regular files, opened so that every stream writing one file shares one open file
    description.

    Output files are opened without O_APPEND (see L{open_stdio}), so two descriptions of one file each
    write at their own offset and overwrite each other: stdout and stderr pointed at the same log, or an
    exec'd process writing where its init writes. Sharing the description shares the offset, and the
    monitor, one thread, moves one chunk at a time: the streams interleave as with O_APPEND.
    """

    def __init__(self):
        self._fds = {}  # (st_dev, st_ino) -> an fd of ours open for writing on it

    def open(self, path, which):
        """L{open_stdio} for C{which} "stdout" or "stderr", sharing the description of a file already open."""
        fd, is_fifo = open_stdio(path, which)
        try:
            st = os.fstat(fd)
        except OSError:
            return fd, is_fifo
        if not stat.S_ISREG(st.st_mode):
            return fd, is_fifo
        key = (st.st_dev, st.st_ino)
        shared = self._dup(key)
        if shared is None:
            self._fds[key] = fd
            return fd, False
        close_quietly(fd)
        return shared, False

    def adopt(self, fd):
        """Remember C{fd} (a stdout/stderr fd handed over by an earlier monitor) for later opens to share."""
        try:
            st = os.fstat(fd)
        except OSError:
            return
        if stat.S_ISREG(st.st_mode) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
            self._fds.setdefault((st.st_dev, st.st_ino), fd)

    def _dup(self, key):
        fd = self._fds.get(key)
        if fd is None:
            return None
        try:
            # The number may have been closed and reused since: it must still be a writer on the same file.
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == key and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)
        except OSError:
            pass
        del self._fds[key]
        return None


class Capture:
    """
    Collect what a child writes to a pipe, keeping at most C{limit} bytes.
    """

    def __init__(self, loop, fd, limit):
        self.loop = loop
        self.fd = fd
        self.limit = limit
        self.chunks = []
        self.size = 0
        self.dropped = 0
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)

    def _read_once(self):
        try:
            data = os.read(self.fd, 256 * 1024)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self.loop.close(self.fd)
            self.fd = None
            return False
        keep = self.limit - self.size
        if keep > 0:
            self.chunks.append(data[:keep])
            self.size += min(keep, len(data))
        self.dropped += max(0, len(data) - max(keep, 0))
        return True

    def _on_readable(self):
        if self.fd is not None:
            self._read_once()

    def finish(self):
        """
        Read what is left without blocking, close, return the bytes.

        Called when the child has exited: what it wrote is already in the pipe.
        A grandchild still holding the pipe loses what it writes later.
        """
        budget = self.limit + DRAIN_LIMIT
        while self.fd is not None and budget > 0 and self._read_once():
            budget -= 256 * 1024
        if self.fd is not None:
            self.loop.close(self.fd)
            self.fd = None
        return b"".join(self.chunks)


class ConsoleListener:
    """
    Listen on a console socket path; the runtime connects and sends the pty
    master through SCM_RIGHTS.  C{on_master(fd)} is called with it (fd is
    close-on-exec).  The socket file is removed after accept and on close.
    """

    def __init__(self, loop, path, on_master):
        self.loop = loop
        self.path = path
        self.on_master = on_master
        self.conn = None
        self.listener = None
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StdioError("cannot create console socket %s: %s" % (path, e.strerror))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if len(os.fsencode(path)) > 107:
                # runc connects to this path itself: it must fit in a socket address.
                raise OSError(errno.ENAMETOOLONG, "path too long for a unix socket")
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(1)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            raise StdioError("cannot create console socket %s: %s" % (path, e.strerror or e))
        self.listener = sock
        loop.add_reader(sock.fileno(), self._on_accept)

    def _close_listener(self):
        if self.listener is not None:
            self.loop.discard(self.listener.fileno())
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _close_conn(self):
        if self.conn is not None:
            self.loop.discard(self.conn.fileno())
            self.conn.close()
            self.conn = None

    def _on_accept(self):
        try:
            conn, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        self._close_listener()
        self.conn = conn
        self.loop.add_reader(conn.fileno(), self._on_data)

    def _on_data(self):
        fdsize = struct.calcsize("i")
        try:
            data, ancdata, _, _ = self.conn.recvmsg(
                4096, socket.CMSG_SPACE(4 * fdsize), socket.MSG_CMSG_CLOEXEC
            )
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log("console socket %s: %s" % (self.path, e.strerror))
            self._close_conn()
            return
        fds = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % fdsize
                fds.extend(struct.unpack("%di" % (usable // fdsize), payload[:usable]))
        if fds:
            for extra in fds[1:]:
                close_quietly(extra)
            self._close_conn()
            self.on_master(fds[0])
        elif not data:
            log("console socket %s: closed without a terminal" % (self.path,))
            self._close_conn()

    def finish(self):
        """
        Pick up a connection or fd already queued in the kernel, then close.
        """
        if self.listener is not None:
            self._on_accept()
        if self.conn is not None:
            self._on_data()
        self._close_listener()
        self._close_conn()
