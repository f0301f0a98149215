#!/usr/bin/env python3
"""
Exit storm: the output latency of a chatty process while 100 processes exit per second, each exit record
written (and synced) to a state dir on a disk. Figures, not asserts.

Drives a real monitor process (monitord.py) over its socket, as the daemon does, without runc: the chatty
process and the exiting ones are registered like container inits (`sh -c 'CMD & echo $! > PIDFILE'`), so
the monitor pumps the chatty one's stdout to a FIFO and writes one exit record per exit. The chatty process
writes a line every 10 ms holding the time it was written; the latency is the time the line is read from the
FIFO minus that.

    python3 bench/exit_storm_latency.py                         # 20 s, 100 exits/s, records under /var/tmp
    python3 bench/exit_storm_latency.py --monitord OLD/containerd_tx/monitor/monitord.py   # another monitor

The state dir must be on a disk (not a tmpfs) for the syncs to cost anything: --dir (default /var/tmp).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.common import filesystem_type, summary  # noqa: E402


MONITORD = os.path.join(os.path.dirname(HERE), "containerd_tx", "monitor", "monitord.py")
CHATTY = "import time\nwhile True:\n    print(time.time_ns(), flush=True)\n    time.sleep(0.01)\n"


class Connection:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.tag = 0
        self.lock = threading.Lock()
        self.buf = b""
        self.replies = {}
        self.exits = 0
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            data = self.sock.recv(1 << 20)
            if not data:
                return
            self.buf += data
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                message = json.loads(line)
                with self.cond:
                    if message.get("event") == "exit":
                        self.exits += 1
                    elif "tag" in message and "event" not in message:
                        self.replies[message["tag"]] = message
                    self.cond.notify_all()

    def send(self, **message):
        with self.lock:
            self.tag += 1
            tag = self.tag
            self.sock.sendall(json.dumps(dict(message, tag=tag)).encode() + b"\n")
        return tag

    def wait(self, tag, timeout=30):
        with self.cond:
            self.cond.wait_for(lambda: tag in self.replies, timeout)
            return self.replies.pop(tag)


def register(conn, state, name, command, **fields):
    record_dir = os.path.join(state, "containers", name)
    os.makedirs(record_dir, exist_ok=True)
    pid_file = os.path.join(record_dir, "pid")
    return conn.send(op="spawn", argv=["/bin/sh", "-c", f"{command} & echo $! > {pid_file}"], capture=False,
                     pid_file=pid_file, register={"container": name, "process": "init", "record_dir": record_dir},
                     **fields)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0, help="exits per second")
    parser.add_argument("--dir", default="/var/tmp", help="parent of the state dir (a disk)")
    parser.add_argument("--monitord", default=MONITORD)
    args = parser.parse_args()

    state = tempfile.mkdtemp(prefix="exit-storm-", dir=args.dir)
    fs = filesystem_type(state)
    log = open(os.path.join(state, "monitor.log"), "ab")
    monitor = subprocess.Popen([os.path.realpath(sys.executable), "-S", args.monitord, "--state-dir", state,
                                "--idle-exit", "0"], stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    try:
        monitor.stdout.readline()
        conn = Connection(os.path.join(state, "monitor.sock"))
        fifo = os.path.join(state, "chatty.out")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(reader, True)
        chatty = conn.wait(register(conn, state, "chatty", f"{sys.executable} -S -c '{CHATTY}'", stdout=fifo))["pid"]
        latencies = []
        storm = threading.Event()
        stop = threading.Event()

        def read_lines():
            buf = b""
            while not stop.is_set():
                data = os.read(reader, 65536)
                now = time.time_ns()
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if storm.is_set():
                        latencies.append((now - int(line)) / 1e9)

        threading.Thread(target=read_lines, daemon=True).start()
        storm.set()
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < args.seconds:
            due = started + sent / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            register(conn, state, f"e{sent}", "sleep 0.05")
            sent += 1
        with conn.cond:
            conn.cond.wait_for(lambda: conn.exits >= sent, 60)
        stop.set()
        exits = conn.exits
        os.kill(chatty, signal.SIGKILL)
        with conn.cond:
            conn.cond.wait_for(lambda: conn.exits > exits, 10)
        s = summary(latencies)
        print(f"monitor {args.monitord}")
        print(f"state dir on {fs}; {sent} exits in {args.seconds:g}s ({sent / args.seconds:.0f}/s), {exits} reported")
        print("output latency of the chatty process (ms): " + ", ".join(
            f"{k} {s[k] * 1000:.2f}" for k in ("median", "95%", "99%", "99.9%", "max")) + f" over {s['count']} lines")
    finally:
        monitor.terminate()
        monitor.wait()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
