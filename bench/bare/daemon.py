"""
The bare daemon: containerd's CreateContainer on a unix socket (grpcio's synchronous server and its worker
threads), each call handed to the Twisted reactor thread and waited for, as the real daemon's bridge does; the
reactor asks the bare monitor (L{bench.bare.monitor}) to run the runtime's C{run -d} with the same options the
real daemon passes. Nothing is recorded, logged, counted or watched.

    python3 -m bench.bare.daemon WORKDIR RUNTIME

It makes WORKDIR/root (the runtime's root), WORKDIR/scratch (pid files and logs), starts the monitor on
WORKDIR/monitor.sock, serves WORKDIR/api.sock and prints "ready <monitor pid>". It serves until SIGTERM; the
containers it started are left to the caller.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from twisted.internet import epollreactor

epollreactor.install()

import grpc  # noqa: E402
from twisted.internet import defer, reactor  # noqa: E402
from twisted.internet.protocol import ClientFactory  # noqa: E402
from twisted.protocols.basic import LineReceiver  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from containerd_tx.api import containerd_pb2 as pb  # noqa: E402
from containerd_tx.api import containerd_pb2_grpc as pb_grpc  # noqa: E402

#: grpcio worker threads, as the real daemon's unary pool.
WORKERS = 32


class MonitorConnection(LineReceiver):
    """The reactor's side of the bare monitor's protocol: one Deferred per spawn, fired with its answer."""

    delimiter = b"\n"

    def __init__(self, connected):
        self._waiting = {}
        self._next = 0
        self._connected = connected

    def connectionMade(self):
        self._connected(self)

    def spawn(self, argv, pid_file):
        self._next += 1
        answer = self._waiting[self._next] = defer.Deferred()
        self.sendLine(json.dumps({"id": self._next, "argv": argv, "pid_file": pid_file}).encode())
        return answer

    def lineReceived(self, line):
        message = json.loads(line)
        self._waiting.pop(message["id"]).callback(message)


class BareAPI(pb_grpc.APIServicer):
    """CreateContainer only: the runtime's C{run -d}, through the reactor and the monitor."""

    def __init__(self, monitor, runtime, workdir):
        self._monitor = monitor
        self._runtime = runtime
        self._root = os.path.join(workdir, "root")
        self._scratch = os.path.join(workdir, "scratch")

    def _start(self, container_id, bundle):
        pid_file = os.path.join(self._scratch, container_id + ".pid")
        log_file = os.path.join(self._scratch, container_id + ".log")
        argv = [self._runtime, "--root", self._root, "--log", log_file, "--log-format", "json", "run", "-d",
                "--bundle", bundle, "--pid-file", pid_file, container_id]
        return self._monitor.spawn(argv, pid_file).addCallback(lambda answer: _removed(log_file, answer))

    def CreateContainer(self, request, context):
        answer = queue.SimpleQueue()
        reactor.callFromThread(lambda: self._start(request.id, request.bundlePath).addBoth(answer.put))
        result = answer.get()
        if isinstance(result, Failure) or not result["pid"]:
            context.abort(grpc.StatusCode.UNKNOWN, f"{os.path.basename(self._runtime)} did not start {request.id}")
        return pb.CreateContainerResponse(
            container=pb.Container(id=request.id, bundlePath=request.bundlePath, status="running"))


def _removed(path, value):
    try:
        os.unlink(path)
    except OSError:
        pass
    return value


def main(workdir, runtime):
    runtime = shutil.which(runtime) or runtime
    for name in ("root", "scratch"):
        os.makedirs(os.path.join(workdir, name), exist_ok=True)
    monitor_socket = os.path.join(workdir, "monitor.sock")
    monitor = subprocess.Popen([sys.executable, "-m", "bench.bare.monitor", monitor_socket],
                               stdout=subprocess.PIPE, start_new_session=True)
    if monitor.stdout.readline().strip() != b"ready":
        raise SystemExit("bare daemon: the monitor did not start")
    server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS))

    def serve(connection):
        pb_grpc.add_APIServicer_to_server(BareAPI(connection, runtime, workdir), server)
        server.add_insecure_port("unix://" + os.path.join(workdir, "api.sock"))
        server.start()
        print(f"ready {monitor.pid}", flush=True)

    class Factory(ClientFactory):
        def buildProtocol(self, addr):
            return MonitorConnection(serve)

        def clientConnectionFailed(self, connector, reason):
            print(f"bare daemon: cannot reach the monitor: {reason.getErrorMessage()}", file=sys.stderr)
            reactor.stop()

    reactor.connectUNIX(monitor_socket, Factory())
    reactor.run()
    server.stop(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
