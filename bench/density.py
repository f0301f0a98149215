#!/usr/bin/env python3
"""
Density: what running containers cost the daemon. At each step (0, 100, 500 running `sleep 100000` busybox
containers by default, created through gRPC at concurrency 10, after a warm-up of 20 created and killed) it
measures the RSS and PSS (smaps_rollup), the open fds and the threads of every process the daemon adds: the
daemon itself, the shared monitor (<state>/monitor.pid), and any other child of either that is not a container
process (container inits are created by runc and belong to the containers). Then it tears everything down
through the API (Signal 9 to each init, wait until State is empty) and times that.

    python3 bench/density.py                          # steps 0,100,500
    python3 bench/density.py --steps 0,100,500,1000 --settle 5

Prints one table row per step, the per-container overhead at each step ((total at N - total at 0) / N), the
teardown time; the last line is a one-line summary.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    BenchDaemon, cleanup_dir, create_containers, kill_all_containers, load_average, proc_children, proc_fds,
    proc_memory, proc_name, proc_threads, reap_children, sleeper_bundle,
)
from containerd_tx.api import containerd_pb2 as pb  # noqa: E402


def container_pids(stub):
    """Host pids of every container process (inits and execs) the daemon reports."""
    containers = stub.State(pb.StateRequest(), timeout=60).containers
    pids = {p.systemPid for container in containers for p in container.processes if p.systemPid}
    return pids, len(containers)


def measure(daemon):
    """One sample: {role: (pid, rss kB, pss kB, anon kB, fds, threads)} for the daemon, the monitor, extras."""
    daemon_pid = daemon.process.pid
    monitor_pid = daemon.monitor_pid()
    if monitor_pid is None:
        raise SystemExit("bench: no monitor.pid in the state dir")
    containers, running = container_pids(daemon.stub)
    sample = {}
    for role, pid in (("daemon", daemon_pid), ("monitor", monitor_pid)):
        sample[role] = (pid, *proc_memory(pid), proc_fds(pid), proc_threads(pid))
    # Anything else the daemon or the monitor has as a child that is not a container process.
    extras = [pid for pid in proc_children(daemon_pid) if pid != monitor_pid]
    extras += [pid for pid in proc_children(monitor_pid) if pid not in containers]
    for pid in extras:
        try:
            sample[f"other {pid} {proc_name(pid)}"] = (pid, *proc_memory(pid), proc_fds(pid), proc_threads(pid))
        except OSError:
            pass  # a runtime helper that just ended
    return sample, running


def totals(sample):
    """(RSS, PSS, anonymous PSS) summed over the sampled processes, kB."""
    return tuple(sum(v[i] for v in sample.values()) for i in (1, 2, 3))


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--steps", default="0,100,500", help="running containers to measure at (default 0,100,500)")
    parser.add_argument("-c", "--concurrency", type=int, default=10, help="creates at once (default 10)")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before measuring (default 3)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="containers created and killed before the step-0 sample, so that one-time costs "
                             "(grpc worker threads, imports, caches) are in the baseline (default 20; 0: none)")
    parser.add_argument("--runtime", default="runc", help="runc or crun (default runc)")
    args = parser.parse_args()
    steps = sorted({int(s) for s in args.steps.split(",")})
    if steps[0] != 0:
        steps.insert(0, 0)

    print(f"load average at start: {load_average()} ({os.cpu_count()} cores)", flush=True)
    daemon = BenchDaemon.start_new(args=["--concurrency", str(args.concurrency)], runtime=args.runtime)
    results = []
    teardown = None
    try:
        bundle = sleeper_bundle(daemon.workdir)
        if args.warmup:
            create_containers(daemon.stub, bundle, [f"warm-{i}" for i in range(args.warmup)], args.concurrency)
            killed, seconds = kill_all_containers(daemon.stub, args.concurrency)
            print(f"warm-up: {killed} containers created and killed ({seconds:.2f}s teardown)", flush=True)
        created = 0
        for n in steps:
            if n > created:
                wall = create_containers(daemon.stub, bundle, [f"dens-{i}" for i in range(created, n)],
                                         args.concurrency)
                print(f"created {n - created} containers in {wall:.1f}s ({(n - created) / wall:.1f}/s)", flush=True)
                created = n
            time.sleep(args.settle)
            sample, running = measure(daemon)
            if running != n:
                raise SystemExit(f"bench: {running} containers running, expected {n}")
            results.append((n, sample))
            rss, pss, anon = totals(sample)
            print(f"\n{n} running containers (load {load_average()}):")
            print(f"  {'process':<40} {'pid':>8} {'RSS kB':>10} {'PSS kB':>10} {'anon kB':>10} {'fds':>6} "
                  f"{'threads':>8}")
            for role, (pid, p_rss, p_pss, p_anon, fds, threads) in sample.items():
                print(f"  {role:<40} {pid:>8} {p_rss:>10} {p_pss:>10} {p_anon:>10} {fds:>6} {threads:>8}")
            print(f"  {'total':<40} {'':>8} {rss:>10} {pss:>10} {anon:>10}", flush=True)
        killed, teardown = kill_all_containers(daemon.stub, args.concurrency)
        print(f"\nteardown (Signal 9 to {killed}, until State is empty): {teardown:.2f}s", flush=True)
        # Measure once more after teardown: does the daemon give memory and fds back?
        time.sleep(args.settle)
        after, _ = measure(daemon)
        after_rss, after_pss, after_anon = totals(after)
        print(f"after teardown: total RSS {after_rss} kB PSS {after_pss} kB anon {after_anon} kB, fds daemon "
              f"{after['daemon'][4]} monitor {after['monitor'][4]}, threads daemon {after['daemon'][5]} "
              f"monitor {after['monitor'][5]}, extra processes {len(after) - 2}")
    finally:
        daemon.destroy()
        reap_children()
        cleanup_dir(daemon.workdir)

    base = results[0][1]
    base_rss, base_pss, base_anon = totals(base)
    print("\nper-container overhead ((total at N - total at 0) / N):")
    for n, sample in results[1:]:
        rss, pss, anon = totals(sample)
        print(f"  N={n:<5} PSS {(pss - base_pss) / n:8.1f} kB  RSS {(rss - base_rss) / n:8.1f} kB  "
              f"anon {(anon - base_anon) / n:8.1f} kB  "
              f"fds {(sample['daemon'][4] - base['daemon'][4]) / n:.2f} (daemon) "
              f"{(sample['monitor'][4] - base['monitor'][4]) / n:.2f} (monitor)  "
              f"extra processes {len(sample) - 2}")
    n, sample = results[-1]
    if n == 0:
        print(f"per-container n/a (no containers); daemon RSS {sample['daemon'][1] / 1024:.1f} MB")
        return
    rss, pss, anon = totals(sample)
    print(f"per-container PSS {(pss - base_pss) / n:.1f} kB RSS {(rss - base_rss) / n:.1f} kB "
          f"anon {(anon - base_anon) / n:.1f} kB "
          f"fds {(sample['daemon'][4] - base['daemon'][4]) / n:.2f} (daemon) "
          f"{(sample['monitor'][4] - base['monitor'][4]) / n:.2f} (monitor) at {n}; "
          f"daemon RSS {sample['daemon'][1] / 1024:.1f} MB; teardown {teardown:.1f}s")


if __name__ == "__main__":
    main()
