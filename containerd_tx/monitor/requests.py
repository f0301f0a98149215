# -*- test-case-name: tests.unit.test_monitord -*-
"""
Answering the daemon's requests: a line's dispatch (L{Requests.handle_line}) and the small requests (hello,
adopt, forget, resize, close_stdin, exit_handled, ended).  Spawns are L{containerd_tx.monitor.spawn}'s, the
takeover and re-execution L{containerd_tx.monitor.handover}'s.

Standard library only (see C{monitord.py}, which documents the wire protocol).
"""

import json
import os
import time

from containerd_tx.monitor.connection import BadRequest, RequestFailed, get_int, get_name, get_str
from containerd_tx.monitor.loop import log
from containerd_tx.monitor.proxies import Proxies
from containerd_tx.monitor.reaping import read_proc_stat


class Requests:
    """
    The request handlers of the L{containerd_tx.monitor.server.Monitor} (a mixin).
    """

    def handle_line(self, conn, line):
        """
        Answer one request line; never raise.
        """
        tag = None
        try:
            try:
                req = json.loads(line)
            except ValueError as e:
                raise BadRequest("not JSON: %s" % (e,))
            if not isinstance(req, dict):
                raise BadRequest("expected a JSON object")
            tag = req.get("tag")
            if not isinstance(tag, int) or isinstance(tag, bool):
                tag = None
                raise BadRequest("missing integer tag")
            op = req.get("op")
            handler = self.ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise BadRequest("unknown op %r" % (op,))
            start_by = req.get("start_by_ns")
            if isinstance(start_by, int) and time.monotonic_ns() > start_by:
                # The daemon has given up on it (this monitor was stopped, or far behind): never act on it.
                raise RequestFailed("deadline exceeded: the request came %.1fs too late"
                                    % ((time.monotonic_ns() - start_by) / 1e9,))
            reply = handler(conn, tag, req)
        except BadRequest as e:
            log("bad request: %s" % (e,))
            reply = {"ok": False, "error": "bad request: %s" % (e,)}
        except RequestFailed as e:
            reply = {"ok": False, "error": str(e)}
        except Exception as e:
            log("internal error in request: %s: %s" % (type(e).__name__, e))
            reply = {"ok": False, "error": "internal error: %s: %s" % (type(e).__name__, e)}
        if reply is not None:
            if tag is not None:
                reply = dict(tag=tag, **reply)
            conn.send(reply)

    def op_hello(self, conn, tag, req):
        processes = [self.procs[k].describe() for k in sorted(self.procs)]
        exits = [record for _, record in self.unwritten.values()]
        conn.send({"tag": tag, "ok": True, "pid": self.pid, "protocol": self.protocol, "processes": processes,
                   "exits": exits})
        # The new daemon's fd store: a copy of every stdio fd, registered processes and exited ones still
        # flushing.
        for set_id in list(self.fdsets):
            self.send_fdset(conn, set_id)
        return None

    def op_ended(self, conn, tag, req):
        """A fostered process exited (the daemon reaped it): its output is flushed, its stdio closed."""
        container = get_name(req, "container")
        process = get_name(req, "process")
        pid = get_int(req, "pid", 1, 2**31 - 1)
        proc = self.procs.get((container, process))
        if proc is not None and proc.pid == pid and proc.fostered:
            self._drop(proc, drain=True)
        return {"ok": True}

    def op_exit_handled(self, conn, tag, req):
        container = get_name(req, "container")
        process = get_name(req, "process")
        pid = get_int(req, "pid", 0, 2**31 - 1)
        entry = self.unwritten.get((container, process))
        if entry is not None and entry.record["pid"] == pid:
            del self.unwritten[(container, process)]
            self.release_zombie(pid)
        return {"ok": True}

    def _drop(self, proc, drain=False):
        """Forget C{proc}: its registration goes, its stdio closes (with C{drain}, after what is left is out)."""
        self.unregister(proc)
        proc.proxies.close(drain=drain)
        self._set_exited(proc.proxies)

    def _lookup(self, req):
        container = get_name(req, "container")
        process = get_name(req, "process")
        proc = self.procs.get((container, process))
        if proc is None:
            raise RequestFailed("no such process %s of container %s" % (process, container))
        return proc

    def op_resize(self, conn, tag, req):
        proc = self._lookup(req)
        width = get_int(req, "width", 0, 65535)
        height = get_int(req, "height", 0, 65535)
        if not proc.proxies.resize(width, height):
            raise RequestFailed(
                "process %s of container %s has no terminal" % (proc.process, proc.container)
            )
        return {"ok": True}

    def op_close_stdin(self, conn, tag, req):
        self._lookup(req).proxies.close_stdin()
        return {"ok": True}

    def op_forget(self, conn, tag, req):
        container = get_name(req, "container")
        process = get_name(req, "process")
        proc = self.procs.get((container, process))
        if proc is not None:
            self._drop(proc)
        return {"ok": True}

    def op_adopt(self, conn, tag, req):
        container = get_name(req, "container")
        process = get_name(req, "process")
        pid = get_int(req, "pid", 1, 2**31 - 1)
        record_dir = get_str(req, "record_dir", path=True)
        existing = self.procs.get((container, process))
        if existing is not None and existing.pid == pid and existing.fostered:
            # Its stdio came with a takeover; the daemon that reaped it is gone: watch it, status unknown.
            try:
                existing.pidfd = os.pidfd_open(pid)
            except OSError as e:
                raise RequestFailed("cannot watch pid %d: %s" % (pid, e.strerror))
            existing.fostered = False
            self.loop.add_reader(existing.pidfd, lambda: self._on_pidfd(existing))
            return {"ok": True, "pid": pid}
        if existing is not None:
            if existing.pid == pid:
                return {"ok": True, "pid": pid}
            raise RequestFailed(
                "process %s of container %s is already registered with pid %d"
                % (process, container, existing.pid)
            )
        if pid in self.procs_by_pid:
            other = self.procs_by_pid[pid]
            raise RequestFailed(
                "pid %d is already registered as process %s of container %s"
                % (pid, other.process, other.container)
            )
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise RequestFailed("pid %d is not alive" % (pid,))
        except OSError as e:
            raise RequestFailed("cannot watch pid %d: %s" % (pid, e.strerror))
        stat = read_proc_stat(pid)
        if stat is None or stat.state in ("Z", "X"):
            os.close(pidfd)
            raise RequestFailed("pid %d is not alive" % (pid,))
        proc = self.register(
            container, process, pid, record_dir, Proxies(self.loop, "%s/%s" % (container, process))
        )
        if stat.ppid == self.pid:
            os.close(pidfd)  # our own child: waitpid gives its true status
        else:
            proc.pidfd = pidfd
            self.loop.add_reader(pidfd, lambda: self._on_pidfd(proc))
        return {"ok": True, "pid": pid}
