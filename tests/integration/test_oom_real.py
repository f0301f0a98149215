"""
L{containerd_tx.oom.OomWatcher} on real runc containers (started with C{runc run -d} directly, no daemon)
on the trial reactor: a busybox container over its 32 MiB memory limit is reported exactly once, and a
container that exits normally and is deleted (its cgroup removed, which also signals the eventfd) is not
reported at all.

Each container waits for a file to appear in its /tmp before doing its work, so the watch is in place
before anything can happen.
"""

import itertools
import json
import os
import select
import subprocess
import time

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from containerd_tx.cgroups import mount_points, process_cgroups
from containerd_tx.oom import OomWatcher
from tests.support import bundles, processes

GATE = "while [ ! -e /tmp/go ]; do sleep 0.05; done; "
MEMORY_LIMIT = 32 * 1024 * 1024
_ids = itertools.count()


class RealOomTests(TestCase):
    timeout = 120

    def setUp(self):
        reason = bundles.requirements_missing("runc")
        if reason:
            raise self.skipTest(reason)
        processes.become_subreaper()
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.runc_root = os.path.join(self.workdir, "runc")
        self.rootfs = bundles.make_rootfs(os.path.join(self.workdir, "rootfs"))
        self.reports = []
        self.watcher = OomWatcher(reactor, self.reports.append)
        self.addCleanup(self.watcher.close)

    def runc(self, *args, check=True):
        with open(os.path.join(self.workdir, "runc.log"), "ab") as log:
            result = subprocess.run(["runc", "--root", self.runc_root, *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=log, timeout=60)
        if check and result.returncode != 0:
            with open(os.path.join(self.workdir, "runc.log"), errors="replace") as log:
                raise AssertionError(f"runc {' '.join(args)} failed: {log.read()[-2000:]}")
        return result.stdout

    def run_container(self, script, memory_limit=None):
        """Start a busybox container running C{GATE + script}; returns (id, host pid)."""
        container_id = f"oomtest-{os.getpid()}-{next(_ids)}"
        bundle = bundles.make_bundle(os.path.join(self.workdir, container_id), ["sh", "-c", GATE + script],
                                     self.rootfs, memory_limit=memory_limit)
        self.addCleanup(self.delete, container_id)
        # Detached: the container's stdio must not be a pipe this call waits on.
        with open(os.path.join(self.workdir, "runc.log"), "ab") as log:
            subprocess.run(["runc", "--root", self.runc_root, "run", "-d", "--bundle", bundle, container_id],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, check=True,
                           timeout=60)
        return container_id, self.state(container_id)["pid"]

    def state(self, container_id):
        return json.loads(self.runc("state", container_id))

    def delete(self, container_id):
        processes.reap_orphans()
        self.runc("delete", "--force", container_id, check=False)
        processes.reap_orphans()

    def go(self, pid):
        with open(f"/proc/{pid}/root/tmp/go", "w"):
            pass

    @defer.inlineCallbacks
    def wait(self, predicate, message, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {message}")
            yield task.deferLater(reactor, 0.05, lambda: None)

    def settled(self, container_id):
        """
        Nothing is pending for the container: its eventfd holds no unread wake-up and no re-check of the
        counters is scheduled, so no report can come without a new wake-up from the kernel.
        """
        entry = self.watcher._watches.get(container_id)
        if entry is None:
            return True
        recheck = getattr(entry, "recheck", None)
        if recheck is not None and recheck.active():
            return False
        efd = getattr(entry, "efd", None)
        return efd is None or not select.select([efd], [], [], 0)[0]

    def stopped(self, container_id):
        processes.reap_orphans()
        return self.state(container_id)["status"] == "stopped"

    @defer.inlineCallbacks
    def test_oom_reported_once(self):
        container_id, pid = self.run_container("dd if=/dev/zero of=/tmp/f bs=1M count=200",
                                               memory_limit=MEMORY_LIMIT)
        cgroups = process_cgroups(pid, mount_points())
        self.assertTrue(self.watcher.watch(container_id, cgroups))
        self.go(pid)
        yield self.wait(lambda: self.reports, "the OOM report")
        yield self.wait(lambda: self.stopped(container_id), "the container to stop")
        yield self.wait(lambda: self.settled(container_id), "the watcher to have handled every wake-up")
        self.assertEqual(self.reports, [container_id])
        if "memory" in cgroups:
            with open(os.path.join(cgroups["memory"], "memory.oom_control")) as f:
                self.assertIn("oom_kill 1", f.read())
        # Deleting it removes the cgroup (the eventfd fires once more): still one report, watch gone.
        self.delete(container_id)
        yield self.wait(lambda: not self.watcher.watching() or "memory" not in cgroups, "the watch to end")
        # Unwatched, it cannot report any more (a report on removal would have come with the unwatch).
        self.assertEqual(self.reports, [container_id])

    @defer.inlineCallbacks
    def test_normal_exit_and_delete_not_reported(self):
        container_id, pid = self.run_container("exit 0", memory_limit=MEMORY_LIMIT)
        cgroups = process_cgroups(pid, mount_points())
        memory_dir = cgroups.get("memory")
        self.assertTrue(self.watcher.watch(container_id, cgroups))
        self.go(pid)
        yield self.wait(lambda: self.stopped(container_id), "the container to stop")
        self.assertEqual(self.reports, [])
        self.delete(container_id)
        if memory_dir:
            self.assertFalse(os.path.exists(memory_dir))
            # The removal signalled the eventfd: the watcher saw the cgroup gone and unwatched quietly.
            yield self.wait(lambda: not self.watcher.watching(), "the watcher to notice the removal")
        yield self.wait(lambda: self.settled(container_id), "the watcher to have handled every wake-up")
        self.assertEqual(self.reports, [])
