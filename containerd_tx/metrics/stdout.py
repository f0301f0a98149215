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
