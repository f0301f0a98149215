#!/usr/bin/env python3
"""
The floor of the daemon's shape: what a start costs in the daemon and its monitor when they do nothing but
start it, next to the real daemon and the raw runtime, in one run on one machine.

    python3 bench/shape_floor.py --dir /dev/shm                  # runc, N=200 C=10, 3 runs
    python3 bench/shape_floor.py --dir /dev/shm --runtime "$PWD/contrib/crun-hybrid"

Three sides start the same busybox bundle, N containers C at a time, rounds in turn (who goes first rotates):
- "bare" (L{bench.bare}): grpcio's synchronous server hands each CreateContainer to a Twisted reactor thread
  and waits, as the daemon's bridge does; the reactor asks a separate monitor process (a child subreaper) to
  run the runtime's C{run -d} with the daemon's options; the monitor reaps it and answers with the pid. No
  records, events, logs, timers, cgroup or OOM work: the least any daemon of this shape spends on a start.
- "daemon": containerd-tx itself (the C{containerd-tx} console script, as L{bench.start_throughput} runs it).
- "raw": the runtime's C{run -d} from this script.

For each run it prints each side's containers/sec and the CPU per start (from C{/proc}): the daemon process
(its reactor thread apart), the monitor, the runtime (the monitor's reaped children; raw: this script's), the
whole machine; then the medians over runs: what the bare shape and the daemon cost beside the runtime's own
CPU, what the daemon adds beyond the bare shape, and raw/side of the machine's CPU per start, the throughput
ratio a CPU-bound machine allows each side.
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402

from bench.common import (  # noqa: E402
    REPO, BenchDaemon, filesystem_type, kill_all_raw, machine_cpu_seconds, proc_context_switches, proc_cpu_split,
    proc_task_cpu, raw_runtime_root, sleeper_bundle,
)
from bench.start_throughput import BUSY_IDLE, daemon_round, median, raw_round, run_parallel, wait_quiet  # noqa: E402
from containerd_tx.api import containerd_pb2 as pb  # noqa: E402
from containerd_tx.api import containerd_pb2_grpc as pb_grpc  # noqa: E402

SIDES = ("bare", "daemon", "raw")


class BareDaemon:
    """The bare daemon (L{bench.bare.daemon}) as a subprocess in C{workdir}."""

    def __init__(self, workdir, runtime):
        self.workdir = workdir
        self.runtime = runtime
        self.root = os.path.join(workdir, "root")
        os.makedirs(workdir, exist_ok=True)
        self.process = subprocess.Popen([sys.executable, "-m", "bench.bare.daemon", workdir, runtime],
                                        stdout=subprocess.PIPE, cwd=REPO)
        words = self.process.stdout.readline().split()
        if len(words) != 2 or words[0] != b"ready":
            self.process.kill()
            raise SystemExit("bench: the bare daemon did not start")
        self.monitor_pid = int(words[1])
        self._channel = grpc.insecure_channel("unix://" + os.path.join(workdir, "api.sock"))
        self.stub = pb_grpc.APIStub(self._channel)

    def sample(self):
        own, _ = proc_cpu_split(self.process.pid)
        monitor, runtime = proc_cpu_split(self.monitor_pid)
        return {"daemon": own, "reactor": proc_task_cpu(self.process.pid).get(self.process.pid, 0.0),
                "monitor": monitor, "runtime": runtime, "machine": machine_cpu_seconds(),
                "switches": proc_context_switches(self.process.pid)[0]}

    def round(self, bundle, n, concurrency, tag):
        """Start n containers, C at a time; measure; remove them. Returns (wall, durations, 0, cpu)."""
        def start(i):
            self.stub.CreateContainer(pb.CreateContainerRequest(id=f"{tag}-{i}", bundlePath=bundle), timeout=600)

        before = self.sample()
        wall, durations = run_parallel(n, concurrency, start)
        time.sleep(0.3)  # as the daemon's round: whatever the starts left to do counts
        after = self.sample()
        kill_all_raw(self.runtime, self.root)
        return wall, durations, 0.0, {key: after[key] - before[key] for key in before}

    def destroy(self):
        self._channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        kill_all_raw(self.runtime, self.root)
        try:
            os.kill(self.monitor_pid, 9)
        except ProcessLookupError:
            pass


def per_start(cpu, n):
    """CPU seconds of a round as milliseconds per start."""
    return {key: value / n * 1000 for key, value in cpu.items()}


def report_run(run, results, n, out=sys.stdout):
    """
    One run's figures, printed; returns them per side: rate, CPU per start in ms (daemon, reactor, monitor,
    runtime, machine), and for the bare and daemon sides their overhead (daemon + monitor), its share of raw's
    runtime CPU, their throughput ratio and raw/side machine CPU.

    @param results: side -> (wall seconds, durations, teardown, CPU seconds of the round) for C{n} starts.
    """
    figures = {side: {"rate": n / results[side][0], **per_start(results[side][3], n)} for side in SIDES}
    for side in ("bare", "daemon"):
        figures[side]["switches"] = results[side][3]["switches"] / n
    raw = figures["raw"]
    for side in ("bare", "daemon"):
        f = figures[side]
        f["overhead"] = f["daemon"] + f["monitor"]
        f["share"] = f["overhead"] / raw["runtime"]
        f["allowed"] = raw["machine"] / f["machine"]
        f["ratio"] = f["rate"] / raw["rate"]
    print(f"run {run + 1}: " + "; ".join(
        f"{side} {figures[side]['rate']:.1f}/s ({figures[side]['ratio']:.2f} of raw), daemon "
        f"{figures[side]['daemon']:.2f} ms (reactor {figures[side]['reactor']:.2f}) + monitor "
        f"{figures[side]['monitor']:.2f} = {figures[side]['overhead']:.2f} ms per start, "
        f"{figures[side]['switches']:.1f} switches, runtime {figures[side]['runtime']:.2f} ms, machine "
        f"{figures[side]['machine']:.1f} ms"
        for side in ("bare", "daemon"))
        + f"; raw {raw['rate']:.1f}/s, runtime {raw['runtime']:.2f} ms, machine {raw['machine']:.1f} ms",
        file=out, flush=True)
    return figures


def summarize(runs, label, busy_rounds=(), out=sys.stdout):
    """The medians over runs (and every run's share and ratio), then the one-line summary, printed."""
    def med(side, key):
        return median([figures[side][key] for figures in runs])

    def say(text):
        print(text, file=out)

    runtime = med("raw", "runtime")
    say("")
    say(f"medians of {len(runs)} runs, per start; the runtime's own CPU (raw) {runtime:.2f} ms:")
    for side in ("bare", "daemon"):
        shares = ", ".join(f"{figures[side]['share']:.0%}" for figures in runs)
        ratios = ", ".join(f"{figures[side]['ratio']:.2f}" for figures in runs)
        say(f"  {side:6}: daemon {med(side, 'daemon'):.2f} ms (reactor {med(side, 'reactor'):.2f}) + monitor "
            f"{med(side, 'monitor'):.2f} ms = {med(side, 'overhead'):.2f} ms, {med(side, 'share'):.0%} of the "
            f"runtime's CPU (per run {shares}); runtime {med(side, 'runtime'):.2f} ms")
        say(f"          throughput {med(side, 'ratio'):.2f} of raw (per run {ratios}); raw/{side} machine CPU "
            f"{med(side, 'allowed'):.2f} (the throughput ratio a CPU-bound machine allows)")
    extra = median([figures["daemon"]["overhead"] - figures["bare"]["overhead"] for figures in runs])
    say(f"  the daemon's features beyond the bare shape: {extra:.2f} ms per start")
    if busy_rounds:
        say(f"WARNING: {len(busy_rounds)} rounds started on a busy machine ({', '.join(busy_rounds)}); "
            "their figures are skewed by the other work")
    say(f"floor {med('bare', 'overhead'):.2f}ms ({med('bare', 'share'):.0%} of runtime) daemon "
        f"{med('daemon', 'overhead'):.2f}ms ({med('daemon', 'share'):.0%}) runtime {runtime:.2f}ms allowed "
        f"bare {med('bare', 'allowed'):.2f} daemon {med('daemon', 'allowed'):.2f} ({label}, {len(runs)} runs"
        f"{', BUSY ' + str(len(busy_rounds)) if busy_rounds else ''})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=200, help="containers per round (default 200)")
    parser.add_argument("-c", "--concurrency", type=int, default=10, help="starts at once (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="runs of one round of each side (default 3)")
    parser.add_argument("--runtime", default="runc", help="runc or crun (an absolute path for a wrapper)")
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds to wait at most for a quiet machine before each round (default 15)")
    parser.add_argument("--dir", default=None, help="where the state dirs, runtime roots and bundle go "
                                                    "(default: $TMPDIR or /tmp; /dev/shm for a tmpfs)")
    args = parser.parse_args()
    n, concurrency = args.count, args.concurrency
    daemon = BenchDaemon.start_new(args=["--concurrency", str(concurrency)], runtime=args.runtime, parent=args.dir)
    bare = None
    print(f"working in {daemon.workdir} ({filesystem_type(daemon.workdir)}), {os.cpu_count()} CPUs, N={n} "
          f"C={concurrency}, {args.runs} runs of one round of each side", flush=True)
    runs, busy_rounds = [], []
    try:
        bare = BareDaemon(os.path.join(daemon.workdir, "bare"), args.runtime)
        bundle = sleeper_bundle(daemon.workdir)
        raw_root = raw_runtime_root(daemon.workdir, args.runtime)
        rounds = {
            "bare": lambda tag: bare.round(bundle, n, concurrency, tag),
            "daemon": lambda tag: daemon_round(daemon, bundle, n, concurrency, tag, False),
            "raw": lambda tag: raw_round(args.runtime, raw_root, bundle, n, concurrency, tag, False),
        }
        for run in range(args.runs):
            order = SIDES[run % 3:] + SIDES[:run % 3]
            results = {}
            for side in order:
                load, idle = wait_quiet(args.settle)
                busy = ""
                if idle < BUSY_IDLE:
                    busy = "  BUSY: this round's figures are skewed"
                    busy_rounds.append(f"run {run + 1} {side}")
                print(f"run {run + 1} {side}: load {load:.2f}, {idle:.0%} idle before{busy}", flush=True)
                results[side] = rounds[side](f"{side[:2]}{run}")
            runs.append(report_run(run, results, n))
    finally:
        if bare is not None:
            bare.destroy()
        kill_all_raw(args.runtime, raw_runtime_root(daemon.workdir, args.runtime))
        daemon.destroy()

    summarize(runs, f"{os.path.basename(args.runtime)}, N={n} C={concurrency}", busy_rounds)


if __name__ == "__main__":
    main()
