"""
Small helpers for tests that listen on loopback or watch the reactor's responsiveness.
"""

import socket
import time

from twisted.internet import task


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class ReactorLag:
    """
    Ticks every C{interval} seconds on the reactor and records the gaps between ticks: a gap much longer
    than the interval means something blocked the reactor.
    """

    def __init__(self, interval):
        self.lags = []
        self._last = time.monotonic()
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(interval)

    def _tick(self):
        now = time.monotonic()
        self.lags.append(now - self._last)
        self._last = now

    def reset(self):
        """Forget the gaps so far (e.g. after a pause the test caused on purpose)."""
        del self.lags[:]
        self._last = time.monotonic()

    def stop(self):
        """Stop ticking (idempotent)."""
        if self._loop.running:
            self._loop.stop()
