"""
Tests for L{containerd_tx.tap}: the twistd wiring.
"""

from unittest import mock

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import tap
from containerd_tx.options import DaemonOptions


class TapTests(SynchronousTestCase):

    def config(self):
        options = DaemonOptions()
        state = self.mktemp()
        options.parseOptions(["--state-dir", state, "--listen", state + ".sock", "--runtime", "/bin/true"])
        return options

    def test_refuses_non_root(self):
        service = tap.makeService(self.config(), reactor=MemoryReactorClock())
        with mock.patch("os.geteuid", return_value=1000):
            with self.assertRaises(SystemExit) as raised:
                service.startService()
        self.assertIn("must run as root", str(raised.exception))
        self.assertNotIn("\n", str(raised.exception))
        self.assertFalse(service.running)
