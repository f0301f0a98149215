#!/usr/bin/env python3
"""
Start throughput: N containers started through the daemon by a gRPC client at concurrency C, and the same
bundles started by the raw runtime (`runc run -d`), rounds alternating, in one run on one machine.

    python3 bench/start_throughput.py                 # N=200, C=10, runc, 1 round of each
    python3 bench/start_throughput.py -n 1000 --rounds 3 --runtime crun
    python3 bench/start_throughput.py --rounds 3 --dir /dev/shm    # state on a tmpfs, as /run on systemd hosts

Prints containers/sec and start-time percentiles for both, the ratios daemon/raw, and teardown times; the
last line is a one-line summary.
"""

import argparse
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402

from bench.common import (  # noqa: E402
    BenchDaemon, filesystem_type, kill_all_raw, print_timer, raw_runtime_root, reap_children, settle,
    sleeper_bundle, summary,
)
from containerd_tx.api import containerd_pb2 as pb  # noqa: E402


def run_parallel(n, concurrency, start_one):
    """Start n containers with `concurrency` workers; return (wall seconds, per-start seconds)."""
    durations = [0.0] * n
    errors = []

    def one(i):
        started = time.perf_counter()
        try:
            start_one(i)
        except Exception as e:  # a failed start is reported, never hidden
            errors.append(f"{i}: {e}")
        durations[i] = time.perf_counter() - started

    wall_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - wall_start
    if errors:
        raise SystemExit(f"bench: {len(errors)} starts failed, first: {errors[0]}")
    return wall, durations


def daemon_round(daemon, bundle, n, concurrency, tag):
    stub = daemon.stub

    def start(i):
        stub.CreateContainer(pb.CreateContainerRequest(id=f"{tag}-{i}", bundlePath=bundle), timeout=300)

    wall, durations = run_parallel(n, concurrency, start)
    # Teardown through the API: SIGKILL every init and wait until the daemon has forgotten them all.
    events = stub.Events(pb.EventsRequest())
    exited = set()
    done = threading.Event()

    def watch():
        try:
            for event in events:
                if event.type == "exit" and event.id.startswith(tag + "-"):
                    exited.add(event.id)
                    if len(exited) == n:
                        done.set()
                        return
        except grpc.RpcError:
            pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.2)
    down_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(lambda i: stub.Signal(pb.SignalRequest(id=f"{tag}-{i}", pid="init", signal=9), timeout=60),
                      range(n)))
    done.wait(300)
    while stub.State(pb.StateRequest(), timeout=60).containers:
        time.sleep(0.05)
    teardown = time.perf_counter() - down_start
    events.cancel()
    return wall, durations, teardown


def raw_round(runtime, root, bundle, n, concurrency, tag):
    devnull = os.open(os.devnull, os.O_RDWR)

    def start(i):
        # The container inherits runc's stdio: a pipe here would never reach EOF while it runs.
        subprocess.run([runtime, "--root", root, "run", "-d", "--bundle", bundle, f"{tag}-{i}"],
                       stdin=devnull, stdout=devnull, stderr=devnull, check=True)

    wall, durations = run_parallel(n, concurrency, start)
    down_start = time.perf_counter()

    def stop(i):
        subprocess.run([runtime, "--root", root, "delete", "--force", f"{tag}-{i}"], capture_output=True)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(stop, range(n)))
    reap_children()
    teardown = time.perf_counter() - down_start
    os.close(devnull)
    return wall, durations, teardown


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=200, help="containers per round (default 200)")
    parser.add_argument("-c", "--concurrency", type=int, default=10, help="starts at once (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each (daemon, raw), alternating")
    parser.add_argument("--runtime", default="runc", help="runc or crun (default runc)")
    parser.add_argument("--daemon-concurrency", type=int, default=None,
                        help="the daemon's --concurrency (default: same as -c)")
    parser.add_argument("--dir", default=None,
                        help="where the state dir, both runtime roots and the bundle go (default: $TMPDIR or /tmp); "
                             "a tmpfs such as /dev/shm matches /run, the default of both, on a systemd host")
    args = parser.parse_args()

    daemon = BenchDaemon.start_new(args=["--concurrency", str(args.daemon_concurrency or args.concurrency)],
                                   runtime=args.runtime, parent=args.dir)
    fs_type = filesystem_type(daemon.workdir)
    print(f"working in {daemon.workdir} ({fs_type}), {os.cpu_count()} CPUs", flush=True)
    try:
        bundle = sleeper_bundle(daemon.workdir)
        raw_root = raw_runtime_root(daemon.workdir, args.runtime)
        results = {"daemon": [], "raw": []}
        rounds = {
            "daemon": lambda r: daemon_round(daemon, bundle, args.count, args.concurrency, f"d{r}"),
            "raw": lambda r: raw_round(args.runtime, raw_root, bundle, args.count, args.concurrency, f"r{r}"),
        }
        for r in range(args.rounds):
            # Each round starts on a quiet machine, and who goes first alternates: neither side pays more often
            # for the kernel's teardown of the round before.
            for kind in (("daemon", "raw") if r % 2 == 0 else ("raw", "daemon")):
                settle()
                results[kind].append(rounds[kind](r))
            print(f"round {r + 1}: daemon {args.count / results['daemon'][-1][0]:.1f}/s, "
                  f"raw {args.count / results['raw'][-1][0]:.1f}/s", flush=True)
    finally:
        kill_all_raw(args.runtime, raw_runtime_root(daemon.workdir, args.runtime))
        daemon.destroy()

    report = {}
    for kind, rounds in results.items():
        rates = sorted(args.count / wall for wall, _, _ in rounds)
        durations = [d for _, ds, _ in rounds for d in ds]
        teardown = sorted(t for _, _, t in rounds)
        report[kind] = (rates[len(rates) // 2], summary(durations), teardown[len(teardown) // 2])
        print(f"\n{kind} ({args.runtime}{' through containerd-tx' if kind == 'daemon' else ' run -d'}): "
              f"{report[kind][0]:.1f} containers/sec (median of {len(rates)} rounds), "
              f"teardown of {args.count} {report[kind][2]:.2f}s")
        print_timer("container-start-time", report[kind][1])
    d_rate, d_stats, _ = report["daemon"]
    r_rate, r_stats, _ = report["raw"]
    print(f"\nratios daemon/raw: throughput {d_rate / r_rate:.2f}, median {d_stats['median'] / r_stats['median']:.2f},"
          f" p99 {d_stats['99%'] / r_stats['99%']:.2f}")
    print(f"containers/sec {d_rate:.1f} raw {r_rate:.1f} ratio {d_rate / r_rate:.2f} "
          f"p99 {d_stats['99%'] * 1000:.0f}ms raw-p99 {r_stats['99%'] * 1000:.0f}ms "
          f"p99-ratio {d_stats['99%'] / r_stats['99%']:.2f} (N={args.count} C={args.concurrency} {args.runtime}, "
          f"{fs_type})")


if __name__ == "__main__":
    main()
