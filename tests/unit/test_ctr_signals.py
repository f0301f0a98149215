"""
Tests for L{ctr.signals}.
"""

import signal

from twisted.trial.unittest import TestCase

from ctr.signals import parse_signal


class ParseSignalTests(TestCase):
    def test_names(self):
        for text in ("KILL", "SIGKILL", "kill", "sigkill", " Kill "):
            self.assertEqual(parse_signal(text), 9, text)
        self.assertEqual(parse_signal("TERM"), signal.SIGTERM)
        self.assertEqual(parse_signal("usr1"), signal.SIGUSR1)
        self.assertEqual(parse_signal("WINCH"), signal.SIGWINCH)

    def test_numbers(self):
        self.assertEqual(parse_signal("9"), 9)
        self.assertEqual(parse_signal("15"), 15)
        self.assertEqual(parse_signal("64"), 64)

    def test_bad(self):
        for text in ("BOGUS", "SIG", "", "0", "65", "-9", "9x", "SIG_DFL"):
            self.assertRaises(ValueError, parse_signal, text)


class CompleteSignalTests(TestCase):
    def test_asBegun(self):
        from ctr.signals import complete_signal, signal_names

        self.assertEqual(signal_names()[:3], ["HUP", "INT", "QUIT"])
        self.assertIn("ABRT", signal_names())
        self.assertNotIn("RTMIN", signal_names())
        self.assertEqual(complete_signal("TE"), ["TERM"])
        self.assertEqual(complete_signal("SIGTE"), ["SIGTERM"])
        self.assertEqual(complete_signal("te"), ["term"])
        self.assertEqual(complete_signal("X"), ["XCPU", "XFSZ"])
