"""
The shape-floor benchmark's arithmetic (L{bench.shape_floor}): per-start figures, shares of the runtime's CPU,
ratios to raw, and the summary's medians and per-run lists, from made-up rounds. No timings.
"""

import io
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench.shape_floor import report_run, summarize  # noqa: E402


def _round(wall, daemon=0.0, reactor=0.0, monitor=0.0, runtime=0.0, machine=0.0, switches=0):
    cpu = {"daemon": daemon, "reactor": reactor, "monitor": monitor, "runtime": runtime, "machine": machine,
           "switches": switches}
    return (wall, [], 0.0, cpu)


def _results(bare_daemon, daemon_daemon):
    # 100 starts a side: CPU seconds of 0.1 are 1 ms per start.
    return {
        "bare": _round(2.0, daemon=bare_daemon, reactor=0.03, monitor=0.05, runtime=1.0, machine=2.0, switches=2000),
        "daemon": _round(2.5, daemon=daemon_daemon, reactor=0.15, monitor=0.1, runtime=1.0, machine=2.4,
                         switches=2200),
        "raw": (1.6, [], 0.0, {"runtime": 1.0, "machine": 1.8}),
    }


class ReportRunTests(SynchronousTestCase):

    def test_per_start_figures_shares_and_ratios(self):
        out = io.StringIO()
        figures = report_run(0, _results(0.1, 0.3), 100, out=out)
        bare, daemon, raw = figures["bare"], figures["daemon"], figures["raw"]
        self.assertAlmostEqual(bare["overhead"], 1.5)  # 1 ms daemon + 0.5 ms monitor
        self.assertAlmostEqual(bare["share"], 0.15)  # of raw's 10 ms of runtime CPU
        self.assertAlmostEqual(daemon["overhead"], 4.0)
        self.assertAlmostEqual(daemon["share"], 0.4)
        self.assertAlmostEqual(bare["ratio"], 50 / 62.5)
        self.assertAlmostEqual(daemon["allowed"], 18 / 24)
        self.assertAlmostEqual(daemon["switches"], 22)
        self.assertEqual(raw["rate"], 62.5)
        self.assertIn("run 1: bare 50.0/s (0.80 of raw)", out.getvalue())
        self.assertIn("raw 62.5/s, runtime 10.00 ms", out.getvalue())


class SummarizeTests(SynchronousTestCase):

    def summary(self, busy=()):
        quiet = io.StringIO()
        runs = [report_run(i, _results(bare, daemon), 100, out=quiet)
                for i, (bare, daemon) in enumerate([(0.1, 0.3), (0.2, 0.2), (0.05, 0.4)])]
        out = io.StringIO()
        summarize(runs, "runc, N=100 C=10", busy, out=out)
        return out.getvalue()

    def test_medians_and_every_run(self):
        text = self.summary()
        # Bare overheads 1.5, 2.5, 1.0 ms: median 1.5 ms, 15% of 10 ms; every run's share is listed.
        self.assertIn("= 1.50 ms, 15% of the runtime's CPU (per run 15%, 25%, 10%)", text)
        self.assertIn("= 4.00 ms, 40% of the runtime's CPU (per run 40%, 30%, 50%)", text)
        # Per run the daemon adds 2.5, 0.5 and 4.0 ms beyond the bare shape.
        self.assertIn("the daemon's features beyond the bare shape: 2.50 ms per start", text)
        last = text.strip().splitlines()[-1]
        self.assertEqual(last, "floor 1.50ms (15% of runtime) daemon 4.00ms (40%) runtime 10.00ms allowed bare 0.90 "
                               "daemon 0.75 (runc, N=100 C=10, 3 runs)")
        self.assertNotIn("WARNING", text)

    def test_busy_rounds_are_warned_of(self):
        text = self.summary(busy=["run 2 raw"])
        self.assertIn("WARNING: 1 rounds started on a busy machine (run 2 raw)", text)
        self.assertTrue(text.strip().endswith("3 runs, BUSY 1)"))
