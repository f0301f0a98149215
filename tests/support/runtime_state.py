# -*- test-case-name: tests.unit.test_runtime_state -*-
"""
What a runtime (runc, crun) holds under its C{--root}, read and cleared by tests and benchmarks while the
daemon or its monitor may still be deleting containers there.

C{runc list} fails as a whole (exit 1, C{stat <root>/<id>: no such file or directory}) when a container's
folder goes away while it lists. A clean-up that trusted one listing then deleted nothing, and every
container whose delete was still pending kept its cgroups for good: 101 of 300 after a benchmark teardown.
"""

import json
import os
import subprocess
import time

#: What C{runc list} says when a container's folder vanished under it (a concurrent delete).
_VANISHED = "no such file or directory"


def list_containers(runtime, root, attempts=50, pause=0.02):
    """
    The containers C{runtime} has under C{root}: id -> status (C{{}} when the root does not exist).

    A listing that failed because a container was deleted under it is taken again, up to C{attempts} times.

    @raise AssertionError: the runtime failed for another reason, or kept failing.
    """
    if not os.path.isdir(root):
        return {}
    for _ in range(attempts):
        out = subprocess.run([runtime, "--root", root, "list", "--format", "json"], capture_output=True,
                             text=True)
        if out.returncode == 0:
            if not out.stdout.strip():
                return {}
            return {c["id"]: c["status"] for c in json.loads(out.stdout) or []}
        if _VANISHED not in out.stderr:
            break
        time.sleep(pause)
    raise AssertionError(f"{runtime} list failed: {out.stderr.strip()}")


def remove_all(runtime, root, rounds=5):
    """
    Force-delete every container under C{root}, found by its folder rather than by C{list}, so that one being
    deleted meanwhile neither hides the others nor is missed; repeated (at most C{rounds} times) while
    folders remain. Returns the ids still there afterwards (normally none).
    """
    for _ in range(rounds):
        left = _folders(root)
        if not left:
            return []
        for container_id in left:
            subprocess.run([runtime, "--root", root, "delete", "--force", container_id], capture_output=True)
    return _folders(root)


def _folders(root):
    try:
        return sorted(entry.name for entry in os.scandir(root) if entry.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
