"""
Crash consistency: the daemon is SIGKILLed at random moments while clients start and stop 100 containers,
and restarted each time. After every restart, and at the end:

  - the runtime (runc list) and the daemon (State) know the same containers, none twice;
  - the state dir holds no torn or orphaned records (no temporary files; every containers/<id>/ has a
    readable container.json and belongs to a container the daemon lists);
  - every container that ran has exactly one C{exit} event with its true status, collected across the
    restarts by resuming Events from the last timestamp seen, as a client would; a create cut short by the
    crash (UNAVAILABLE) left either a whole container (then handled like the others) or nothing;
  - the monitor survived every crash and has no zombie children; at the end containers/ is empty.

The schedule (what each container runs, where the kills land) comes from random.Random(seed): the seed is
printed, and CTX_CRASH_SEED=<n> replays a schedule.
"""

import json
import os
import queue
import random
import signal
import subprocess
import threading
import time

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from twisted.trial.unittest import SkipTest, TestCase

from containerd_tx.api import containerd_pb2 as pb
from containerd_tx.api import containerd_pb2_grpc as pb_grpc
from tests.support import bundles, processes
from tests.support.daemon import Daemon, TmpfsStateDir, create_request, wait_for
from tests.support.events import EventCollector
from tests.support.ids import unique_id

DEFAULT_SEED = 7_2024
COUNT = 100
CREATE_THREADS = 10
SIGNAL_THREADS = 4
#: Everything (creates, signals, restarts, draining) must be over within this many seconds.
BUDGET = 170
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def _stamp(event):
    return event.timestamp.seconds * 1_000_000_000 + event.timestamp.nanos


_alive = processes.alive


def runtime_ids(daemon, attempts=20):
    """The runtime's containers; `runc list` fails when a container is deleted while it lists: retry."""
    for attempt in range(attempts):
        try:
            return set(daemon.runtime_containers())
        except AssertionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


class Schedule:
    """
    What happens, drawn from one seed: each container's command and true exit status, and the kill points.

    @ivar containers: id -> (kind, command args, signal to stop it or None, expected exit status).
    @ivar create_kills: [(number of creates issued, delay in seconds)] for kills while creating.
    @ivar signal_kills: [(fraction of the signals issued, delay)] for kills while stopping.
    @ivar final_delay: the last kill's delay after every signal was sent (exits still being handled).
    """

    def __init__(self, seed, prefix):
        rng = random.Random(seed)
        self.containers = {}
        for i in range(COUNT):
            container_id = f"{prefix}-{i:03d}"
            roll = rng.random()
            if roll < 0.6:
                status = rng.randint(0, 100)
                self.containers[container_id] = ("exit", ("sh", "-c", f"exit {status}"), None, status)
            elif roll < 0.85:
                self.containers[container_id] = ("sleeper", ("sleep", "1000"), signal.SIGKILL, 128 + 9)
            else:
                status = rng.randint(0, 100)
                self.containers[container_id] = (
                    "trapper", ("sh", "-c", f"trap 'exit {status}' TERM; sleep 1000 & wait"), signal.SIGTERM, status)
        self.create_kills = sorted((point, rng.uniform(0.0, 0.3))
                                   for point in rng.sample(range(3, COUNT - 3), rng.randint(3, 4)))
        self.signal_kills = sorted((rng.uniform(0.1, 0.9), rng.uniform(0.0, 0.2)) for _ in range(rng.randint(1, 2)))
        self.final_delay = rng.uniform(0.0, 0.5)
        self.order = list(self.containers)
        rng.shuffle(self.order)

    @property
    def kills(self):
        return len(self.create_kills) + len(self.signal_kills) + 1


class CrashConsistencyTests(TestCase):

    #: Where the test's folder (state dir, bundles) goes; None for $TMPDIR or /tmp.
    workdir_parent = None

    def setUp(self):
        self.seed = int(os.environ.get("CTX_CRASH_SEED", DEFAULT_SEED))
        print(f"\ncrash consistency: seed {self.seed} (replay with CTX_CRASH_SEED={self.seed})")
        self.daemon = Daemon.for_test(self, args=("--retain-count", "5000"), parent=self.workdir_parent)
        self.rootfs = bundles.make_rootfs(os.path.join(self.daemon.workdir, "rootfs"))
        self.schedule = Schedule(self.seed, unique_id("k"))
        self.bundles = {}
        for container_id, (kind, args, _, _) in self.schedule.containers.items():
            if args not in self.bundles:
                path = os.path.join(self.daemon.workdir, f"bundle{len(self.bundles)}")
                self.bundles[args] = bundles.make_bundle(path, args, self.rootfs)
        self.cond = threading.Condition()
        self.generation = 0
        self.up = False
        self.stub = None
        self.channels = []
        self.addCleanup(self._close_channels)
        self.ops = 0
        self.problems = []
        self.outcomes = {}  # id -> "created" | "uncertain"
        self.pids = {}
        self.events = []
        self.collector_call = None
        self.collector_stop = False
        self.restarts = 0
        self.started = time.monotonic()
        self.monitor = self.daemon.monitor_pid()
        self._serve()

    def _close_channels(self):
        self.collector_stop = True
        with self.cond:
            self.up = True  # wake anybody waiting; they find the stop flag
            self.cond.notify_all()
        if self.collector_call is not None:
            self.collector_call.cancel()
        for channel in self.channels:
            channel.close()

    # Generations of the daemon: clients wait while it is down and use the current one's channel.

    def _serve(self):
        channel = grpc.insecure_channel(self.daemon.address)
        self.channels.append(channel)
        with self.cond:
            self.stub = pb_grpc.APIStub(channel)
            self.generation += 1
            self.up = True
            self.cond.notify_all()

    def current(self, after=0):
        """(generation, stub) of a serving daemon newer than C{after}."""
        with self.cond:
            ok = self.cond.wait_for(lambda: (self.up and self.generation > after) or self.collector_stop,
                                    timeout=self.left())
            if not ok:
                raise AssertionError("no serving daemon within the time budget")
            self.ops += 1
            self.cond.notify_all()
            return self.generation, self.stub

    def left(self):
        return max(0.0, BUDGET - (time.monotonic() - self.started))

    def crash(self, why):
        """SIGKILL the daemon, restart it, check the state it recovered, let clients go on."""
        with self.cond:
            self.up = False
        self.daemon.kill()
        self.restarts += 1
        self.daemon.start()
        self.assertEqual(self.daemon.monitor_pid(), self.monitor, "the monitor did not survive the daemon")
        self.check_consistent(f"after restart {self.restarts} ({why})")
        self._serve()

    def wait_ops(self, count):
        with self.cond:
            if not self.cond.wait_for(lambda: self.ops >= count, timeout=self.left()):
                raise AssertionError(f"clients stalled before {count} calls")

    # What must hold whenever nobody is changing anything.

    def state_ids(self):
        ids = [c.id for c in self.daemon.stub.State(pb.StateRequest(), timeout=20).containers]
        return ids

    def check_consistent(self, when):
        records = os.path.join(self.daemon.state_dir, "containers")
        view = {}

        def agreed():
            ids = self.state_ids()
            runtime = runtime_ids(self.daemon)
            folders = sorted(os.listdir(records))
            view.update(daemon=sorted(ids), runtime=sorted(runtime), folders=folders)
            if len(ids) != len(set(ids)):
                raise AssertionError(f"{when}: State lists a container twice: {sorted(ids)}")
            return set(ids) == set(runtime) == set(folders)

        try:
            wait_for(agreed, timeout=30, interval=0.2, message="daemon, runtime and state dir to agree")
        except AssertionError as e:
            if not view:
                raise AssertionError(f"{when}: {e}\n{self.daemon.log_tail(30)}")
            daemon, runtime, folders = (set(view[k]) for k in ("daemon", "runtime", "folders"))
            raise AssertionError(
                f"{when}: daemon, runtime and state dir disagree: only in the daemon {sorted(daemon - runtime)}, "
                f"only in the runtime {sorted(runtime - daemon)}, folders without a listed container "
                f"{sorted(folders - daemon)}, listed without a folder {sorted(daemon - folders)}\n"
                f"{self.daemon.log_tail(30)}")
        self.check_records(when)

    def check_records(self, when):
        """
        No temporary file and no unreadable record that stays: exits being handled right now may write
        (the monitor's exit records) and remove (a container's folder) while we look, so only what lasts
        for a few seconds counts.
        """
        found = []

        def clean():
            found[:] = self._record_problems()
            return not found

        try:
            wait_for(clean, timeout=10, interval=0.2, message="a clean state dir")
        except AssertionError:
            self.fail(f"{when}: torn or orphaned records: {found}")

    def _record_problems(self):
        problems = []
        for directory, _, files in os.walk(self.daemon.state_dir):
            for name in files:
                if name.startswith(".tmp-") or name.endswith(".tmp"):
                    problems.append(f"temporary file {os.path.join(directory, name)}")
        records = os.path.join(self.daemon.state_dir, "containers")
        for container_id in os.listdir(records):
            folder = os.path.join(records, container_id)
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                if name.endswith(".json"):
                    try:
                        with open(os.path.join(folder, name)) as f:
                            record = json.load(f)
                    except FileNotFoundError:
                        continue
                    except (OSError, ValueError) as e:
                        problems.append(f"unreadable {container_id}/{name}: {e}")
                        continue
                    if not isinstance(record, dict):
                        problems.append(f"{container_id}/{name} is not a JSON object")
            if os.path.isdir(folder) and "container.json" not in names:
                problems.append(f"{container_id}/ has no container.json ({sorted(names)})")
        return problems

    # The clients.

    def collect(self):
        """Follow Events across restarts, resuming from the last timestamp seen."""
        last = Timestamp(seconds=1)
        generation = 0
        while not self.collector_stop:
            generation, stub = self.current(after=generation)
            if self.collector_stop:
                return
            call = self.collector_call = stub.Events(pb.EventsRequest(timestamp=last))
            try:
                for event in call:
                    self.events.append(event)
                    last = event.timestamp
            except grpc.RpcError as e:
                if self.collector_stop:
                    return
                if e.code() != UNAVAILABLE:
                    self.problems.append(f"Events ended with {e.code().name}: {e.details()}")
            else:
                if not self.collector_stop:
                    self.problems.append("Events stream ended without an error")

    def create_worker(self, work):
        while True:
            try:
                container_id = work.get_nowait()
            except queue.Empty:
                return
            _, stub = self.current()
            args = self.schedule.containers[container_id][1]
            try:
                response = stub.CreateContainer(create_request(container_id, self.bundles[args]), timeout=60)
            except grpc.RpcError as e:
                if e.code() == UNAVAILABLE:
                    self.outcomes[container_id] = "uncertain"
                else:
                    self.problems.append(f"create {container_id}: {e.code().name} {e.details()}")
            else:
                self.outcomes[container_id] = "created"
                self.pids[container_id] = response.container.processes[0].systemPid

    def signal_worker(self, work):
        while True:
            try:
                container_id = work.get_nowait()
            except queue.Empty:
                return
            number = int(self.schedule.containers[container_id][2])
            generation, tried = 0, False
            while True:
                generation, stub = self.current(after=generation)
                try:
                    stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=number), timeout=30)
                    break
                except grpc.RpcError as e:
                    if e.code() == UNAVAILABLE:
                        tried = True  # it may have been delivered: retry on the next daemon
                        continue
                    if e.code() == grpc.StatusCode.NOT_FOUND and tried:
                        break  # delivered before the crash: the process is gone
                    self.problems.append(f"signal {container_id}: {e.code().name} {e.details()}")
                    break

    def run_threads(self, target, work, count):
        threads = [threading.Thread(target=self._guard, args=(target, work)) for _ in range(count)]
        for t in threads:
            t.start()
        return threads

    def _guard(self, target, *args):
        try:
            target(*args)
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            self.problems.append(f"{target.__name__}: {e!r}")

    def join_all(self, threads):
        for t in threads:
            t.join(self.left() + 5)
            self.assertFalse(t.is_alive(), f"a client thread is stuck: {self.daemon.log_tail()}")

    # The test.

    def test_kills_while_starting_and_stopping(self):
        try:
            self._scenario()
        except AssertionError as e:
            raise AssertionError(f"[CTX_CRASH_SEED={self.seed}] {e}") from None

    def _scenario(self):
        schedule = self.schedule
        collector = threading.Thread(target=self._guard, args=(self.collect,), daemon=True)
        collector.start()

        # Phase 1: 100 creates from 10 threads, with kills at random points among them.
        work = queue.Queue()
        for container_id in schedule.order:
            work.put(container_id)
        threads = self.run_threads(self.create_worker, work, CREATE_THREADS)
        for point, delay in schedule.create_kills:
            self.wait_ops(point)
            time.sleep(delay)
            self.crash(f"while creating, after {point} creates were issued")
        self.join_all(threads)
        self.assertEqual(self.problems, [])
        self.check_consistent("after the creates")

        # Phase 2: stop every sleeper and trapper that exists, with kills among the signals.
        listed = set(self.state_ids())
        to_stop = [c for c in schedule.order if schedule.containers[c][2] is not None and c in listed]
        lost = [c for c in to_stop if self.outcomes.get(c) is None]
        self.assertEqual(lost, [], "containers listed that no client created")
        created_sleepers = [c for c in schedule.order if schedule.containers[c][2] is not None
                            and self.outcomes.get(c) == "created"]
        self.assertEqual(sorted(set(created_sleepers) - listed), [], "created sleepers not listed")
        work = queue.Queue()
        for container_id in to_stop:
            work.put(container_id)
        base = self.ops
        threads = self.run_threads(self.signal_worker, work, SIGNAL_THREADS)
        for fraction, delay in (schedule.signal_kills if to_stop else ()):
            self.wait_ops(base + max(1, int(fraction * len(to_stop))))
            time.sleep(delay)
            self.crash(f"while stopping, after {self.ops - base} of {len(to_stop)} signals")
        self.join_all(threads)
        time.sleep(schedule.final_delay)
        self.crash("while exits are being handled")
        self.assertEqual(self.problems, [])

        # Phase 3: everything exits; nothing is left anywhere.
        def drained():
            return (not self.state_ids() and not runtime_ids(self.daemon)
                    and not os.listdir(os.path.join(self.daemon.state_dir, "containers")))

        wait_for(drained, timeout=min(60, self.left()), interval=0.2,
                 message=f"every container to exit and be cleaned up (State {sorted(self.state_ids())}, runtime "
                         f"{sorted(runtime_ids(self.daemon))})")
        self.check_records("at the end")
        ran = {c for c, outcome in self.outcomes.items() if outcome == "created"}
        ran |= {e.id for e in list(self.events) if e.type == "start-container"}
        wait_for(lambda: ran <= {e.id for e in list(self.events) if e.type == "exit"}, timeout=20,
                 message="the collector to see every exit")
        # Nothing happens any more: the collector is done once it has as many events as the daemon stored
        # (check_events compares them one by one).
        stored = len(list(self.daemon.stub.Events(pb.EventsRequest(timestamp=Timestamp(seconds=1), storedOnly=True),
                                                  timeout=30)))
        try:
            wait_for(lambda: len(self.events) >= stored, timeout=20, message="the collector to catch up")
        except AssertionError:
            pass  # check_events says what differs
        self.collector_stop = True
        self.collector_call.cancel()
        collector.join(10)
        self.assertEqual(self.problems, [])

        self.check_events(ran)
        monitor = self.daemon.monitor_pid()
        self.assertEqual(monitor, self.monitor)
        wait_for(lambda: not processes.zombie_children(monitor), timeout=10,
                 message="the monitor to have no zombie children")
        survivors = [c for c, pid in self.pids.items() if _alive(pid)]
        self.assertEqual(survivors, [], "container processes still alive")
        uncertain = sum(1 for o in self.outcomes.values() if o == "uncertain")
        print(f"crash consistency: seed {self.seed}: {self.restarts} kills, {len(self.outcomes)} creates answered "
              f"({uncertain} cut short by a kill), {len(ran)} containers ran, {len(self.events)} events, "
              f"{time.monotonic() - self.started:.1f}s")

    def check_events(self, ran):
        events = list(self.events)
        stamps = [_stamp(e) for e in events]
        self.assertEqual(stamps, sorted(set(stamps)), "events repeated or out of order across restarts")
        # What the collector pieced together is what the daemon stored.
        replay = list(self.daemon.stub.Events(pb.EventsRequest(timestamp=Timestamp(seconds=1), storedOnly=True),
                                              timeout=30))
        key = lambda e: (e.type, e.id, e.pid, e.status, _stamp(e))  # noqa: E731
        self.assertEqual([key(e) for e in events], [key(e) for e in replay],
                         "the events collected across restarts differ from the stored log")
        wrong = []
        for container_id, (kind, _, _, status) in self.schedule.containers.items():
            own = [(e.type, e.pid, e.status) for e in events if e.id == container_id]
            exits = [s for t, _, s in own if t == "exit"]
            starts = [t for t, _, _ in own if t == "start-container"]
            outcome = self.outcomes.get(container_id)
            if container_id in ran:
                if exits != [status]:
                    wrong.append(f"{container_id} ({kind}, {outcome}): exit statuses {exits}, expected [{status}]")
                if len(starts) != 1:
                    wrong.append(f"{container_id} ({kind}, {outcome}): {len(starts)} start-container events")
                if own and own[0][0] != "start-container":
                    wrong.append(f"{container_id}: first event {own[0]}")
            elif own:
                wrong.append(f"{container_id} ({kind}, {outcome}) never ran, yet has events {own}")
            if outcome is None and own:
                wrong.append(f"{container_id}: events {own} for a create nobody got an answer for")
        strangers = {e.id for e in events} - set(self.schedule.containers)
        self.assertEqual(strangers, set(), "events of containers nobody created")
        self.assertEqual(wrong, [], "\n".join(wrong))


def _record(folder):
    """A container's record on disk, or {} while there is none."""
    try:
        with open(os.path.join(folder, "container.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _spawn_with_pid(pid, argv, attempts=50):
    """
    Start C{argv} as process C{pid} (through /proc/sys/kernel/ns_last_pid), or None when other processes keep
    taking that pid first.
    """
    for _ in range(attempts):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        if child.pid == pid:
            return child
        child.kill()
        child.wait()
    return None


class TmpfsCrashConsistencyTests(TmpfsStateDir, CrashConsistencyTests):
    """
    The same with the state dir on a tmpfs, where records are written inline rather than by the writer thread.
    """


class PidReuseTests(TestCase):
    """
    A daemon killed after it reported a container's exit but before it removed the container's folder leaves
    the container's records with the host pid of its (dead) init. Host pids are reused quickly (pid_max is
    32768 here, and every runc start uses a dozen): the next daemon must not take whatever process now has
    that pid for the container's init.
    """

    def test_reused_pid_is_not_adopted(self):
        if not os.path.exists("/proc/sys/kernel/ns_last_pid"):
            raise SkipTest("no /proc/sys/kernel/ns_last_pid: cannot choose a pid")
        daemon = Daemon.for_test(self)
        rootfs = bundles.make_rootfs(os.path.join(daemon.workdir, "rootfs"))
        bundle = bundles.make_bundle(os.path.join(daemon.workdir, "bundle"), ["sleep", "1000"], rootfs)
        container_id = unique_id("reused")
        events = EventCollector(daemon.stub)
        self.addCleanup(events.close)
        pid = daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60).container.processes[0]
        pid = pid.systemPid
        folder = os.path.join(daemon.state_dir, "containers", container_id)

        wait_for(lambda: _record(folder).get("status") == "running", message="the running container's record on disk")
        snapshot = {name: open(os.path.join(folder, name), "rb").read()
                    for name in os.listdir(folder) if name in ("container.json", "process-init.json", "pid-init")}
        self.assertIn("process-init.json", snapshot)
        daemon.stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=9), timeout=10)
        self.assertEqual(events.wait("exit", container_id, "init").status, 137)
        wait_for(lambda: not os.path.exists(folder), message="the container's folder to go")
        events.close()
        daemon.kill()
        # What a daemon killed just before its remove_container ran leaves (the exit record is already gone).
        os.makedirs(folder, mode=0o700)
        for name, data in snapshot.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        stranger = _spawn_with_pid(pid, ["sleep", "1000"])
        if stranger is None:
            raise SkipTest(f"could not get pid {pid} for an unrelated process")
        self.addCleanup(stranger.wait)
        self.addCleanup(stranger.kill)
        daemon.start()
        wait_for(lambda: container_id not in [c.id for c in daemon.stub.State(pb.StateRequest(), timeout=10)
                                              .containers],
                 timeout=15, message=f"{container_id}, whose init died, to stay gone (pid {pid} is now a stranger's)")
        wait_for(lambda: not os.path.exists(folder), timeout=15, message="its folder to be removed")
        self.assertIsNone(stranger.poll(), "the daemon killed the process that reused the pid")
        replay = list(daemon.stub.Events(pb.EventsRequest(timestamp=Timestamp(seconds=1), storedOnly=True,
                                                          id=container_id), timeout=10))
        self.assertEqual([(e.type, e.status) for e in replay], [("start-container", 0), ("exit", 137)])

    def test_live_container_readopted_after_monitor_loss(self):
        # The other side of the check above: a process that is still the container's is watched again when
        # the monitor that was its parent is gone (its exit status is then unknown: 255).
        daemon = Daemon.for_test(self)
        rootfs = bundles.make_rootfs(os.path.join(daemon.workdir, "rootfs"))
        bundle = bundles.make_bundle(os.path.join(daemon.workdir, "bundle"), ["sleep", "1000"], rootfs)
        container_id = unique_id("orphan")
        pid = daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60).container
        pid = pid.processes[0].systemPid
        folder = os.path.join(daemon.state_dir, "containers", container_id)
        wait_for(lambda: _record(folder).get("cgroups"), message="the running container's record on disk")
        monitor = daemon.monitor_pid()
        daemon.kill()
        os.kill(monitor, signal.SIGKILL)
        wait_for(lambda: processes.reap(monitor), message="the monitor to die")
        self.assertTrue(_alive(pid))
        daemon.start()
        self.assertNotEqual(daemon.monitor_pid(), monitor)
        (listed,) = daemon.stub.State(pb.StateRequest(id=container_id), timeout=10).containers
        self.assertEqual((listed.status, listed.processes[0].systemPid), ("running", pid))
        events = EventCollector(daemon.stub)
        self.addCleanup(events.close)
        daemon.stub.Signal(pb.SignalRequest(id=container_id, pid="init", signal=9), timeout=10)
        self.assertEqual(events.wait("exit", container_id, "init").status, 255)
        wait_for(lambda: processes.reap(pid) or not os.path.exists(f"/proc/{pid}"), message="the init to be reaped")
        wait_for(lambda: not os.path.exists(folder), message="its folder to go")


class ExecRecordTests(TestCase):
    """
    An exec'd process that exits leaves no record behind: a stale process-<id>.json is taken at the next
    start for a process lost while the daemon was down, and reported again (status 255) once its real exit
    has left the retained events.
    """

    def test_exited_execs_leave_no_records(self):
        daemon = Daemon.for_test(self, args=("--retain-count", "10"))
        rootfs = bundles.make_rootfs(os.path.join(daemon.workdir, "rootfs"))
        bundle = bundles.make_bundle(os.path.join(daemon.workdir, "bundle"), ["sleep", "1000"], rootfs)
        container_id = unique_id("execs")
        daemon.stub.CreateContainer(create_request(container_id, bundle), timeout=60)
        events = EventCollector(daemon.stub)
        self.addCleanup(events.close)
        for i in range(60):
            daemon.stub.AddProcess(pb.AddProcessRequest(id=container_id, pid=f"e{i}", args=["true"]), timeout=30)
        for i in range(60):
            self.assertEqual(events.wait("exit", container_id, f"e{i}").status, 0)
        folder = os.path.join(daemon.state_dir, "containers", container_id)

        def stale():
            return sorted(n for n in os.listdir(folder) if n != "process-init.json"
                          and n.startswith(("process-", "exit-", "pid-e", "exec-")))

        try:
            wait_for(lambda: not stale(), timeout=5, message="no records of exited processes")
        except AssertionError:
            pass
        left = stale()
        last = events.events[-1].timestamp
        events.close()
        daemon.kill()
        daemon.start()
        after = EventCollector(daemon.stub, pb.EventsRequest(timestamp=last))
        self.addCleanup(after.close)
        # A barrier: exits reported again would come before the exit of an exec started now.
        daemon.stub.AddProcess(pb.AddProcessRequest(id=container_id, pid="barrier", args=["true"]), timeout=30)
        after.wait("exit", container_id, "barrier")
        again = [(e.type, e.pid, e.status) for e in after.events if e.pid != "barrier"]
        self.assertEqual((left, again), ([], []),
                         "records of exited processes left behind, and exits reported again after a restart")
        (listed,) = daemon.stub.State(pb.StateRequest(id=container_id), timeout=10).containers
        self.assertEqual([p.pid for p in listed.processes], ["init"])
