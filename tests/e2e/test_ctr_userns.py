"""
ctr with a user-namespaced container: attach shows its output and exit status, exec works.
"""

import os

from tests.e2e.base import CtrTestCase
from tests.integration.test_isolation import HOST_ID, user_namespace


class UserNamespaceAttachTests(CtrTestCase):

    def setUp(self):
        super().setUp()
        # The mapped root must reach the rootfs through the test's dir.
        os.chmod(self.daemon.workdir, 0o711)

    def test_attach_shows_output_and_status(self):
        bundle = self.bundle("sh", "-c", "id -u; echo err >&2; exit 6", edit=user_namespace)
        done = self.ctr("containers", "start", "--attach", self.box, bundle)
        self.assertEqual(done.returncode, 6, done.stderr)
        self.assertEqual(done.stdout, "0\n")
        self.assertEqual(done.stderr, "err\n")

    def test_exec_into_mapped_container(self):
        bundle = self.bundle("sleep", "1000", edit=user_namespace)
        self.assertEqual(self.ctr_ok("containers", "start", self.box, bundle), "")
        pid = self.pid1(self.box)
        with open(f"/proc/{pid}/status") as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        self.assertEqual(uid_line.split()[1], str(HOST_ID))
        done = self.ctr("containers", "exec", "--id", self.box, "-a", "--", "sh", "-c", "id -u; exit 2")
        self.assertEqual((done.returncode, done.stdout), (2, "0\n"), done.stderr)
        self.ctr_ok("containers", "kill", "-s", "KILL", self.box)
