"""
Tests for L{containerd_tx.cgroups}: finding a process's cgroups from (fake) /proc files.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.cgroups import V2, cgroup_pids, mount_points, process_cgroups

# A hybrid host: cgroup v1 controllers (one combined mount, one named hierarchy) plus cgroup2 at .../unified.
HYBRID_MOUNTINFO = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
33 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,freezer
34 25 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,net_cls,net_prio
35 25 0:33 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,blkio,release_agent=/x
40 28 0:29 / /var/lib/container/memory rw,relatime master:15 - cgroup cgroup rw,memory
"""

PURE_V2_MOUNTINFO = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
33 24 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

V1_PROC_CGROUP = """\
12:pids:/user.slice/user-0.slice/session-1.scope/abc
11:freezer:/abc
10:net_cls,net_prio:/abc
9:memory:/docker/abc
5:cpu,cpuacct:/docker/abc
4:blkio:/
1:name=systemd:/user.slice/user-0.slice/session-1.scope
0::/user.slice/user-0.slice/session-1.scope
"""


class FakeFiles:
    """
    Writes fake /proc and cgroup files under a temporary folder.
    """

    def __init__(self, case):
        self.root = os.path.abspath(case.mktemp())
        os.makedirs(self.root)

    def write(self, relative, content):
        path = os.path.join(self.root, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)
        return path


class MountPointsTests(SynchronousTestCase):
    """
    L{mount_points} maps controllers to where their hierarchies are mounted.
    """

    def setUp(self):
        self.files = FakeFiles(self)

    def test_hybrid(self):
        """
        Each v1 controller maps to its mount point (both controllers of a combined mount, the named systemd
        hierarchy by its "name=" option), cgroup2 maps to "unified", and non-cgroup mounts are ignored.
        """
        points = mount_points(self.files.write("mountinfo", HYBRID_MOUNTINFO))
        self.assertEqual(points["cpu"], "/sys/fs/cgroup/cpu,cpuacct")
        self.assertEqual(points["cpuacct"], "/sys/fs/cgroup/cpu,cpuacct")
        self.assertEqual(points["net_cls"], "/sys/fs/cgroup/net_cls,net_prio")
        self.assertEqual(points["net_prio"], "/sys/fs/cgroup/net_cls,net_prio")
        self.assertEqual(points["name=systemd"], "/sys/fs/cgroup/systemd")
        self.assertEqual(points["pids"], "/sys/fs/cgroup/pids")
        self.assertEqual(points["freezer"], "/sys/fs/cgroup/freezer")
        self.assertEqual(points["blkio"], "/sys/fs/cgroup/blkio")
        self.assertEqual(points[V2], "/sys/fs/cgroup/unified")
        self.assertEqual(V2, "unified")
        # Mount options are not controllers.
        for option in ("rw", "ro", "release_agent=/x", "nsdelegate", "mode=755"):
            self.assertNotIn(option, points)
        # Non-cgroup mounts are ignored.
        self.assertNotIn("/sys", points.values())
        self.assertNotIn("/sys/fs/cgroup", points.values())

    def test_first_mount_wins(self):
        """
        When a hierarchy is mounted twice, the first mount (the host's) is used.
        """
        points = mount_points(self.files.write("mountinfo", HYBRID_MOUNTINFO))
        self.assertEqual(points["memory"], "/sys/fs/cgroup/memory")

    def test_pure_v2(self):
        """
        A pure cgroup v2 host has only the unified hierarchy.
        """
        points = mount_points(self.files.write("mountinfo", PURE_V2_MOUNTINFO))
        self.assertEqual(points, {V2: "/sys/fs/cgroup"})

    def test_optional_fields(self):
        """
        Any number of optional fields before the "-" separator is handled.
        """
        line = "30 25 0:28 / /cg/mem rw,relatime shared:14 master:2 propagate_from:3 - cgroup cgroup rw,memory\n"
        self.assertEqual(mount_points(self.files.write("mountinfo", line)), {"memory": "/cg/mem"})
        line = "30 25 0:28 / /cg/mem rw,relatime - cgroup cgroup rw,memory\n"
        self.assertEqual(mount_points(self.files.write("mountinfo2", line)), {"memory": "/cg/mem"})

    def test_no_cgroups(self):
        """
        A host without cgroup mounts gives an empty map.
        """
        points = mount_points(self.files.write("mountinfo", "22 28 0:21 / /sys rw - sysfs sysfs rw\n"))
        self.assertEqual(points, {})

    def test_real_host(self):
        """
        The real /proc/self/mountinfo is read without error.
        """
        self.assertIsInstance(mount_points(), dict)


class ProcessCgroupsTests(SynchronousTestCase):
    """
    L{process_cgroups} finds a process's cgroup directories.
    """

    def setUp(self):
        self.files = FakeFiles(self)
        self.mounts = mount_points(self.files.write("mountinfo", HYBRID_MOUNTINFO))
        self.proc = os.path.join(self.files.root, "proc")

    def test_v1(self):
        """
        On a hybrid host every mounted controller (combined ones included) and the named and unified
        hierarchies map to the process's directory in them.
        """
        self.files.write("proc/1234/cgroup", V1_PROC_CGROUP)
        paths = process_cgroups(1234, self.mounts, proc=self.proc)
        self.assertEqual(paths["memory"], "/sys/fs/cgroup/memory/docker/abc")
        self.assertEqual(paths["cpu"], "/sys/fs/cgroup/cpu,cpuacct/docker/abc")
        self.assertEqual(paths["cpuacct"], "/sys/fs/cgroup/cpu,cpuacct/docker/abc")
        self.assertEqual(paths["pids"], "/sys/fs/cgroup/pids/user.slice/user-0.slice/session-1.scope/abc")
        self.assertEqual(paths["freezer"], "/sys/fs/cgroup/freezer/abc")
        self.assertEqual(paths["net_prio"], "/sys/fs/cgroup/net_cls,net_prio/abc")
        self.assertEqual(paths["name=systemd"], "/sys/fs/cgroup/systemd/user.slice/user-0.slice/session-1.scope")
        self.assertEqual(paths[V2], "/sys/fs/cgroup/unified/user.slice/user-0.slice/session-1.scope")
        self.assertEqual(os.path.normpath(paths["blkio"]), "/sys/fs/cgroup/blkio")

    def test_unmounted_controllers_skipped(self):
        """
        Controllers the process lists but that are not mounted are left out.
        """
        self.files.write("proc/7/cgroup", "3:hugetlb:/abc\n9:memory:/abc\n")
        self.assertEqual(process_cgroups(7, self.mounts, proc=self.proc), {"memory": "/sys/fs/cgroup/memory/abc"})

    def test_pure_v2(self):
        """
        On a pure v2 host, "0::/foo" maps to the unified hierarchy.
        """
        mounts = mount_points(self.files.write("mountinfo-v2", PURE_V2_MOUNTINFO))
        self.files.write("proc/99/cgroup", "0::/foo\n")
        self.assertEqual(process_cgroups(99, mounts, proc=self.proc), {V2: "/sys/fs/cgroup/foo"})

    def test_path_with_colon(self):
        """
        A cgroup path containing ":" is kept whole.
        """
        mounts = mount_points(self.files.write("mountinfo-v2", PURE_V2_MOUNTINFO))
        self.files.write("proc/5/cgroup", "0::/system.slice/docker-a:b.scope\n")
        self.assertEqual(
            process_cgroups(5, mounts, proc=self.proc), {V2: "/sys/fs/cgroup/system.slice/docker-a:b.scope"}
        )

    def test_process_gone(self):
        """
        A process that is gone raises OSError.
        """
        self.assertRaises(OSError, process_cgroups, 424242, self.mounts, proc=self.proc)

    def test_real_process(self):
        """
        The real /proc/self/cgroup is read with the real mounts without error, and every path found is
        under a mount point.
        """
        mounts = mount_points()
        paths = process_cgroups(os.getpid(), mounts)
        for name, path in paths.items():
            self.assertTrue(path.startswith(mounts[name]), (name, path))


class CgroupPidsTests(SynchronousTestCase):
    """
    L{cgroup_pids} reads the host pids of a cgroup.
    """

    def setUp(self):
        self.files = FakeFiles(self)

    def test_reads_procs(self):
        """
        The pids in cgroup.procs come back as ints, in file order.
        """
        self.files.write("pids/c/cgroup.procs", "100\n42\n7\n")
        directory = os.path.join(self.files.root, "pids", "c")
        self.assertEqual(cgroup_pids({"pids": directory}), [100, 42, 7])

    def test_preference(self):
        """
        The pids controller is read first; others only when it is missing or unreadable.
        """
        self.files.write("pids/c/cgroup.procs", "1\n")
        self.files.write("memory/c/cgroup.procs", "2\n")
        self.files.write("unified/c/cgroup.procs", "3\n")
        directory = lambda name: os.path.join(self.files.root, name, "c")  # noqa: E731
        self.assertEqual(
            cgroup_pids({"memory": directory("memory"), "pids": directory("pids"), V2: directory("unified")}), [1]
        )
        self.assertEqual(cgroup_pids({"memory": directory("memory"), V2: directory("unified")}), [2])
        self.assertEqual(cgroup_pids({V2: directory("unified")}), [3])
        # An unreadable pids directory falls back to the next one.
        self.assertEqual(
            cgroup_pids({"pids": os.path.join(self.files.root, "gone"), V2: directory("unified")}), [3]
        )

    def test_garbage_falls_back(self):
        """
        A cgroup.procs that is not a list of pids is skipped for the next controller.
        """
        self.files.write("pids/c/cgroup.procs", "not a pid\n")
        self.files.write("memory/c/cgroup.procs", "5\n6\n")
        self.assertEqual(
            cgroup_pids({
                "pids": os.path.join(self.files.root, "pids", "c"),
                "memory": os.path.join(self.files.root, "memory", "c"),
            }),
            [5, 6],
        )

    def test_blank_lines(self):
        """
        Blank lines are ignored; an empty cgroup has no pids.
        """
        self.files.write("pids/c/cgroup.procs", "\n8\n\n")
        self.files.write("pids/e/cgroup.procs", "")
        self.assertEqual(cgroup_pids({"pids": os.path.join(self.files.root, "pids", "c")}), [8])
        self.assertEqual(cgroup_pids({"pids": os.path.join(self.files.root, "pids", "e")}), [])

    def test_unknown(self):
        """
        Without known cgroups (or only irrelevant ones) there are no pids.
        """
        self.assertEqual(cgroup_pids({}), [])
        self.files.write("blkio/c/cgroup.procs", "9\n")
        self.assertEqual(cgroup_pids({"blkio": os.path.join(self.files.root, "blkio", "c")}), [])
        self.assertEqual(cgroup_pids({"pids": ""}), [])
