"""
`dockerd --live-restore` on containerd-tx: containers keep running while dockerd, containerd-tx or both
restart, and Docker still gets their output and exit status afterwards.
"""

import os

from tests.docker.base import DockerTestCase
from tests.docker.engine import poll
from tests.support import processes

#: Says "before", waits for gate "one", says "during" (and leaves a mark), waits for gate "two", says
#: "after" and exits with the status given.
SCRIPT = ("echo before; touch /gate/started; while [ ! -e /gate/one ]; do usleep 20000; done; "
          "echo during; touch /gate/said-during; while [ ! -e /gate/two ]; do usleep 20000; done; "
          "echo after; exit {status}")


class LiveRestoreTests(DockerTestCase):
    engine_flags = ("--live-restore",)

    def start_gated(self, name, status):
        """A container running L{SCRIPT}; its gate folder and init pid once it has started."""
        gate = self.gate(name)
        self.run_detached(name, "sh", "-c", SCRIPT.format(status=status), options=("-v", f"{gate}:/gate"))
        self.wait_file(os.path.join(gate, "started"))
        pid = self.docker.state(name)["Pid"]
        self.assertTrue(processes.alive(pid))
        return gate, pid

    def open_gate(self, gate, which):
        with open(os.path.join(gate, which), "w"):
            pass

    def assert_still_running(self, name, pid):
        """Docker sees the same init running, and it answers an exec."""
        state = self.docker.state(name)
        self.assertEqual((state["Running"], state["Pid"]), (True, pid), state)
        self.assertEqual(self.docker.run("exec", name, "echo", "exec ok").out, "exec ok\n")

    def finish(self, name, gate, status, output):
        self.open_gate(gate, "two")
        self.assertEqual(self.docker.run("wait", name).out.strip(), str(status))
        self.assertEqual(self.docker.run("logs", name).out, output)
        state = self.docker.state(name)
        self.assertEqual((state["Status"], state["ExitCode"]), ("exited", status))

    def test_dockerd_restart(self):
        """dockerd stops and starts again: the container runs on; what it wrote meanwhile is in its logs."""
        gate, pid = self.start_gated("lr-dockerd", 42)
        self.docker.stop()
        self.assertTrue(processes.alive(pid), "the container died with dockerd")
        self.open_gate(gate, "one")
        self.wait_file(os.path.join(gate, "said-during"))
        self.docker.start()
        self.assert_still_running("lr-dockerd", pid)
        self.finish("lr-dockerd", gate, 42, "before\nduring\nafter\n")

    def test_containerd_restart(self):
        """containerd-tx stops and starts again under a running dockerd: Docker carries on with it."""
        gate, pid = self.start_gated("lr-containerd", 43)
        self.daemon.stop()
        self.assertTrue(processes.alive(pid), "the container died with containerd-tx")
        self.open_gate(gate, "one")
        self.wait_file(os.path.join(gate, "said-during"))
        self.stack.start_daemon()
        self.assert_still_running("lr-containerd", pid)
        self.finish("lr-containerd", gate, 43, "before\nduring\nafter\n")

    def test_both_restart(self):
        """Both stop (dockerd first), containerd-tx starts, then dockerd: the container is still theirs."""
        gate, pid = self.start_gated("lr-both", 44)
        self.docker.stop()
        self.daemon.stop()
        self.assertTrue(processes.alive(pid), "the container died with dockerd and containerd-tx")
        self.daemon.start()
        self.docker.start()
        self.stack.wait_reconnected()
        self.assert_still_running("lr-both", pid)
        self.open_gate(gate, "one")
        self.finish("lr-both", gate, 44, "before\nduring\nafter\n")

    def test_exit_while_dockerd_down(self):
        """The container exits while dockerd is down: the restarted dockerd reports its exit status."""
        gate, pid = self.start_gated("lr-exit-dockerd", 45)
        self.docker.stop()
        self.open_gate(gate, "one")
        self.open_gate(gate, "two")
        self.wait_state_gone(pid)
        self.docker.start()
        state = self.wait_state("lr-exit-dockerd", lambda s: not s["Running"], "Docker to see the exit")
        self.assertEqual((state["Status"], state["ExitCode"]), ("exited", 45), state)
        self.assertEqual(self.docker.run("wait", "lr-exit-dockerd").out.strip(), "45")
        # Written before dockerd stopped; what it wrote with no reader on its FIFO is not kept.
        self.assertTrue(self.docker.run("logs", "lr-exit-dockerd").out.startswith("before\n"))

    def test_exit_while_containerd_down(self):
        """
        The container exits while containerd-tx is down: once it is back, Docker gets the true exit status
        (and the output, which dockerd read all along).
        """
        gate, pid = self.start_gated("lr-exit-containerd", 46)
        self.daemon.stop()
        self.open_gate(gate, "one")
        self.open_gate(gate, "two")
        self.wait_state_gone(pid)
        self.stack.start_daemon()
        self.assertEqual(self.docker.run("wait", "lr-exit-containerd").out.strip(), "46")
        state = self.docker.state("lr-exit-containerd")
        self.assertEqual((state["Status"], state["ExitCode"]), ("exited", 46), state)
        self.assertEqual(self.docker.run("logs", "lr-exit-containerd").out, "before\nduring\nafter\n")

    def wait_state_gone(self, pid):
        poll(lambda: not processes.alive(pid), message=f"init {pid} to exit")
