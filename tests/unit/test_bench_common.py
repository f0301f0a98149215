"""
Tests for the benchmark helpers that read the kernel's counters (L{bench.common}): what they parse, not timings.
"""

import os
import sys
import threading

from twisted.trial.unittest import SynchronousTestCase

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench.common import (  # noqa: E402
    CLOCK_TICKS, machine_cpu_seconds, memory_cgroup_census, memory_cgroups, proc_context_switches,
)

PROC_CGROUPS = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t136\t1
cpu\t1\t136\t1
memory\t4\t759\t1
pids\t8\t136\t1
"""


class MemoryCgroupsTests(SynchronousTestCase):

    def test_counts_from_proc_cgroups(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(PROC_CGROUPS)
        self.assertEqual(memory_cgroups(path), (759, 136))

    def test_unreadable_or_missing_controllers(self):
        self.assertEqual(memory_cgroups(self.mktemp()), (None, None))
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("#subsys_name\thierarchy\tnum_cgroups\tenabled\npids\t8\t136\t1\n")
        self.assertEqual(memory_cgroups(path), (None, None))


class MemoryCgroupCensusTests(SynchronousTestCase):

    def tree(self, folders):
        """A fake v1 hierarchy: {relative path: cgroup.procs text}."""
        root = self.mktemp()
        os.makedirs(root)
        for relative, procs in folders.items():
            os.makedirs(os.path.join(root, relative), exist_ok=True)
            with open(os.path.join(root, relative, "cgroup.procs"), "w") as f:
                f.write(procs)
        return root

    def census(self, total=12):
        memory = self.tree({"jobs/a/left": "", "jobs/a/running": "42\n", "shared": "", "jobs/b": ""})
        cpu = self.tree({"shared": ""})
        proc_cgroups = self.mktemp()
        with open(proc_cgroups, "w") as f:
            f.write(f"#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t2\t1\nmemory\t4\t{total}\t1\n")
        return memory, memory_cgroup_census(memory, cpu, proc_cgroups)

    def test_live_dying_and_left_over(self):
        memory, census = self.census()
        # Live: the root, jobs, jobs/a, jobs/a/left, jobs/a/running, shared, jobs/b. Left over: the empty leaves
        # that the cpu hierarchy lacks (jobs/a/left, jobs/b); not one with a process, a parent, or a cpu twin.
        self.assertEqual((census["live"], census["dying"], census["leftover"]), (7, 5, 2))
        self.assertIn(census["example"], {os.path.join(memory, "jobs", "a", "left"), os.path.join(memory, "jobs", "b")})

    def test_no_memory_hierarchy(self):
        self.assertIsNone(memory_cgroup_census(self.mktemp(), self.mktemp(), self.mktemp()))


class MachineCpuTests(SynchronousTestCase):

    def test_busy_time_without_idle_iowait_or_steal(self):
        path = self.mktemp()
        with open(path, "w") as f:
            # user nice system idle iowait irq softirq steal guest guest_nice
            f.write("cpu  1000 20 300 90000 400 5 7 600 0 0\ncpu0 500 10 150 45000 200 2 3 300 0 0\n")
        self.assertEqual(machine_cpu_seconds(path), (1000 + 20 + 300 + 5 + 7) / CLOCK_TICKS)

    def test_grows_while_this_process_computes(self):
        before = machine_cpu_seconds()
        deadline = os.times().elapsed + 0.3
        while os.times().elapsed < deadline:
            pass
        self.assertGreater(machine_cpu_seconds(), before)


class ContextSwitchTests(SynchronousTestCase):

    def test_a_thread_going_to_sleep_counts(self):
        """Threads that wait on each other add voluntary switches to the process's sum."""
        before, _ = proc_context_switches(os.getpid())
        for _ in range(20):
            done = threading.Event()
            thread = threading.Thread(target=done.wait)
            thread.start()
            done.set()
            thread.join()
            self.assertTrue(threading.Event().wait(0.001) is False)
        after, _ = proc_context_switches(os.getpid())
        self.assertGreater(after, before)

    def test_a_process_that_is_gone(self):
        self.assertEqual(proc_context_switches(2 ** 22 + 1), (0, 0))
