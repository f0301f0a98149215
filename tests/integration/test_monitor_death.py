"""
The acceptance crash test of the monitor's death (docs/architecture.md, Guarantees): real runc containers writing numbered
lines to FIFOs and files, exec'd processes, a terminal; the monitor SIGKILLed at seeded random moments.

No line is lost or doubled (sequence numbers per container), every exit is reported exactly once with its
true status, no zombie is left, no runtime state leaks, and the API answers again within about a second of
each kill (printed; asserted with a generous bound, the machine is loaded).  The same with the daemon and the
monitor killed together, asserting what the Guarantees table promises for that.

Replay a run with C{CTX_CRASH_SEED=<seed printed>}; C{CTX_CRASH_SCALE=N} multiplies the duration and the
number of kills for a longer soak.
"""

import os
import random
import select
import signal
import threading
import time

import grpc
from twisted.trial.unittest import TestCase

from containerd_tx.api import containerd_pb2 as pb
from tests.support import bundles, processes
from tests.support.daemon import Daemon, create_request, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id

SCALE = max(1, int(os.environ.get("CTX_CRASH_SCALE", "1")))
#: Generous: the issue asks for about 1 s; a loaded 2-core machine runs 50 containers meanwhile.
UNAVAILABLE_LIMIT = 10.0

# Writes N numbered lines, one every 10 ms (a read timeout on a FIFO nobody writes: no fork per line), then
# exits with status S.
WRITER = 'mkfifo /tmp/t; exec 3<>/tmp/t; i=0; while [ $i -lt {n} ]; do echo $i; i=$((i+1)); read -t 0.01 x <&3; done; exit {s}'


def seed():
    value = int(os.environ.get("CTX_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nCTX_CRASH_SEED={value}")
    return value


class FifoReader:
    """Reads every FIFO given to it in a thread, keeping all the bytes of each."""

    def __init__(self):
        self.data = {}
        self._fds = {}
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, name, path):
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with self._lock:
            self._fds[fd] = name
            self.data[name] = bytearray()
        return fd

    def text(self, name):
        with self._lock:
            return bytes(self.data[name])

    def _run(self):
        while not self._stop:
            with self._lock:
                fds = list(self._fds)
            if not fds:
                time.sleep(0.01)
                continue
            ready, _, _ = select.select(fds, [], [], 0.05)
            for fd in ready:
                try:
                    chunk = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                with self._lock:
                    self.data[self._fds[fd]] += chunk

    def close(self):
        self._stop = True
        self._thread.join(5)
        for fd in self._fds:
            os.close(fd)


def numbers(data):
    """The numbered lines of C{data} (a trailing partial line is an error)."""
    text = data.decode()
    assert text == "" or text.endswith("\n"), f"partial last line: {text[-40:]!r}"
    return [int(line) for line in text.splitlines()]


class MonitorDeathTestCase(TestCase):

    def setUp(self):
        self.daemon = Daemon.for_test(self, args=("--start-timeout", "20s"))
        self.rootfs = bundles.make_rootfs(os.path.join(self.daemon.workdir, "rootfs"))
        self.events = EventCollector(self.daemon.stub)
        self.addCleanup(lambda: self.events.close())
        self.fifos = FifoReader()
        self.addCleanup(self.fifos.close)
        self._n = 0

    def path(self, name):
        return os.path.join(self.daemon.workdir, name)

    def bundle(self, *args, **kw):
        self._n += 1
        return bundles.make_bundle(self.path(f"bundle{self._n}"), args, self.rootfs, **kw)

    def create(self, container_id, *args, terminal=False, **request):
        bundle = self.bundle(*args, terminal=terminal)
        return self.daemon.stub.CreateContainer(create_request(container_id, bundle, **request),
                                                timeout=60).container

    def exits(self):
        """(id, pid) -> [statuses] of every exit event seen."""
        found = {}
        for event in self.events.matching("exit"):
            found.setdefault((event.id, event.pid), []).append(event.status)
        return found

    def probe(self, container_id):
        """Pause and resume C{container_id} (both need the monitor: they run the runtime); retried."""
        while True:
            try:
                for status in ("paused", "running"):
                    self.daemon.stub.UpdateContainer(
                        pb.UpdateContainerRequest(id=container_id, pid="init", status=status), timeout=30)
                return
            except grpc.RpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                time.sleep(0.05)

    def new_monitor(self, old):
        """Wait for a monitor other than C{old} to run and answer; its pid."""
        return wait_for(lambda: (lambda pid: pid if pid and pid != old and processes.alive(pid) else None)(
            self.daemon.monitor_pid()), timeout=30, interval=0.01, message="a new monitor")

    def assert_no_zombies(self, *parents):
        for parent in parents:
            wait_for(lambda: processes.zombies(parent) == [], timeout=10,
                     message=f"no zombie children of {parent} (have {processes.zombies(parent)})")

    def assert_nothing_left(self):
        wait_for(lambda: self.daemon.runtime_containers() == {}, timeout=30,
                 message=f"no runtime state (have {self.daemon.runtime_containers()})")
        containers = os.path.join(self.daemon.state_dir, "containers")
        wait_for(lambda: not os.path.isdir(containers) or os.listdir(containers) == [], timeout=30,
                 message=f"no container folders (have {os.listdir(containers)})")


class MonitorKilledTests(MonitorDeathTestCase):

    def test_monitor_sigkilled_20_times(self):
        """
        50 containers (half to FIFOs, half to files), 4 exec'd writers, a terminal; the monitor SIGKILLed 20
        times at seeded random moments: nothing lost, doubled or misreported.
        """
        rng = random.Random(seed())
        duration = 25.0 * SCALE
        kills = 20 * SCALE
        lines = int(duration * 80)
        expected = {}  # (id, pid) -> (status, "fifo"/"file", name, lines)
        daemon_pid = self.daemon.process.pid

        probe = unique_id("probe")
        self.create(probe, "sleep", "100000")
        host = unique_id("host")
        self.create(host, "sleep", "100000")
        expected[(host, "init")] = (137, None, None, 0)

        started = time.monotonic()
        for i in range(50):
            cid = unique_id(f"w{i}")
            n = lines if i % 5 else rng.randint(lines // 8, lines)  # a fifth end early
            status = rng.randint(0, 120)
            kind = "fifo" if i % 2 == 0 else "file"
            out = self.path(f"{cid}.out")
            if kind == "fifo":
                os.mkfifo(out)
                self.fifos.add(cid, out)
            self.create(cid, "sh", "-c", WRITER.format(n=n, s=status), stdout=out, stderr=self.path(f"{cid}.err"))
            expected[(cid, "init")] = (status, kind, out, n)
        for j in range(4):
            name = f"exec{j}"
            kind = "fifo" if j % 2 == 0 else "file"
            out = self.path(f"{host}-{name}.out")
            if kind == "fifo":
                os.mkfifo(out)
                self.fifos.add(f"{host}/{name}", out)
            status = 10 + j
            self.daemon.stub.AddProcess(pb.AddProcessRequest(
                id=host, pid=name, args=["sh", "-c", WRITER.format(n=lines, s=status).replace("/tmp/t", f"/tmp/{name}")],
                stdout=out), timeout=60)
            expected[(host, name)] = (status, kind, out, lines)
        tty = unique_id("tty")
        tty_in, tty_out = self.path("tty.in"), self.path("tty.out")
        os.mkfifo(tty_in)
        os.mkfifo(tty_out)
        self.fifos.add("tty", tty_out)
        tty_writer = os.open(tty_in, os.O_RDWR)
        self.addCleanup(os.close, tty_writer)
        self.create(tty, "sh", terminal=True, stdin=tty_in, stdout=tty_out)
        expected[(tty, "init")] = (0, None, None, 0)
        print(f"{len(expected)} processes started in {time.monotonic() - started:.1f}s")

        def tty_round(k):
            os.write(tty_writer, f"echo X$(({k}+1000))\n".encode())
            wait_for(lambda: f"X{k + 1000}\r\n".encode() in self.fifos.text("tty"), timeout=UNAVAILABLE_LIMIT * 3,
                     message=f"the terminal to answer round {k}")

        tty_round(0)
        moments = sorted(rng.uniform(0.3, duration * 0.9) for _ in range(kills))
        begin = time.monotonic()
        monitor = self.daemon.monitor_pid()
        monitors = {monitor}
        unavailable = []
        for k, moment in enumerate(moments, 1):
            delay = begin + moment - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the seeded random moment itself, not a wait for a condition
            killed_at = time.monotonic()
            os.kill(monitor, signal.SIGKILL)
            self.probe(probe)
            unavailable.append(time.monotonic() - killed_at)
            monitor = self.new_monitor(monitor)
            monitors.add(monitor)
            tty_round(k)
            self.assertIsNone(self.daemon.process.poll(), "the daemon must keep serving")
        print("kill moments (s): " + " ".join(f"{m:.2f}" for m in moments))
        print("API unavailable after each kill (s): " + " ".join(f"{u:.2f}" for u in unavailable))
        print(f"max {max(unavailable):.2f}s, median {sorted(unavailable)[len(unavailable) // 2]:.2f}s")
        self.assertEqual(len(monitors), kills + 1)
        for u in unavailable:
            self.assertLess(u, UNAVAILABLE_LIMIT)

        os.write(tty_writer, b"exit 0\n")
        # Every writer ends by itself; the host (and with it its exec'd processes) is killed.
        for (cid, pid), (status, kind, out, n) in expected.items():
            if kind is not None and pid == "init":
                self.events.wait("exit", cid, "init", timeout=duration * 3 + 60)
        for name in ("exec0", "exec1", "exec2", "exec3"):
            self.events.wait("exit", host, name, timeout=duration * 3 + 60)
        self.daemon.stub.Signal(pb.SignalRequest(id=host, pid="init", signal=9), timeout=30)
        self.events.wait("exit", host, "init", timeout=60)
        self.events.wait("exit", tty, "init", timeout=60)
        self.daemon.stub.Signal(pb.SignalRequest(id=probe, pid="init", signal=9), timeout=30)
        self.events.wait("exit", probe, "init", timeout=60)

        exits = self.exits()
        checked = 0
        for (cid, pid), (status, kind, out, n) in sorted(expected.items()):
            self.assertEqual(exits.get((cid, pid)), [status], f"exit of {cid}/{pid}")
            if kind == "fifo":
                name = cid if pid == "init" else f"{cid}/{pid}"
                wait_for(lambda: self.fifos.text(name).count(b"\n") >= n, timeout=30,
                         message=f"all {n} lines of {name}")
                got = numbers(self.fifos.text(name))
            elif kind == "file":
                with open(out, "rb") as f:
                    got = numbers(f.read())
            else:
                continue
            self.assertEqual(got, list(range(n)), f"lines of {cid}/{pid} ({kind})")
            checked += len(got)
        print(f"{checked} numbered lines checked over {len(expected)} processes; {kills} monitor kills; "
              f"{len(monitors)} monitors")
        self.assertEqual(exits.get((probe, "init")), [137])
        self.assert_no_zombies(daemon_pid, monitor)
        self.assert_nothing_left()
        self.assertIsNone(self.daemon.process.poll())


class DaemonAndMonitorKilledTests(MonitorDeathTestCase):

    def test_daemon_and_monitor_killed_together(self):
        """
        The daemon and the monitor SIGKILLed together, three times at seeded random moments: an exit the
        monitor recorded is reported once with its true status; containers running at the kill are listed
        again with their pid and their exit is reported once (status 255: nobody alive could read it); new
        containers have every guarantee, also across a later monitor kill.
        """
        rng = random.Random(seed())
        rounds = 3 * SCALE
        for k in range(rounds):
            # A container whose exit is recorded by the monitor while the daemon is stopped (not yet handled).
            recorded = unique_id(f"recorded{k}")
            status = rng.randint(1, 120)
            recorded_pid = self.create(recorded, "sh", "-c", f"trap 'exit {status}' TERM; sleep 100000 & wait"
                                       ).processes[0].systemPid
            # Containers running through the kill.
            running = [unique_id(f"run{k}-{i}") for i in range(3)]
            pids = {cid: self.create(cid, "sleep", "100000").processes[0].systemPid for cid in running}
            time.sleep(rng.uniform(0, 0.5))  # a seeded random moment
            os.kill(self.daemon.process.pid, signal.SIGSTOP)
            try:
                record = os.path.join(self.daemon.state_dir, "containers", recorded, "exit-init.json")
                os.kill(recorded_pid, signal.SIGTERM)
                wait_for(lambda: os.path.exists(record), message="the monitor to record the exit")
                monitor = self.daemon.monitor_pid()
                os.kill(monitor, signal.SIGKILL)
                self.daemon.process.send_signal(signal.SIGKILL)
            finally:
                os.kill(self.daemon.process.pid, signal.SIGCONT)
            self.daemon.process.wait()
            processes.reap_orphans()
            self.events.close()
            self.daemon.start()
            self.events = EventCollector(self.daemon.stub, pb.EventsRequest(timestamp={"seconds": 1}))
            # The recorded exit: once, true status.
            self.assertEqual(self.events.wait("exit", recorded, "init").status, status)
            # The running ones are listed again with their pid.
            state = {c.id: c for c in self.daemon.stub.State(pb.StateRequest(), timeout=10).containers}
            for cid in running:
                self.assertEqual(state[cid].processes[0].systemPid, pids[cid])
            # Their exit: once, 255.
            for cid in running:
                self.daemon.stub.Signal(pb.SignalRequest(id=cid, pid="init", signal=9), timeout=30)
                self.assertEqual(self.events.wait("exit", cid, "init").status, 255)
            # A new container has every guarantee again, also across a monitor kill.
            fresh = unique_id(f"fresh{k}")
            out = self.path(f"{fresh}.out")
            self.create(fresh, "sh", "-c", WRITER.format(n=100, s=k + 3), stdout=out)
            monitor = self.daemon.monitor_pid()
            os.kill(monitor, signal.SIGKILL)
            self.new_monitor(monitor)
            self.assertEqual(self.events.wait("exit", fresh, "init").status, k + 3)
            with open(out, "rb") as f:
                self.assertEqual(numbers(f.read()), list(range(100)))
            exits = self.exits()
            for cid in [recorded, fresh, *running]:
                self.assertEqual(len(exits[(cid, "init")]), 1, f"{cid} reported once")
            processes.reap_orphans()
        self.assert_no_zombies(self.daemon.process.pid, self.daemon.monitor_pid())
        self.assert_nothing_left()
