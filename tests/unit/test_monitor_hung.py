"""
A stopped (SIGSTOP) monitor: with L{MonitorClient.timeout} set (connect's C{request_timeout}), what waits for it
fails with L{MonitorTimeout} (a DeadlineExceeded) within the timeout, new calls fail at once while it stays silent,
nothing the daemon gave up on happens after SIGCONT, and then everything works again.
"""

import os
import signal
import time

from twisted.internet import reactor
from twisted.trial import unittest

from containerd_tx.errors import DeadlineExceeded
from containerd_tx.monitor_client.client import MonitorTimeout
from tests.unit import test_monitor_client as base
from tests.unit.test_monitor_client import SH, wait_until
from tests.unit.test_monitord import alive


class HungMonitorTests(unittest.TestCase):

    # A real monitor started by the client, stopped with its descendants after the test.
    setUp = base.MonitorClientTests.setUp
    _stop_all = base.MonitorClientTests._stop_all
    connect = base.MonitorClientTests.connect

    def stop_monitor(self, client):
        os.kill(client.monitor_pid, signal.SIGSTOP)
        self.addCleanup(self.cont, client)

    def cont(self, client):
        try:
            os.kill(client.monitor_pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    async def test_stopped_monitor(self):
        """
        A spawn sent to a stopped monitor fails with MonitorTimeout within the timeout; while the monitor is
        silent new requests fail at once; after SIGCONT the abandoned spawn never runs and new ones work.
        """
        client = await self.connect(request_timeout=1.0)
        marker = os.path.join(self.dir, "ran")
        self.stop_monitor(client)
        started = reactor.seconds()
        spawn = client.spawn([SH, "-c", "touch " + marker], capture=True)
        with self.assertRaises(MonitorTimeout) as raised:
            await spawn.result
        elapsed = reactor.seconds() - started
        self.assertIsInstance(raised.exception, DeadlineExceeded)
        self.assertIn("has not answered for 1s", str(raised.exception))
        self.assertLess(elapsed, 10.0)  # generous: the timeout is 1 s
        self.assertTrue(client.hung)
        with self.assertRaises(MonitorTimeout):
            await client.close_stdin("c1", "init")
        with self.assertRaises(MonitorTimeout):
            await client.spawn([SH, "-c", "true"]).result
        self.cont(client)
        await wait_until(lambda: not client.hung, message="the monitor to answer again")
        result = await client.spawn([SH, "-c", "echo ok"], capture=True).result
        self.assertEqual((result.status, result.stdout), (0, b"ok\n"))
        # The monitor answers in order: the abandoned spawn was refused before this one ran.
        self.assertFalse(os.path.exists(marker))

    async def test_start_finished_after_the_deadline(self):
        """
        A registered start that the monitor finishes only after the daemon gave up (the monitor was stopped
        while it ran): the started process is killed and not registered, so nothing is left unsupervised.
        """
        client = await self.connect(request_timeout=1.0)
        pid_file = os.path.join(self.dir, "late.pid")
        go = os.path.join(self.dir, "go")
        os.mkfifo(go)
        sent = time.monotonic()
        spawn = client.spawn(
            [SH, "-c", "read x < %s; sleep 1000 >/dev/null 2>&1 & echo $! > %s" % (go, pid_file)],
            pid_file=pid_file,
            register={"container": "late", "process": "init", "record_dir": self.dir},
        )
        await spawn.started
        self.stop_monitor(client)
        with self.assertRaises(MonitorTimeout):
            await spawn.result
        # The start finishes while the monitor is stopped, after its deadline (timeout + 1 s).
        with open(go, "w") as f:
            f.write("go\n")
        await wait_until(lambda: os.path.exists(pid_file) and os.path.getsize(pid_file) > 0, message="the pid file")
        await wait_until(lambda: time.monotonic() > sent + client.timeout + 1.0, message="the deadline to pass")
        pid = int(open(pid_file).read())
        self.assertTrue(alive(pid))
        self.cont(client)
        await wait_until(lambda: not alive(pid), message="the late process killed")
        await wait_until(lambda: not client.hung, message="the monitor to answer again")
        hello = await client._request({"op": "hello"})
        self.assertEqual(hello["processes"], [])
        self.assertIn("late/init: started after the daemon gave up; killing pid %d" % (pid,),
                      open(os.path.join(self.dir, "monitor.log")).read())
