# -*- test-case-name: tests.unit.test_monitor_takeover -*-
"""
Handing the monitor's work over without losing anything: a new monitor taking over the stdio a dead one left
(C{takeover}), and a monitor re-executing itself in place (C{reexec}: same pid, children and fds; its state in
an inherited memfd) to run a newer daemon's code (L{Handover}, a mixin of the monitor).

Standard library only (see C{monitord.py}).
"""

import binascii
import json
import os
import sys
import time

from containerd_tx.monitor.connection import BadRequest, RequestFailed, b64, get_int, get_name, get_str
from containerd_tx.monitor.loop import close_quietly, log
from containerd_tx.monitor.proxies import Proxies
from containerd_tx.monitor.pumps import Pump
from containerd_tx.monitor.records import KeptRecord
from containerd_tx.monitor.registry import UNKNOWN_STATUS


class Handover:
    """
    The takeover and re-execution of the L{containerd_tx.monitor.server.Monitor} (a mixin).
    """

    def op_takeover(self, conn, tag, req):
        """
        Go on with the stdio of processes a dead monitor left: C{sets} (from the C{fds} events the daemon
        kept: set, container, process, pid, record_dir, tty, exited, names) and, in order, as many fds as
        their names.  A live one is registered as fostered: the daemon reaps it and says C{ended}.
        """
        sets = req.get("sets")
        if not isinstance(sets, list):
            raise BadRequest("sets must be a list")
        count = 0
        for entry in sets:
            if not isinstance(entry, dict) or not isinstance(entry.get("names"), list):
                raise BadRequest("each set must be an object with names")
            count += len(entry["names"])
        fds = conn.take_fds(count)
        taken = 0
        for entry in sets:
            names = entry["names"]
            mine = dict(zip(names, fds[taken: taken + len(names)]))
            taken += len(names)
            for fd in mine.values():
                self.outputs.adopt(fd)  # a file that new processes also write goes on sharing its offset
            try:
                set_id = get_str(entry, "set")
                container = get_name(entry, "container")
                process = get_name(entry, "process")
                pid = get_int(entry, "pid", 1, 2**31 - 1)
                record_dir = get_str(entry, "record_dir", path=True)
            except BadRequest as e:
                log("takeover: set dropped: %s" % (e,))
                for fd in mine.values():
                    close_quietly(fd)
                continue
            if set_id in self.fdsets:
                for fd in mine.values():
                    close_quietly(fd)
                continue
            exited = bool(entry.get("exited"))
            proxies = Proxies.restore(self.loop, "%s/%s" % (container, process), mine,
                                          bool(entry.get("tty")))
            if exited:
                # Its output still flushing to a slow reader: linger on (from now, at most LINGER_SECONDS).
                self.track(set_id, proxies, meta={"container": container, "process": process, "pid": pid,
                                                  "record_dir": record_dir, "exited": False})
                proxies.close(drain=True)
                self._set_exited(proxies)
            else:
                self.register(container, process, pid, record_dir, proxies, fostered=True, set_id=set_id)
        log("took over the stdio of %d processes (%d fds) from a previous monitor" % (len(sets), count))
        return {"ok": True}

    def op_reexec(self, conn, tag, req):
        """
        Re-execute the monitor's script in place: C{os.execv} keeps the pid, the children (so every exit is
        still ours to reap, with its true status) and the fds; the registry goes in an inherited memfd.  A
        newer daemon upgrades an older monitor this way without losing a container, an fd or an exit.  The
        connection ends with the exec; the daemon connects again.  Refused while a spawn runs or a record is
        being written (try again).
        """
        if self.spawns:
            raise RequestFailed("busy: %d spawns running; try again" % (len(self.spawns),))
        if self.records is not None and self.records.pending:
            raise RequestFailed("busy: exit records being written; try again")
        sets = []
        keep = [self.lock_fd]
        for set_id, proxies in self.fdsets.items():
            fds = proxies.fds()
            proc = self.procs.get((proxies.meta["container"], proxies.meta["process"]))
            registered = proc is not None and proc.proxies is proxies
            buffers = {}
            for key, pump in (("out", proxies.out_pump), ("in", proxies.in_pump if proxies.tty else None)):
                if isinstance(pump, Pump) and pump.buf:
                    buffers[key] = b64(bytes(pump.buf))
            sets.append(dict(proxies.meta, set=set_id, tty=proxies.tty, fds=fds, registered=registered,
                             fostered=registered and proc.fostered, watched=registered and proc.pidfd is not None,
                             buffers=buffers))
            keep.extend(fds.values())
        state = {
            "sets": sets,
            "unwritten": [[d, r] for d, r in self.unwritten.values()],
            "held_zombies": sorted(self.held_zombies),
            "unclaimed": [[pid, st, t] for pid, (st, t) in self.unclaimed.items()],
            "lock_fd": self.lock_fd,
            "started_ns": self.started_ns,
            "serial": self._set_serial,
        }
        memfd = os.memfd_create("monitord-state", 0)
        data = memoryview(json.dumps(state).encode())
        while data:
            data = data[os.write(memfd, data):]
        os.lseek(memfd, 0, os.SEEK_SET)
        for fd in keep:
            os.set_inheritable(fd, True)
        # No connection is accepted by this image from now on: a daemon connecting again reaches the next.
        self.loop.discard(self.listener.fileno())
        self.listener.close()
        conn.send({"tag": tag, "ok": True})
        conn.sock.setblocking(True)
        conn._flush()
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "monitord.py")
        log("re-executing %s in place (%d processes, %d fd sets)" % (script, len(self.procs), len(sets)))
        os.execv(sys.executable, [sys.executable, "-S", script] + self.args + ["--resume-fd", str(memfd)])

    def load_state(self, fd):
        """Read the state a previous image of this monitor saved (L{op_reexec})."""
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(fd)
        state = json.loads(b"".join(chunks))
        self.lock_fd = state["lock_fd"]
        os.set_inheritable(self.lock_fd, False)
        return state

    def resume(self, state):
        """Go on from a saved state: every process, fd set, kept record and held zombie."""
        self.started_ns = state["started_ns"]
        self._set_serial = state["serial"]
        for entry in state["sets"]:
            fds = {name: fd for name, fd in entry["fds"].items()}
            for fd in fds.values():
                os.set_inheritable(fd, False)
                self.outputs.adopt(fd)
            name = "%s/%s" % (entry["container"], entry["process"])
            proxies = Proxies.restore(self.loop, name, fds, entry["tty"])
            for key, pump in (("out", proxies.out_pump), ("in", proxies.in_pump)):
                data = entry.get("buffers", {}).get(key)
                if data and isinstance(pump, Pump):
                    pump.buf[:0] = binascii.a2b_base64(data)
                    pump._flush()
            meta = {k: entry[k] for k in ("container", "process", "pid", "record_dir")}
            if entry["registered"]:
                proc = self.register(entry["container"], entry["process"], entry["pid"], entry["record_dir"],
                                     proxies, fostered=entry["fostered"], set_id=entry["set"])
                if entry["watched"]:
                    try:
                        proc.pidfd = os.pidfd_open(proc.pid)
                    except OSError:
                        self.proc_exited(proc, UNKNOWN_STATUS, time.time_ns(), unknown=True)
                        continue
                    self.loop.add_reader(proc.pidfd, lambda proc=proc: self._on_pidfd(proc))
            else:
                self.track(entry["set"], proxies, meta=dict(meta, exited=False))
                proxies.close(drain=True)
                self._set_exited(proxies)
        for record_dir, record in state["unwritten"]:
            self.unwritten[(record["container"], record["process"])] = KeptRecord(record_dir, record)
        if self.unwritten:
            self.retry_at = time.monotonic()
        self.held_zombies.update(state["held_zombies"])
        for pid, status, time_ns in state["unclaimed"]:
            self.unclaimed[pid] = (status, time_ns)
        self.reap()
