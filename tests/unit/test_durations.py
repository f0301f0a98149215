"""
Tests for L{containerd_tx.durations}: Go-style duration strings.
"""

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.durations import format_duration, parse_duration


class ParseDurationTests(SynchronousTestCase):
    """
    L{parse_duration} reads Go durations into seconds.
    """

    def test_valid(self):
        """
        Every unit, combinations of units and fractions are read into seconds.
        """
        cases = {
            "1m0s": 60.0,
            "30s": 30.0,
            "1h30m": 5400.0,
            "1h30m15s": 5415.0,
            "250ms": 0.25,
            "1.5s": 1.5,
            ".5s": 0.5,
            "2h": 7200.0,
            "5m": 300.0,
            "100us": 100e-6,
            "100µs": 100e-6,
            "1000ns": 1e-6,
            "1s500ms": 1.5,
            "+5s": 5.0,
            "0s": 0.0,
            "0m0s": 0.0,
        }
        for text, seconds in cases.items():
            self.assertAlmostEqual(parse_duration(text), seconds, places=12, msg=text)

    def test_result_is_float(self):
        """
        The result is always a float, also for the bare C{"0"}.
        """
        self.assertIsInstance(parse_duration("0"), float)
        self.assertIsInstance(parse_duration("30s"), float)

    def test_bare_zero(self):
        """
        C{"0"} (and C{"+0"}) without a unit is allowed, as in Go.
        """
        self.assertEqual(parse_duration("0"), 0.0)
        self.assertEqual(parse_duration("+0"), 0.0)

    def test_invalid(self):
        """
        Empty text, words, numbers without units, negative durations and unknown units are refused with a
        one-line L{ValueError} that quotes the input.
        """
        for text in ("", "abc", "10", "-5s", "5x", "+", "s", "1m0", "5 s", "1.2.3s", "1sm", ".s"):
            with self.assertRaises(ValueError, msg=text) as caught:
                parse_duration(text)
            message = str(caught.exception)
            self.assertNotIn("\n", message)
            self.assertIn(repr(text), message)

    def test_too_large(self):
        """
        Durations beyond Go's limit (an int64 of nanoseconds, about 292 years) are refused, not turned into
        infinity; the largest Go duration is accepted.
        """
        self.assertAlmostEqual(parse_duration("2562047h"), 2562047 * 3600.0)
        for text in ("3000000h", "9" * 400 + "s"):
            with self.assertRaises(ValueError) as caught:
                parse_duration(text)
            self.assertIn("too large", str(caught.exception))

    def test_negative_says_so(self):
        """
        A negative duration's message says why it is refused.
        """
        with self.assertRaises(ValueError) as caught:
            parse_duration("-5s")
        self.assertIn("negative", str(caught.exception))


class FormatDurationTests(SynchronousTestCase):
    """
    L{format_duration} prints seconds the way Go prints a time.Duration.
    """

    def test_go_forms(self):
        """
        Whole and fractional seconds, minutes and hours print as Go prints them.
        """
        cases = {
            0: "0s",
            0.0: "0s",
            60: "1m0s",
            30: "30s",
            5400: "1h30m0s",
            3600: "1h0m0s",
            3661: "1h1m1s",
            90.5: "1m30.5s",
            1.5: "1.5s",
            0.25: "250ms",
            0.001: "1ms",
            0.0005: "500µs",
        }
        for seconds, text in cases.items():
            self.assertEqual(format_duration(seconds), text, msg=repr(seconds))

    def test_round_trip(self):
        """
        What L{format_duration} prints, L{parse_duration} reads back to the same number of seconds.
        """
        for seconds in (0, 60, 30, 5400, 3600, 3661, 90.5, 1.5, 0.25, 0.001, 0.0005, 86400, 59, 61, 7325.25):
            text = format_duration(seconds)
            self.assertAlmostEqual(parse_duration(text), seconds, places=9, msg=text)

    def test_parse_then_format(self):
        """
        Canonical Go strings survive a parse and a format unchanged.
        """
        for text in ("1m0s", "30s", "1h30m0s", "250ms", "1.5s", "0s", "2h0m5s"):
            self.assertEqual(format_duration(parse_duration(text)), text)
