# -*- test-case-name: tests.unit.test_dropin_unix_path -*-
"""
Unix socket paths of any length.

A unix socket address holds at most 107 bytes of path (C{sun_path} is 108 with its NUL), while a state dir or
socket path may be longer. A longer path is reached through the folder's open file descriptor:
C{/proc/self/fd/<fd>/<name>} names the same file for bind() and connect() in this process, whatever the
folder's own path.
"""

import contextlib
import os

#: The longest path a unix socket address holds.
UNIX_PATH_MAX = 107


def fits(path):
    """Whether C{path} fits in a unix socket address as it is."""
    return len(os.fsencode(path)) <= UNIX_PATH_MAX


@contextlib.contextmanager
def reachable(path):
    """
    A name for the socket C{path} that fits in a unix socket address, valid inside the C{with} block (the
    folder's descriptor is held open until then).

    @raise ValueError: the file name alone does not fit (with one line saying so).
    """
    if fits(path):
        yield path
        return
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        short = f"/proc/self/fd/{fd}/{name}"
        if not fits(short):
            raise ValueError(f"socket name {name!r} is too long for a unix socket ({UNIX_PATH_MAX} bytes)")
        yield short
    finally:
        os.close(fd)
