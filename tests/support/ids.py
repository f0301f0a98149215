"""
Container ids for tests that run real containers.

runc names a container's cgroup after its id (C{/sys/fs/cgroup/<subsystem>/<id>}) whatever the daemon or the
runtime root, so two tests (or two suites, as with C{scripts/test --jobs=2}) that both use C{box} share, pause
and delete each other's cgroups. Every id a test gives a real container comes from L{unique_id}.
"""

import secrets


def unique_id(prefix):
    """C{prefix} with a random suffix that no other test on this host uses (e.g. C{box-3fa2c1d0})."""
    return f"{prefix}-{secrets.token_hex(4)}"
