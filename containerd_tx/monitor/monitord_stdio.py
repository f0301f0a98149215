# -*- test-case-name: tests.unit.test_monitord -*-
"""
Event loop and stdio plumbing of the container monitor (``monitord.py``).

Standard library only: the monitor runs as ``python -S monitord.py``, which puts
this directory and the folder of the ``containerd_tx`` package on its path.

- L{Loop}: a small selector loop with separate read and write callbacks per fd.
- L{open_stdio}: the rules for opening a process's stdin/stdout/stderr path
  without ever blocking.
- L{Pump}: copies bytes from one fd to another through a bounded buffer, with
  backpressure (the source is not read while the buffer is full); used for a
  pty master, which is not a pipe.
- L{SplicePump}: moves bytes from a pipe to a FIFO or file in the kernel
  (splice): nothing is ever in the monitor's memory, so a monitor killed at any
  moment loses no byte; what the destination cannot take waits in the pipe.
- L{Capture}: collects a pipe's output up to a limit, dropping the excess.
- L{ConsoleListener}: the console socket on which runc sends a pty master.
- L{Proxies}: the stdio proxies (stdin pipe, pty) that belong to one process.
- L{write_record}: a record as JSON, written with L{containerd_tx.layout.write_atomically}.
- L{RecordWriter}: a thread that writes records in batches, off the loop that pumps stdio.
"""

import errno
import fcntl
import json
import os
import queue
import selectors
import socket
import stat
import struct
import termios
import threading
import time

from containerd_tx import layout

#: Bytes a L{Pump} buffers before it stops reading its source.
PUMP_LIMIT = 64 * 1024
#: Bytes a pty's output pump buffers: what a monitor killed between a read and its write loses at most (a pty
#: master is not a pipe, so splice cannot move it); the rest waits in the pty.
PTY_PUMP_LIMIT = 4096
#: Most bytes read in one go.
CHUNK = 64 * 1024
#: Most bytes read from a source when draining it at close/exit (never blocks).
DRAIN_LIMIT = 1024 * 1024

_NONBLOCK_OPEN = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def log(message):
    """
    Write one line to stderr; never raise.
    """
    line = "%s monitord[%d]: %s\n" % (
        time.strftime("%Y-%m-%dT%H:%M:%S"),
        os.getpid(),
        " ".join(str(message).split("\n")),
    )
    try:
        os.write(2, line.encode("utf-8", "replace"))
    except OSError:
        pass


#: How long an exited process's output may take to reach a slow reader.
LINGER_SECONDS = 30.0


class Loop:
    """
    A selector loop dispatching to per-fd read and write callbacks.

    Two parties may share one fd (the pty master is read by one L{Pump} and
    written by another), so callbacks are kept per direction and the selector
    registration is derived from them.  Callback exceptions are logged, never
    raised: one failing request must not stop the monitor.
    """

    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self._readers = {}
        self._writers = {}
        self._closed = set()
        #: Output pumps of exited processes still flushing to a slow reader: [(deadline, pump)].
        self.lingering = []

    def linger(self, pump, seconds=LINGER_SECONDS):
        """
        Let C{pump} finish flushing on its own for at most C{seconds}, then close it.
        """
        self.lingering.append((time.monotonic() + seconds, pump))

    def expire_lingering(self):
        """
        Forget pumps that finished; close those past their deadline. Returns seconds to the next deadline.
        """
        now = time.monotonic()
        keep = []
        for deadline, pump in self.lingering:
            if not pump.is_open():
                continue
            if deadline <= now:
                pump.close()
                continue
            keep.append((deadline, pump))
        self.lingering = keep
        return min((d for d, _ in keep), default=now) - now if keep else None

    def _update(self, fd):
        events = (selectors.EVENT_READ if fd in self._readers else 0) | (
            selectors.EVENT_WRITE if fd in self._writers else 0
        )
        try:
            key = self.selector.get_key(fd)
        except KeyError:
            key = None
        if not events:
            if key is not None:
                self.selector.unregister(fd)
        elif key is None:
            self.selector.register(fd, events)
        elif key.events != events:
            self.selector.modify(fd, events)

    def add_reader(self, fd, callback):
        """
        Call C{callback()} whenever C{fd} is readable.
        """
        self._readers[fd] = callback
        try:
            self._update(fd)
        except BaseException:
            del self._readers[fd]
            raise

    def remove_reader(self, fd):
        """
        Stop watching C{fd} for reading.
        """
        if self._readers.pop(fd, None) is not None:
            self._update(fd)

    def add_writer(self, fd, callback):
        """
        Call C{callback()} whenever C{fd} is writable.
        """
        self._writers[fd] = callback
        try:
            self._update(fd)
        except BaseException:
            del self._writers[fd]
            raise

    def remove_writer(self, fd):
        """
        Stop watching C{fd} for writing.
        """
        if self._writers.pop(fd, None) is not None:
            self._update(fd)

    def discard(self, fd):
        """
        Forget C{fd} before it is closed; events already collected for it in
        this iteration are skipped (its number may be reused at once).
        """
        self._readers.pop(fd, None)
        self._writers.pop(fd, None)
        try:
            self.selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        self._closed.add(fd)

    def close(self, fd):
        """
        L{discard} and close C{fd}.
        """
        self.discard(fd)
        try:
            os.close(fd)
        except OSError:
            pass

    def run_once(self, timeout):
        """
        Wait at most C{timeout} seconds (None: forever) and dispatch events.
        """
        self._closed = set()
        for key, mask in self.selector.select(timeout):
            fd = key.fd
            if mask & selectors.EVENT_READ and fd not in self._closed:
                callback = self._readers.get(fd)
                if callback is not None:
                    self._call(callback)
            if mask & selectors.EVENT_WRITE and fd not in self._closed:
                callback = self._writers.get(fd)
                if callback is not None:
                    self._call(callback)

    @staticmethod
    def _call(callback):
        try:
            callback()
        except Exception as e:  # never crash the monitor
            log("internal error in %r: %s: %s" % (callback, type(e).__name__, e))


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


def close_quietly(fd):
    """
    Close C{fd} if it is not None, ignoring errors.
    """
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


class Pump:
    """
    Copy bytes from C{src} to C{dst} without ever blocking.

    At most C{limit} bytes are buffered; while the buffer is full the source is
    not read (backpressure).  A destination that fails (EIO, EPIPE, ENOSPC)
    stops the pump.  C{own_src}/C{own_dst} say whether the pump closes the fd.

    @ivar on_src_end: called with the OSError (or None for EOF) when the
        source ends; e.g. EIO on a pty master whose slave side is closed.
    """

    def __init__(self, loop, src, dst, name, own_src=True, own_dst=True, limit=PUMP_LIMIT):
        self.loop = loop
        self.src = src
        self.dst = dst
        self.name = name
        self.own_src = own_src
        self.own_dst = own_dst
        self.limit = limit
        self.buf = bytearray()
        self.input_closed = False
        self.close_dst_when_flushed = False
        self.on_src_end = None
        #: called with "src" or "dst" when the pump closes an fd it owns (the daemon drops its copy).
        self.release = None
        self._reading = False
        self._writing = False
        os.set_blocking(src, False)
        os.set_blocking(dst, False)
        self._update_reading()

    def __repr__(self):
        return "<Pump %s>" % (self.name,)

    def _released(self, role):
        if self.release is not None:
            self.release(role)

    def is_open(self):
        return self.dst is not None

    def _update_reading(self):
        want = self.src is not None and self.dst is not None and len(self.buf) < self.limit
        if want and not self._reading:
            self.loop.add_reader(self.src, self._on_readable)
            self._reading = True
        elif not want and self._reading:
            self.loop.remove_reader(self.src)
            self._reading = False

    def _read(self, size):
        """
        Read once from the source; None when nothing is readable now.
        """
        try:
            data = os.read(self.src, size)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            self._end_src(e)
            return None
        if not data:
            self._end_src(None)
            return None
        return data

    def _on_readable(self):
        room = self.limit - len(self.buf)
        if room > 0:
            data = self._read(min(room, CHUNK))
            if data:
                self.buf += data
                self._flush()
        self._update_reading()

    def _end_src(self, error):
        if self._reading:
            self.loop.remove_reader(self.src)
            self._reading = False
        src, self.src = self.src, None
        if self.own_src and src is not None:
            self.loop.close(src)
            self._released("src")
        if error is not None and error.errno != errno.EIO:
            log("%s: read failed: %s" % (self.name, error.strerror))
        if self.on_src_end is not None:
            self.on_src_end(error)

    def _flush(self):
        while self.buf and self.dst is not None:
            try:
                n = os.write(self.dst, self.buf)
            except (BlockingIOError, InterruptedError):
                if not self._writing:
                    self.loop.add_writer(self.dst, self._on_writable)
                    self._writing = True
                return
            except OSError as e:
                log("%s: write failed, dropping output: %s" % (self.name, e.strerror))
                self._close_dst()
                return
            del self.buf[:n]
        if self._writing and self.dst is not None:
            self.loop.remove_writer(self.dst)
            self._writing = False
        if not self.buf and self.close_dst_when_flushed:
            self._close_dst()

    def _on_writable(self):
        self._flush()
        self._update_reading()

    def _close_dst(self):
        self.buf = bytearray()
        dst, self.dst = self.dst, None
        if dst is not None:
            if self._writing:
                self.loop.remove_writer(dst)
                self._writing = False
            if self.own_dst:
                self.loop.close(dst)
                self._released("dst")
        self._update_reading()

    def close_input(self, trailer=b"", close_dst=False):
        """
        Take what is readable from the source now, stop reading it, append
        C{trailer}, and (if C{close_dst}) close the destination once flushed.
        Idempotent.
        """
        if self.input_closed:
            return
        self.input_closed = True
        taken = 0
        while self.src is not None and taken < DRAIN_LIMIT:
            data = self._read(CHUNK)
            if not data:
                break
            self.buf += data
            taken += len(data)
        if self.src is not None:
            if self._reading:
                self.loop.remove_reader(self.src)
                self._reading = False
            src, self.src = self.src, None
            if self.own_src:
                self.loop.close(src)
                self._released("src")
        self.buf += trailer
        self.close_dst_when_flushed = close_dst
        self._flush()

    def drain_and_close(self):
        """
        Best effort, never blocking: move what is readable now to the
        destination, drop what does not fit, and close.
        """
        taken = 0
        while self.src is not None and self.dst is not None and taken < DRAIN_LIMIT:
            data = self._read(CHUNK)
            if not data:
                break
            self.buf += data
            taken += len(data)
            self._flush()
            if self.buf:
                break  # destination full: drop the rest
        self._flush()
        self.close()

    def close(self):
        """
        Stop and close the fds this pump owns; drop buffered bytes.
        """
        if self._reading:
            self.loop.remove_reader(self.src)
            self._reading = False
        src, self.src = self.src, None
        if src is not None and self.own_src:
            self.loop.close(src)
            self._released("src")
        self._close_dst()


class SplicePump:
    """
    Move bytes from the pipe C{src} to C{dst} (a FIFO, a file, anything splice writes to) in the kernel,
    without ever blocking and without a byte in the monitor's memory: a monitor killed at any moment loses
    nothing, and one that is handed the same fds goes on where it stopped.  While the destination is full the
    bytes wait in the source pipe (its writer blocks, no one else).  A destination splice cannot write to
    (EINVAL) falls back to a L{Pump}.  Same interface as L{Pump} for L{Proxies}.
    """

    def __init__(self, loop, src, dst, name, own_src=True, own_dst=True):
        self.loop = loop
        self.src = src
        self.dst = dst
        self.name = name
        self.own_src = own_src
        self.own_dst = own_dst
        self.on_src_end = None
        self.release = None
        self.input_closed = False
        self.finishing = False
        self.fallback = None
        self._waiting = None  # "src" or "dst"
        os.set_blocking(src, False)
        os.set_blocking(dst, False)
        try:
            self._dst_pollable = stat.S_ISFIFO(os.fstat(dst).st_mode) or stat.S_ISSOCK(os.fstat(dst).st_mode)
        except OSError:
            self._dst_pollable = False
        self._step()

    def __repr__(self):
        return "<SplicePump %s>" % (self.name,)

    def _released(self, role):
        if self.release is not None:
            self.release(role)

    def is_open(self):
        if self.fallback is not None:
            return self.fallback.is_open()
        return self.dst is not None

    def _src_pending(self):
        try:
            return struct.unpack("i", fcntl.ioctl(self.src, termios.FIONREAD, b"\0\0\0\0"))[0] > 0
        except OSError:
            return False

    def _wait(self, which):
        if which == self._waiting:
            return
        self._unwait()
        if which == "src":
            self.loop.add_reader(self.src, self._step)
        elif which == "dst":
            self.loop.add_writer(self.dst, self._step)
        self._waiting = which

    def _unwait(self):
        if self._waiting == "src" and self.src is not None:
            self.loop.remove_reader(self.src)
        elif self._waiting == "dst" and self.dst is not None:
            self.loop.remove_writer(self.dst)
        self._waiting = None

    def _step(self):
        """Move what can be moved now; then wait for the side that blocks."""
        if self.fallback is not None:
            return
        if self.src is None or self.dst is None:
            if self.finishing:
                self.close()
            return
        moved = 0
        while moved < DRAIN_LIMIT:
            try:
                n = os.splice(self.src, self.dst, CHUNK, flags=os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE)
            except (BlockingIOError, InterruptedError):
                if self._src_pending():
                    if self._dst_pollable:
                        self._wait("dst")
                        return
                    # a destination that is never "full" for poll: try again on the next source event
                elif self.finishing:
                    self.close()  # everything written before the end is out
                    return
                self._wait("src")
                return
            except OSError as e:
                if e.errno == errno.EINVAL and moved == 0 and self.src is not None:
                    self._fall_back()
                    return
                log("%s: write failed, dropping output: %s" % (self.name, e.strerror))
                self._close_dst()
                return
            if n == 0:
                self._end_src(None)
                return
            moved += n
        # Fairness: other fds get a turn; the source is still readable, so the loop comes back.
        self._wait("src")

    def _fall_back(self):
        self._unwait()
        pump = Pump(self.loop, self.src, self.dst, self.name, own_src=self.own_src, own_dst=self.own_dst)
        pump.on_src_end = self.on_src_end
        pump.release = self.release
        self.fallback = pump
        if self.finishing:
            pump.close_input(close_dst=True)

    def _end_src(self, error):
        self._unwait()
        src, self.src = self.src, None
        if self.own_src and src is not None:
            self.loop.close(src)
            self._released("src")
        if self.on_src_end is not None:
            self.on_src_end(error)

    def _close_dst(self):
        self._unwait()
        dst, self.dst = self.dst, None
        if dst is not None and self.own_dst:
            self.loop.close(dst)
            self._released("dst")

    def close_input(self, trailer=b"", close_dst=False):
        """
        Move what the source holds now, then close both ends (the destination
        only with C{close_dst}); bytes the destination cannot take yet stay in the
        source pipe and are moved as it drains.  Idempotent.
        """
        if self.fallback is not None:
            return self.fallback.close_input(trailer, close_dst)
        if self.input_closed:
            return
        assert close_dst and not trailer, "a SplicePump ends with its destination"
        self.input_closed = True
        self.finishing = True
        self._step()

    def finish(self):
        """The process ended: move what is left, then close (see L{close_input})."""
        self.close_input(close_dst=True)

    def drain_and_close(self):
        self.close_input(close_dst=True)

    def close(self):
        """Stop and close the fds this pump owns; what is still in the source pipe is dropped."""
        if self.fallback is not None:
            self.fallback.close()
            self.src = self.dst = None
            return
        self._unwait()
        src, self.src = self.src, None
        if src is not None and self.own_src:
            self.loop.close(src)
            self._released("src")
        self._close_dst()


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


class Proxies:
    """
    The stdio proxies of one process: output pipes moved to the stdout/stderr
    paths, a stdin pipe fed from a FIFO, or a pty master copied to the stdout
    path and fed from the stdin path.

    Created for a spawn; owned by the registered process after registration;
    closed when the spawn registers nothing.  L{fds} names every fd it holds
    (the daemon keeps a copy of each, see C{monitord.py}); C{on_release(name)}
    is called when one of them is closed here for good.
    """

    def __init__(self, loop, name):
        self.loop = loop
        self.name = name
        self.tty = False
        self.master = None
        self.tty_stdout = None
        self.tty_stdin = None
        self.out_pump = None
        self.in_pump = None
        self.output_pumps = []
        #: name -> fd held without a pump (handed over without its partner).
        self.held = {}
        self.on_release = None
        #: the fd store's id of these proxies, and what the daemon keeps with it (set by the monitor).
        self.set_id = None
        self.meta = None

    def _release(self, name):
        if self.on_release is not None:
            self.on_release(name)

    def _releaser(self, src_name, dst_name):
        return lambda role: self._release(src_name if role == "src" else dst_name)

    def fds(self):
        """
        C{{name: fd}} of every fd these proxies hold: C{stdout_src}/C{stdout_dst} (the pipe's read end, the
        FIFO or file), the same for stderr, C{stdin_src}/C{stdin_dst} (the stdin FIFO, the pipe's write end),
        or C{master}, C{tty_out}, C{tty_in} for a terminal.
        """
        found = dict(self.held)
        for which, pump in self.output_pumps:
            pump = pump.fallback or pump if isinstance(pump, SplicePump) else pump
            if pump.src is not None:
                found[which + "_src"] = pump.src
            if pump.dst is not None:
                found[which + "_dst"] = pump.dst
        if self.tty:
            if self.master is not None:
                found["master"] = self.master
            if self.out_pump is not None and self.out_pump.dst is not None:
                found["tty_out"] = self.out_pump.dst
            if self.in_pump is not None and self.in_pump.src is not None:
                found["tty_in"] = self.in_pump.src
            if self.tty_stdout is not None:
                found["tty_out"] = self.tty_stdout
            if self.tty_stdin is not None:
                found["tty_in"] = self.tty_stdin
        elif self.in_pump is not None:
            pump = self.in_pump.fallback or self.in_pump
            if pump.src is not None:
                found["stdin_src"] = pump.src
            if pump.dst is not None:
                found["stdin_dst"] = pump.dst
        return found

    def _output_pump(self, src, dst, which):
        pump = SplicePump(self.loop, src, dst, "%s %s" % (self.name, which))
        pump.release = self._releaser(which + "_src", which + "_dst")
        # At EOF (the child and its descendants closed the pipe) everything is out: close.
        pump.on_src_end = lambda error, pump=pump: pump.close_input(close_dst=True)
        self.output_pumps.append((which, pump))
        return pump

    def proxy_output(self, dst_fd, which):
        """
        Move what the child writes to a fresh pipe into C{dst_fd} (a FIFO or file); return the pipe's write
        end for the child (blocking, close-on-exec).

        The child never holds the client's FIFO itself: CRIU can dump a pipe but not a FIFO outside the
        container, and a reader that comes and goes cannot disturb the child.
        """
        r, w = os.pipe()
        self._output_pump(r, dst_fd, which)
        return w

    def _stdin_pump(self, src, dst):
        self.in_pump = SplicePump(self.loop, src, dst, "%s stdin" % (self.name,))
        self.in_pump.release = self._releaser("stdin_src", "stdin_dst")

    def proxy_stdin(self, fifo_fd):
        """
        Feed C{fifo_fd} into a fresh pipe; return the pipe's read end (for
        the child; blocking, close-on-exec).
        """
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._stdin_pump(fifo_fd, w)
        return r

    def expect_terminal(self, stdout_fd, stdin_fd):
        """
        Hold the stdout/stdin fds for the pty proxy until the master arrives.
        """
        self.tty = True
        self.tty_stdout = stdout_fd
        self.tty_stdin = stdin_fd

    def set_master(self, master):
        """
        The runtime sent the pty master (or a monitor handed it over): start copying.
        """
        if self.master is not None or not self.tty:
            close_quietly(master)
            return
        os.set_blocking(master, False)
        self.master = master
        out, self.tty_stdout = self.tty_stdout, None
        if out is not None:
            self.out_pump = Pump(self.loop, master, out, "%s pty output" % (self.name,), own_src=False,
                                 limit=PTY_PUMP_LIMIT)
            self.out_pump.release = self._releaser("master", "tty_out")
            self.out_pump.on_src_end = self._master_ended
        stdin, self.tty_stdin = self.tty_stdin, None
        if stdin is not None:
            self.in_pump = Pump(self.loop, stdin, master, "%s pty input" % (self.name,), own_dst=False)
            self.in_pump.release = self._releaser("tty_in", "master")

    def _master_ended(self, error):
        # The slave side is closed: writing into it could only fill it up.
        if self.in_pump is not None:
            self.in_pump.close()
            self.in_pump = None

    @classmethod
    def restore(cls, loop, name, fds, tty):
        """
        Proxies for the fds another monitor held (C{{name: fd}}, see L{fds}).
        """
        self = cls(loop, name)
        fds = dict(fds)
        for which in ("stdout", "stderr"):
            src, dst = fds.pop(which + "_src", None), fds.pop(which + "_dst", None)
            if src is not None and dst is not None:
                self._output_pump(src, dst, which)
            else:
                for role, fd in (("_src", src), ("_dst", dst)):
                    if fd is not None:
                        self.held[which + role] = fd
        if tty:
            self.tty = True
            self.tty_stdout = fds.pop("tty_out", None)
            self.tty_stdin = fds.pop("tty_in", None)
            master = fds.pop("master", None)
            if master is not None:
                self.set_master(master)
        else:
            src, dst = fds.pop("stdin_src", None), fds.pop("stdin_dst", None)
            if src is not None and dst is not None:
                self._stdin_pump(src, dst)
            else:
                for key, fd in (("stdin_src", src), ("stdin_dst", dst)):
                    if fd is not None:
                        self.held[key] = fd
        self.held.update(fds)
        return self

    def close_stdin(self):
        """
        Deliver what is in the stdin FIFO, then EOF (pipe closed; pty: ^D).
        """
        if self.in_pump is not None:
            if self.tty:
                self.in_pump.close_input(trailer=b"\x04")
            else:
                self.in_pump.close_input(close_dst=True)
        elif self.tty_stdin is not None:
            close_quietly(self.tty_stdin)
            self.tty_stdin = None
            self._release("tty_in")

    def resize(self, width, height):
        """
        Set the pty window size; False when there is no terminal.
        """
        if self.master is None:
            return False
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        return True

    def close(self, drain=False):
        """
        Close everything; with C{drain}, first move what the pty master holds
        to stdout (best effort, never blocking), and let the output pipes'
        remaining bytes reach their reader for at most L{LINGER_SECONDS}.
        """
        if self.in_pump is not None:
            self.in_pump.close()
            self.in_pump = None
        for which, pump in self.output_pumps:
            if drain:
                # Everything written before the exit reaches the reader; a reader that never comes does not
                # keep the pump (and the client's FIFO) forever.
                pump.close_input(close_dst=True)
                if pump.is_open():
                    self.loop.linger(pump)
            else:
                pump.close()
        if not drain:
            self.output_pumps = []
        if self.out_pump is not None:
            if drain:
                self.out_pump.drain_and_close()
            else:
                self.out_pump.close()
            self.out_pump = None
        if self.master is not None:
            self.loop.close(self.master)
            self.master = None
            self._release("master")
        for key in ("tty_stdout", "tty_stdin"):
            fd = getattr(self, key)
            if fd is not None:
                close_quietly(fd)
                setattr(self, key, None)
                self._release("tty_out" if key == "tty_stdout" else "tty_in")
        for key, fd in list(self.held.items()):
            close_quietly(fd)
            del self.held[key]
            self._release(key)


class RecordWriter:
    """
    Writes exit records on a thread of its own, so that a slow fsync never
    stalls the loop that pumps every container's stdio.

    What is queued while a batch is written forms the next batch: each file
    is written and fsynced, renamed into place, and each folder of the batch
    is fsynced once.  C{done(error)} (None on success, else the OSError) is
    called in the loop's thread, once the record is on disk or has failed.
    """

    def __init__(self, loop):
        self.loop = loop
        self.queue = queue.SimpleQueue()
        self.results = queue.SimpleQueue()
        self.pending = 0
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        loop.add_reader(self.wake_r, self._on_results)
        self.thread = threading.Thread(target=self._run, name="records", daemon=True)
        self.thread.start()

    def submit(self, directory, name, record, done):
        self.pending += 1
        self.queue.put((directory, name, record, done))

    def _run(self):
        while True:
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            synced = {}
            outcomes = []
            for directory, name, record, done in batch:
                try:
                    write_record(directory, name, record, sync_dir=False)
                except OSError as e:
                    outcomes.append((done, e))
                    continue
                outcomes.append((done, directory))
                synced[directory] = None
            for directory in synced:
                synced[directory] = layout.fsync_dir(directory)
            for done, outcome in outcomes:
                if isinstance(outcome, OSError):
                    self.results.put((done, outcome))
                else:
                    self.results.put((done, synced[outcome]))
            try:
                os.write(self.wake_w, b"x")
            except BlockingIOError:
                pass  # the loop has a wake-up pending already

    def _on_results(self):
        try:
            os.read(self.wake_r, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                done, error = self.results.get_nowait()
            except queue.Empty:
                return
            self.pending -= 1
            Loop._call(lambda: done(error))


def write_record(directory, name, record, sync_dir=True):
    """
    Write C{record} as JSON to C{directory/name} with L{layout.write_atomically} (the folder fsynced too,
    unless C{sync_dir} is false: the caller does it).
    """
    data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    layout.write_atomically(os.path.join(directory, name), data, sync_dir=sync_dir)
