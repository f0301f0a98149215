"""
Tests for L{containerd_tx.state_store}: the daemon's records in the state dir.
"""

import errno
import json
import os

from twisted.internet import defer, threads
from twisted.trial.unittest import SynchronousTestCase, TestCase

from containerd_tx import layout, state_store

from containerd_tx.layout import write_atomically
from containerd_tx.model import INIT, RUNNING, Container, Process, User
from containerd_tx.monitor.records import write_record
from containerd_tx.state_store import StateStore, filesystem_type


def _container(container_id="c1"):
    init = Process(
        id=INIT,
        args=["sh", "-c", "sleep 100"],
        env=["PATH=/bin", "TERM=xterm"],
        cwd="/work",
        terminal=True,
        user=User(uid=1000, gid=1000, additional_gids=[10, 20]),
        stdin="/tmp/in",
        stdout="/tmp/out",
        stderr="/tmp/err",
        capabilities=["CAP_KILL", "CAP_CHOWN"],
        apparmor_profile="docker-default",
        selinux_label="system_u:system_r:container_t:s0",
        no_new_privileges=True,
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}],
        system_pid=4242,
    )
    exec_process = Process(id="exec1", args=["ls"], system_pid=4343)
    return Container(
        id=container_id,
        bundle="/bundles/" + container_id,
        runtime="runc",
        runtime_args=["--root=/run/x"],
        labels=["a=b", "c"],
        status=RUNNING,
        no_pivot_root=True,
        processes={INIT: init, "exec1": exec_process},
        cgroups={"memory": "/sys/fs/cgroup/memory/x", "unified": "/sys/fs/cgroup/unified/x"},
        created_ns=1234567890123456789,
    )


class WriteAtomicallyTests(SynchronousTestCase):
    """
    L{write_atomically} replaces a file in one step.
    """

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "record.json")

    def test_creates(self):
        """
        A new file gets the data, private to the owner, and no temporary file is left behind.
        """
        write_atomically(self.path, b"hello")
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"hello")
        self.assertEqual(os.listdir(self.dir), ["record.json"])
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)

    def test_replaces(self):
        """
        An existing file is replaced by a new one (a new inode: readers of the old one see the old content).
        """
        write_atomically(self.path, b"old content that is longer")
        with open(self.path, "rb") as reader:
            write_atomically(self.path, b"new")
            self.assertEqual(reader.read(), b"old content that is longer")
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"new")
        self.assertEqual(os.listdir(self.dir), ["record.json"])

    def test_large(self):
        """
        Data larger than one write is written completely.
        """
        data = os.urandom(3 * 1024 * 1024)
        write_atomically(self.path, data)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), data)

    def test_empty(self):
        """
        Empty data gives an empty file.
        """
        write_atomically(self.path, b"")
        self.assertEqual(os.path.getsize(self.path), 0)

    def test_stale_tmp_overwritten(self):
        """
        A temporary file left by an earlier crash does not get in the way.
        """
        with open(os.path.join(self.dir, ".tmp-record.json"), "wb") as f:
            f.write(b"torn garbage that is long")
        write_atomically(self.path, b"ok")
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), b"ok")
        self.assertEqual(os.listdir(self.dir), ["record.json"])


class _CallNow:
    """A reactor stand-in for L{OrderedWriter._commit} run on the test's thread: results delivered at once."""

    def callFromThread(self, f, *args):
        f(*args)


class DurabilityOrderTests(SynchronousTestCase):
    """
    A record is durable before it is visible under its name: its data is synced before the rename, so a crash
    never leaves an empty or torn file where a record was. Checked by recording the syscalls in order.
    """

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.calls = []
        real_fsync, real_rename = os.fsync, os.rename

        def fsync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            with open(path, "rb") as f:
                self.calls.append(("fsync", os.path.basename(path), f.read()))
            return real_fsync(fd)

        def rename(src, dst):
            self.calls.append(("rename", os.path.basename(src), os.path.basename(dst)))
            return real_rename(src, dst)

        def syncfs(path):
            self.calls.append(("syncfs", path))

        self.patch(os, "fsync", fsync)
        self.patch(os, "rename", rename)
        self.patch(state_store, "_syncfs", syncfs)

    def test_write_atomically_syncs_the_whole_file_then_renames(self):
        path = os.path.join(self.dir, "record.json")
        write_atomically(path, b'{"a": 1}')
        tmp = layout.temp_name("record.json")
        self.assertEqual(self.calls, [("fsync", tmp, b'{"a": 1}'), ("rename", tmp, "record.json")])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b'{"a": 1}')

    def test_ordered_writer_syncs_before_and_after_the_renames(self):
        writer = state_store.OrderedWriter(_CallNow(), self.dir)
        paths = [os.path.join(self.dir, name) for name in ("a.json", "b.json")]
        batch = [(write_atomically, (path, path[-6:].encode()), defer.Deferred()) for path in paths]
        writer._commit(batch)  # the writer thread's work for one batch, here on this thread
        tmps = [layout.temp_name(os.path.basename(path)) for path in paths]
        self.assertEqual(self.calls, [("syncfs", self.dir),
                                      ("rename", tmps[0], "a.json"), ("rename", tmps[1], "b.json"),
                                      ("syncfs", self.dir)])
        for path in paths:
            with open(path, "rb") as f:
                self.assertEqual(f.read(), path[-6:].encode())

    def test_ordered_writer_syncs_a_record_rewritten_in_place(self):
        """
        A batch that only rewrote records in place (no rename) is synced once before it is reported done: no
        second sync, which only makes renames durable.
        """
        path = os.path.join(self.dir, "container.json")
        write_atomically(path, b'{"status":"creating"}')
        del self.calls[:]
        writer = state_store.OrderedWriter(_CallNow(), self.dir)
        done = defer.Deferred()
        writer._commit([(layout.rewrite_record, (path, b'{"status":"running"}'), done)])
        self.assertEqual([call[0] for call in self.calls], ["syncfs"])
        self.assertIsNone(self.successResultOf(done))
        with open(path, "rb") as f:
            self.assertEqual(json.loads(f.read()), {"status": "running"})

    def test_ordered_writer_syncs_new_records_once_without_renames(self):
        """
        A batch of new records (a container's first records and a rewritten one) is written under the final
        names, whole before the one sync, and reported done after it.
        """
        seen = []
        self.patch(state_store, "_syncfs", lambda root: seen.append(sorted(
            (name, open(os.path.join(root, name), "rb").read()) for name in os.listdir(root))))
        old = os.path.join(self.dir, "old.json")
        write_atomically(old, b'{"v":1}')
        del self.calls[:]
        writer = state_store.OrderedWriter(_CallNow(), self.dir)
        done = [defer.Deferred() for _ in range(3)]
        writer._commit([(layout.write_new_record, (os.path.join(self.dir, "a.json"), b'{"a":1}'), done[0]),
                        (layout.write_new_record, (os.path.join(self.dir, "b.json"), b'{"b":2}'), done[1]),
                        (layout.rewrite_record, (old, b'{"v":2}'), done[2])])
        self.assertEqual(seen, [[("a.json", b'{"a":1}'), ("b.json", b'{"b":2}'), ("old.json", b'{"v":2}')]])
        self.assertEqual([call for call in self.calls if call[0] == "rename"], [])
        for d in done:
            self.assertIsNone(self.successResultOf(d))

    def test_new_record_over_an_existing_one_is_replaced_atomically(self):
        """A record that exists already is not written over in place: it is replaced through a temporary file."""
        path = os.path.join(self.dir, "record.json")
        write_atomically(path, b'{"v":1}')
        del self.calls[:]
        layout.write_new_record(path, b'{"v":2}')
        tmp = layout.temp_name("record.json")
        self.assertEqual(self.calls, [("fsync", tmp, b'{"v":2}'), ("rename", tmp, "record.json")])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b'{"v":2}')

    def test_new_record_after_a_pending_rename_of_it_lands_last(self):
        """
        A new record whose replacement is still waiting for its rename in the same batch is not written under
        the name first (the rename would then put the older data back over it).
        """
        path = os.path.join(self.dir, "late.json")
        writer = state_store.OrderedWriter(_CallNow(), self.dir)
        writer._commit([(write_atomically, (path, b'{"v":1}'), defer.Deferred()),
                        (layout.write_new_record, (path, b'{"v":2}'), defer.Deferred())])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b'{"v":2}')

    def test_new_record_outside_a_batch_is_synced(self):
        path = os.path.join(self.dir, "fresh.json")
        layout.write_new_record(path, b'{"new":true}')
        self.assertEqual(self.calls, [("fsync", "fresh.json", b'{"new":true}')])

    def test_new_record_that_cannot_be_written_leaves_nothing(self):
        path = os.path.join(self.dir, "full.json")

        def write(fd, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(os, "write", write)
        with self.assertRaises(OSError):
            layout.write_new_record(path, b"data")
        self.assertEqual(os.listdir(self.dir), [])

    def test_save_new_writes_the_container_record_last(self):
        """
        A daemon killed while writing a new container's records leaves a folder whose container.json is
        missing or torn (removed at the next start), never a readable container.json beside a torn process
        record.
        """
        order = []
        real = layout.write_new_record
        self.patch(layout, "write_new_record", lambda path, data: (order.append(os.path.basename(path)),
                                                                   real(path, data)))
        store = state_store.StateStore(self.dir)
        container = _container("web")
        store.save_new("web", list(container.processes.values()), container)
        self.assertEqual(order[-1], "container.json")
        self.assertEqual(sorted(order[:-1]), ["process-exec1.json", "process-init.json"])
        [loaded] = store.load()
        self.assertEqual(loaded, container)

    def test_ordered_writer_files_complete_when_synced(self):
        seen = []
        self.patch(state_store, "_syncfs", lambda root: seen.append(sorted(
            (name, open(os.path.join(root, name), "rb").read()) for name in os.listdir(root))))
        writer = state_store.OrderedWriter(_CallNow(), self.dir)
        writer._commit([(write_atomically, (os.path.join(self.dir, "c.json"), b"complete"), defer.Deferred())])
        tmp = layout.temp_name("c.json")
        # Before the renames: the data is written in full under the temporary name; after: under the real one.
        self.assertEqual(seen, [[(tmp, b"complete")], [("c.json", b"complete")]])


class StateStoreTests(SynchronousTestCase):
    """
    L{StateStore} saves containers and reads them back.
    """

    def setUp(self):
        self.state_dir = os.path.abspath(self.mktemp())
        self.store = StateStore(self.state_dir)

    def save(self, container):
        self.store.save_container(container)
        for process in container.processes.values():
            self.store.save_process(container.id, process)

    def test_layout(self):
        """
        Records live under <state-dir>/containers/<id>/, in the documented files.
        """
        self.assertTrue(os.path.isdir(os.path.join(self.state_dir, "containers")))
        self.save(_container("c1"))
        directory = os.path.join(self.state_dir, "containers", "c1")
        self.assertEqual(self.store.container_dir("c1"), directory)
        self.assertEqual(
            sorted(os.listdir(directory)), ["container.json", "process-exec1.json", "process-init.json"]
        )
        self.assertEqual(self.store.layout.runtime_log("c1"), os.path.join(directory, "runtime.log"))
        self.assertEqual(self.store.layout.pid_file("c1", "init"), os.path.join(directory, "pid-init"))
        with open(os.path.join(directory, "container.json")) as f:
            record = json.load(f)
        self.assertEqual(record["id"], "c1")
        self.assertNotIn("processes", record)

    def test_round_trip(self):
        """
        A saved container with its processes loads back equal, field for field.
        """
        container = _container("c1")
        self.save(container)
        self.save(_container("c2"))
        loaded = self.store.load()
        self.assertEqual([c.id for c in loaded], ["c1", "c2"])
        self.assertEqual(loaded[0], container)
        self.assertIsInstance(loaded[0].init.user, User)
        self.assertEqual(loaded[0].init.user.additional_gids, [10, 20])
        self.assertEqual(loaded[0].init.system_pid, 4242)
        self.assertEqual(loaded[0].processes["exec1"].system_pid, 4343)

    def test_records_name_every_field(self):
        """
        The hand-written records carry every field of the model (a field added later must be saved too).
        """
        import dataclasses

        container = _container("c1")
        self.assertEqual(set(container.to_record()),
                         {f.name for f in dataclasses.fields(Container)} - {"processes"})
        self.assertEqual(set(container.init.to_record()), {f.name for f in dataclasses.fields(Process)})
        self.assertEqual(set(container.init.to_record()["user"]), {f.name for f in dataclasses.fields(User)})

    def test_records_are_copies(self):
        """
        A record does not share lists with the live model: changing the model later cannot change what is
        being written.
        """
        container = _container("c1")
        record = container.init.to_record()
        container_record = container.to_record()
        container.init.args.append("x")
        container.init.user.additional_gids.append(99)
        container.labels.append("later")
        self.assertEqual(record["args"], ["sh", "-c", "sleep 100"])
        self.assertEqual(record["user"]["additional_gids"], [10, 20])
        self.assertEqual(container_record["labels"], ["a=b", "c"])

    def test_fresh_store_on_same_dir(self):
        """
        A new store on the same state dir (a restarted daemon) reads what the old one saved.
        """
        container = _container()
        self.save(container)
        self.assertEqual(StateStore(self.state_dir).load(), [container])

    def test_resave(self):
        """
        Saving again replaces the record.
        """
        container = _container()
        self.save(container)
        container.status = "paused"
        container.processes[INIT].system_pid = 99
        self.save(container)
        self.assertEqual(self.store.load(), [container])

    def test_empty(self):
        """
        A fresh state dir holds no containers.
        """
        self.assertEqual(self.store.load(), [])

    def test_load_removes_tmp_files(self):
        """
        Torn temporary files are removed by load(); the records beside them are kept.
        """
        container = _container()
        self.save(container)
        directory = self.store.container_dir(container.id)
        for name in (".tmp-container.json", ".tmp-process-init.json", ".tmp-exit-init.json"):
            with open(os.path.join(directory, name), "wb") as f:
                f.write(b'{"torn')
        self.assertEqual(self.store.load(), [container])
        self.assertEqual([n for n in os.listdir(directory) if n.startswith(".tmp-")], [])

    def test_load_removes_the_monitors_tmp_files(self):
        """
        The temporary files of exit records a monitor was writing when it died are removed by load() too (and
        those of monitors older than the shared layout, C{.<name>.<pid>.tmp}); the records beside them are kept.
        """
        container = _container()
        self.save(container)
        directory = self.store.container_dir(container.id)
        records = sorted(os.listdir(directory))

        def killed_before_rename(src, dst):
            raise OSError(errno.EIO, "the monitor was killed here")

        # The monitor's own record write, stopped where a monitor killed at that moment stops.
        real_rename, os.rename = os.rename, killed_before_rename
        try:
            self.assertRaises(OSError, write_record, directory, layout.exit_record_name("init"),
                              {"container": container.id, "process": "init", "pid": 42, "status": 0})
        finally:
            os.rename = real_rename
        with open(os.path.join(directory, ".exit-init.json.4242.tmp"), "wb") as f:
            f.write(b'{"torn')
        self.assertEqual(sorted(n for n in os.listdir(directory) if n.startswith(".")),
                         [".exit-init.json.4242.tmp", ".tmp-exit-init.json"])
        self.assertEqual(self.store.load(), [container])
        self.assertEqual(sorted(os.listdir(directory)), records)

    def test_load_removes_folder_without_record(self):
        """
        A folder without container.json (a create that crashed half-way) is removed by load().
        """
        self.save(_container("good"))
        directory = self.store.container_dir("half")
        os.makedirs(directory)
        with open(os.path.join(directory, "runtime.log"), "w") as f:
            f.write("log")
        self.assertEqual([c.id for c in self.store.load()], ["good"])
        self.assertFalse(os.path.exists(directory))

    def test_load_removes_folder_with_only_tmp_record(self):
        """
        A folder whose container record never got past its temporary file is removed.
        """
        directory = self.store.container_dir("half")
        os.makedirs(directory)
        with open(os.path.join(directory, ".tmp-container.json"), "wb") as f:
            f.write(b"{}")
        self.assertEqual(self.store.load(), [])
        self.assertFalse(os.path.exists(directory))

    def test_load_removes_folder_with_garbage_record(self):
        """
        A folder whose container.json is garbage (not JSON, or not a container) is removed by load().
        """
        self.save(_container("good"))
        for name, content in (
            ("torn", b'{"id": "torn", "bun'),
            ("empty", b""),
            ("list", b"[1, 2]"),
            ("number", b"5"),
            ("null", b"null"),
            ("partial", b'{"id": "partial"}'),
            ("extra", json.dumps(dict(_container("extra").to_record(), bogus=1)).encode()),
        ):
            directory = self.store.container_dir(name)
            os.makedirs(directory)
            with open(os.path.join(directory, "container.json"), "wb") as f:
                f.write(content)
        self.assertEqual([c.id for c in self.store.load()], ["good"])
        self.assertEqual(os.listdir(os.path.join(self.state_dir, "containers")), ["good"])

    def test_load_skips_garbage_process_record(self):
        """
        A process record that is not a process is skipped; the container and its good processes load.
        """
        container = _container()
        self.save(container)
        directory = self.store.container_dir(container.id)
        for name, content in (("torn", b'{"id": "to'), ("list", b"[]"), ("number", b"5"), ("empty", b"{}")):
            with open(os.path.join(directory, f"process-{name}.json"), "wb") as f:
                f.write(content)
        self.assertEqual(self.store.load(), [container])

    def test_load_ignores_files_in_root(self):
        """
        Stray files beside the container folders are left alone.
        """
        stray = os.path.join(self.state_dir, "containers", "README")
        with open(stray, "w"):
            pass
        self.assertEqual(self.store.load(), [])
        self.assertTrue(os.path.exists(stray))

    def _write_exit(self, container_id, process_id, content):
        directory = self.store.container_dir(container_id)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"exit-{process_id}.json"), "wb") as f:
            f.write(content if isinstance(content, bytes) else json.dumps(content).encode())

    def test_read_exit_records(self):
        """
        Exit records come back oldest first (by time_ns); garbage records are skipped.
        """
        self.save(_container())
        self._write_exit("c1", "late", {"pid": "late", "status": 1, "time_ns": 300})
        self._write_exit("c1", "early", {"pid": "early", "status": 2, "time_ns": 100})
        self._write_exit("c1", "middle", {"pid": "middle", "status": 3, "time_ns": 200})
        self._write_exit("c1", "torn", b'{"pid": "torn", "sta')
        self._write_exit("c1", "list", b"[1]")
        with open(os.path.join(self.store.container_dir("c1"), "exit-notes.txt"), "w") as f:
            f.write("not a record")
        records = self.store.read_exit_records("c1")
        self.assertEqual([r["pid"] for r in records], ["early", "middle", "late"])
        self.assertEqual([r["status"] for r in records], [2, 3, 1])

    def test_read_exit_records_unknown_container(self):
        """
        A container without a folder has no exit records.
        """
        self.assertEqual(self.store.read_exit_records("nothing"), [])

    def test_remove_exit_record(self):
        """
        remove_exit_record drops one exit record only (and tolerates a missing one).
        """
        self._write_exit("c1", "a", {"time_ns": 1})
        self._write_exit("c1", "b", {"time_ns": 2})
        self.store.remove_exit_record("c1", "a")
        self.store.remove_exit_record("c1", "a")
        self.assertEqual(self.store.read_exit_records("c1"), [{"time_ns": 2}])

    def test_remove_process(self):
        """
        remove_process removes the process record, its exit record and its pid file, nothing else.
        """
        container = _container()
        self.save(container)
        directory = self.store.container_dir(container.id)
        self._write_exit("c1", "exec1", {"time_ns": 1})
        self._write_exit("c1", "init", {"time_ns": 2})
        for process_id in ("exec1", "init"):
            with open(self.store.layout.pid_file("c1", process_id), "w") as f:
                f.write("123")
        self.store.remove_process("c1", "exec1")
        self.assertEqual(
            sorted(os.listdir(directory)), ["container.json", "exit-init.json", "pid-init", "process-init.json"]
        )
        loaded = self.store.load()
        self.assertEqual(list(loaded[0].processes), [INIT])
        # Removing what is not there is harmless.
        self.store.remove_process("c1", "exec1")
        self.store.remove_process("c1", "never")

    def test_remove_container(self):
        """
        remove_container forgets the container and every file of it; the others stay.
        """
        self.save(_container("c1"))
        self.save(_container("c2"))
        with open(self.store.layout.runtime_log("c1"), "w") as f:
            f.write("log")
        self.store.remove_container("c1")
        self.assertFalse(os.path.exists(self.store.container_dir("c1")))
        self.assertEqual([c.id for c in self.store.load()], ["c2"])
        self.store.remove_container("c1")  # twice is harmless


class OrderedWriterTests(TestCase):
    """The daemon's writer: one thread, changes in order, committed in batches."""

    def setUp(self):
        from twisted.internet import reactor

        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.writer = state_store.OrderedWriter(reactor, self.root)
        self.writer.start()
        self.addCleanup(lambda: threads.deferToThread(self.writer.stop))

    @defer.inlineCallbacks
    def test_changes_land_in_order_and_renamed(self):
        path = os.path.join(self.root, "f.json")
        results = [self.writer(write_atomically, path, str(i).encode()) for i in range(50)]
        yield defer.gatherResults(results)
        with open(path) as f:
            self.assertEqual(f.read(), "49")
        self.assertEqual(os.listdir(self.root), ["f.json"])

    @defer.inlineCallbacks
    def test_failure_reaches_only_its_caller(self):
        good = self.writer(write_atomically, os.path.join(self.root, "a"), b"a")
        bad = self.writer(write_atomically, os.path.join(self.root, "missing", "b"), b"b")
        yield good
        with self.assertRaises(FileNotFoundError):
            yield bad
        with open(os.path.join(self.root, "a")) as f:
            self.assertEqual(f.read(), "a")

    @defer.inlineCallbacks
    def test_folder_removed_later_in_the_same_batch(self):
        import shutil

        folder = os.path.join(self.root, "c")
        os.makedirs(folder)
        writes = [self.writer(write_atomically, os.path.join(folder, "x"), b"x"),
                  self.writer(shutil.rmtree, folder)]
        yield defer.gatherResults(writes)
        self.assertFalse(os.path.exists(folder))


class FilesystemTypeTests(SynchronousTestCase):
    """
    L{filesystem_type} finds the mount a path is on: the longest mount point containing it.
    """

    def test_mount_containing_the_path(self):
        mounts = os.path.abspath(self.mktemp())
        with open(mounts, "w") as f:
            f.write("/dev/vda / ext4 rw 0 0\n"
                    "tmpfs /run tmpfs rw 0 0\n"
                    "tmpfs /run/user/0 tmpfs rw 0 0\n"
                    "/dev/vdb /srv/with\\040space xfs rw 0 0\n"
                    "/dev/vdc /srv/tab\\011and\\134slash btrfs rw 0 0\n"
                    "short line\n")
        self.assertEqual(filesystem_type("/run/containerd", mounts), "tmpfs")
        self.assertEqual(filesystem_type("/run", mounts), "tmpfs")
        self.assertEqual(filesystem_type("/running", mounts), "ext4")
        self.assertEqual(filesystem_type("/srv/with space/x", mounts), "xfs")
        self.assertEqual(filesystem_type("/srv/tab\tand\\slash", mounts), "btrfs")
        self.assertEqual(filesystem_type("/var/lib", mounts), "ext4")

    def test_later_mount_hides_earlier(self):
        """
        A tmpfs mounted on /run after an xfs on /run/containerd hides it: the path is on the tmpfs.
        """
        mounts = os.path.abspath(self.mktemp())
        with open(mounts, "w") as f:
            f.write("/dev/vda / ext4 rw 0 0\n/dev/vdb /run/containerd xfs rw 0 0\ntmpfs /run tmpfs rw 0 0\n")
        self.assertEqual(filesystem_type("/run/containerd/x", mounts), "tmpfs")

    def test_unreadable_mounts(self):
        self.assertEqual(filesystem_type("/", "/nonexistent/mounts"), "unknown")
