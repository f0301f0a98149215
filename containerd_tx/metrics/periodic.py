# -*- test-case-name: tests.unit.test_metrics_reporters -*-
"""
What the push sinks (the stdout log, Graphite) share: an interface, and a service that calls C{report()}
every C{interval} seconds on the injected reactor's clock.
"""

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import Interface, implementer


class IMetricsReporter(Interface):
    """
    A sink the registry is pushed to periodically.
    """

    def report():
        """
        Send or write the registry's current snapshot once, now. Never raises and never blocks the
        reactor.

        @return: a L{Deferred} that fires (with None) when this report is done, whatever its outcome.
        """


@implementer(IMetricsReporter)
class PeriodicReporter(Service):
    """
    A service that calls L{report} every C{interval} seconds, first after one interval (as go-metrics'
    C{time.Tick} did). Subclasses implement C{report}.

    @cvar flush_on_stop: report once more when the service stops (so that a SIGTERM flushes metrics).
    """

    flush_on_stop = False
    log = Logger()

    def __init__(self, metrics, interval, reactor=None):
        """
        @param metrics: the L{containerd_tx.metrics.registry.Metrics} to report.
        @param interval: seconds between reports; must be positive (the daemon does not build a reporter
            for an interval of 0).
        @param reactor: provides C{callLater}/C{seconds} (the global reactor when omitted).
        """
        if interval <= 0:
            raise ValueError(f"the reporting interval must be positive, not {interval!r}")
        if reactor is None:
            from twisted.internet import reactor
        self.metrics = metrics
        self.interval = interval
        self.reactor = reactor
        self._loop = None

    def report(self):
        """See L{IMetricsReporter.report}; subclasses implement it."""
        raise NotImplementedError

    def _tick(self):
        try:
            self.report()
        except Exception:
            self.log.failure("{reporter} failed to report", reporter=type(self).__name__)

    def startService(self):
        """Start reporting: the first report comes one interval from now."""
        super().startService()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def stopService(self):
        """Stop reporting; with C{flush_on_stop}, report once more and return a Deferred for it."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self.flush_on_stop:
            return defer.maybeDeferred(self.report).addErrback(
                lambda failure: self.log.failure("final report failed", failure))
        return defer.succeed(None)
