# -*- test-case-name: tests.unit.test_ctr_stdio -*-
"""
Attaching to a container's process: the FIFOs its stdio goes through, the copying to and from the local
terminal, raw mode and window size for a tty, and waiting for the process's exit event.

L{attach} serves C{ctr containers start --attach} and, later, C{exec}: the caller only supplies the call that
starts the process with the FIFOs' paths.
"""

import contextlib
import os
import selectors
import shutil
import signal
import sys
import tempfile
import termios
import threading
import time
from tty import setraw

from ctr import errors, events

#: After the exit event, output is copied until EOF or until the FIFOs stay silent this long (seconds).
DRAIN_IDLE = 1.0

_CHUNK = 65536


class Fifos:
    """
    A private temporary directory with three FIFOs, C{stdin}, C{stdout} and C{stderr} (mode 0600), opened
    at once so that no output is lost and the daemon's opens never block.

    The output FIFOs are opened for reading (non-blocking), and also for writing by ourselves, so that they
    read as empty rather than at EOF until L{release} lets the process's side end them. The stdin FIFO is
    opened read-write.

    @ivar dir: the directory.
    @ivar stdin: path of the stdin FIFO (likewise C{stdout}, C{stderr}).
    @ivar stdout_fd: our reading end of the stdout FIFO (likewise C{stderr_fd}).
    @ivar stdin_fd: our writing end of the stdin FIFO, or C{None} once L{take_stdin} handed it over.
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ctr-")
        self.stdin_fd = self.stdout_fd = self.stderr_fd = None
        self._keep = []
        try:
            for name in ("stdin", "stdout", "stderr"):
                path = os.path.join(self.dir, name)
                os.mkfifo(path, 0o600)
                setattr(self, name, path)
            self.stdout_fd = self._open_output(self.stdout)
            self.stderr_fd = self._open_output(self.stderr)
            self.stdin_fd = os.open(self.stdin, os.O_RDWR | os.O_CLOEXEC)
        except BaseException:
            self.close()
            raise

    def _open_output(self, path):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._keep.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        return fd

    def release(self):
        """Stop holding the output FIFOs open for writing: they reach EOF when the process's side closes."""
        for fd in self._keep:
            os.close(fd)
        self._keep = []

    def take_stdin(self):
        """@return: the stdin FIFO's fd, which the caller now owns and must close."""
        fd, self.stdin_fd = self.stdin_fd, None
        return fd

    def close(self):
        """Close every fd still held and remove the directory."""
        for fd in self._keep + [self.stdin_fd, self.stdout_fd, self.stderr_fd]:
            if fd is not None:
                os.close(fd)
        self._keep = []
        self.stdin_fd = self.stdout_fd = self.stderr_fd = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class _OutputPump(threading.Thread):
    """
    Copy FIFOs to local binary streams until every FIFO is at EOF, or it is told to stop.

    Until L{release_held} is called, what is read is held back (the FIFOs are still drained, so nothing
    blocks): the runtime writes its own error messages to a process's stderr when it fails to start it,
    and those are already in the daemon's error, which ctr prints as its one line.
    """

    def __init__(self, pairs):
        super().__init__(name="ctr-output", daemon=True)
        self._pairs = dict(pairs)  # fd -> stream
        self._stop_at = None  # None: run on; else stop at this monotonic time, pushed back by output
        self._idle = 0.0
        self._lock = threading.Lock()
        self._held = []  # (fd, data) read before release_held; None once released

    def release_held(self):
        """Write what was held back, and from now on copy as it comes (the process has started)."""
        with self._lock:
            held, self._held = self._held, None
            for fd, data in held:
                self._write(fd, data)

    def run(self):
        with selectors.DefaultSelector() as selector:
            for fd in self._pairs:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                ready = selector.select(timeout=0.05)
                with self._lock:
                    if self._stop_at is not None and time.monotonic() >= self._stop_at:
                        return
                for key, _ in ready:
                    try:
                        data = os.read(key.fd, _CHUNK)
                    except BlockingIOError:
                        continue
                    if not data:
                        selector.unregister(key.fd)
                        continue
                    with self._lock:
                        if self._held is not None:
                            self._held.append((key.fd, data))
                        else:
                            self._write(key.fd, data)
                        if self._stop_at is not None:
                            self._stop_at = max(self._stop_at, time.monotonic() + self._idle)

    def _write(self, fd, data):
        stream = self._pairs[fd]
        if stream is None:
            return
        try:
            stream.write(data)
            stream.flush()
        except (OSError, ValueError):
            self._pairs[fd] = None  # the local side went away: keep draining, drop the data

    def finish(self, idle):
        """Stop once every FIFO is at EOF or nothing came for C{idle} seconds; wait for that."""
        with self._lock:
            self._idle = idle
            self._stop_at = time.monotonic() + idle
        self.join()


def _read_chunk(stream):
    """One chunk of whatever is available on a local binary stream (b"" at EOF)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        reader = getattr(stream, "read1", stream.read)
        return reader(_CHUNK)
    return os.read(fd, _CHUNK)


def exit_status(status):
    """
    @return: the exit status ctr ends with for a process's: the same from 0 to 255 (128+N for a process
        killed by signal N, as shells report it), 255 for anything a shell could not show.
    """
    return status if 0 <= status <= 255 else 255


def _pump_stdin(stream, fd, close_stdin):
    """Copy a local stream into the stdin FIFO; at EOF close the FIFO and call C{close_stdin}."""
    try:
        while True:
            data = _read_chunk(stream)
            if not data:
                break
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
    except (OSError, ValueError):
        pass
    finally:
        os.close(fd)
    try:
        close_stdin()
    except Exception as error:  # noqa: BLE001 - the process may have exited already, or the channel closed
        if not (errors.is_rpc_error(error) or isinstance(error, ValueError)):
            raise


def _fileno(stream):
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def is_terminal(stream):
    """@return: whether a local stream is a terminal."""
    fd = _fileno(stream)
    return fd is not None and os.isatty(fd)


@contextlib.contextmanager
def raw_terminal(fd):
    """Put the terminal C{fd} in raw mode for the block; its settings are restored however the block ends."""
    saved = termios.tcgetattr(fd)
    try:
        setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class Resizer:
    """
    Keep a process's terminal the size of a local one: send the size now and on every SIGWINCH.

    The signal handler only wakes a thread, which makes the call; failed calls are ignored (the process
    may be gone).
    """

    def __init__(self, fd, send):
        """
        @param fd: the local terminal.
        @param send: C{send(width, height)} makes the call.
        """
        self._fd = fd
        self._send = send
        self._wake = threading.Event()
        self._done = False
        self._previous = None  # the SIGWINCH handler to restore, once ours is installed
        self._thread = threading.Thread(target=self._run, name="ctr-resize", daemon=True)

    def resize(self):
        """Send the local terminal's current size."""
        try:
            size = os.get_terminal_size(self._fd)
            self._send(size.columns, size.lines)
        except Exception as error:  # noqa: BLE001 - the process may be gone
            if not (errors.is_rpc_error(error) or isinstance(error, (OSError, ValueError))):
                raise

    def _run(self):
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._done:
                return
            self.resize()

    def start(self):
        """Send the size, then follow SIGWINCH (when called from the main thread, where handlers live)."""
        self.resize()
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGWINCH, lambda signum, frame: self._wake.set())
            self._previous = signal.SIG_DFL if previous is None else previous
        self._thread.start()

    def stop(self):
        """Stop following SIGWINCH and restore the previous handler."""
        if self._previous is not None:
            signal.signal(signal.SIGWINCH, self._previous)
            self._previous = None
        self._done = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()


def wait_for_exit(stream, container_id, process_id):
    """
    Read events until process C{process_id} of container C{container_id} exits.

    @return: its exit status.
    @raise client.ClientError: when the stream ends first.
    """
    for event in stream:
        if event.type == "exit" and event.id == container_id and event.pid == process_id:
            return event.status
    raise errors.ClientError(f"the event stream ended before process {process_id} of {container_id} exited")


def attach(stub, container_id, process_id, start_call, tty=False, stdin=None, stdout=None, stderr=None):
    """
    Start a process with its stdio on fresh FIFOs, connect them to local streams, and wait for it to exit.

    The FIFOs are open and the events stream subscribed (from now on, so that no event can slip between)
    before C{start_call} runs; output is shown once it has returned (if it fails, what the runtime wrote to
    the process's stderr is dropped: the daemon's error says it). Local stdin is copied in; at its EOF the
    process's stdin is closed with UpdateProcess. With C{tty}, a local terminal stdin is put in raw mode
    (restored on the way out) and the process's terminal follows its size. After the exit event, output is
    copied to EOF. The FIFOs' directory is removed on every path out.

    @param stub: the C{types.API} stub.
    @param start_call: C{start_call(stdin_path, stdout_path, stderr_path)} starts the process (e.g. calls
        CreateContainer or AddProcess).
    @param tty: whether the process has a terminal.
    @param stdin: local binary streams (default: C{sys.stdin.buffer}, likewise C{stdout}, C{stderr}).
    @return: the process's exit status.
    @raise grpc.RpcError: from C{start_call} or the events stream.
    """
    from containerd_tx.api import containerd_pb2

    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer
    stderr = stderr if stderr is not None else sys.stderr.buffer
    with contextlib.ExitStack() as cleanup:
        fifos = cleanup.enter_context(Fifos())
        request = containerd_pb2.EventsRequest(id=container_id, timestamp=events.now())
        stream = stub.Events(request)
        cleanup.callback(stream.cancel)
        pump = _OutputPump([(fifos.stdout_fd, stdout), (fifos.stderr_fd, stderr)])
        pump.start()
        cleanup.callback(lambda: pump.is_alive() and pump.finish(0))
        terminal = tty and is_terminal(stdin)
        if terminal:
            cleanup.enter_context(raw_terminal(_fileno(stdin)))
        start_call(fifos.stdin, fifos.stdout, fifos.stderr)
        pump.release_held()
        if terminal:
            resizer = Resizer(_fileno(stdin), lambda width, height: stub.UpdateProcess(
                containerd_pb2.UpdateProcessRequest(id=container_id, pid=process_id, width=width, height=height)))
            resizer.start()
            cleanup.callback(resizer.stop)
        close_stdin = lambda: stub.UpdateProcess(  # noqa: E731
            containerd_pb2.UpdateProcessRequest(id=container_id, pid=process_id, closeStdin=True))
        threading.Thread(target=_pump_stdin, args=(stdin, fifos.take_stdin(), close_stdin),
                         name="ctr-stdin", daemon=True).start()
        status = wait_for_exit(stream, container_id, process_id)
        fifos.release()
        pump.finish(DRAIN_IDLE)
        return status
