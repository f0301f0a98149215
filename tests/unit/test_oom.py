"""
Tests for L{containerd_tx.oom}: the cgroup v1 confirm logic with a real eventfd fired by hand and a fake
C{memory.oom_control}, and cgroup v2 with real inotify on a fake C{memory.events}, both under a
L{MemoryReactorClock}. Real OOM kills are in tests.integration.test_oom_real.
"""

import builtins
import os
import shutil

from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from containerd_tx.oom import RECHECK_DELAYS, OomWatcher


def oom_control(kills, under=0, disabled=0):
    return f"oom_kill_disable {disabled}\nunder_oom {under}\noom_kill {kills}\n"


def memory_events(kills, oom=None, high=0):
    oom = kills if oom is None else oom
    return f"low 0\nhigh {high}\nmax 0\noom {oom}\noom_kill {kills}\noom_group_kill 0\n"


def is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class WatcherTestCase(SynchronousTestCase):

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reports = []
        self.watcher = OomWatcher(self.reactor, self.reports.append)
        self.addCleanup(self.watcher.close)
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)

    def reader(self):
        (reader,) = self.reactor.readers
        return reader


class V1Tests(WatcherTestCase):

    def setUp(self):
        super().setUp()
        self.cgroup = os.path.join(self.root, "memory", "box")
        os.makedirs(self.cgroup)
        self.control = os.path.join(self.cgroup, "memory.oom_control")
        self.write(self.control, oom_control(2))
        self.write(os.path.join(self.cgroup, "cgroup.event_control"), "")
        self.assertTrue(self.watcher.watch("box", {"memory": self.cgroup, "unified": "/nonexistent"}))
        self.reactor.advance(0)  # the check right after registering
        self.efd = self.reader().fileno()

    def fire(self):
        """What the kernel does: bump the eventfd; then the reactor finds it readable."""
        os.eventfd_write(self.efd, 1)
        self.reader().doRead()

    def run_rechecks(self):
        for delay in RECHECK_DELAYS:
            self.reactor.advance(delay)

    def test_registration(self):
        """The eventfd and an fd of memory.oom_control are written to cgroup.event_control."""
        with open(os.path.join(self.cgroup, "cgroup.event_control")) as f:
            efd, cfd = f.read().split()
        self.assertEqual(int(efd), self.efd)
        self.assertNotEqual(int(cfd), self.efd)
        self.assertFalse(is_open(int(cfd)) and os.readlink(f"/proc/self/fd/{cfd}") == self.control)
        verifyObject(IReadDescriptor, self.reader())
        self.assertEqual(self.watcher.watching(), ["box"])
        self.assertEqual(self.reports, [])

    def test_confirmed_oom_reported_once(self):
        self.write(self.control, oom_control(3))
        self.fire()
        self.assertEqual(self.reports, ["box"])
        self.run_rechecks()
        self.assertEqual(self.reports, ["box"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_each_new_kill_reported(self):
        for kills in (3, 4):
            self.write(self.control, oom_control(kills))
            self.fire()
        self.assertEqual(self.reports, ["box", "box"])

    def test_unconfirmed_signal_not_reported(self):
        """The counter never moves (e.g. a notification without a kill): nothing reported, rechecks end."""
        self.fire()
        self.run_rechecks()
        self.reactor.advance(10)
        self.assertEqual(self.reports, [])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.watcher.watching(), ["box"])

    def test_kill_after_notification(self):
        """The kernel notifies before it kills: a counter that moves a little later is still reported."""
        self.fire()
        self.assertEqual(self.reports, [])
        self.reactor.advance(RECHECK_DELAYS[0])
        self.write(self.control, oom_control(3))
        self.reactor.advance(RECHECK_DELAYS[1])
        self.assertEqual(self.reports, ["box"])
        self.run_rechecks()
        self.assertEqual(self.reports, ["box"])

    def test_removed_cgroup_unwatched_silently(self):
        """Removing the cgroup fires the eventfd too: not an OOM; the watch ends and its fd is closed."""
        reader = self.reader()
        shutil.rmtree(self.cgroup)
        self.fire()
        self.assertEqual(self.reports, [])
        self.assertEqual(self.watcher.watching(), [])
        self.assertNotIn(reader, self.reactor.readers)
        self.assertFalse(is_open(self.efd))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_oom_kill_disabled(self):
        """With the OOM killer disabled, going under OOM is reported once per episode."""
        self.write(self.control, oom_control(2, under=1, disabled=1))
        self.fire()
        self.fire()
        self.assertEqual(self.reports, ["box"])
        self.write(self.control, oom_control(2, under=0, disabled=1))
        self.fire()
        self.run_rechecks()
        self.write(self.control, oom_control(2, under=1, disabled=1))
        self.fire()
        self.assertEqual(self.reports, ["box", "box"])

    def test_oom_between_baseline_and_registration(self):
        self.write(os.path.join(self.cgroup, "cgroup.event_control"), "")
        self.watcher.watch("box", {"memory": self.cgroup})
        self.write(self.control, oom_control(3))
        self.reactor.advance(0)
        self.assertEqual(self.reports, ["box"])

    def test_fresh_watch_registers_then_reads_once(self):
        """
        A fresh container's watch reads memory.oom_control once, after registering (so no kill can fall
        between), with nothing left scheduled; a kill counted before it is reported at once.
        """
        directory = os.path.join(self.root, "memory", "fresh")
        os.makedirs(directory)
        control = os.path.join(directory, "memory.oom_control")
        self.write(control, oom_control(1))
        event_control = os.path.join(directory, "cgroup.event_control")
        self.write(event_control, "")
        opened = []
        real_open = builtins.open

        def recording_open(path, *args, **kwargs):
            if path == control:
                with real_open(event_control) as f:
                    opened.append(bool(f.read()))  # registered already?
            return real_open(path, *args, **kwargs)

        self.patch(builtins, "open", recording_open)
        self.assertTrue(self.watcher.watch("fresh", {"memory": directory}, fresh=True))
        self.assertEqual(opened, [True])
        self.assertEqual(self.reports, ["fresh"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_unwatch_closes(self):
        reader = self.reader()
        self.fire()  # leaves rechecks pending
        self.watcher.unwatch("box")
        self.assertFalse(is_open(self.efd))
        self.assertNotIn(reader, self.reactor.readers)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.watcher.unwatch("box")  # again: no error

    def test_watch_again_replaces(self):
        old = self.reader()
        self.assertTrue(self.watcher.watch("box", {"memory": self.cgroup}))
        self.assertEqual(len(self.reactor.readers), 1)
        self.assertIsNot(self.reader(), old)
        self.assertEqual(self.watcher.watching(), ["box"])

    def test_close(self):
        self.watcher.close()
        self.assertFalse(is_open(self.efd))
        self.assertEqual(self.reactor.readers, set())

    def test_callback_failure_logged(self):
        def broken(container_id):
            raise RuntimeError("boom")

        self.watcher.on_oom = broken
        self.write(self.control, oom_control(3))
        self.fire()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.watcher.watching(), ["box"])

    def test_connection_lost_unwatches(self):
        self.reader().connectionLost(None)
        self.assertEqual(self.watcher.watching(), [])
        self.assertFalse(is_open(self.efd))


class NotWatchableTests(WatcherTestCase):

    def test_no_memory_cgroup(self):
        self.assertFalse(self.watcher.watch("box", {"cpu": self.root}))
        self.assertFalse(self.watcher.watch("box", {}))
        self.assertEqual(self.watcher.watching(), [])

    def test_missing_directory(self):
        fds = len(os.listdir("/proc/self/fd"))
        self.assertFalse(self.watcher.watch("box", {"memory": os.path.join(self.root, "gone")}))
        self.assertFalse(self.watcher.watch("box", {"unified": os.path.join(self.root, "gone")}))
        self.assertEqual(self.reactor.readers - {self.watcher._inotify_reader}, set())
        self.assertLessEqual(len(os.listdir("/proc/self/fd")), fds + 1)  # at most the shared inotify fd


class V2Tests(WatcherTestCase):

    def setUp(self):
        super().setUp()
        self.cgroups = {}
        for name in ("a", "b"):
            directory = os.path.join(self.root, name)
            os.makedirs(directory)
            self.write(os.path.join(directory, "memory.events"), memory_events(0))
            self.cgroups[name] = directory
            self.assertTrue(self.watcher.watch(name, {"unified": directory}))
        self.reactor.advance(0)

    def events(self, name):
        return os.path.join(self.cgroups[name], "memory.events")

    def test_one_inotify_for_all(self):
        self.assertEqual(len(self.reactor.readers), 1)
        verifyObject(IReadDescriptor, self.reader())
        self.assertEqual(self.watcher.watching(), ["a", "b"])

    def test_oom_kill_reported(self):
        self.write(self.events("b"), memory_events(1))
        self.reader().doRead()
        self.assertEqual(self.reports, ["b"])
        self.reader().doRead()  # nothing new
        self.assertEqual(self.reports, ["b"])
        self.write(self.events("a"), memory_events(2))
        self.write(self.events("b"), memory_events(3))
        self.reader().doRead()
        self.assertEqual(sorted(self.reports), ["a", "b", "b"])

    def test_other_changes_not_reported(self):
        self.write(self.events("a"), memory_events(0, oom=1, high=7))
        self.reader().doRead()
        self.assertEqual(self.reports, [])

    def test_unwatch(self):
        self.watcher.unwatch("a")
        self.write(self.events("a"), memory_events(1))
        self.reader().doRead()
        self.assertEqual(self.reports, [])
        self.assertEqual(self.watcher.watching(), ["b"])

    def test_removed_file_unwatched(self):
        os.remove(self.events("a"))
        self.reader().doRead()
        self.assertEqual(self.watcher.watching(), ["b"])
        self.assertEqual(self.reports, [])

    def test_kill_before_watch(self):
        directory = os.path.join(self.root, "c")
        os.makedirs(directory)
        self.write(os.path.join(directory, "memory.events"), memory_events(0))
        self.watcher.watch("c", {"unified": directory})
        self.write(os.path.join(directory, "memory.events"), memory_events(1))
        self.reactor.advance(0)
        self.reader().doRead()
        self.assertEqual(self.reports, ["c"])

    def test_close(self):
        fd = self.reader().fileno()
        self.watcher.close()
        self.assertFalse(is_open(fd))
        self.assertEqual(self.reactor.readers, set())
        self.assertEqual(self.watcher.watching(), [])
