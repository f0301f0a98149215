# -*- test-case-name: tests.unit.test_dropin_revision -*-
"""
The revision GetServerVersion reports (containerd 0.2.9 reports its git commit there; Docker shows it in
C{docker info}). Never empty.

Where it comes from, first found wins:

 1. C{containerd_tx/REVISION}, a one-line file a build or install step may write (C{git rev-parse HEAD >
    containerd_tx/REVISION});
 2. the git checkout the package runs from (read from C{.git} directly, no git command);
 3. the package metadata of a pip install from a git URL (C{direct_url.json}'s commit id);
 4. C{v<version>} of the package.
"""

import functools
import json
import os
import re

from containerd_tx import __version__

_HEX = re.compile(r"[0-9a-f]{7,64}")
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def revision():
    """The daemon's revision: a git commit id where one can be found, else C{v<version>}."""
    for source in (_baked, _git_checkout, _package_metadata):
        try:
            found = source()
        except (OSError, ValueError, KeyError, TypeError):
            found = None
        if found:
            return found
    return f"v{__version__}"


def _baked(directory=_PACKAGE_DIR):
    with open(os.path.join(directory, "REVISION")) as f:
        text = f.read().strip()
    return text if text and "\n" not in text and len(text) <= 128 else None


def _git_checkout(directory=os.path.dirname(_PACKAGE_DIR)):
    git = os.path.join(directory, ".git")
    if os.path.isfile(git):  # a worktree: "gitdir: <path>"
        with open(git) as f:
            git = os.path.join(directory, f.read().strip().partition("gitdir:")[2].strip())
    with open(os.path.join(git, "HEAD")) as f:
        head = f.read().strip()
    if _HEX.fullmatch(head):
        return head
    ref = head.partition("ref:")[2].strip()
    if not ref:
        return None
    for root in (git, _common_dir(git)):
        try:
            with open(os.path.join(root, ref)) as f:
                commit = f.read().strip()
            if _HEX.fullmatch(commit):
                return commit
        except OSError:
            pass
        try:
            with open(os.path.join(root, "packed-refs")) as f:
                for line in f:
                    commit, _, name = line.strip().partition(" ")
                    if name == ref and _HEX.fullmatch(commit):
                        return commit
        except OSError:
            pass
    return None


def _common_dir(git):
    try:
        with open(os.path.join(git, "commondir")) as f:
            return os.path.normpath(os.path.join(git, f.read().strip()))
    except OSError:
        return git


def _package_metadata():
    from importlib import metadata

    text = metadata.distribution("containerd-tx").read_text("direct_url.json")
    if not text:
        return None
    commit = json.loads(text).get("vcs_info", {}).get("commit_id", "")
    return commit if _HEX.fullmatch(commit) else None
