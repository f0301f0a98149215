# -*- test-case-name: tests.unit.test_metrics_reporters -*-
"""
The periodic metrics log, in the layout containerd 0.2 printed with go-metrics (C{metrics.LogScaled},
durations in milliseconds). Each line is one log event (so the layout survives the log's own prefix);
metrics come in name order (go-metrics' order was a map's). A sample (each line after the log prefix)::

    timer container-start-time
      count:              12
      min:                85.30ms
      max:               210.80ms
      mean:              115.23ms
      stddev:             32.55ms
      median:            102.25ms
      75%:               126.10ms
      95%:               210.80ms
      99%:               210.80ms
      99.9%:             210.80ms
      1-min rate:          0.20
      5-min rate:          0.20
      15-min rate:         0.20
      mean rate:           0.20
    counter containers
      count:               3
    gauge fds
      value:              23
    gauge threads
      value:              12

Rates are events per second. Integer gauges print as integers, others with six decimals (go-metrics'
C{GaugeFloat64}).

An idle daemon need not fill its log with identical dumps: with C{idle_limit} set, a report in which
nothing moved since the last one written (no duration recorded, no counter and no gauge other than
C{threads} and C{fds} changed) is skipped, and one is written anyway once C{idle_limit} seconds have passed
since the last. Rates, which decay by themselves, do not count as movement. The daemon sets it (one hour)
when C{--metrics-interval} is left at its default; see L{containerd_tx.daemon}.
"""

from twisted.internet import defer
from twisted.logger import Logger

from containerd_tx.metrics.periodic import PeriodicReporter
from containerd_tx.metrics.registry import FDS, THREADS

#: Gauges that move on an idle daemon too (a thread pool grows and shrinks): not activity.
RESTLESS_GAUGES = frozenset((THREADS, FDS))

#: How long an idle daemon's log goes without a dump when idle reports are skipped: one hour.
IDLE_LIMIT = 3600.0

DURATION_SCALE = 1000.0
DURATION_SUFFIX = "ms"

_TIMER_DURATIONS = (
    ("min", "  min:         "), ("max", "  max:         "), ("mean", "  mean:        "),
    ("stddev", "  stddev:      "), ("median", "  median:      "), ("p75", "  75%:         "),
    ("p95", "  95%:         "), ("p99", "  99%:         "), ("p999", "  99.9%:       "),
)
_TIMER_RATES = (
    ("m1_rate", "  1-min rate:  "), ("m5_rate", "  5-min rate:  "), ("m15_rate", "  15-min rate: "),
    ("mean_rate", "  mean rate:   "),
)


def _value_line(value):
    if isinstance(value, int):
        return "  value:       %9d" % value
    return "  value:       %f" % value


def format_snapshot(snapshot, scale=DURATION_SCALE, suffix=DURATION_SUFFIX):
    """
    The lines of one report of C{snapshot} (from L{Metrics.snapshot}), every metric in name order.

    @param scale: multiplier from seconds to the printed unit.
    @param suffix: the printed unit.
    @return: a list of str, without newlines.
    """
    entries = []
    for name, value in snapshot["counters"].items():
        entries.append((name, ["counter %s" % name, "  count:       %9d" % value]))
    for name, value in snapshot["gauges"].items():
        entries.append((name, ["gauge %s" % name, _value_line(value)]))
    for name, timer in snapshot["timers"].items():
        lines = ["timer %s" % name, "  count:       %9d" % timer["count"]]
        lines.extend("%s%12.2f%s" % (label, timer[key] * scale, suffix) for key, label in _TIMER_DURATIONS)
        lines.extend("%s%12.2f" % (label, timer[key]) for key, label in _TIMER_RATES)
        entries.append((name, lines))
    entries.sort(key=lambda entry: entry[0])
    return [line for _, lines in entries for line in lines]


class StdoutReporter(PeriodicReporter):
    """
    Logs every metric every C{interval} seconds through twisted.logger, one event per line (namespace
    C{containerd_tx.metrics.stdout} unless another logger is given; the daemon's log goes to stdout).
    """

    name = "metrics-stdout"

    def __init__(self, metrics, interval, reactor=None, log=None, idle_limit=None):
        """
        @param log: a L{twisted.logger.Logger} to write to.
        @param idle_limit: None to write every report; else seconds an idle daemon may go without one (see the
            module docstring).
        """
        super().__init__(metrics, interval, reactor)
        self.log = log if log is not None else Logger()
        self.idle_limit = idle_limit
        self._last_activity = None
        self._last_written = None
        #: Reports written and reports skipped because nothing moved.
        self.written = 0
        self.skipped = 0

    def report(self):
        """Log the current snapshot now (unless it is idle, see the module docstring)."""
        snapshot = self.metrics.snapshot()
        activity = _activity(snapshot)
        now = self.reactor.seconds()
        if (self.idle_limit is not None and activity == self._last_activity
                and now - self._last_written < self.idle_limit):
            self.skipped += 1
            return defer.succeed(None)
        for line in format_snapshot(snapshot):
            self.log.info("{line}", line=line)
        self._last_activity, self._last_written = activity, now
        self.written += 1
        return defer.succeed(None)


def _activity(snapshot):
    """What has to change for a report to be worth writing: timer counts, counters, steady gauges."""
    return (
        tuple((name, timer["count"]) for name, timer in snapshot["timers"].items()),
        tuple(snapshot["counters"].items()),
        tuple((name, value) for name, value in snapshot["gauges"].items() if name not in RESTLESS_GAUGES),
    )
