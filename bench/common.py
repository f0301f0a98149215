"""
Shared pieces of the benchmarks: a daemon subprocess, bundles, statistics in the original's layout.
"""

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.support import bundles, processes  # noqa: E402
from tests.support.daemon import Daemon  # noqa: E402


def percentile(sorted_values, p):
    """The p-th percentile (0-100) of sorted values, linear interpolation."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * p / 100.0
    low, high = math.floor(k), math.ceil(k)
    if low == high:
        return sorted_values[int(k)]
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (k - low)


def summary(values):
    """count, min, max, mean, stddev, median, 75%, 95%, 99%, 99.9% of a list of seconds."""
    values = sorted(values)
    n = len(values)
    mean = sum(values) / n if n else float("nan")
    stddev = math.sqrt(sum((v - mean) ** 2 for v in values) / n) if n else float("nan")
    return {
        "count": n, "min": values[0] if n else float("nan"), "max": values[-1] if n else float("nan"),
        "mean": mean, "stddev": stddev, "median": percentile(values, 50), "75%": percentile(values, 75),
        "95%": percentile(values, 95), "99%": percentile(values, 99), "99.9%": percentile(values, 99.9),
    }


def print_timer(name, stats, out=sys.stdout):
    """Print a timer's statistics as the original daemon's metrics did."""
    print(f"timer {name}", file=out)
    print(f"  count:       {stats['count']:>12}", file=out)
    for key in ("min", "max", "mean", "stddev", "median", "75%", "95%", "99%", "99.9%"):
        print(f"  {key + ':':<12} {stats[key] * 1000:>12.2f}ms", file=out)


class BenchDaemon(Daemon):
    """A daemon for benchmarks: its own temp dir, no test case; stop() and destroy() by hand."""

    @classmethod
    def start_new(cls, args=(), runtime="runc"):
        reason = bundles.requirements_missing(runtime)
        if reason:
            raise SystemExit(f"bench: {reason}")
        processes.become_subreaper()
        workdir = tempfile.mkdtemp(prefix="ctx-bench-")
        daemon = cls(workdir, args, runtime)
        daemon.start()
        return daemon


def shared_rootfs(workdir):
    """One busybox rootfs for every bundle of a run."""
    return bundles.make_rootfs(os.path.join(workdir, "rootfs"))


def raw_runtime_root(workdir, runtime):
    path = os.path.join(workdir, f"raw-{runtime}")
    os.makedirs(path, exist_ok=True)
    return path


def kill_all_raw(runtime, root):
    """Remove every container a raw round left (forced)."""
    out = subprocess.run([runtime, "--root", root, "list", "-q"], capture_output=True, text=True)
    for container_id in out.stdout.split():
        subprocess.run([runtime, "--root", root, "delete", "--force", container_id], capture_output=True)


def reap_children():
    """Reap orphans re-parented to the benchmark (a child subreaper)."""
    processes.reap_orphans()


def cleanup_dir(path):
    shutil.rmtree(path, ignore_errors=True)


def wait_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        processes.reap(pid)
        time.sleep(0.01)


__all__ = ["BenchDaemon", "print_timer", "summary", "shared_rootfs", "signal"]
