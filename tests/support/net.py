"""
Small helpers for tests that listen on loopback or watch the reactor's responsiveness.
"""

import socket
import time

from twisted.internet import defer, reactor, task


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _waiting_for_cpu():
    """
    Seconds this thread has spent runnable but waiting for a CPU (the second field of
    /proc/thread-self/schedstat), or 0.0 where the kernel does not say.
    """
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


class ReactorLag:
    """
    Ticks every C{interval} seconds on the reactor and records the gaps between ticks: a gap much longer
    than the interval means something blocked the reactor.

    A gap counts the reactor's own time only: the time its thread was ready to run but waited for a CPU taken
    by other processes (a loaded machine) is taken out. Time spent running or blocked in a call still counts,
    so a reactor doing blocking work shows as lag however busy the machine is.
    """

    def __init__(self, interval):
        self.lags = []
        self._last = time.monotonic()
        self._waited = _waiting_for_cpu()
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(interval)

    def _tick(self):
        now, waited = time.monotonic(), _waiting_for_cpu()
        self.lags.append(max(0.0, (now - self._last) - (waited - self._waited)))
        self._last, self._waited = now, waited

    def reset(self):
        """Forget the gaps so far (e.g. after a pause the test caused on purpose)."""
        del self.lags[:]
        self._last = time.monotonic()
        self._waited = _waiting_for_cpu()

    def stop(self):
        """Stop ticking (idempotent)."""
        if self._loop.running:
            self._loop.stop()


@defer.inlineCallbacks
def wait_until(predicate, timeout=30.0, interval=0.05, message="condition"):
    """
    On the reactor: poll C{predicate} every C{interval} seconds until it is true (the Deferred fires with its
    value) or C{timeout} passes (it fails with AssertionError). The reactor runs meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        yield task.deferLater(reactor, interval, lambda: None)
