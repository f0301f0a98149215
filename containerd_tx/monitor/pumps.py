# -*- test-case-name: tests.unit.test_monitord,tests.unit.test_monitor_takeover -*-
"""
Moving a process's bytes without ever blocking the monitor.

- L{Pump}: copies bytes from one fd to another through a bounded buffer, with backpressure (the source is not
  read while the buffer is full); used for a pty master, which is not a pipe.
- L{SplicePump}: moves bytes from a pipe to a FIFO or file in the kernel (splice): nothing is ever in the
  monitor's memory, so a monitor killed at any moment loses no byte; what the destination cannot take waits
  in the pipe.

Standard library only (see C{monitord.py}).
"""

import errno
import fcntl
import os
import stat
import struct
import termios

from containerd_tx.monitor.loop import log


#: Bytes a L{Pump} buffers before it stops reading its source.
PUMP_LIMIT = 64 * 1024

#: Bytes a pty's output pump buffers: what a monitor killed between a read and its write loses at most (a pty
#: master is not a pipe, so splice cannot move it); the rest waits in the pty.
PTY_PUMP_LIMIT = 4096

#: Most bytes read in one go.
CHUNK = 64 * 1024

#: Most bytes read from a source when draining it at close/exit (never blocks).
DRAIN_LIMIT = 1024 * 1024


class _Ends:
    """
    What both pumps keep of their two fds: the fds (non-blocking), whether the pump closes each, and who to
    tell when it does.
    """

    def __init__(self, loop, src, dst, name, own_src, own_dst):
        self.loop = loop
        self.src = src
        self.dst = dst
        self.name = name
        self.own_src = own_src
        self.own_dst = own_dst
        self.input_closed = False
        self.on_src_end = None
        #: called with "src" or "dst" when the pump closes an fd it owns (the daemon drops its copy).
        self.release = None
        os.set_blocking(src, False)
        os.set_blocking(dst, False)

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.name)

    def _released(self, role):
        if self.release is not None:
            self.release(role)


class Pump(_Ends):
    """
    Copy bytes from C{src} to C{dst} without ever blocking.

    At most C{limit} bytes are buffered; while the buffer is full the source is
    not read (backpressure).  A destination that fails (EIO, EPIPE, ENOSPC)
    stops the pump.  C{own_src}/C{own_dst} say whether the pump closes the fd.

    @ivar on_src_end: called with the OSError (or None for EOF) when the
        source ends; e.g. EIO on a pty master whose slave side is closed.
    """

    def __init__(self, loop, src, dst, name, own_src=True, own_dst=True, limit=PUMP_LIMIT):
        _Ends.__init__(self, loop, src, dst, name, own_src, own_dst)
        self.limit = limit
        self.buf = bytearray()
        self.close_dst_when_flushed = False
        self._reading = False
        self._writing = False
        self._update_reading()

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


class SplicePump(_Ends):
    """
    Move bytes from the pipe C{src} to C{dst} (a FIFO, a file, anything splice writes to) in the kernel,
    without ever blocking and without a byte in the monitor's memory: a monitor killed at any moment loses
    nothing, and one that is handed the same fds goes on where it stopped.  While the destination is full the
    bytes wait in the source pipe (its writer blocks, no one else).  A destination splice cannot write to
    (EINVAL) falls back to a L{Pump}.  Same interface as L{Pump} for L{Proxies}.
    """

    def __init__(self, loop, src, dst, name, own_src=True, own_dst=True):
        _Ends.__init__(self, loop, src, dst, name, own_src, own_dst)
        self.finishing = False
        self.fallback = None
        self._waiting = None  # "src" or "dst"
        try:
            self._dst_pollable = stat.S_ISFIFO(os.fstat(dst).st_mode) or stat.S_ISSOCK(os.fstat(dst).st_mode)
        except OSError:
            self._dst_pollable = False
        self._step()


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
        if self.finishing:
            # Already told to finish (close_input ran before the end came): nothing more will arrive, so the
            # destination closes now and its reader sees EOF, instead of after the linger.
            self.close()

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
