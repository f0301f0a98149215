# -*- test-case-name: tests.unit.test_monitor_client -*-
"""
How a request to the monitor fails.
"""

from containerd_tx.errors import DeadlineExceeded, Unavailable


class MonitorError(Exception):
    """
    The monitor refused or failed a request (C{"ok": false}), or could not be
    started or reached.
    """


class MonitorLost(MonitorError, Unavailable):
    """
    The connection to the monitor ended before the reply came (the API says UNAVAILABLE: a request in
    flight when the monitor dies has an unknown outcome; a new monitor takes over, and a retry works).
    """

    def __init__(self, message):
        MonitorError.__init__(self, message)


class MonitorTimeout(DeadlineExceeded):
    """
    The monitor did not answer within L{MonitorClient.timeout} (stopped or
    hung): the request is abandoned.  A C{DeadlineExceeded}, not a
    L{MonitorError}: the API reports DEADLINE_EXCEEDED.
    """
