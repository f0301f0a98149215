# -*- test-case-name: tests.unit.test_monitord -*-
"""
The container monitor's event loop and log: a small selector loop with separate read and write callbacks per
fd (L{Loop}), the monitor's log line (L{log}), and L{close_quietly}.

Standard library only (see C{monitord.py}).
"""

import os
import selectors
import time


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


def close_quietly(fd):
    """
    Close C{fd} if it is not None, ignoring errors.
    """
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
