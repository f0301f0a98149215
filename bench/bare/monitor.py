"""
The bare monitor: a child subreaper that runs each runtime command it is sent (C{posix_spawn}, stdio on
/dev/null), reaps it, reads the pid file and answers with the pid. No records, no exit reports, no stdio.

    python3 -m bench.bare.monitor SOCKET

It prints "ready" once it listens on SOCKET, serves one connection (JSON lines: C{{"id", "argv",
"pid_file"}} in, C{{"id", "pid", "status"}} out; pid 0 when the command failed) and ends with it. Containers
it adopted are reaped whenever they exit.
"""

import ctypes
import json
import os
import select
import signal
import socket
import sys

PR_SET_CHILD_SUBREAPER = 36


def serve(path):
    """Listen on C{path}, serve one connection until it closes."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    print("ready", flush=True)
    connection, _ = listener.accept()
    listener.close()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    devnull = os.open(os.devnull, os.O_RDWR)
    stdio = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
    poller = select.epoll()
    poller.register(connection.fileno(), select.EPOLLIN)
    poller.register(wake_read, select.EPOLLIN)
    spawned = {}  # pid -> request
    pending = b""
    while True:
        try:
            ready = poller.poll()
        except InterruptedError:
            continue
        for fd, _ in ready:
            if fd == wake_read:
                _drain(wake_read)
                for pid, status in _reap():
                    request = spawned.pop(pid, None)
                    if request is not None:
                        connection.sendall(_answer(request, status))
                continue
            data = connection.recv(65536)
            if not data:
                return
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                request = json.loads(line)
                pid = os.posix_spawn(request["argv"][0], request["argv"], os.environ, file_actions=stdio)
                spawned[pid] = request


def _drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def _answer(request, status):
    pid = 0
    if status == 0:
        try:
            with open(request["pid_file"]) as f:
                pid = int(f.read())
            os.unlink(request["pid_file"])
        except (OSError, ValueError):
            pid = 0
    return json.dumps({"id": request["id"], "pid": pid, "status": status}).encode() + b"\n"


if __name__ == "__main__":
    serve(sys.argv[1])
