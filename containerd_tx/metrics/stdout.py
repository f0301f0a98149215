# -*- test-case-name: tests.unit.test_metrics_reporters -*-
"""
The periodic metrics log, in the layout containerd 0.2 printed with go-metrics (C{metrics.LogScaled},
durations in milliseconds). Each line is one log event (so the layout survives the log's own prefix);
metrics come in name order. A sample (after a log prefix such as C{2026-11-29T14:00:00+0000 [metrics]})::

    counter containers
      count:               3
    timer container-start-time
      count:              12
      min:                85.31ms
      max:               210.77ms
      mean:              120.42ms
      stddev:             31.90ms
      median:            110.20ms
      75%:               140.05ms
      95%:               205.12ms
      99%:               210.77ms
      99.9%:             210.77ms
      1-min rate:          0.35
      5-min rate:          0.12
      15-min rate:         0.04
      mean rate:           0.20
    gauge fds
      value:              23
    gauge threads
      value:              12

Rates are events per second. Integer gauges print as integers, others with six decimals (go-metrics'
C{GaugeFloat64}).
"""

from twisted.internet import defer
from twisted.logger import Logger

from containerd_tx.metrics.periodic import PeriodicReporter

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

    def __init__(self, metrics, interval, reactor=None, log=None):
        """
        @param log: a L{twisted.logger.Logger} to write to.
        """
        super().__init__(metrics, interval, reactor)
        self.log = log if log is not None else Logger()

    def report(self):
        """Log the current snapshot now."""
        for line in format_snapshot(self.metrics.snapshot()):
            self.log.info("{line}", line=line)
        return defer.succeed(None)
