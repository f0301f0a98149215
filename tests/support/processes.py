"""
Process hygiene for tests on a machine whose PID 1 never reaps orphans: the test process becomes a child
subreaper, so that orphans (a monitor whose daemon was killed, say) are reparented to it and can be reaped.
"""

import ctypes
import os

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """
    Make this process the reaper of its orphaned descendants (idempotent). The flag is set every time, not
    remembered: a test may have turned it off meanwhile, and orphans would then go to PID 1.
    """
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _state(pid):
    """(state letter, parent pid) of a process from /proc/<pid>/stat, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[0], int(fields[1])


def parent(pid):
    """The parent pid of a process, or None when it is gone."""
    state = _state(pid)
    return None if state is None else state[1]


def command_line(pid):
    """A process's command line as a list of str ([] once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def matching(predicate):
    """The pids of the processes whose command line (a list of str) satisfies C{predicate}, now."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and predicate(command_line(entry))]


def alive(pid):
    """Whether process C{pid} exists and is not a zombie."""
    state = _state(pid)
    return state is not None and state[0] != "Z"


def zombies(parent=None):
    """Pids of zombie processes, all of them or those whose parent is C{parent}."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            state = _state(entry)
            if state is not None and state[0] == "Z" and (parent is None or state[1] == parent):
                found.append(int(entry))
    return found


def zombie_children(parent=None):
    """Pids of zombie processes whose parent is C{parent} (this process by default)."""
    return zombies(os.getpid() if parent is None else parent)


def reap(pid):
    """Reap one child if it has exited; True when reaped (or not our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def reap_orphans(keep=()):
    """Reap every zombie child of this process except the pids in C{keep} (still owned by someone)."""
    for pid in zombie_children():
        if pid not in keep:
            reap(pid)


def cgroup_path(pid, subsystem):
    """The cgroup v1 folder of process C{pid} for C{subsystem} (e.g. C{memory}, C{blkio})."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, subsystems, path = line.strip().split(":", 2)
            if subsystem in subsystems.split(","):
                return os.path.join("/sys/fs/cgroup", subsystem, path.lstrip("/"))
    raise AssertionError(f"process {pid} has no {subsystem} cgroup")


def cgroup_file(pid, subsystem, name):
    """The content of a cgroup v1 file (e.g. C{memory}, C{memory.limit_in_bytes}) of process C{pid}."""
    with open(os.path.join(cgroup_path(pid, subsystem), name)) as f:
        return f.read().strip()


def end(process):
    """Kill a Popen process if it still runs, wait for it and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait(10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def read_counter(pid, timeout=30.0):
    """
    The number a counter container (host pid C{pid}, writing /tmp/counter inside it) last wrote, once there is
    one.
    """
    from tests.support.daemon import wait_for

    def read():
        try:
            with open(f"/proc/{pid}/root/tmp/counter") as f:
                text = f.read().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None
    return wait_for(read, timeout, message=f"the counter file of pid {pid}")
