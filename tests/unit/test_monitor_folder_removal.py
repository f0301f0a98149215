"""
A container folder the daemon could not remove is logged and removed later (L{StateStore.retry_removals}).

The failure is real: a busy mount point inside the folder (rmdir gives EBUSY), as a bind mount a runtime or a
user left behind would be; it is unmounted before the retry.
"""

import os
import subprocess

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from containerd_tx import state_store
from containerd_tx.model import INIT, Container, Process, User
from containerd_tx.state_store import StateStore


def _container(container_id):
    init = Process(id=INIT, args=["sh"], env=[], cwd="/", user=User(0, 0), terminal=False,
                   stdin="", stdout="", stderr="", system_pid=100)
    return Container(id=container_id, bundle="/b", runtime="runc", processes={INIT: init})


class FolderRemovalTests(SynchronousTestCase):

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.clock = Clock()
        self.store = StateStore(self.dir, reactor=self.clock)
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def busy(self, container_id):
        """Mount a tmpfs inside the container's folder; return the unmount."""
        mount_point = os.path.join(self.store.container_dir(container_id), "busy")
        os.makedirs(mount_point)
        result = subprocess.run(["mount", "-t", "tmpfs", "none", mount_point], capture_output=True)
        if result.returncode != 0:
            from twisted.trial.unittest import SkipTest

            raise SkipTest(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")

        def unmount():
            if os.path.ismount(mount_point):
                subprocess.run(["umount", mount_point], check=True)

        self.addCleanup(unmount)
        return unmount

    def warnings(self):
        return [event for event in self.logged if event.get("log_level") is not None
                and event["log_level"].name == "warn" and "cannot remove container folder" in event["log_format"]]

    def test_retried(self):
        """
        The failure is logged once (not silently ignored), the container's record is gone at once (a restart
        does not adopt it), and the folder goes on a later attempt.
        """
        container = _container("c1")
        self.successResultOf(self.store.save_new("c1", [container.init], container))
        unmount = self.busy("c1")
        self.successResultOf(self.store.remove_container("c1"))
        directory = self.store.container_dir("c1")
        self.assertTrue(os.path.isdir(directory))
        self.assertFalse(os.path.exists(os.path.join(directory, "container.json")))
        self.assertEqual(len(self.warnings()), 1)
        self.assertIn("Device or resource busy", self.warnings()[0]["e"])
        self.assertEqual(self.store.leftovers, {directory})
        # Still busy at the first retry: kept, not logged again.
        self.clock.advance(state_store.REMOVAL_RETRY)
        self.assertTrue(os.path.isdir(directory))
        self.assertEqual(len(self.warnings()), 1)
        unmount()
        self.clock.advance(state_store.REMOVAL_RETRY)
        self.assertFalse(os.path.exists(directory))
        self.assertEqual(self.store.leftovers, set())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_same_id_again(self):
        """A container created again with the id of a leftover folder gets a clean folder of its own."""
        container = _container("c2")
        exec_process = Process(id="e1", args=["sh"], env=[], cwd="/", user=User(0, 0), terminal=False,
                               stdin="", stdout="", stderr="", system_pid=101)
        self.successResultOf(self.store.save_new("c2", [container.init, exec_process], container))
        unmount = self.busy("c2")
        self.successResultOf(self.store.remove_container("c2"))
        unmount()
        again = _container("c2")
        self.successResultOf(self.store.save_new("c2", [again.init], again))
        [loaded] = self.store.load()
        self.assertEqual((loaded.id, sorted(loaded.processes)), ("c2", [INIT]))
        self.assertEqual(self.store.leftovers, set())

    def test_next_removal_retries(self):
        """Without a reactor, the next removal retries the earlier ones."""
        store = StateStore(self.dir)
        self.store = store
        for container_id in ("c3", "c4"):
            container = _container(container_id)
            self.successResultOf(store.save_new(container_id, [container.init], container))
        unmount = self.busy("c3")
        self.successResultOf(store.remove_container("c3"))
        self.assertTrue(os.path.isdir(store.container_dir("c3")))
        unmount()
        self.successResultOf(store.remove_container("c4"))
        self.assertEqual(os.listdir(store.root), [])
