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
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.support.runtime_state import remove_all  # noqa: E402

#: The runtime's standard location for busybox-static, from which scripts/make-bundle builds a rootfs.
BUSYBOX = "/bin/busybox"
PR_SET_CHILD_SUBREAPER = 36


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


def requirements_missing(runtime="runc"):
    """A reason why real containers cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to run real containers"
    if shutil.which(runtime) is None:
        return f"{runtime} is not installed (run scripts/setup-system)"
    if not os.path.exists(BUSYBOX):
        return "busybox-static is not installed (run scripts/setup-system)"
    return None


def sleeper_bundle(workdir, args=("sleep", "100000")):
    """
    A busybox bundle in C{workdir}/bundle whose container runs C{args}, made by scripts/make-bundle (the
    same bundles the README shows users). @return: its path.
    """
    path = os.path.join(workdir, "bundle")
    subprocess.run([os.path.join(REPO, "scripts", "make-bundle"), path, *args], check=True,
                   stdout=subprocess.DEVNULL)
    return path


def filesystem_type(path):
    """The type of the filesystem holding C{path} (ext4, tmpfs, ...), as C{findmnt} names it."""
    out = subprocess.run(["findmnt", "--noheadings", "--output", "FSTYPE", "--target", path],
                         capture_output=True, text=True)
    # Over-mounted paths list several lines; the last is the one in effect.
    lines = out.stdout.split()
    return lines[-1] if lines else "unknown"


def become_subreaper():
    """Adopt orphaned descendants (runtime helpers, container inits) so they can be reaped here."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_children():
    """Reap every exited child (orphans re-parented to the benchmark, a child subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class BenchDaemon:
    """
    One daemon for a benchmark, as a user runs it: the C{containerd-tx} console script (or C{twistd -n
    containerd} where it is not installed) on a temp state dir and socket, metrics dump off.

    @ivar workdir: the temp folder holding its state dir, socket, log and the benchmark's bundles.
    @ivar stub: a C{types.API} stub on its socket, once serving.
    """

    def __init__(self, workdir, args=(), runtime="runc"):
        self.workdir = workdir
        self.state_dir = os.path.join(workdir, "state")
        self.socket = os.path.join(workdir, "containerd.sock")
        self.address = "unix://" + self.socket
        self.runtime = runtime
        self.args = list(args)
        self.log_path = os.path.join(workdir, "daemon.log")
        self.process = None
        self.stub = None
        self._channel = None

    @classmethod
    def start_new(cls, args=(), runtime="runc", parent=None):
        """
        @param parent: the folder to work in (state dir, runtime roots, bundles); default C{$TMPDIR} or /tmp.
        """
        reason = requirements_missing(runtime)
        if reason:
            raise SystemExit(f"bench: {reason}")
        become_subreaper()
        daemon = cls(tempfile.mkdtemp(prefix="ctx-bench-", dir=parent), args, runtime)
        daemon.start()
        return daemon

    def command(self):
        """The daemon's command line."""
        console = shutil.which("containerd-tx")
        prefix = [console] if console else [shutil.which("twistd") or "twistd", "-n", "--pidfile=", "containerd"]
        return [*prefix, "--state-dir", self.state_dir, "--listen", self.socket, "--metrics-interval", "0",
                "--runtime", self.runtime, *self.args]

    def start(self, timeout=60.0):
        """Start the daemon and wait until its health check says SERVING."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from containerd_tx.api import containerd_pb2_grpc as pb_grpc

        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.workdir)
        self._channel = grpc.insecure_channel(self.address)
        health = health_pb2_grpc.HealthStub(self._channel)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"bench: the daemon exited with {self.process.returncode}; log {self.log_path}")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: the daemon did not serve within {timeout:.0f}s; log {self.log_path}")
            time.sleep(0.05)
        self.stub = pb_grpc.APIStub(self._channel)

    def monitor_pid(self):
        """The monitor process's pid, or None."""
        try:
            with open(os.path.join(self.state_dir, "monitor.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def destroy(self):
        """Kill the daemon, its monitor and every container it left; remove its folder."""
        if self._channel is not None:
            self._channel.close()
        monitor = self.monitor_pid()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        root = os.path.join(self.state_dir, "runtime", os.path.basename(self.runtime))
        if os.path.isdir(root):
            kill_all_raw(self.runtime, root)
        if monitor:
            try:
                os.kill(monitor, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_gone(monitor)
        reap_children()
        from containerd_tx import scratch

        folder = scratch.default_directory(self.state_dir)  # a killed daemon leaves its scratch folder
        if folder is not None:
            cleanup_dir(folder)
        cleanup_dir(self.workdir)


def raw_runtime_root(workdir, runtime):
    path = os.path.join(workdir, f"raw-{runtime}")
    os.makedirs(path, exist_ok=True)
    return path


def kill_all_raw(runtime, root):
    """
    Remove every container under a runtime root (forced), also those whose delete the daemon had pending or
    was running when it was killed: a C{list} taken during a delete fails as a whole, and their cgroups would
    stay for good.
    """
    left = remove_all(runtime, root)
    if left:
        print(f"bench: WARNING: {runtime} could not delete {len(left)} containers under {root}, e.g. {left[0]}",
              flush=True)


def cleanup_dir(path):
    shutil.rmtree(path, ignore_errors=True)


def wait_gone(pid, timeout=10.0):
    """Wait until process C{pid} is gone (reaping it if it is our child), at most C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.01)




# Process figures from /proc, for the memory, idle-cost and fan-out benchmarks.

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_memory(pid):
    """
    (RSS, PSS, PSS of anonymous memory) of a process in kB, from /proc/<pid>/smaps_rollup.

    PSS moves when other processes map the same files (another Python starting or ending changes the
    daemon's share of libpython); Pss_Anon (kernel >= 5.9; else Anonymous) does not, so it is the steadier
    measure of what the process itself allocates.
    """
    figures = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                figures[parts[0]] = int(parts[1])
    return figures["Rss:"], figures["Pss:"], figures.get("Pss_Anon:", figures.get("Anonymous:", 0))


def proc_fds(pid):
    """How many file descriptors a process has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_threads(pid):
    """How many threads a process has."""
    return len(os.listdir(f"/proc/{pid}/task"))


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads; waited-for children excluded), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def proc_cpu_split(pid):
    """
    CPU seconds of a process: C{(own, children)}. C{own} is utime + stime of all its threads, live and ended
    (the C{/proc/<pid>/stat} totals); C{children} is cutime + cstime, the CPU of the children it has waited
    for (for the monitor: every runtime command it spawned and reaped). (0.0, 0.0) once it is gone.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return ((int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
            (int(fields[13]) + int(fields[14])) / CLOCK_TICKS)


def proc_task_cpu(pid):
    """
    utime + stime of each live thread of a process, from C{/proc/<pid>/task/*/stat}: C{{tid: seconds}}. The
    main thread (tid == pid) is the reactor in the daemon.
    """
    seconds = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return seconds
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # that thread ended
        seconds[int(tid)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def proc_context_switches(pid):
    """
    Voluntary and involuntary context switches of a process's live threads, summed from
    C{/proc/<pid>/task/*/status}: C{(voluntary, involuntary)}. A voluntary one is a thread going to sleep (a
    hand-off to another thread, a wait for I/O); an involuntary one is a thread preempted.
    """
    voluntary = involuntary = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0, 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        involuntary += int(line.split()[1])
        except OSError:
            continue  # that thread ended
    return voluntary, involuntary


def memory_cgroups(path="/proc/cgroups"):
    """
    C{(memory cgroups, cpu cgroups)} the kernel holds now, from C{/proc/cgroups} (None where a controller is
    not listed). Memory cgroups of removed containers linger, dying, while pages are charged to them; past a
    few hundred of them every cgroup operation gets dearer, so long benchmark sessions drift.
    """
    counts = {}
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and not line.startswith("#"):
                    counts[fields[0]] = int(fields[2])
    except (OSError, ValueError):
        pass
    return counts.get("memory"), counts.get("cpu")


def memory_cgroup_census(memory="/sys/fs/cgroup/memory", cpu="/sys/fs/cgroup/cpu", proc_cgroups="/proc/cgroups"):
    """
    The kernel's memory cgroups in three kinds, on a cgroup v1 host: C{{"live": folders under the memory
    hierarchy, "dying": removed ones the kernel still holds (/proc/cgroups counts them too), "leftover": empty
    folders without children that the cpu hierarchy does not have, "example": one leftover's path}}. Runtimes
    make a container's cgroup in every hierarchy and remove it from every one; memory-only empty leaves are
    containers' memory cgroups left behind. Unlike dying ones they are removed with a plain C{rmdir}, and both
    make every cgroup operation dearer. None where there is no v1 memory hierarchy.
    """
    total, _ = memory_cgroups(proc_cgroups)
    if total is None or not os.path.isdir(memory):
        return None
    live, leftover, example = 1, 0, None  # the hierarchy's root is a cgroup too
    for folder, children, _ in os.walk(memory):
        if folder != memory:
            live += 1
            if not children and not _has_processes(folder) and not os.path.isdir(
                    os.path.join(cpu, os.path.relpath(folder, memory))):
                leftover += 1
                example = example or folder
    return {"live": live, "dying": max(total - live, 0), "leftover": leftover, "example": example}


def _has_processes(folder):
    try:
        with open(os.path.join(folder, "cgroup.procs")) as f:
            return bool(f.read().strip())
    except OSError:
        return True  # gone or unreadable: not counted as left behind


def machine_cpu_seconds(path="/proc/stat"):
    """
    CPU seconds the whole machine has spent busy since boot, all CPUs, from the first line of C{/proc/stat}:
    user, nice, system, irq and softirq time (guest time is inside user and nice). Idle, I/O wait and steal
    (time the hypervisor gave to someone else) are left out. Over a window this is everything starting
    containers cost, kernel threads included (cgroup and namespace work the runtime's own counters do not
    show).
    """
    user, nice, system, _idle, _iowait, irq, softirq, _steal = _cpu_fields(path)
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def machine_busy(window=1.0):
    """
    How busy the machine is now: C{(load1, idle)}, the 1-minute load average and the fraction of all CPU
    time that was idle over C{window} seconds.
    """
    idle0, total0 = _cpu_times()
    time.sleep(window)
    idle1, total1 = _cpu_times()
    with open("/proc/loadavg") as f:
        load1 = float(f.read().split()[0])
    return load1, ((idle1 - idle0) / (total1 - total0) if total1 > total0 else 1.0)


def proc_children(pid):
    """Pids of the direct children of a process (every thread's children)."""
    children = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                children.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return children


def proc_name(pid):
    """A process's command line, shortened, for reports."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return " ".join(f.read().decode(errors="replace").split("\0")).strip()[:80] or f"[{pid}]"
    except OSError:
        return f"[{pid} gone]"


def load_average():
    """The 1, 5 and 15 minute load averages as text (what uptime prints)."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def create_containers(stub, bundle, ids, concurrency, timeout=300):
    """Create (and start) containers through the API, `concurrency` at a time; return the wall seconds."""
    from concurrent.futures import ThreadPoolExecutor

    from containerd_tx.api import containerd_pb2 as pb

    errors = []

    def one(container_id):
        try:
            stub.CreateContainer(pb.CreateContainerRequest(id=container_id, bundlePath=bundle), timeout=timeout)
        except Exception as e:  # reported, never hidden
            errors.append(f"{container_id}: {e}")

    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        list(pool.map(one, ids))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, do not create the rest first
    if errors:
        raise SystemExit(f"bench: {len(errors)} of {len(ids)} creates failed, first: {errors[0]}")
    return time.perf_counter() - started


def kill_all_containers(stub, concurrency=10, timeout=600):
    """
    Tear down through the API: Signal 9 to the init of every container State lists, then wait until State is
    empty. Returns (containers killed, seconds).
    """
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    from containerd_tx.api import containerd_pb2 as pb

    started = time.perf_counter()
    ids = [c.id for c in stub.State(pb.StateRequest(), timeout=60).containers]

    def kill(container_id):
        try:
            stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=9), timeout=60)
        except grpc.RpcError:
            pass  # already exited: State tells

    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        list(pool.map(kill, ids))
    finally:
        pool.shutdown(cancel_futures=True)
    deadline = time.monotonic() + timeout
    while stub.State(pb.StateRequest(), timeout=60).containers:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: containers still listed {timeout}s after SIGKILL")
        time.sleep(0.05)
    return len(ids), time.perf_counter() - started


__all__ = [
    "BenchDaemon", "print_timer", "summary", "sleeper_bundle", "filesystem_type", "signal", "proc_memory", "proc_fds", "proc_threads",
    "proc_cpu_seconds", "proc_children", "load_average", "create_containers", "kill_all_containers",
    "proc_cpu_split", "proc_task_cpu", "machine_busy", "machine_cpu_seconds", "settle",
]


def _cpu_fields(path="/proc/stat"):
    """All CPUs' user, nice, system, idle, iowait, irq, softirq and steal ticks (guest is inside user, nice)."""
    with open(path) as f:
        return [int(x) for x in f.readline().split()[1:9]]


def _cpu_times():
    fields = _cpu_fields()
    idle = fields[3] + fields[4]  # idle + iowait
    return idle, sum(fields)


def settle(idle_fraction=0.9, window=0.5, limit=15.0):
    """
    Wait until the machine is quiet (at least C{idle_fraction} of all CPU time idle over C{window} seconds), at
    most C{limit} seconds: a round must not pay for the cgroup and process teardown the kernel is still doing
    for the previous one. @return: the seconds waited.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit:
        idle0, total0 = _cpu_times()
        time.sleep(window)
        idle1, total1 = _cpu_times()
        if total1 > total0 and (idle1 - idle0) / (total1 - total0) >= idle_fraction:
            return time.monotonic() - started
    print(f"bench: the machine did not become quiet within {limit:.0f}s; going on anyway", flush=True)
    return time.monotonic() - started
