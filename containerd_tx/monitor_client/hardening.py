# -*- test-case-name: tests.unit.test_monitor_hardening -*-
"""
Process attributes that protect the daemon and its monitor, applied once at start-up.

- C{oom_score_adj}: the daemon and the monitor run at -999 (as containerd does), so the kernel's OOM killer
  picks a container, never the processes that supervise all of them.  Containers keep the score the daemon
  was started with: the monitor puts that value back around each spawn, so runc and what it starts inherit
  it (runc writes the spec's C{process.oomScoreAdj} over it when the spec has one).
- C{RLIMIT_NOFILE}: the soft limit is raised to the hard limit (as containerd and systemd do), and the
  monitor spawns runtime commands with the original soft limit, as Go programs give their children.  A limit
  too small to run at all is refused with one line naming the limit needed.
- Inherited descriptors: every fd above 2 the daemon was started with is made close-on-exec.  They must not
  leak into the monitor and the containers; and Twisted's posix_spawn path asks to close each inheritable
  fd in the child, which glibc refuses with EBADF for an fd numbered at or above the soft limit (a shell
  with C{ulimit -n 64} that holds fd 255, say): the daemon could not start its monitor.
"""

import fcntl
import os
import resource

from twisted.logger import Logger

log = Logger()

#: The daemon's and the monitor's oom_score_adj (containerd's value).
PROTECTED_OOM_SCORE_ADJ = -999

#: Open files the daemon needs to start and serve a few clients (it uses about 20 at idle, grpcio included).
MIN_NOFILE = 48


class LimitTooLow(Exception):
    """The process limits do not let the daemon run; the message is one line naming the limit needed."""


def read_oom_score_adj(pid="self"):
    """The oom_score_adj of C{pid}, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/oom_score_adj") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def set_oom_score_adj(value, pid="self"):
    """Write C{value} to /proc/PID/oom_score_adj; False (nothing changed) when the kernel refuses."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(f"{int(value)}\n")
        return True
    except OSError:
        return False


def close_inherited_on_exec(keep=(0, 1, 2)):
    """Mark every open fd not in C{keep} close-on-exec; returns the fds that were inheritable."""
    changed = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in keep:
            continue
        try:
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
            if not flags & fcntl.FD_CLOEXEC:
                fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
                changed.append(fd)
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return changed


def raise_nofile(minimum=MIN_NOFILE):
    """
    Raise the soft RLIMIT_NOFILE to the hard limit.

    @return: the original soft limit (for the children).
    @raise LimitTooLow: the hard limit is below C{minimum}.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < minimum:
        raise LimitTooLow(f"the open files limit (ulimit -n) is {hard}; containerd-tx needs at least {minimum}")
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            pass  # e.g. an infinite hard limit the kernel caps at nr_open: keep the soft limit
    return soft


class Protection:
    """
    What L{protect} did, and the monitor arguments that give the children what the daemon started with.
    """

    def __init__(self, oom_score_adj, child_oom_score_adj, child_nofile):
        self.oom_score_adj = oom_score_adj
        self.child_oom_score_adj = child_oom_score_adj
        self.child_nofile = child_nofile

    def monitor_args(self):
        args = []
        if self.child_oom_score_adj is not None:
            args += ["--oom-score-adj", str(self.oom_score_adj),
                     "--child-oom-score-adj", str(self.child_oom_score_adj)]
        if self.child_nofile is not None:
            args += ["--child-nofile", str(self.child_nofile)]
        return args


def protect(minimum_nofile=MIN_NOFILE, oom_score_adj=PROTECTED_OOM_SCORE_ADJ):
    """
    Harden the daemon process (see the module's description).

    @return: a L{Protection}.
    @raise LimitTooLow: with a one-line message.
    """
    close_inherited_on_exec()
    child_nofile = raise_nofile(minimum_nofile)
    original = read_oom_score_adj()
    if original is not None and original <= oom_score_adj:
        original = None  # already as protected as we would make it: leave it (and the children) alone
    if original is not None and not set_oom_score_adj(oom_score_adj):
        log.warn("cannot set the daemon's oom_score_adj to {value} (lowering it needs CAP_SYS_RESOURCE): "
                 "the OOM killer may pick the daemon or its monitor", value=oom_score_adj)
        original = None
    return Protection(oom_score_adj, original, child_nofile)
