"""
Process hygiene for tests on a machine whose PID 1 never reaps orphans: the test process becomes a child
subreaper, so that orphans (a monitor whose daemon was killed, say) are reparented to it and can be reaped.
"""

import ctypes
import os

PR_SET_CHILD_SUBREAPER = 36
_done = []


def become_subreaper():
    """Make this process the reaper of its orphaned descendants (idempotent)."""
    if not _done:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        _done.append(True)


def zombie_children(parent=None):
    """Pids of zombie processes whose parent is C{parent} (this process by default)."""
    parent = os.getpid() if parent is None else parent
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == parent:
            zombies.append(int(entry))
    return zombies


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
