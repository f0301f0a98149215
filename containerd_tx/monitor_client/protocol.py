# -*- test-case-name: tests.unit.test_monitor_client -*-
"""
The daemon's end of the monitor's socket: newline-delimited JSON (L{MonitorConnection}, a
C{LineOnlyReceiver}), with the file descriptors the monitor sends over SCM_RIGHTS queued in order.
"""

import json
import os
from collections import deque

from twisted.internet import defer
from twisted.internet.interfaces import IFileDescriptorReceiver
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from zope.interface import implementer

from containerd_tx.monitor.spawn import CAPTURE_LIMIT
from containerd_tx.monitor_client import takeover

log = Logger()

#: The monitor protocol this daemon speaks (see C{monitord.py}).
PROTOCOL = 2

#: Longest line accepted from the monitor: a spawn's reply with both captured streams full, in base64, and
#: room to spare (hello's registry of thousands of processes is far shorter).  A longer line is a broken
#: monitor: the connection is dropped (and, when the daemon survives its monitor, a new connection made).
MAX_LINE = 2 * (CAPTURE_LIMIT * 4 // 3 + 4) + 4 * 1024 * 1024


@implementer(IFileDescriptorReceiver)
class MonitorConnection(LineOnlyReceiver):
    """
    Newline-delimited JSON framing (lines of at most L{MAX_LINE} bytes); messages go to the
    L{containerd_tx.monitor_client.client.MonitorClient}.  File descriptors (SCM_RIGHTS) are queued in order:
    a message says how many of them are its own.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    client = None

    def __init__(self):
        self.closed = False
        self._lost_waiters = []
        self.fds_in = deque()
        #: chunks of a line longer than one read, not yet handed to LineOnlyReceiver (see L{dataReceived}).
        self._chunks = []
        self._chunked = 0

    def fileDescriptorReceived(self, fd):
        takeover.set_cloexec(fd)
        self.fds_in.append(fd)

    def take_fds(self, count):
        """The next C{count} fds received (fewer if fewer came: then the queue is emptied)."""
        taken = []
        while self.fds_in and len(taken) < count:
            taken.append(self.fds_in.popleft())
        return taken

    def whenLost(self):
        """
        @return: Deferred firing once the connection is closed.
        """
        if self.closed:
            return defer.succeed(None)
        d = defer.Deferred()
        self._lost_waiters.append(d)
        return d

    def dataReceived(self, data):
        """
        Hand complete lines to C{LineOnlyReceiver}.  The chunks of a line longer than one read (a spawn's
        captured output) are kept aside until its end comes, and joined once: C{LineOnlyReceiver} alone would
        copy its whole buffer at every read, quadratic in the line's length, on the reactor thread.
        """
        if self.delimiter not in data:
            self._chunks.append(data)
            self._chunked += len(data)
            if len(self._buffer) + self._chunked > self.MAX_LENGTH:
                line = self._buffer + b"".join(self._chunks)
                self._buffer, self._chunks, self._chunked = b"", [], 0
                self.lineLengthExceeded(line)
            return
        if self._chunks:
            self._chunks.append(data)
            data = self._buffer + b"".join(self._chunks)
            self._buffer, self._chunks, self._chunked = b"", [], 0
        LineOnlyReceiver.dataReceived(self, data)

    def lineReceived(self, line):
        try:
            message = json.loads(line)
        except ValueError:
            log.error("monitor sent a line that is not JSON: {line!r}", line=line[:200])
            return
        if self.client is not None:
            self.client._message(message)

    def lineLengthExceeded(self, line):
        log.error("monitor sent a line longer than {n} bytes: {line!r}...; dropping the connection",
                  n=self.MAX_LENGTH, line=line[:200])
        self.transport.loseConnection()

    def send(self, message):
        self.sendLine(json.dumps(message, separators=(",", ":")).encode())

    def connectionLost(self, reason):
        self.closed = True
        while self.fds_in:
            os.close(self.fds_in.popleft())
        if self.client is not None:
            self.client._connectionLost(reason)
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)
