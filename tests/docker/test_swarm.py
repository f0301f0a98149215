"""
Docker swarm mode on containerd-tx: a one-node swarm on loopback schedules a replicated service onto the
engine, and reschedules a task whose container is killed. (Swarm mode and --live-restore exclude each other,
so this class has its own engine.)
"""

from tests.docker.base import DockerTestCase
from tests.docker.engine import IMAGE, poll
from tests.support.net import free_port

SWARM_TIMEOUT = 180.0


class SwarmTests(DockerTestCase):

    def service_containers(self, service):
        """Ids of the running containers of a service's tasks."""
        return set(self.docker.run("ps", "-q", "--no-trunc", "--filter",
                                   f"label=com.docker.swarm.service.name={service}").out.split())

    def replicas(self, service):
        return self.docker.run("service", "ls", "--filter", f"name={service}", "--format",
                               "{{.Replicas}}").out.strip()

    def tasks(self, service):
        """The service's tasks, as `docker inspect` gives them."""
        ids = self.docker.run("service", "ps", "-q", "--no-trunc", service).out.split()
        return [self.docker.inspect(task_id) for task_id in ids]

    def wait_converged(self, service, count, without=()):
        """Until the service shows count/count and runs C{count} containers, none of them in C{without}."""
        def converged():
            running = self.service_containers(service)
            return (self.replicas(service) == f"{count}/{count}" and len(running) == count
                    and not running & set(without))

        try:
            poll(converged, SWARM_TIMEOUT, interval=0.5, message=f"service {service} to reach {count}/{count}")
        except AssertionError as e:
            raise AssertionError(f"{e}; tasks: {self.docker.run('service', 'ps', '--no-trunc', service).out}")
        return self.service_containers(service)

    def test_replicated_service(self):
        """
        `swarm init --advertise-addr 127.0.0.1`, a 3-replica service reaches 3/3; a killed task's container
        is replaced by a new task and the service is 3/3 again; the killed task shows its exit status.
        """
        port = free_port()
        self.docker.run("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", f"127.0.0.1:{port}")
        self.assertEqual(self.docker.swarm_state(), "active")
        self.docker.run("service", "create", "--detach=true", "--name", "web", "--replicas", "3", IMAGE,
                        "sleep", "100000")
        first = self.wait_converged("web", 3)
        victim = sorted(first)[0]
        self.docker.run("kill", victim)
        second = self.wait_converged("web", 3, without={victim})
        self.assertEqual(len(first & second), 2, (first, second))
        failed = [t for t in self.tasks("web") if t["Status"].get("ContainerStatus", {}).get("ContainerID") == victim]
        self.assertEqual(len(failed), 1, failed)
        status = failed[0]["Status"]
        self.assertEqual((status["State"], status["ContainerStatus"]["ExitCode"]), ("failed", 137), status)
        self.docker.run("service", "rm", "web")
        poll(lambda: not self.service_containers("web"), SWARM_TIMEOUT, message="the service's containers to go")
