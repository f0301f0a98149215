"""
Tests for C{ctr containers stats} (L{ctr.stats}): the CPU % from two samples, the table's cells, the JSON
lines, streaming and redrawing, against the fake daemon of L{tests.unit.test_ctr_cli}.
"""

import json

import grpc

from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from ctr import output
from ctr import stats as ctr_stats
from tests.unit.test_ctr_cli import DaemonTestCase, _container

MiB = 1 << 20
GiB = 1 << 30
V1_UNLIMITED = 9223372036854771712


def sample(total, system, cpus=2, usage=100 * MiB, inactive=20 * MiB, limit=V1_UNLIMITED, seconds=0,
           nets=(("eth0", 1024, 2048), ("eth1", 512, 0)), pids=3, blkio=None, inactive_key="total_inactive_file"):
    """A C{StatsResponse} with the fields the table uses."""
    memory_stats = {inactive_key: inactive} if inactive is not None else {}
    blkio = blkio if blkio is not None else [
        (8, 0, "Read", 4096), (8, 0, "Write", 8192), (8, 0, "Sync", 12288), (8, 0, "Total", 12288),
        (8, 16, "Read", MiB),
    ]
    response = pb.StatsResponse(
        network_stats=[pb.NetworkStats(name=name, rx_bytes=rx, Tx_bytes=tx) for name, rx, tx in nets],
        cgroup_stats=pb.CgroupStats(
            cpu_stats=pb.CpuStats(
                cpu_usage=pb.CpuUsage(total_usage=total, percpu_usage=[total // cpus] * cpus if cpus else []),
                system_usage=system),
            memory_stats=pb.MemoryStats(cache=30 * MiB, usage=pb.MemoryData(usage=usage, limit=limit),
                                        stats=memory_stats),
            blkio_stats=pb.BlkioStats(io_service_bytes_recursive=[
                pb.BlkioStatsEntry(major=major, minor=minor, op=op, value=value)
                for major, minor, op, value in blkio]),
            pids_stats=pb.PidsStats(current=pids, limit=0),
        ),
    )
    if seconds:
        response.timestamp.FromNanoseconds(int(seconds * 1e9))
    return response


#: Two samples 2 s of host cpu time apart (2 cpus), in which the container used 0.5 s: 50 %.
FIRST = sample(1_000_000_000, 100_000_000_000, seconds=1795957200)
SECOND = sample(1_500_000_000, 102_000_000_000, seconds=1795957201)

WEB_LINES = [
    "CONTAINER   CPU %    MEM USAGE / LIMIT   MEM %   NET I/O           BLOCK I/O           PIDS",
    "web         50.00%   80 MiB / 16 GiB     0.49%   1.5 KiB / 2 KiB   1.004 MiB / 8 KiB   3",
]


class CalculationTests(TestCase):
    """The numbers, from two samples."""

    def test_cpuPercentDockerFormula(self):
        self.assertEqual(ctr_stats.cpu_percent(FIRST, SECOND, 2), 50.0)

    def test_cpuPercentScalesWithCpus(self):
        first, second = sample(0, 0, cpus=4), sample(2_000_000_000, 4_000_000_000, cpus=4)
        self.assertEqual(ctr_stats.cpu_percent(first, second, 4), 200.0)  # two of four cpus busy

    def test_cpuPercentNoProgress(self):
        self.assertEqual(ctr_stats.cpu_percent(FIRST, FIRST, 2), 0.0)
        self.assertEqual(ctr_stats.cpu_percent(SECOND, FIRST, 2), 0.0)  # a counter going back: 0, not negative

    def test_cpuPercentWithoutSystemUsage(self):
        """A daemon that sends no system_usage: the time between the samples × cpus stands in."""
        first, second = sample(0, 0, seconds=10), sample(500_000_000, 0, seconds=11)
        self.assertEqual(ctr_stats.summarize("web", first, second)["cpuPercent"], 50.0)
        untimed = ctr_stats.summarize("web", sample(0, 0), sample(250_000_000, 0), elapsed_ns=500_000_000)
        self.assertEqual(untimed["cpuPercent"], 50.0)

    def test_onlineCpus(self):
        self.assertEqual(ctr_stats.online_cpus(sample(0, 0, cpus=3), 8), 3)
        self.assertEqual(ctr_stats.online_cpus(sample(0, 0, cpus=0), 8), 8)  # no per-cpu counters: the machine's
        self.assertEqual(ctr_stats.online_cpus(sample(0, 0, cpus=0)), 1)

    def test_machineCpusWhenNoPerCpuCounters(self):
        first, second = sample(1_000_000_000, 100_000_000_000, cpus=0), sample(1_500_000_000, 102_000_000_000, cpus=0)
        summary = ctr_stats.summarize("web", first, second, pb.Machine(cpus=8, memory=16 * GiB))
        self.assertEqual((summary["cpu"]["onlineCpus"], summary["cpuPercent"]), (8, 200.0))

    def test_memoryWithoutInactiveCache(self):
        self.assertEqual(ctr_stats.memory_usage(sample(0, 0)), 80 * MiB)
        self.assertEqual(ctr_stats.memory_usage(sample(0, 0, inactive_key="inactive_file")), 80 * MiB)  # cgroup v2
        self.assertEqual(ctr_stats.memory_usage(sample(0, 0, inactive=None)), 100 * MiB)
        self.assertEqual(ctr_stats.memory_usage(sample(0, 0, inactive=200 * MiB)), 100 * MiB)

    def test_memoryLimit(self):
        self.assertEqual(ctr_stats.memory_limit(sample(0, 0), 16 * GiB), 16 * GiB)  # unlimited: the machine's
        self.assertEqual(ctr_stats.memory_limit(sample(0, 0, limit=64 * MiB), 16 * GiB), 64 * MiB)
        self.assertEqual(ctr_stats.memory_limit(sample(0, 0, limit=0), 16 * GiB), 16 * GiB)
        self.assertEqual(ctr_stats.memory_limit(sample(0, 0, limit=64 * MiB)), 64 * MiB)

    def test_blockAndNetworkSums(self):
        self.assertEqual(ctr_stats.block_io(SECOND), (4096 + MiB, 8192))
        self.assertEqual(ctr_stats.block_io(sample(0, 0, blkio=[(8, 0, "read", 1), (8, 0, "WRITE", 2)])), (1, 2))
        self.assertEqual(ctr_stats.network_io(SECOND), (1536, 2048))

    def test_row(self):
        summary = ctr_stats.summarize("web", FIRST, SECOND, pb.Machine(cpus=2, memory=16 * GiB))
        self.assertEqual(ctr_stats.stats_row(summary),
                         ["web", "50.00%", "80 MiB / 16 GiB", "0.49%", "1.5 KiB / 2 KiB", "1.004 MiB / 8 KiB", 3])
        self.assertEqual(summary["timestamp"], "2026-11-29T13:00:01.000000000Z")

    def test_rowWithoutPreviousSample(self):
        summary = ctr_stats.summarize("web", None, SECOND)
        self.assertIsNone(summary["cpuPercent"])
        self.assertEqual(ctr_stats.stats_row(summary)[1], "--")

    def test_unlimitedSentinels(self):
        """A limit not set is null in JSON and "unlimited" in the table, never the raw sentinel."""
        summary = ctr_stats.summarize("web", FIRST, SECOND)  # no machine memory to fall back on
        self.assertEqual((summary["memory"]["limit"], summary["memory"]["cgroupLimit"], summary["memory"]["percent"],
                          summary["pids"]["limit"]), (None, None, None, None))
        self.assertEqual(ctr_stats.stats_row(summary)[2:4], ["80 MiB / unlimited", "--"])
        limited = ctr_stats.summarize("web", FIRST, sample(0, 0, limit=64 * MiB, pids=2))
        self.assertEqual(limited["memory"]["cgroupLimit"], 64 * MiB)

    def test_limitedMemoryPercent(self):
        summary = ctr_stats.summarize("web", FIRST, sample(0, 0, usage=32 * MiB, inactive=None, limit=64 * MiB),
                                      pb.Machine(cpus=2, memory=16 * GiB))
        self.assertEqual(ctr_stats.stats_row(summary)[2:4], ["32 MiB / 64 MiB", "50.00%"])


class StatsCommandTests(DaemonTestCase):
    def setUp(self):
        super().setUp()
        self.patch(ctr_stats, "INTERVAL", 0)

    def test_noStream(self):
        self.api.stats["web"] = [FIRST, SECOND, SECOND]
        result = self.run_ctr("containers", "stats", "--no-stream", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout.splitlines(), WEB_LINES)
        self.assertEqual(self.api.requests_of("Stats"), [pb.StatsRequest(id="web")] * 2)

    def test_everyRunningContainer(self):
        """No ids: every running container (paused and stopped ones left out), one frame with --no-stream."""
        self.api.containers = [_container("web", "/b/web"), _container("db", "/b/db"),
                               _container("frozen", "/b/f", status="paused")]
        self.api.stats["web"] = [FIRST, SECOND]
        self.api.stats["db"] = [FIRST, SECOND]
        result = self.run_ctr("containers", "stats", "--no-stream", "-o", "json")
        self.assertOK(result)
        self.assertEqual([json.loads(line)["id"] for line in result.stdout.splitlines()], ["db", "web"])
        self.assertNotIn(pb.StatsRequest(id="frozen"), self.api.requests_of("Stats"))

    def test_everyRunningNoneRunning(self):
        """No ids and nothing running: the table's header alone (docker's empty stats), status 0."""
        result = self.run_ctr("containers", "stats", "--no-stream")
        self.assertOK(result)
        self.assertEqual(result.stdout.splitlines(), [WEB_LINES[0].split("   ")[0] + "   " + "   ".join(
            ctr_stats.HEADERS[1:])])

    def test_everyRunningFollowsStarts(self):
        """Streaming without ids: a container that starts joins from its second sample, one that stops leaves."""
        running = [["web"], ["web", "db"], ["db"], []]
        states, printed = [], []

        class Stub:
            def State(self, request):
                states.append(request)
                listed = running[min(len(states) - 1, len(running) - 1)]
                return pb.StateResponse(containers=[_container(i, "/b/" + i) for i in listed])

            def Stats(self, request):
                return {"web": SECOND, "db": SECOND}[request.id]

        class Stop(Exception):
            pass

        def sleep(seconds):
            if len(states) >= len(running):
                raise Stop()

        self.patch(output, "print_json", printed.append)
        self.assertRaises(Stop, ctr_stats.watch, Stub(), [], stream=True, fmt="json", sleep=sleep)
        # frame 1: web (db only sampled once); frame 2: db (web stopped); frame 3: nothing, and it goes on
        self.assertEqual([s["id"] for s in printed], ["web", "db"])
        self.assertEqual(len(states), len(running))

    def test_severalContainers(self):
        self.api.stats["web"] = [FIRST, SECOND]
        self.api.stats["db"] = [sample(0, 100_000_000_000, pids=1, nets=(), blkio=[], inactive=None,
                                       usage=MiB, limit=64 * MiB),
                                sample(0, 102_000_000_000, pids=1, nets=(), blkio=[], inactive=None,
                                       usage=MiB, limit=64 * MiB)]
        result = self.run_ctr("containers", "stats", "--no-stream", "web", "db")
        self.assertOK(result)
        self.assertEqual(result.stdout.splitlines(), [
            "CONTAINER   CPU %    MEM USAGE / LIMIT   MEM %   NET I/O           BLOCK I/O           PIDS",
            "web         50.00%   80 MiB / 16 GiB     0.49%   1.5 KiB / 2 KiB   1.004 MiB / 8 KiB   3",
            "db          0.00%    1 MiB / 64 MiB      1.56%   0 B / 0 B         0 B / 0 B           1",
        ])

    def test_streamWithoutTerminal(self):
        """
        Not a terminal: one block per frame, a blank line between; columns only grow; a container gone
        (NOT_FOUND) leaves the frames, and the command ends when none is left.
        """
        third = sample(2_500_000_000, 104_000_000_000, seconds=1795957202)
        fourth = sample(2_500_000_000, 106_000_000_000, seconds=1795957203)
        self.api.stats["web"] = [FIRST, SECOND, third, fourth]
        result = self.run_ctr("containers", "stats", "web")
        self.assertOK(result)
        self.assertEqual(result.stdout.splitlines(), WEB_LINES + [
            "",
            "CONTAINER   CPU %     MEM USAGE / LIMIT   MEM %   NET I/O           BLOCK I/O           PIDS",
            "web         100.00%   80 MiB / 16 GiB     0.49%   1.5 KiB / 2 KiB   1.004 MiB / 8 KiB   3",
            "",
            "CONTAINER   CPU %     MEM USAGE / LIMIT   MEM %   NET I/O           BLOCK I/O           PIDS",
            "web         0.00%     80 MiB / 16 GiB     0.49%   1.5 KiB / 2 KiB   1.004 MiB / 8 KiB   3",
        ])
        self.assertEqual(len(self.api.requests_of("Stats")), 5)

    def test_streamOnTerminalRedraws(self):
        """On a terminal: the screen is cleared once, then each frame is drawn from the top, in place."""
        self.patch(output, "is_terminal", lambda stream: True)
        self.api.stats["web"] = [FIRST, SECOND, SECOND]
        result = self.run_ctr("containers", "stats", "web")
        self.assertOK(result)
        zero = WEB_LINES[1].replace("50.00%", "0.00% ")
        first = "".join(line + "\033[K\n" for line in WEB_LINES) + "\033[J"
        second = "".join(line + "\033[K\n" for line in [WEB_LINES[0], zero]) + "\033[J"
        self.assertEqual(result.stdout, "\033[2J\033[H" + first + "\033[H" + second)

    def test_json(self):
        """One object per container per frame, with the raw numbers and the same data as the table."""
        self.api.stats["web"] = [FIRST, SECOND]
        result = self.run_ctr("containers", "stats", "--no-stream", "--format", "json", "web")
        self.assertOK(result)
        [line] = result.stdout.splitlines()
        data = json.loads(line)
        self.assertEqual(data["id"], "web")
        self.assertEqual(data["cpuPercent"], 50.0)
        self.assertEqual(data["cpu"], {"totalUsage": 1_500_000_000, "systemUsage": 102_000_000_000,
                                       "onlineCpus": 2, "usageInKernelmode": 0, "usageInUsermode": 0,
                                       "throttledPeriods": 0, "throttledTime": 0})
        self.assertEqual((data["memory"]["usage"], data["memory"]["limit"], data["memory"]["rawUsage"]),
                         (80 * MiB, 16 * GiB, 100 * MiB))
        self.assertEqual(data["network"]["rxBytes"], 1536)
        self.assertEqual(data["network"]["interfaces"]["eth0"], {"rxBytes": 1024, "txBytes": 2048})
        self.assertEqual(data["blockIo"], {"read": 4096 + MiB, "write": 8192})
        self.assertEqual(data["pids"], {"current": 3, "limit": None})  # no pids limit: null, not 0
        self.assertIsNone(data["memory"]["cgroupLimit"])  # the v1 "unlimited" sentinel: null
        self.assertEqual(data["timestampNs"], 1795957201_000_000_000)
        # The table's row is exactly what the JSON object gives.
        self.assertEqual(output.format_table(ctr_stats.HEADERS, [ctr_stats.stats_row(data)]), WEB_LINES)

    def test_jsonStream(self):
        self.api.stats["web"] = [FIRST, SECOND, SECOND]
        result = self.run_ctr("containers", "stats", "-o", "json", "web")
        self.assertOK(result)
        self.assertEqual([json.loads(line)["cpuPercent"] for line in result.stdout.splitlines()], [50.0, 0.0])

    def test_unknownContainer(self):
        self.api.stats["web"] = [FIRST, SECOND]
        result = self.run_ctr("containers", "stats", "--no-stream", "web", "ghost")
        self.assertEqual((result.exit_code, result.stdout, result.stderr), (1, "", "ctr: container ghost not found\n"))

    def test_notServed(self):
        self.api.stats = None
        result = self.run_ctr("containers", "stats", "--no-stream", "web")
        self.assertEqual((result.exit_code, result.stderr),
                         (1, "ctr: the daemon does not serve Stats (UNIMPLEMENTED)\n"))
