# -*- test-case-name: tests.unit.test_ctr_client -*-
"""
The daemon's socket address, as the daemon's C{--listen} and ctr's C{--address} take it, and where it is by
default.

Shared by the daemon's options and ctr: it imports only the standard library.
"""

#: Where the daemon listens, and ctr dials, unless told otherwise (containerd 0.2's path).
DEFAULT_SOCKET = "/run/containerd/containerd.sock"

#: L{DEFAULT_SOCKET} as an address.
DEFAULT_ADDRESS = "unix://" + DEFAULT_SOCKET


def socket_path(text, what="address"):
    """
    The socket path of a unix address: C{unix:///abs/path}, C{unix://relative/path}, C{unix:path} or a bare
    path. A relative path is returned as it is (relative to the working directory).

    @param what: what the value is called in messages (C{"address"}, C{"listen address"}).
    @raise ValueError: with a one-line reason for an empty path or another scheme than unix.
    """
    text = str(text).strip()
    if text.startswith("unix://"):
        path = text[len("unix://"):]
    elif text.startswith("unix:"):
        path = text[len("unix:"):]
    elif "://" in text:
        raise ValueError(f"unsupported {what} {text!r}: only unix sockets (unix:///path) are supported")
    else:
        path = text
    if not path:
        raise ValueError(f"invalid {what} {text!r}: the socket path is empty")
    return path
