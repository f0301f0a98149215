# -*- test-case-name: tests.unit.test_metrics_prometheus -*-
"""
What C{containerd_tx_build_info} says: the package version and the source revision, read once at start-up
from the checkout's C{.git} files (no subprocess), or C{"unknown"} outside a git checkout.
"""

import os

from containerd_tx import __version__

UNKNOWN = "unknown"


def _git_dir(start):
    path = os.path.abspath(start)
    while True:
        candidate = os.path.join(path, ".git")
        if os.path.isdir(candidate):
            return candidate
        if os.path.isfile(candidate):  # a worktree: "gitdir: <path>"
            with open(candidate) as f:
                text = f.read().strip()
            if text.startswith("gitdir:"):
                return os.path.join(path, text.partition(":")[2].strip())
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def source_revision(start=None):
    """
    The commit the checkout holding this package is at (40 hex digits), or C{"unknown"}.

    @param start: a directory in the checkout (this package's by default).
    """
    git_dir = _git_dir(start or os.path.dirname(os.path.abspath(__file__)))
    if git_dir is None:
        return UNKNOWN
    head = _read(os.path.join(git_dir, "HEAD"))
    if not head:
        return UNKNOWN
    if not head.startswith("ref:"):
        return head
    ref = head.partition(":")[2].strip()
    common = _read(os.path.join(git_dir, "commondir"))
    dirs = [git_dir] + ([os.path.join(git_dir, common)] if common else [])
    for directory in dirs:
        value = _read(os.path.join(directory, ref))
        if value:
            return value
        packed = _read(os.path.join(directory, "packed-refs")) or ""
        for line in packed.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return UNKNOWN


def build_info(runtime):
    """The labels of C{containerd_tx_build_info}: C{version}, C{revision}, C{runtime} (the default runtime)."""
    return {"version": __version__, "revision": source_revision(), "runtime": os.path.basename(runtime)}
