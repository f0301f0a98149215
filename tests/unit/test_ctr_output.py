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
        for text in ("", "soon", "-1s", "-3", "5x", "s", "nan", "inf", "1m-1s"):
            self.assertRaises(ValueError, output.parse_duration, text)
