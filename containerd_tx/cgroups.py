# -*- test-case-name: tests.unit.test_cgroups -*-
"""
Where a process's cgroups are, on cgroup v1 and v2 hosts, read from /proc without spawning anything.
"""

import os

V2 = "unified"


def mount_points(mountinfo="/proc/self/mountinfo"):
    """
    Map each cgroup v1 subsystem (and C{"unified"} for a cgroup2 mount) to its mount point.
    """
    points = {}
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype, options = fields[dash + 1], fields[dash + 3]
            mount_point = fields[4]
            if fstype == "cgroup2":
                points.setdefault(V2, mount_point)
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in ("rw", "ro") or "=" in option and not option.startswith("name="):
                        continue
                    points.setdefault(option, mount_point)
    return points


def process_cgroups(pid, mounts, proc="/proc"):
    """
    The cgroup directories of process C{pid}: subsystem -> absolute path (C{"unified"} for v2).

    @param mounts: from L{mount_points}.
    @raise OSError: when the process is gone.
    """
    paths = {}
    with open(os.path.join(proc, str(pid), "cgroup"), "rb") as f:
        text = f.read().decode()
    for line in text.splitlines():
        if line:
            _, subsystems, path = line.split(":", 2)
            names = subsystems.split(",") if subsystems else [V2]
            for name in names:
                mount_point = mounts.get(name)
                if mount_point is not None:
                    paths[name] = os.path.join(mount_point, path.lstrip("/"))
    return paths


def cgroup_pids(cgroups):
    """
    Host pids in the container's cgroup, read from cgroup.procs (empty when unknown).
    """
    for subsystem in ("pids", "memory", "freezer", "cpu", V2):
        directory = cgroups.get(subsystem)
        if directory:
            try:
                with open(os.path.join(directory, "cgroup.procs")) as f:
                    return [int(line) for line in f if line.strip()]
            except (OSError, ValueError):
                continue
    return []
