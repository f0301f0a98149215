# -*- test-case-name: tests.unit.test_monitord -*-
"""
The stdio proxies of one process (L{Proxies}): output pipes moved to the stdout/stderr paths, a stdin pipe fed
from a FIFO, or a pty master copied to the stdout path and fed from the stdin path; and the fds they hold, of
which the daemon keeps a copy.

Standard library only (see C{monitord.py}).
"""

import fcntl
import os
import struct
import termios

from containerd_tx.monitor.loop import close_quietly
from containerd_tx.monitor.pumps import PTY_PUMP_LIMIT, Pump, SplicePump


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
