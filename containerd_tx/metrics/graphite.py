# -*- test-case-name: tests.unit.test_metrics_reporters,tests.integration.test_graphite -*-
"""
Sends the registry to Carbon (Graphite) in its plaintext protocol every C{interval} seconds.

The sender is Twisted-native, not graphyte: each report opens one non-blocking TCP connection from the
reactor, writes every line, closes it. Nothing blocks the reactor thread and no thread is needed (graphyte
without C{interval} connects once per metric in the caller's thread; with C{interval} it adds a thread
whose flushes are not aligned with ours and which logs through stdlib logging with the whole batch in the
message). When Carbon is down or slow, that interval's points are dropped (memory stays bounded) and
exactly one warning is logged for the failed report, without a traceback; a send still unfinished after
C{timeout} seconds (default 80% of the interval, at most 30 s) is aborted and counts as failed. Stopping
the service sends one last report (a SIGTERM flushes), bounded by the same timeout.

Names: C{<prefix>.<metric>.<field>}, metric names kept verbatim (dashes included), whitespace replaced
by C{_}. The daemon's prefix is C{containerd-tx.<id>}, e.g.::

    containerd-tx.deathstar.container-start-time.p99 212.5 1795957618
    containerd-tx.deathstar.containers.value 3 1795957618
    containerd-tx.deathstar.events.count 36 1795957618
    containerd-tx.deathstar.threads.value 12 1795957618

Timers send C{count}, C{min}, C{max}, C{mean}, C{stddev}, C{median}, C{p75}, C{p95}, C{p99}, C{p999}
(durations in milliseconds, like the stdout log and Dropwizard's reporter), C{m1_rate}, C{m5_rate},
C{m15_rate}, C{mean_rate} (events per second); counters (C{events}, C{oom-events}) send C{count}; gauges
(C{containers}, C{event-subscribers}, C{tasks}, C{threads}, C{fds}) send C{value}. Ready dashboards over
these names are in C{contrib/dashboards/}.
"""

import math

import graphyte
from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from containerd_tx.metrics.periodic import PeriodicReporter

DURATION_SCALE = 1000.0
TIMER_DURATION_FIELDS = ("min", "max", "mean", "stddev", "median", "p75", "p95", "p99", "p999")
TIMER_RATE_FIELDS = ("m1_rate", "m5_rate", "m15_rate", "mean_rate")
TIMER_FIELDS = ("count",) + TIMER_DURATION_FIELDS + TIMER_RATE_FIELDS


def _clean(name):
    return "_".join(str(name).split())


def _number(value):
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return None
    return repr(value)


def graphite_lines(snapshot, prefix, timestamp, scale=DURATION_SCALE):
    """
    The plaintext-protocol lines for one report of C{snapshot} (from L{Metrics.snapshot}).

    The lines are built by graphyte's message builder (the plaintext format, checked), while sending is
    done here on the reactor: graphyte's own sender would block or run a thread of its own.

    @param prefix: prepended with a dot (may be empty).
    @param timestamp: seconds since the epoch (rounded down).
    @param scale: multiplier from seconds to the unit timer durations are sent in.
    @return: a list of bytes, each ending in a newline. Non-finite values are left out.
    """
    builder = graphyte.Sender("localhost", prefix=_clean(prefix) if prefix else None)
    stamp = int(timestamp)
    points = []
    for name, timer in snapshot["timers"].items():
        base = _clean(name)
        for field in TIMER_FIELDS:
            value = timer[field] * scale if field in TIMER_DURATION_FIELDS else timer[field]
            points.append((f"{base}.{field}", value))
    for name, value in snapshot["counters"].items():
        points.append((f"{_clean(name)}.count", value))
    for name, value in snapshot["gauges"].items():
        points.append((f"{_clean(name)}.value", value))
    lines = []
    for path, value in points:
        if _number(value) is not None:
            lines.append(builder.build_message(path, value if isinstance(value, int) else float(value), stamp))
    return lines


class _OneShot(Protocol):
    """Writes its payload, closes, and fires C{done} when the connection is closed cleanly."""

    def __init__(self, payload):
        self.payload = payload
        self.done = defer.Deferred(self._cancel)
        self._cancelled = False

    def _cancel(self, _):
        self._cancelled = True
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionMade(self):
        self.transport.write(self.payload)
        self.transport.loseConnection()

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        if self.done.called or self._cancelled:
            return
        if reason.check(ConnectionDone):
            self.done.callback(None)
        else:
            self.done.errback(reason)


def client_endpoint(reactor, host, port, timeout):
    """A TCP client endpoint for C{host} (an IP literal or a name resolved without blocking)."""
    if isIPAddress(host):
        return TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    if isIPv6Address(host):
        return TCP6ClientEndpoint(reactor, host, port, timeout=timeout)
    return HostnameEndpoint(reactor, host, port, timeout=timeout)


class GraphiteReporter(PeriodicReporter):
    """
    Pushes every metric to Carbon's plaintext receiver every C{interval} seconds (see the module
    docstring for names, units and failure handling).

    @ivar sent: how many reports reached Carbon; C{failed}: how many did not.
    """

    name = "metrics-graphite"
    flush_on_stop = True

    def __init__(self, metrics, address, prefix, interval, reactor=None, log=None, timeout=None,
                 endpoint=None, scale=DURATION_SCALE):
        """
        @param address: C{(host, port)} of Carbon's line receiver.
        @param prefix: the path prefix, e.g. C{"containerd-tx.deathstar"}.
        @param interval: seconds between reports.
        @param log: a L{Logger} (warnings go there).
        @param timeout: seconds one report may take (connect and send).
        @param endpoint: an L{IStreamClientEndpoint} to use instead of one built from C{address} (tests).
        @param scale: multiplier from seconds to the unit durations are sent in (milliseconds).
        """
        super().__init__(metrics, interval, reactor)
        self.host, self.port = address[0], int(address[1])
        self.prefix = prefix
        self.scale = scale
        self.timeout = timeout if timeout is not None else min(0.8 * interval, 30.0)
        self.log = log if log is not None else Logger()
        self._endpoint = endpoint or client_endpoint(self.reactor, self.host, self.port, self.timeout)
        self._sending = None
        self.sent = 0
        self.failed = 0

    def report(self):
        """
        Send the current snapshot in one connection. A previous send still running is aborted first
        (and logged as failed).

        @return: a L{Deferred} firing with True when Carbon got the lines, False otherwise; never fails.
        """
        if self._sending is not None:
            self._sending.cancel()
        lines = graphite_lines(self.metrics.snapshot(), self.prefix, self.reactor.seconds(), self.scale)
        protocol = _OneShot(b"".join(lines))
        sending = connectProtocol(self._endpoint, protocol)
        sending.addCallback(lambda _: protocol.done)
        sending.addTimeout(self.timeout, self.reactor)
        self._sending = sending

        def succeeded(_):
            self.sent += 1
            return True

        def failed(failure):
            self.failed += 1
            self.log.warn(
                "Could not send {count} metrics to Graphite at {host}:{port}: {error}",
                count=len(lines), host=self.host, port=self.port, error=failure.getErrorMessage()
                or failure.type.__name__)
            return False

        def finished(result):
            if self._sending is sending:
                self._sending = None
            return result

        return sending.addCallbacks(succeeded, failed).addBoth(finished)
