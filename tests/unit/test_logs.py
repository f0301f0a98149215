"""
Tests for L{containerd_tx.logs}: level filtering, text lines identical to Twisted's own, JSON lines.
"""

import io
import json

from twisted.logger import Logger, LogLevel, textFileLogObserver
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.logs import make_observer


def _event(when, text="container {id} started", level=LogLevel.info, **fields):
    return dict(log_format=text, log_level=level, log_namespace="containerd_tx.test", log_time=when,
                log_system="-", **fields)


class TextTests(SynchronousTestCase):

    def test_same_lines_as_twisted(self):
        """
        Lines are exactly what Twisted's textFileLogObserver writes, within one second and across seconds.
        """
        ours, theirs = io.StringIO(), io.StringIO()
        observer, reference = make_observer(stream=ours), textFileLogObserver(theirs)
        for when in (1700000000.1, 1700000000.9, 1700000001.0, 1700003600.5, 1600000000.0):
            event = _event(when, id=f"c{when}")
            observer(dict(event))
            reference(dict(event))
        self.assertEqual(ours.getvalue(), theirs.getvalue())
        self.assertEqual(len(ours.getvalue().splitlines()), 5)

    def test_levels(self):
        """
        Events below the level are dropped.
        """
        out = io.StringIO()
        observer = make_observer(level="warn", stream=out)
        observer(_event(1700000000.0, "quiet", LogLevel.info))
        observer(_event(1700000000.0, "loud", LogLevel.error))
        self.assertEqual(len(out.getvalue().splitlines()), 1)
        self.assertIn("loud", out.getvalue())

    def test_json(self):
        """
        --log-format json: one JSON object per line, with the event's fields.
        """
        out = io.StringIO()
        log = Logger(namespace="containerd_tx.test", observer=make_observer(fmt="json", stream=out))
        log.info("container {id} started", id="web")
        log.debug("not shown")
        [line] = out.getvalue().splitlines()
        record = json.loads(line)
        self.assertEqual(record["id"], "web")
        self.assertEqual(record["namespace"], "containerd_tx.test")
