"""
Exit records the monitor cannot write (ENOSPC on a size-limited tmpfs, a folder gone) and records written
off the stdio loop (a frozen filesystem blocks every write to it; stdio keeps flowing meanwhile).
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import tempfile

from twisted.trial import unittest

from tests.support.daemon import wait_for
from tests.unit.test_monitord import SH, Monitor, read_file


def run(*argv):
    result = subprocess.run(argv, capture_output=True)
    if result.returncode != 0:
        raise unittest.SkipTest(f"{' '.join(argv)}: {result.stderr.decode().strip()}")


def fill(directory):
    """Fill the filesystem of C{directory} with one file; return its path."""
    path = os.path.join(directory, "filler")
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    # A few more small writes until nothing at all fits.
    return path


class RecordTestCase(unittest.TestCase):

    def setUp(self):
        self.monitor = Monitor(self)
        self.dir = self.monitor.dir
        self.client = self.monitor.connect()

    def mount(self, *options):
        """A fresh mount point with C{mount options}; unmounted in cleanup."""
        point = tempfile.mkdtemp(prefix="mon-rec-", dir="/tmp")
        run("mount", *options, point)

        def unmount():
            subprocess.run(["umount", "-l", point])
            os.rmdir(point)

        self.addCleanup(unmount)
        return point

    def register(self, container, process, command, record_dir, **fields):
        pid_file = os.path.join(self.dir, "%s-%s.pid" % (container, process))
        reply = self.client.spawn(
            [SH, "-c", command.replace("PIDFILE", pid_file)],
            pid_file=pid_file,
            register={"container": container, "process": process, "record_dir": record_dir},
            **fields,
        )
        self.assertTrue(reply["ok"], reply)
        self.assertEqual(reply["status"], 0)
        return reply["pid"]


class UnwritableRecordTests(RecordTestCase):

    def full_tmpfs(self):
        point = self.mount("-t", "tmpfs", "-o", "size=64k", "none")
        records = os.path.join(point, "c1")
        os.mkdir(records)
        return point, records, fill(point)

    def test_enospc_kept_for_the_daemon(self):
        """
        An exit whose record does not fit on the disk is still reported with its true status, kept in memory,
        handed to the next daemon in hello, and written once the disk has room again.
        """
        point, records, filler = self.full_tmpfs()
        pid = self.register("c1", "init", "sleep 1000 & echo $! > PIDFILE", records)
        os.kill(pid, signal.SIGKILL)
        event = self.client.event(event="exit", container="c1", process="init")
        self.assertEqual((event["pid"], event["status"]), (pid, 137))
        self.assertIsNone(read_file(os.path.join(records, "exit-init.json")))
        self.assertEqual([n for n in os.listdir(records)], [])  # no torn temporary file either
        self.assertIn("kept in memory for the daemon", self.monitor.log())
        # A new daemon connection (the old daemon died) is told in hello.
        client = self.monitor.connect()
        hello = client.request("hello")
        self.assertEqual(len(hello["exits"]), 1)
        record = hello["exits"][0]
        self.assertEqual((record["container"], record["process"], record["pid"], record["status"]),
                         ("c1", "init", pid, 137))
        os.unlink(filler)
        path = os.path.join(records, "exit-init.json")
        wait_for(lambda: read_file(path), message="the record written at last")
        self.assertEqual(json.loads(read_file(path)), record)
        self.assertEqual(client.request("hello")["exits"], [])

    def test_exit_handled(self):
        """A record the daemon says it has handled is dropped from memory."""
        point, records, filler = self.full_tmpfs()
        pid = self.register("c1", "e1", "sleep 1000 & echo $! > PIDFILE", records)
        os.kill(pid, signal.SIGTERM)
        self.assertEqual(self.client.event(event="exit", process="e1")["status"], 143)
        self.assertEqual(len(self.client.request("hello")["exits"]), 1)
        # Another pid: not that exit.
        self.assertTrue(self.client.request("exit_handled", container="c1", process="e1", pid=pid + 1)["ok"])
        self.assertEqual(len(self.client.request("hello")["exits"]), 1)
        self.assertTrue(self.client.request("exit_handled", container="c1", process="e1", pid=pid)["ok"])
        self.assertEqual(self.client.request("hello")["exits"], [])

    def test_folder_gone(self):
        """A record whose folder was removed meanwhile (the container is gone) is dropped, not retried forever."""
        records = tempfile.mkdtemp(prefix="mon-rec-", dir="/tmp")
        self.addCleanup(shutil.rmtree, records, True)
        pid = self.register("c2", "init", "sleep 1000 & echo $! > PIDFILE", records)
        os.rmdir(records)
        os.kill(pid, signal.SIGKILL)
        self.assertEqual(self.client.event(event="exit", container="c2")["status"], 137)
        wait_for(lambda: "exit record of c2/init dropped" in self.monitor.log(), message="the record dropped")
        self.assertEqual(self.client.request("hello")["exits"], [])


class FrozenDiskTests(RecordTestCase):

    def test_stdio_flows_while_a_record_waits(self):
        """
        With the records' filesystem frozen (every write to it blocks), an exit's record waits on the writer
        thread while another container's output keeps flowing; thawed, the record is written and only then is
        the exit reported.
        """
        image = os.path.join(self.dir, "fs.img")
        with open(image, "wb") as f:
            f.truncate(16 << 20)
        run("mkfs.ext4", "-q", image)
        point = self.mount("-o", "loop", image)
        records = os.path.join(point, "c1")
        os.mkdir(records)
        fifo = os.path.join(self.dir, "chatty.out")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        self.register("chatty", "init", "(i=0; while :; do echo $i; i=$((i+1)); sleep 0.01; done) & echo $! > PIDFILE",
                      self.dir, stdout=fifo)
        quiet = self.register("c1", "init", "sleep 1000 & echo $! > PIDFILE", records)
        run("fsfreeze", "--freeze", point)
        frozen = [True]

        def thaw():
            if frozen:
                subprocess.run(["fsfreeze", "--unfreeze", point])
                frozen.clear()

        self.addCleanup(thaw)
        os.kill(quiet, signal.SIGKILL)
        # Its status is read, but it is reaped only once its record is on disk: until then the zombie keeps it
        # (a monitor killed meanwhile leaves it to the daemon, which reaps it with its true status).
        wait_for(lambda: _state(quiet) == "Z", message="the process to exit")
        got = []

        def lines():
            try:
                got.append(os.read(reader, 65536))
            except BlockingIOError:
                pass
            return b"".join(got).count(b"\n") >= 50

        # 50 lines after the exit, while its record cannot be written.
        wait_for(lines, timeout=20, message="50 lines of output while the disk is frozen")
        self.assertFalse(os.path.exists(os.path.join(records, "exit-init.json")))
        self.assertEqual([e for e in self.client.events if e.get("event") == "exit"], [])
        self.assertEqual(_state(quiet), "Z")
        thaw()
        event = self.client.event(event="exit", container="c1")
        self.assertEqual(event["status"], 137)
        self.assertEqual(json.loads(read_file(os.path.join(records, "exit-init.json")))["status"], 137)
        self.assertIsNone(_state(quiet))  # reaped before the exit was reported


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:].split()[0].decode()
