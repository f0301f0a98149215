"""
Tests for L{ctr.output}: tables, sizes, durations.
"""

from twisted.trial.unittest import TestCase

from ctr import output


class TableTests(TestCase):
    def test_aligned(self):
        lines = output.format_table(["ID", "PATH", "STATUS"], [["a", "/long/path", "running"], ["bbbb", "/p", None]])
        self.assertEqual(lines, [
            "ID     PATH         STATUS",
            "a      /long/path   running",
            "bbbb   /p",
        ])
        # Every column starts at the same offset on every line, after at least two spaces.
        for line in lines[:2]:
            self.assertEqual(line.index(line.split()[1]), 7)
            self.assertEqual(line.index(line.split()[2]), 20)

    def test_headerOnly(self):
        self.assertEqual(output.format_table(["ID", "PATH"], []), ["ID   PATH"])

    def test_streamTable(self):
        table = output.StreamTable(["TIME", "TYPE", "ID"], [6, 2, 0])
        self.assertEqual(table.header(), "TIME     TYPE   ID")
        self.assertEqual(table.format(["t1", "exit", "web"]), "t1       exit   web")
        # A long cell pushes the rest of its row, and never touches the next cell.
        self.assertEqual(table.format(["t1", "start-container", "web"]), "t1       start-container   web")


class HumanSizeTests(TestCase):
    def test_sizes(self):
        self.assertEqual(output.human_size(0), "0 B")
        self.assertEqual(output.human_size(512), "512 B")
        self.assertEqual(output.human_size(1536), "1.5 KiB")
        self.assertEqual(output.human_size(3 * 512 * 1024 ** 2), "1.5 GiB")
        self.assertEqual(output.human_size(16 * 1024 ** 3), "16 GiB")
        self.assertEqual(output.human_size(64 * 1024 ** 2), "64 MiB")


class ParseSizeTests(TestCase):
    def test_sizes(self):
        cases = {"100": 100, "512k": 512 * 1024, "64m": 64 * 1024 ** 2, "1g": 1024 ** 3, "1G": 1024 ** 3,
                 "1.5g": 3 * 512 * 1024 ** 2, "2GiB": 2 * 1024 ** 3, "10mb": 10 * 1024 ** 2, "7b": 7, "1t": 1024 ** 4}
        for text, expected in cases.items():
            self.assertEqual(output.parse_size(text), expected, text)

    def test_bad(self):
        for text in ("", "m", "-1", "1x", "1 gg", "ten"):
            self.assertRaises(ValueError, output.parse_size, text)


class ParseDurationTests(TestCase):
    def test_durations(self):
        cases = {"5s": 5.0, "250ms": 0.25, "1m30s": 90.0, "1h": 3600.0, "2.5": 2.5, "0": 0.0, "1.5s": 1.5}
        for text, expected in cases.items():
            self.assertAlmostEqual(output.parse_duration(text), expected, msg=text)

    def test_bad(self):
        for text in ("", "soon", "-1s", "-3", "5x", "s", "nan", "inf", "1m-1s", "1e400"):
            self.assertRaises(ValueError, output.parse_duration, text)

    def test_sharedWithTheDaemon(self):
        """ctr's durations are the daemon's (one parser), plus bare seconds; Go forms agree."""
        from containerd_tx import durations

        for text in ("5s", "1m30s", "250ms", "1h", "+5s", ".5s", "100us", "0"):
            self.assertEqual(output.parse_duration(text), durations.parse_duration(text), text)
        self.assertRaises(ValueError, durations.parse_duration, "2.5")  # the daemon's flags need units
        self.assertEqual(durations.parse_duration("2.5", bare_seconds=True), 2.5)


class StreamTableGrowthTests(TestCase):
    def test_widerValueWidensLaterRows(self):
        """A value wider than its column pushes its row, and the rows after it line up with it."""
        table = output.StreamTable(["ID", "PID"], [4, 3])
        self.assertEqual(table.format(["a-long-id", "init"]), "a-long-id   init")
        self.assertEqual(table.format(["b", "ps"]), "b           ps")


class LimitTests(TestCase):
    def test_unlimited(self):
        v1_unlimited = 9223372036854771712
        self.assertEqual([output.limit_or_none(v) for v in (0, v1_unlimited, 2 ** 64 - 1, 64 << 20)],
                         [None, None, None, 64 << 20])
        self.assertEqual([output.human_limit(v) for v in (0, v1_unlimited, 64 << 20)],
                         ["unlimited", "unlimited", "64 MiB"])
