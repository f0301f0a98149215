"""
ctr's latency as a user feels it: the median wall time of N runs (default 20) of

  - `python3 -c pass`                  the floor: starting the interpreter
  - `ctr --version`                    no daemon, nothing of gRPC loaded
  - a Tab (`ctr containers k<Tab>`)    what the completion script runs per Tab
  - `ctr version`                      one call to the daemon
  - `ctr containers`                   State of 100 running containers (--containers)

against a real daemon with real runc containers, all in one run. Then, for the commands that call the
daemon, where the time goes: interpreter, click and ctr, gRPC, the generated code, and the connection and
the call themselves (measured inside one process), so that a target out of reach is explained.

  python3 bench/ctr_latency.py [--runs 20] [--containers 100]

Targets (issue 18): <= 100 ms for --version and a Tab, <= 250 ms for commands that call the daemon.
"""

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from bench.common import (  # noqa: E402
    BenchDaemon, cleanup_dir, create_containers, kill_all_containers, load_average, reap_children, sleeper_bundle,
)

#: How a Tab runs ctr: the bash completion script sets these (here: `ctr containers k<Tab>`).
TAB = {"_CTR_COMPLETE": "bash_complete", "COMP_WORDS": "ctr containers k", "COMP_CWORD": "2"}

def ctr_command():
    """The ctr a user runs: the console script installed with this checkout, else `python3 -m ctr.main`."""
    script = os.path.join(sysconfig.get_path("scripts"), "ctr")
    if os.path.exists(script):
        with open(script, "rb") as f:
            first = f.readline()
        if first.startswith(b"#!") and b"python" in first:
            return [script]
    return [sys.executable, "-m", "ctr.main"]


def median_ms(command, runs, env=None, expect=0):
    """Run C{command} C{runs} times (after one warm-up); @return: the median wall time in ms."""
    environment = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
    times = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(command, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=REPO)
        elapsed = time.perf_counter() - started
        if done.returncode != expect:
            raise SystemExit(f"bench: {' '.join(command)} exited {done.returncode}: {done.stderr.decode()[-300:]}")
        if attempt:
            times.append(elapsed * 1000)
    return statistics.median(times)


def call_ms(address, runs, call):
    """@return: median ms of connect + one call + close, inside one process where everything is imported."""
    code = f"""
import statistics, sys, time
from ctr import client
from containerd_tx.api import containerd_pb2
address = client.parse_address({address!r})
times = []
for _ in range({runs} + 1):
    started = time.perf_counter()
    connection = client.connect(address, 5.0)
    connection.api.{call}
    connection.close()
    times.append((time.perf_counter() - started) * 1000)
print(statistics.median(times[1:]))
"""
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
                          text=True, check=True, cwd=REPO)
    return float(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per command (median; one more as warm-up)")
    parser.add_argument("--containers", type=int, default=100, help="containers listed by `ctr containers`")
    args = parser.parse_args()

    ctr = ctr_command()
    print(f"load average at start: {load_average()} ({os.cpu_count()} cores); ctr is {' '.join(ctr)}; "
          f"median of {args.runs} runs", flush=True)
    daemon = BenchDaemon.start_new()
    try:
        bundle = sleeper_bundle(daemon.workdir)
        wall = create_containers(daemon.stub, bundle, [f"lat-{i}" for i in range(args.containers)], 10)
        print(f"{args.containers} containers started in {wall:.1f}s", flush=True)
        at = ["--address", daemon.address]
        rows = [
            ("python3 -c pass (floor)", median_ms([sys.executable, "-c", "pass"], args.runs), None),
            ("ctr --version", median_ms(ctr + ["--version"], args.runs), 100),
            ("Tab: ctr containers k<Tab>", median_ms(ctr, args.runs, env=TAB), 100),
            ("ctr version", median_ms(ctr + at + ["version"], args.runs), 250),
            (f"ctr containers ({args.containers} containers)", median_ms(ctr + at + ["containers"], args.runs), 250),
            ("Tab of a container id (asks the daemon)",
             median_ms(ctr, args.runs, env=dict(TAB, COMP_WORDS="ctr containers kill lat-1", COMP_CWORD="3",
                                                CONTAINERD_ADDRESS=daemon.address)), None),
        ]
        print(f"\n{'command':<44} {'median':>9}   target")
        for name, ms, target in rows:
            verdict = "" if target is None else f"<= {target} ms  {'met' if ms <= target else 'NOT MET'}"
            print(f"{name:<44} {ms:>6.1f} ms   {verdict}", flush=True)

        py = [sys.executable, "-c"]
        stages = [
            ("interpreter (python3 -c pass)", median_ms(py + ["pass"], args.runs)),
            ("+ click", median_ms(py + ["import click"], args.runs)),
            ("+ ctr's modules (import ctr.main)", median_ms(py + ["import ctr.main"], args.runs)),
            ("+ protobuf and the generated messages",
             median_ms(py + ["import ctr.main; from containerd_tx.api import containerd_pb2"], args.runs)),
            ("+ gRPC and the stubs",
             median_ms(py + ["import ctr.main; from containerd_tx.api import containerd_pb2_grpc"], args.runs)),
        ]
        print("\nwhere the time of a daemon command goes (cumulative imports, then the call in-process):")
        previous = 0.0
        for name, ms in stages:
            print(f"  {name:<42} {ms:>6.1f} ms  (+{ms - previous:.1f})")
            previous = ms
        connect_version = call_ms(daemon.address, args.runs, "GetServerVersion(containerd_pb2.GetServerVersionRequest())")
        connect_state = call_ms(daemon.address, args.runs, "State(containerd_pb2.StateRequest())")
        print(f"  {'connect + health + GetServerVersion':<42} {connect_version:>6.1f} ms")
        print(f"  {f'connect + health + State ({args.containers} containers)':<42} {connect_state:>6.1f} ms")
        killed, seconds = kill_all_containers(daemon.stub)
        print(f"\nteardown: {killed} containers killed in {seconds:.1f}s; load average at end: {load_average()}")
    finally:
        daemon.destroy()
        reap_children()
        cleanup_dir(daemon.workdir)


if __name__ == "__main__":
    main()
