"""
ctr end to end: stats of a running container (table and JSON).
"""

import json

from tests.e2e.base import CtrTestCase

BUSY = ("sh", "-c", "while true; do :; done")


class StatsTests(CtrTestCase):

    def setUp(self):
        super().setUp()
        self.start(self.busy, *BUSY)
        probe = self.ctr("containers", "stats", "--no-stream", "--format", "json", self.busy)
        self.assertEqual((probe.returncode, probe.stderr), (0, ""), probe.stdout)
        self.sample = json.loads(probe.stdout)

    def test_table(self):
        lines = self.ctr_ok("containers", "stats", "--no-stream", self.busy).splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual([h.strip() for h in lines[0].split("   ") if h.strip()],
                         ["CONTAINER", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"])
        cells = [c.strip() for c in lines[1].split("   ") if c.strip()]
        self.assertEqual(cells[0], self.busy)
        cpu = float(cells[1].rstrip("%"))
        self.assertGreater(cpu, 5.0)  # a busy loop: up to a whole cpu, less on a machine busy with other work
        self.assertRegex(cells[2], r"^[\d.]+ [KMG]?i?B / [\d.]+ [KMGT]?i?B$")
        self.assertRegex(cells[3], r"^\d+\.\d\d%$")
        self.assertRegex(cells[4], r"^[\d.]+ [KMG]?i?B / [\d.]+ [KMG]?i?B$")
        self.assertEqual(cells[6], "1")

    def test_json(self):
        data = self.sample
        self.assertEqual(data["id"], self.busy)
        self.assertGreater(data["cpuPercent"], 5.0)
        self.assertGreater(data["cpu"]["totalUsage"], 0)
        self.assertGreater(data["cpu"]["systemUsage"], 0)
        self.assertGreater(data["memory"]["rawUsage"], 0)
        self.assertGreater(data["memory"]["limit"], 0)
        self.assertEqual(data["pids"]["current"], 1)
        self.assertGreater(data["timestampNs"], 0)

    def test_stream_and_unknown(self):
        process, lines = self.ctr_background("containers", "stats", "--format", "json", self.busy)
        first = json.loads(lines.next_matching(lambda line: line.startswith("{")))
        second = json.loads(lines.next_matching(lambda line: line.startswith("{")))
        self.assertGreater(second["timestampNs"], first["timestampNs"])
        process.kill()
        done = self.ctr("containers", "stats", "--no-stream", "ghost")
        self.assertEqual((done.returncode, done.stdout), (1, ""))
        self.assertRegex(done.stderr, r"^ctr: [^\n]*ghost[^\n]*\n$")
