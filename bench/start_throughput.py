#!/usr/bin/env python3
"""
Start throughput: N containers started through the daemon by a gRPC client at concurrency C, and the same
bundles started by the raw runtime (`runc run -d`), rounds alternating, in one run on one machine.

    python3 bench/start_throughput.py                 # N=200, C=10, runc, 1 round of each
    python3 bench/start_throughput.py --runs 3 --rounds 3 --dir /dev/shm    # state on a tmpfs, as /run
    python3 bench/start_throughput.py --count 1000 --all-at-once --runs 3  # the seed's headline shape
    python3 bench/start_throughput.py --runtime "$PWD/contrib/crun-hybrid" --runs 3 --rounds 3

Prints, for each run (of --rounds alternating rounds of each side), the containers/sec of both, the ratios
daemon/raw, and the CPU per start: the daemon's and the monitor's own (from /proc/<pid>/stat and
/proc/<pid>/task/*/stat before and after the starts) and the runtime's (the CPU of the runtime processes: the
monitor's reaped children through the daemon, this script's reaped children raw, crun's helper included), and
the daemon's context switches per start (its threads' hand-offs). Then the start-time
percentiles of both sides in the seed's layout, every run's ratios and their medians, and a one-line summary.
Before each round it waits for a quiet machine and prints the load; a round that starts busy is flagged, and
the summary warns that its ratios are skewed. It also prints the kernel's memory cgroups before and after, and
warns when hundreds of dying ones (of removed containers) make every cgroup operation dearer.
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
    BenchDaemon, filesystem_type, kill_all_raw, machine_busy, machine_cpu_seconds, memory_cgroup_census, memory_cgroups,
    print_timer, proc_context_switches, proc_cpu_split, proc_task_cpu, raw_runtime_root, reap_children, sleeper_bundle,
    summary,
)
from containerd_tx.api import containerd_pb2 as pb  # noqa: E402

#: A round that starts with less of the CPU time idle than this is flagged busy.
BUSY_IDLE = 0.8
#: Dying memory cgroups (removed, still held by the kernel) past which the summary warns of drift.
DYING_CGROUPS_WARN = 300
#: Memory cgroups left behind by deleted containers past which the summary warns (a few can be in flight).
LEFTOVER_CGROUPS_WARN = 10
#: Unary calls the daemon serves at once by default (grpc_server: --max-subscribers 128 + 32 unary workers);
#: beyond that it answers RESOURCE_EXHAUSTED, so an all-at-once client keeps at most this many in flight.
DAEMON_CALL_SLOTS = 150


def median(values):
    values = sorted(values)
    if not values:
        return float("nan")
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def run_parallel(n, concurrency, start_one, from_burst=False):
    """
    Start n containers with `concurrency` workers; return (wall seconds, per-start seconds). With
    C{from_burst}, each start is timed from the moment all n were asked for (the burst), queueing included.
    """
    durations = [0.0] * n
    errors = []
    burst = [0.0]

    def one(i):
        started = burst[0] if from_burst else time.perf_counter()
        try:
            start_one(i)
        except Exception as e:  # a failed start is reported, never hidden
            errors.append(f"{i}: {e}")
        durations[i] = time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        burst[0] = wall_start = time.perf_counter()
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - wall_start
    if errors:
        raise SystemExit(f"bench: {len(errors)} starts failed, first: {errors[0]}")
    return wall, durations


class CpuWindow:
    """
    CPU seconds of the daemon (all threads, and its reactor thread), the monitor, its reaped children (the
    runtime) and the whole machine.
    """

    def __init__(self, daemon):
        self.daemon_pid = daemon.process.pid
        self.monitor_pid = daemon.monitor_pid()

    def sample(self):
        own, _ = proc_cpu_split(self.daemon_pid)
        reactor = proc_task_cpu(self.daemon_pid).get(self.daemon_pid, 0.0)
        monitor, runtime = proc_cpu_split(self.monitor_pid) if self.monitor_pid else (0.0, 0.0)
        # Thread hand-offs: every sleep of a daemon thread (grpcio's, the reactor's) is a voluntary switch.
        switches, preempted = proc_context_switches(self.daemon_pid)
        return {"daemon": own, "reactor": reactor, "monitor": monitor, "runtime": runtime,
                "machine": machine_cpu_seconds(), "switches": switches, "preempted": preempted}

    @staticmethod
    def delta(before, after):
        return {key: after[key] - before[key] for key in before}


def daemon_round(daemon, bundle, n, concurrency, tag, from_burst):
    stub = daemon.stub
    window = CpuWindow(daemon)

    def start(i):
        stub.CreateContainer(pb.CreateContainerRequest(id=f"{tag}-{i}", bundlePath=bundle), timeout=600)

    before = window.sample()
    wall, durations = run_parallel(n, concurrency, start, from_burst)
    time.sleep(0.3)  # what the starts left the daemon to do (records, events) is part of their cost
    cpu = CpuWindow.delta(before, window.sample())
    # Teardown through the API: SIGKILL every init and wait until the daemon has forgotten them all.
    events = stub.Events(pb.EventsRequest())
    exited = {}
    gone = []
    done = threading.Event()

    def watch():
        try:
            for event in events:
                if event.type == "exit" and event.id.startswith(tag + "-"):
                    exited[event.id] = event.status
                    if len(exited) == n:
                        done.set()
                        return
        except grpc.RpcError:
            pass

    def kill(i):
        try:
            stub.Signal(pb.SignalRequest(id=f"{tag}-{i}", pid="init", signal=9), timeout=60)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            gone.append(f"{tag}-{i}")  # it exited before the kill: reported below, never hidden

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    time.sleep(0.2)
    down_start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(concurrency, 100)) as pool:
        list(pool.map(kill, range(n)))
    done.wait(300)
    while stub.State(pb.StateRequest(), timeout=60).containers:
        time.sleep(0.05)
    teardown = time.perf_counter() - down_start
    events.cancel()
    if gone:
        statuses = sorted({exited.get(container_id) for container_id in gone}, key=str)
        print(f"bench: WARNING: {len(gone)} of {n} containers had exited before the teardown killed them "
              f"(exit statuses {statuses}); e.g. {gone[0]}", flush=True)
    return wall, durations, teardown, cpu


def raw_round(runtime, root, bundle, n, concurrency, tag, from_burst):
    devnull = os.open(os.devnull, os.O_RDWR)

    def start(i):
        # The container inherits runc's stdio: a pipe here would never reach EOF while it runs.
        subprocess.run([runtime, "--root", root, "run", "-d", "--bundle", bundle, f"{tag}-{i}"],
                       stdin=devnull, stdout=devnull, stderr=devnull, check=True)

    before, machine_before = os.times(), machine_cpu_seconds()
    wall, durations = run_parallel(n, concurrency, start, from_burst)
    # crun's helper (it forks twice) has exited by now and waits for us, its subreaper, as the daemon's
    # monitor reaps it: its CPU counts once it is reaped, so it is reaped inside the window.
    reap_children()
    after = os.times()
    cpu = {"runtime": (after.children_user + after.children_system)
           - (before.children_user + before.children_system), "machine": machine_cpu_seconds() - machine_before}
    down_start = time.perf_counter()

    def stop(i):
        subprocess.run([runtime, "--root", root, "delete", "--force", f"{tag}-{i}"], capture_output=True)

    with ThreadPoolExecutor(max_workers=min(concurrency, 20)) as pool:
        list(pool.map(stop, range(n)))
    reap_children()
    teardown = time.perf_counter() - down_start
    os.close(devnull)
    return wall, durations, teardown, cpu


def wait_quiet(limit):
    """
    Wait (at most C{limit} seconds) until at least 90% of the CPU time is idle; return (load1, idle) of the
    last look, so that a round that starts on a busy machine can be flagged instead of trusted.
    """
    deadline = time.monotonic() + limit
    while True:
        load, idle = machine_busy(0.5)
        if idle >= 0.9 or time.monotonic() >= deadline:
            return load, idle


def ms(seconds, n):
    return seconds / n * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=200, help="containers per round (default 200)")
    parser.add_argument("-c", "--concurrency", type=int, default=10, help="starts at once (default 10)")
    parser.add_argument("--all-at-once", action="store_true",
                        help="the seed's headline shape: all --count containers asked for at once (raw: one "
                             f"thread each; daemon: at most {DAEMON_CALL_SLOTS} calls in flight, what its "
                             "gRPC server takes at once); start times counted from the burst")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each (daemon, raw) per run, alternating")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs of --rounds rounds each; every run's ratios and their median are printed")
    parser.add_argument("--runtime", default="runc", help="runc or crun (default runc)")
    parser.add_argument("--daemon-concurrency", type=int, default=None,
                        help="the daemon's --concurrency (default: same as -c; 10, its default, with --all-at-once)")
    parser.add_argument("--settle", type=float, default=15.0,
                        help="seconds to wait at most for a quiet machine before each round (default 15)")
    parser.add_argument("--dir", default=None,
                        help="where the state dir, both runtime roots and the bundle go (default: $TMPDIR or /tmp); "
                             "a tmpfs such as /dev/shm matches /run, the default of both, on a systemd host")
    args = parser.parse_args()
    n = args.count
    if args.all_at_once:
        raw_c, daemon_c = n, min(n, DAEMON_CALL_SLOTS)
        daemon_concurrency = args.daemon_concurrency or 10
        shape = f"N={n} all at once"
    else:
        raw_c = daemon_c = args.concurrency
        daemon_concurrency = args.daemon_concurrency or args.concurrency
        shape = f"N={n} C={args.concurrency}"

    daemon = BenchDaemon.start_new(args=["--concurrency", str(daemon_concurrency)],
                                   runtime=args.runtime, parent=args.dir)
    fs_type = filesystem_type(daemon.workdir)
    cgroups_before = memory_cgroups()
    print(f"working in {daemon.workdir} ({fs_type}), {os.cpu_count()} CPUs, {shape}, daemon --concurrency "
          f"{daemon_concurrency}, {args.runs} run(s) of {args.rounds} round(s) of each; the kernel holds "
          f"{cgroups_before[0]} memory cgroups and {cgroups_before[1]} cpu cgroups", flush=True)
    runs = []
    busy_rounds = []
    try:
        bundle = sleeper_bundle(daemon.workdir)
        raw_root = raw_runtime_root(daemon.workdir, args.runtime)
        sides = {
            "daemon": lambda tag: daemon_round(daemon, bundle, n, daemon_c, tag, args.all_at_once),
            "raw": lambda tag: raw_round(args.runtime, raw_root, bundle, n, raw_c, tag, args.all_at_once),
        }
        for run in range(args.runs):
            results = {"daemon": [], "raw": [], "load": []}
            for r in range(args.rounds):
                # Each round starts on a quiet machine (or is flagged), and who goes first alternates: neither
                # side pays more often for the kernel's teardown of the round before.
                for kind in (("daemon", "raw") if (run * args.rounds + r) % 2 == 0 else ("raw", "daemon")):
                    load, idle = wait_quiet(args.settle)
                    results["load"].append((load, idle))
                    flag = ""
                    if idle < BUSY_IDLE:
                        flag = "  BUSY: the machine was not quiet; this round's figures are skewed"
                        busy_rounds.append((run + 1, r + 1, kind, load, idle))
                    print(f"run {run + 1} round {r + 1} {kind}: load {load:.2f}, {idle:.0%} idle before{flag}",
                          flush=True)
                    results[kind].append(sides[kind](f"{kind[0]}{run}x{r}"))
                print(f"run {run + 1} round {r + 1}: daemon {n / results['daemon'][-1][0]:.1f}/s, "
                      f"raw {n / results['raw'][-1][0]:.1f}/s", flush=True)
            runs.append(report_run(run, results, n))
    finally:
        kill_all_raw(args.runtime, raw_runtime_root(daemon.workdir, args.runtime))
        daemon.destroy()

    print()
    for kind in ("daemon", "raw"):
        durations = [d for run in runs for d in run["durations"][kind]]
        print(f"{kind} ({args.runtime}{' through containerd-tx' if kind == 'daemon' else ' run -d'}): "
              f"{median([run['rate'][kind] for run in runs]):.1f} containers/sec (median of {len(runs)} runs), "
              f"teardown of {n} {median([run['teardown'][kind] for run in runs]):.2f}s")
        print_timer("container-start-time", summary(durations))
    throughput = [run["throughput"] for run in runs]
    p99 = [run["p99"] for run in runs]
    cpu = {key: median([run["cpu"][key] for run in runs]) for key in runs[0]["cpu"]}
    print(f"\nper run: throughput ratio {', '.join(f'{x:.2f}' for x in throughput)} (median {median(throughput):.2f});"
          f" p99 ratio {', '.join(f'{x:.2f}' for x in p99)} (median {median(p99):.2f})")
    print(f"CPU per start (median of runs): daemon {cpu['daemon']:.2f} ms (reactor {cpu['reactor']:.2f}) + monitor "
          f"{cpu['monitor']:.2f} ms = {cpu['daemon'] + cpu['monitor']:.2f} ms; runtime {cpu['runtime']:.2f} ms "
          f"through the daemon, {cpu['raw_runtime']:.2f} ms raw")
    # On a machine the starts keep busy, the CPU bounds the throughput: this is the ratio the CPU alone allows.
    machine = cpu["machine"] or float("nan")
    print(f"whole machine CPU per start (median of runs; kernel threads included, steal left out): "
          f"{cpu['machine']:.1f} ms through the daemon, {cpu['raw_machine']:.1f} ms raw; daemon + monitor are "
          f"{(cpu['daemon'] + cpu['monitor']) / machine:.0%} of the first; raw/daemon "
          f"{cpu['raw_machine'] / machine:.2f} (the throughput ratio a CPU-bound machine allows)")
    print(f"daemon context switches per start (median of runs): {median([run['switches'] for run in runs]):.1f}")
    loads = [load for run in runs for load, _ in run["load"]]
    print(f"load before rounds: {min(loads):.2f}–{max(loads):.2f}")
    memory, cpu_cgroups = memory_cgroups()
    if memory is not None and cpu_cgroups is not None:
        print(f"memory cgroups: {cgroups_before[0]} before, {memory} after ({cpu_cgroups} cpu cgroups)")
    warn_of_memory_cgroups(memory_cgroup_census())
    if busy_rounds:
        print(f"WARNING: {len(busy_rounds)} of {2 * args.rounds * args.runs} rounds started on a busy machine "
              f"(less than {BUSY_IDLE:.0%} idle: "
              + ", ".join(f"run {ru} round {ro} {k} load {lo:.2f} {i:.0%} idle" for ru, ro, k, lo, i in busy_rounds[:6])
              + ("..." if len(busy_rounds) > 6 else "") + "); the ratios are skewed by the other work")
    d_rate = median([run["rate"]["daemon"] for run in runs])
    r_rate = median([run["rate"]["raw"] for run in runs])
    busy = f", BUSY {len(busy_rounds)}/{2 * args.rounds * args.runs} rounds" if busy_rounds else ""
    print(f"containers/sec {d_rate:.1f} raw {r_rate:.1f} ratio {median(throughput):.2f} "
          f"p99-ratio {median(p99):.2f} cpu/start daemon+monitor {cpu['daemon'] + cpu['monitor']:.2f}ms "
          f"runtime {cpu['runtime']:.2f}ms raw {cpu['raw_runtime']:.2f}ms machine {cpu['machine']:.1f}ms raw "
          f"{cpu['raw_machine']:.1f}ms ({shape} {os.path.basename(args.runtime)}, "
          f"{fs_type}, {len(runs)} runs of {args.rounds}, load {min(loads):.2f}–{max(loads):.2f}{busy})")


def warn_of_memory_cgroups(census, out=sys.stdout):
    """
    Warn when the kernel holds many memory cgroups that make every cgroup operation dearer: containers' memory
    cgroups left behind (empty folders; C{rmdir} removes them) or dying ones (removed, still charged).
    """
    if census is None:
        return
    if census["leftover"] >= LEFTOVER_CGROUPS_WARN:
        print(f"WARNING: {census['leftover']} empty memory cgroups that no other controller has were left behind "
              f"by deleted containers (e.g. {census['example']}); they make every cgroup operation dearer and the "
              "figures drift: remove them with rmdir (deepest first)", file=out)
    if census["dying"] > DYING_CGROUPS_WARN:
        print(f"WARNING: the kernel keeps {census['dying']} dying memory cgroups of removed containers; every "
              "cgroup operation is dearer while they last, so figures drift up over a long session (compare runs "
              "taken close together; `sync; echo 3 > /proc/sys/vm/drop_caches` releases some)", file=out)


def report_run(run, results, n):
    """One run's figures (rates are medians of its rounds; ratios from this run alone), printed."""
    rate, durations, teardown = {}, {}, {}
    for kind in ("daemon", "raw"):
        rate[kind] = median([n / wall for wall, _, _, _ in results[kind]])
        durations[kind] = [d for _, ds, _, _ in results[kind] for d in ds]
        teardown[kind] = median([t for _, _, t, _ in results[kind]])
    starts = n * len(results["daemon"])
    cpu = {key: ms(sum(c[key] for _, _, _, c in results["daemon"]), starts)
           for key in ("daemon", "reactor", "monitor", "runtime", "machine")}
    for key in ("runtime", "machine"):
        cpu["raw_" + key] = ms(sum(c[key] for _, _, _, c in results["raw"]), n * len(results["raw"]))
    switches = {key: sum(c[key] for _, _, _, c in results["daemon"]) / starts for key in ("switches", "preempted")}
    d_stats, r_stats = summary(durations["daemon"]), summary(durations["raw"])
    throughput = rate["daemon"] / rate["raw"]
    p99 = d_stats["99%"] / r_stats["99%"]
    loads = results["load"]
    print(f"run {run + 1}: daemon {rate['daemon']:.1f}/s raw {rate['raw']:.1f}/s, throughput ratio {throughput:.2f},"
          f" p99 {d_stats['99%'] * 1000:.0f}ms raw {r_stats['99%'] * 1000:.0f}ms ratio {p99:.2f}, median ratio "
          f"{d_stats['median'] / r_stats['median']:.2f}; CPU per start: daemon {cpu['daemon']:.2f} ms (reactor "
          f"{cpu['reactor']:.2f}) + monitor {cpu['monitor']:.2f} ms = {cpu['daemon'] + cpu['monitor']:.2f} ms, "
          f"runtime {cpu['runtime']:.2f} ms (raw {cpu['raw_runtime']:.2f} ms), whole machine {cpu['machine']:.1f} ms "
          f"(raw {cpu['raw_machine']:.1f} ms); daemon context switches per start "
          f"{switches['switches']:.1f} (+{switches['preempted']:.1f} preempted); load "
          f"{min(lo for lo, _ in loads):.2f}–{max(lo for lo, _ in loads):.2f}, idle "
          f"{min(i for _, i in loads):.0%}–{max(i for _, i in loads):.0%} before its rounds", flush=True)
    return {"rate": rate, "durations": durations, "teardown": teardown, "cpu": cpu, "throughput": throughput,
            "p99": p99, "load": loads, "switches": switches["switches"]}


if __name__ == "__main__":
    main()
