"""
The Docker Engine tier: a real Docker Engine of the containerd 0.2 era (17.06-dev, moby's libcontainerd) runs
its containers through a containerd-tx daemon that the tests start themselves.

The engine's folder (holding C{dockerd} and C{docker}) comes only from the environment variable
C{CONTAINERD_TX_DOCKER_DIR}; without it every test here is skipped with the reason. Needs root, runc and
busybox-static like the integration tier; the checkpoint tests also need a CRIU that passes C{criu check}.

Each test class shares one containerd-tx daemon and one dockerd (see L{tests.docker.engine}); every test
removes what it made (containers, swarm state, networks) and checks that the daemon is left with no
container, and the pair is torn down (dockerd's mounts unmounted, runtime containers deleted, files removed)
when the next class needs its own, or when the test process exits.
"""
