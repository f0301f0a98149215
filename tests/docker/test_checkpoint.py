"""
`docker checkpoint create` and `docker start --checkpoint` (an engine with --experimental) on containerd-tx,
with CRIU underneath: the restored container carries on from where it was, not from the start.
"""

from tests.docker.base import DockerTestCase
from tests.docker.engine import poll
from tests.integration.test_checkpoint import criu_missing

#: Counts from 1, one number a line, forever.
COUNTER = ("sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; usleep 50000; done")


class CheckpointTests(DockerTestCase):
    engine_flags = ("--experimental",)

    def setUp(self):
        reason = criu_missing()
        if reason:
            from twisted.trial.unittest import SkipTest

            raise SkipTest(reason)
        super().setUp()

    def numbers(self, name):
        return [int(line) for line in self.docker.run("logs", name).out.split()]

    def wait_count(self, name, above):
        poll(lambda: len(self.numbers(name)) > above, message=f"{name} to count past {above}")

    def test_checkpoint_and_start(self):
        """Checkpoint (which stops the container), list it, start from it: the count goes on, then rm."""
        self.run_detached("counter", *COUNTER)
        self.wait_count("counter", 5)
        self.docker.run("checkpoint", "create", "counter", "cp1")
        # The engine learns of the exit from the exit event, after the checkpoint call has returned (as on
        # containerd 0.2.9): wait for it.
        poll(lambda: not self.docker.state("counter")["Running"], message="counter to stop after its checkpoint")
        self.assertIn("cp1", self.docker.run("checkpoint", "ls", "counter").out.split())
        counted = self.numbers("counter")
        self.docker.run("start", "--checkpoint", "cp1", "counter")
        state = self.docker.state("counter")
        self.assertTrue(state["Running"], state)
        self.wait_count("counter", len(counted) + 5)
        numbers = self.numbers("counter")
        # One count from 1, with no gap and no second start: the restored process went on from its memory.
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
        self.docker.run("checkpoint", "rm", "counter", "cp1")
        self.assertNotIn("cp1", self.docker.run("checkpoint", "ls", "counter").out.split())
        self.docker.run("kill", "counter")
        self.assertEqual(self.docker.run("wait", "counter").out.strip(), "137")

    def test_checkpoint_leave_running(self):
        """`checkpoint create --leave-running` keeps the same process running, counting on."""
        self.run_detached("runner", *COUNTER)
        self.wait_count("runner", 5)
        pid = self.docker.state("runner")["Pid"]
        self.docker.run("checkpoint", "create", "--leave-running", "runner", "cp2")
        state = self.docker.state("runner")
        self.assertEqual((state["Running"], state["Pid"]), (True, pid), state)
        counted = len(self.numbers("runner"))
        self.wait_count("runner", counted + 5)
        numbers = self.numbers("runner")
        self.assertEqual(numbers, list(range(1, len(numbers) + 1)))
        self.assertIn("cp2", self.docker.run("checkpoint", "ls", "runner").out.split())
