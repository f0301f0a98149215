#!/usr/bin/env python3
"""
Idle cost: the CPU the daemon and its monitor burn while N containers (default 500 `sleep 100000` busybox
containers, created through gRPC at concurrency 10) run and nobody calls the API. Reads utime+stime of each
process (all threads) from /proc/<pid>/stat before and after a quiet window and prints it as % of one core,
with the context switches (wake-ups) per second of each.

    python3 bench/idle_cost.py                        # N=500, 60 s
    python3 bench/idle_cost.py -n 1000 --seconds 120 --daemon-arg=--metrics-interval=10s

The benchmark daemon runs with --metrics-interval 0 (no periodic metrics flush) unless --daemon-arg says
otherwise. Teardown is through the API (Signal 9 to each init, wait until State is empty). The last line is a
one-line summary.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    BenchDaemon, cleanup_dir, create_containers, kill_all_containers, load_average, proc_cpu_seconds,
    proc_threads, reap_children, sleeper_bundle,
)
from containerd_tx.api import containerd_pb2 as pb  # noqa: E402


def thread_switches(pid):
    """{thread id: (thread name, voluntary + involuntary context switches)} of a process."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            count = 0
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        count += int(line.split()[1])
            threads[tid] = (name, count)
        except OSError:
            pass  # a thread that just ended
    return threads


def sample(pid):
    """(CPU seconds, {thread id: (name, context switches)}) of a process."""
    return proc_cpu_seconds(pid), thread_switches(pid)


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=500, help="running containers (default 500)")
    parser.add_argument("-c", "--concurrency", type=int, default=10, help="creates at once (default 10)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the quiet window (default 60)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait after the last create before measuring (default 5)")
    parser.add_argument("--runtime", default="runc", help="runc or crun (default runc)")
    parser.add_argument("--daemon-arg", action="append", default=[],
                        help="extra daemon option, repeatable (e.g. --daemon-arg=--metrics-interval=10s)")
    args = parser.parse_args()

    print(f"load average at start: {load_average()} ({os.cpu_count()} cores)", flush=True)
    daemon = BenchDaemon.start_new(args=["--concurrency", str(args.concurrency), *args.daemon_arg],
                                   runtime=args.runtime)
    try:
        bundle = sleeper_bundle(daemon.workdir)
        wall = create_containers(daemon.stub, bundle, [f"idle-{i}" for i in range(args.count)], args.concurrency)
        print(f"created {args.count} containers in {wall:.1f}s ({args.count / wall:.1f}/s)", flush=True)
        running = len(daemon.stub.State(pb.StateRequest(), timeout=60).containers)
        if running != args.count:
            raise SystemExit(f"bench: {running} containers running, expected {args.count}")
        time.sleep(args.settle)

        pids = {"daemon": daemon.process.pid, "monitor": daemon.monitor_pid()}
        before = {role: sample(pid) for role, pid in pids.items()}
        started = time.monotonic()
        load_before = load_average()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - started
        after = {role: sample(pid) for role, pid in pids.items()}
        print(f"quiet window {elapsed:.1f}s, load {load_before} -> {load_average()}")
        percent = {}
        for role, pid in pids.items():
            cpu = after[role][0] - before[role][0]
            percent[role] = 100.0 * cpu / elapsed
            woken = {tid: (name, count - before[role][1].get(tid, (name, 0))[1])
                     for tid, (name, count) in after[role][1].items()}
            print(f"  {role:<8} pid {pid:<8} CPU {cpu:.2f}s = {percent[role]:.2f}% of one core, "
                  f"{sum(c for _, c in woken.values()) / elapsed:.1f} context switches/s, "
                  f"{proc_threads(pid)} threads", flush=True)
            busiest = sorted(woken.items(), key=lambda item: -item[1][1])[:5]
            print("    busiest threads (switches/s): " + ", ".join(
                f"{name} {count / elapsed:.1f}" for _, (name, count) in busiest if count))
        running = len(daemon.stub.State(pb.StateRequest(), timeout=60).containers)
        killed, teardown = kill_all_containers(daemon.stub, args.concurrency)
        print(f"teardown (Signal 9 to {killed}, until State is empty): {teardown:.2f}s")
    finally:
        daemon.destroy()
        reap_children()
        cleanup_dir(daemon.workdir)
    print(f"idle CPU daemon {percent['daemon']:.2f}% monitor {percent['monitor']:.2f}% over {elapsed:.0f}s "
          f"with {running} containers")


if __name__ == "__main__":
    main()
