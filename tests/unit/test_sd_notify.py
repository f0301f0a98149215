"""
Tests for L{containerd_tx.sd_notify}.
"""

import os
import shutil
import socket
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from containerd_tx.sd_notify import notify


class NotifyTests(SynchronousTestCase):

    def test_without_socket_does_nothing(self):
        self.assertFalse(notify("READY=1", environ={}))

    def test_sends_state_to_the_socket(self):
        # Not self.mktemp(): a unix socket path must fit in 108 bytes, and
        # trial's temp paths grow with the checkout's own path.
        directory = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "notify.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind(path)
        self.assertTrue(notify("READY=1", environ={"NOTIFY_SOCKET": path}))
        self.assertEqual(server.recv(100), b"READY=1")

    def test_abstract_socket(self):
        name = f"ctx-test-{os.getpid()}"
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind("\0" + name)
        self.assertTrue(notify("STOPPING=1", environ={"NOTIFY_SOCKET": "@" + name}))
        self.assertEqual(server.recv(100), b"STOPPING=1")

    def test_unreachable_socket_is_not_an_error(self):
        self.assertFalse(notify("READY=1", environ={"NOTIFY_SOCKET": "/nonexistent/notify.sock"}))
