# -*- test-case-name: tests.unit.test_sd_notify -*-
"""
systemd's readiness protocol (sd_notify): one datagram to $NOTIFY_SOCKET, so that a C{Type=notify} unit is
"started" only once the API socket serves. Without $NOTIFY_SOCKET it does nothing.
"""

import os
import socket


def notify(state, environ=None):
    """
    Send C{state} (e.g. C{"READY=1"}, C{"STOPPING=1"}) to systemd.

    @return: True when a notification socket was there and the message went out.
    """
    environ = os.environ if environ is None else environ
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(state.encode(), address)
        except OSError:
            return False
    return True
