"""
Which metric sinks the daemon sets up for which options: the stdout dump as the seed had it when nothing
else is configured, off with --log-metrics off, off by default once Graphite or Prometheus is configured,
idle dumps skipped only at the default interval.
"""

import sys

from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.daemon import ContainerdService
from containerd_tx.metrics import Metrics
from containerd_tx.metrics.stdout import IDLE_LIMIT, StdoutReporter
from containerd_tx.options import DaemonOptions


class SinkSelectionTests(SynchronousTestCase):

    def sinks(self, *args):
        options = DaemonOptions()
        options.parseOptions(["--state-dir", self.mktemp(), "--runtime", sys.executable, *args])
        service = ContainerdService(options, Clock())
        service.metrics = Metrics(service.reactor)
        service._add_reporters()
        return {child.name: child for child in service}

    def test_default_is_the_stdout_log_skipping_idle_dumps(self):
        sinks = self.sinks()
        self.assertEqual(sorted(sinks), ["metrics-stdout"])
        self.assertIsInstance(sinks["metrics-stdout"], StdoutReporter)
        self.assertEqual(sinks["metrics-stdout"].interval, 60.0)
        self.assertEqual(sinks["metrics-stdout"].idle_limit, IDLE_LIMIT)

    def test_an_asked_interval_dumps_every_interval(self):
        """--metrics-interval given (even 1m0s): every interval, as the seed did."""
        for value in ("1s", "1m0s"):
            reporter = self.sinks("--metrics-interval", value)["metrics-stdout"]
            self.assertIsNone(reporter.idle_limit, value)
        self.assertEqual(self.sinks("--metrics-interval", "1s")["metrics-stdout"].interval, 1.0)

    def test_flag_turns_it_off(self):
        self.assertEqual(sorted(self.sinks("--log-metrics", "off")), [])
        self.assertEqual(sorted(self.sinks("--log-metrics", "off", "--metrics-interval", "5s")), [])

    def test_off_with_graphite_or_prometheus_unless_asked(self):
        graphite = ("--graphite-address", "127.0.0.1:2003")
        prometheus = ("--metrics-address", "tcp:0:interface=127.0.0.1")
        self.assertEqual(sorted(self.sinks(*graphite)), ["metrics-graphite"])
        self.assertEqual(sorted(self.sinks(*prometheus)), ["metrics-http"])
        self.assertEqual(sorted(self.sinks(*graphite, *prometheus)), ["metrics-graphite", "metrics-http"])
        asked = self.sinks(*graphite, *prometheus, "--log-metrics", "on")
        self.assertEqual(sorted(asked), ["metrics-graphite", "metrics-http", "metrics-stdout"])
        self.assertIsNone(asked["metrics-stdout"].idle_limit)

    def test_zero_interval_no_push_sinks(self):
        self.assertEqual(sorted(self.sinks("--metrics-interval", "0", "--log-metrics", "on")), [])

    def test_bad_mode_refused(self):
        options = DaemonOptions()
        with self.assertRaises(usage.UsageError) as raised:
            options.parseOptions(["--state-dir", self.mktemp(), "--runtime", sys.executable,
                                  "--log-metrics", "sometimes"])
        self.assertIn("--log-metrics", str(raised.exception))
        self.assertIn("'sometimes'", str(raised.exception))
