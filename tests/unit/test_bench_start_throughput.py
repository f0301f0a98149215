"""
The start-throughput benchmark's warnings about the kernel's memory cgroups
(L{bench.start_throughput.warn_of_memory_cgroups}): left-behind ones and dying ones are told apart, since only
the first can be removed by hand.
"""

import io
import os
import sys

from twisted.trial.unittest import SynchronousTestCase

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench.start_throughput import warn_of_memory_cgroups  # noqa: E402


def _warnings(census):
    out = io.StringIO()
    warn_of_memory_cgroups(census, out=out)
    return out.getvalue().splitlines()


class MemoryCgroupWarningTests(SynchronousTestCase):

    def test_left_behind_ones_name_an_example_and_the_remedy(self):
        lines = _warnings({"live": 1100, "dying": 20, "leftover": 1074, "example": "/sys/fs/cgroup/memory/x/c1"})
        self.assertEqual(len(lines), 1)
        self.assertIn("1074 empty memory cgroups", lines[0])
        self.assertIn("/sys/fs/cgroup/memory/x/c1", lines[0])
        self.assertIn("rmdir", lines[0])

    def test_dying_ones(self):
        lines = _warnings({"live": 30, "dying": 900, "leftover": 0, "example": None})
        self.assertEqual(len(lines), 1)
        self.assertIn("900 dying memory cgroups", lines[0])

    def test_a_clean_kernel_or_none_at_all_is_quiet(self):
        self.assertEqual(_warnings({"live": 30, "dying": 40, "leftover": 3, "example": "/x"}), [])
        self.assertEqual(_warnings(None), [])
