"""
Real servers the telemetry tests start on loopback (carbon-cache, graphite-web, Prometheus): one child process
in its own session, its output kept in a file for failure messages.
"""

import os
import signal
import subprocess


class ServerProcess:
    """
    A server child process, with its config and data in C{root} and its output in C{output}.

    Subclasses build the command line and call L{spawn}; L{stop} ends the whole session.
    """

    def __init__(self, root, port, output_name):
        self.root, self.port = root, port
        self.output = os.path.join(root, output_name)
        self.process = None

    def spawn(self, argv, env=None):
        """Start C{argv} in a new session, in C{root}, its output appended to C{output}."""
        with open(self.output, "ab") as out:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                            env=env, cwd=self.root, start_new_session=True)

    def stop(self, timeout=20):
        """SIGTERM the server's session, SIGKILL it if it is still there after C{timeout} seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log(self):
        """The end of the server's output, for failure messages."""
        try:
            with open(self.output, errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return ""
