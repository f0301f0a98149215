"""
A containerd-tx daemon with a real dockerd on it, for the Docker Engine tier.

L{Stack} owns one temp folder with everything in it: the daemon (C{ctd/}), dockerd's data and exec roots,
its socket and trust key, the C{docker-runc} link and the busybox rootfs. L{shared_stack} keeps one stack
alive at a time, for the test class that asked for it; L{Stack.reset} is each test's clean-up and
L{Stack.destroy} takes everything down, also after failures.

Things dockerd makes outside its roots, and what is done about them:
 - C{/etc/docker/key.json}: avoided with C{--deprecated-key-path} inside the stack's folder;
 - C{/run/docker/libnetwork/<id>.sock} and C{/run/docker/plugins}: fixed paths in the engine; the sockets
   that appeared while a stack ran and that nothing listens on any more are removed after its dockerd stops,
   the folders when the stack created them and they are empty (another engine may be using them);
 - the C{docker_gwbridge} interface of swarm mode: removed through the engine by L{Stack.reset}, and
   deleted with C{ip link} after dockerd stops if it is still there and was not there before;
 - the docker CLI's config: C{DOCKER_CONFIG} points into the stack's folder;
 - C{/docker} in every cgroup hierarchy: dockerd gets C{--cgroup-parent /<the stack's folder name>}, removed
   from every hierarchy after dockerd stops;
 - C{net.ipv4.ip_forward}: left alone with C{--ip-forward=false}.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile

from containerd_tx.api import containerd_pb2 as pb
from tests.support import bundles, processes
from tests.support.daemon import Daemon, wait_for

ENV = "CONTAINERD_TX_DOCKER_DIR"
IMAGE = "busybox:local"
#: Runtime names dockerd may ask containerd for (its default runtime is called "runc", run as docker-runc).
RUNTIMES = ("docker-runc", "runc")
#: How long one docker CLI call may take before the test fails (the machine can be busy).
CLI_TIMEOUT = 180.0
#: Generous deadlines for conditions polled by the tier.
START_TIMEOUT = 90.0
SETTLE_TIMEOUT = 90.0
RUN_DIR = "/run/docker"
LIBNETWORK_DIR = os.path.join(RUN_DIR, "libnetwork")
PLUGINS_DIR = os.path.join(RUN_DIR, "plugins")
#: Interfaces the engine may create on the host (swarm mode's gateway bridge; the default bridge is off).
ENGINE_LINKS = ("docker_gwbridge", "docker0")
CGROUP_ROOT = "/sys/fs/cgroup"


def engine_dir():
    """The folder holding dockerd and docker, from C{$CONTAINERD_TX_DOCKER_DIR}: (path, None) or (None, why)."""
    path = os.environ.get(ENV, "")
    if not path:
        return None, (f"{ENV} is not set: the Docker Engine tier needs the folder holding a containerd-0.2-era "
                      "dockerd and docker")
    if not os.path.isdir(path):
        return None, f"{ENV}={path} is not a folder"
    for name in ("dockerd", "docker"):
        if not os.access(os.path.join(path, name), os.X_OK):
            return None, f"{ENV}={path} has no executable {name}"
    return path, None


def skip_reason():
    """Why the tier cannot run here, or None."""
    path, reason = engine_dir()
    if reason:
        return reason
    return bundles.requirements_missing("runc")


class Result:
    """What one docker CLI call gave: C{rc}, C{out}, C{err}."""

    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def __repr__(self):
        return f"docker {' '.join(self.args)} -> {self.rc}, stdout {self.out!r}, stderr {self.err!r}"


class DockerError(AssertionError):
    """A docker CLI call that had to succeed did not."""


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path):
    """Mount points at or under C{path} (this mount namespace, which is dockerd's), deepest first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if point == path or point.startswith(path.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_under(path):
    """Unmount everything at or under C{path}; return what could not be unmounted."""
    for _ in range(5):
        points = mounts_under(path)
        if not points:
            return []
        for point in points:
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    return mounts_under(path)


def remove_cgroups(parent):
    """Remove the cgroup C{parent} (and what is left under it) from every hierarchy; return what stays."""
    left = []
    for hierarchy in sorted(os.listdir(CGROUP_ROOT)):
        top = os.path.join(CGROUP_ROOT, hierarchy, parent.lstrip("/"))
        if not os.path.isdir(top) or os.path.islink(os.path.join(CGROUP_ROOT, hierarchy)):
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda entry: len(entry[0]), reverse=True):
            try:
                os.rmdir(directory)
            except OSError as e:
                left.append(f"{directory}: {e.strerror}")
    return left


def _links():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def _other_dockerds():
    """Pids of running dockerd processes (ours are stopped before L{HostTraces.remove})."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                exe = os.readlink(f"/proc/{entry}/exe")
            except OSError:
                continue
            if os.path.basename(exe) == "dockerd" and processes.alive(int(entry)):
                found.append(int(entry))
    return found


def _listening(path):
    """Whether something accepts connections on the unix socket C{path}."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2)
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def _listdir(path):
    try:
        return set(os.listdir(path))
    except OSError:
        return None


class HostTraces:
    """What the engine may leave on the host outside its roots, noted before it starts and removed after."""

    def __init__(self):
        self.run_dir = os.path.isdir(RUN_DIR)
        self.libnetwork = _listdir(LIBNETWORK_DIR)
        self.plugins = os.path.isdir(PLUGINS_DIR)
        self.links = _links()

    def remove(self):
        """Remove what appeared since; return a list of what could not be removed."""
        left = []
        now = _listdir(LIBNETWORK_DIR)
        for name in sorted((now or set()) - (self.libnetwork or set())):
            path = os.path.join(LIBNETWORK_DIR, name)
            if _listening(path):
                continue  # another engine's, alive
            try:
                os.unlink(path)
            except OSError as e:
                left.append(f"{path}: {e}")
        others = _other_dockerds()
        for path, existed in ((LIBNETWORK_DIR, self.libnetwork is not None), (PLUGINS_DIR, self.plugins),
                              (RUN_DIR, self.run_dir)):
            # Also when it was there before, made by an engine of another run that has stopped since.
            if (not existed or not others) and os.path.isdir(path) and not os.listdir(path):
                try:
                    os.rmdir(path)
                except OSError as e:
                    left.append(f"{path}: {e}")
        if others:
            return left  # the interfaces may be theirs
        for link in sorted((_links() - self.links) & set(ENGINE_LINKS)):
            if subprocess.run(["ip", "link", "del", link], capture_output=True).returncode != 0:
                left.append(f"interface {link}")
        return left


class TxDaemon(Daemon):
    """
    The containerd-tx daemon of a stack: the README's command line (default flags), with C{docker-runc} on
    its PATH (dockerd names its runtime so in every CreateContainer).
    """

    def __init__(self, workdir, rbin):
        super().__init__(workdir)
        self.rbin = rbin

    def command(self, extra=()):
        return [*super().command()[:3], "containerd", "--state-dir", self.state_dir,
                "--listen", "unix://" + self.socket, *extra]

    def start(self, extra=(), wait=True, env=None):
        env = dict(env or {}, PATH=self.rbin + os.pathsep + os.environ.get("PATH", "/usr/sbin:/usr/bin"))
        return super().start(extra, wait, env)

    def running(self):
        return self.process is not None and self.process.poll() is None

    def runtime_roots(self):
        return [os.path.join(self.state_dir, "runtime", name) for name in RUNTIMES]

    def runtime_leftovers(self):
        """Containers the runtime still has under any root this daemon used: {root: [ids]}."""
        found = {}
        for root in self.runtime_roots():
            if not os.path.isdir(root):
                continue
            out = subprocess.run(["runc", "--root", root, "list", "--quiet"], capture_output=True, text=True)
            ids = out.stdout.split()
            if ids:
                found[root] = ids
        return found

    def containers(self):
        """Ids of the containers the daemon lists."""
        return sorted(c.id for c in self.stub.State(pb.StateRequest(), timeout=30).containers)

    def destroy(self):
        """Delete every runtime container under both roots, then what L{Daemon.destroy} does."""
        try:
            self.stop(signal.SIGKILL)
        finally:
            for root, ids in self.runtime_leftovers().items():
                for container_id in ids:
                    subprocess.run(["runc", "--root", root, "delete", "--force", container_id],
                                   capture_output=True)
            super().destroy()


class Engine:
    """One dockerd on a containerd-tx socket."""

    def __init__(self, bin_dir, root, containerd_socket, rbin, flags=()):
        self.dockerd = os.path.join(bin_dir, "dockerd")
        self.docker_bin = os.path.join(bin_dir, "docker")
        self.root = root
        self.data_root = os.path.join(root, "data")
        self.exec_root = os.path.join(root, "exec")
        self.socket = os.path.join(root, "docker.sock")
        self.pidfile = os.path.join(root, "docker.pid")
        self.key = os.path.join(root, "key.json")
        self.log_path = os.path.join(root, "dockerd.log")
        self.containerd_socket = containerd_socket
        self.rbin = rbin
        self.flags = list(flags)
        self.cgroup_parent = "/" + os.path.basename(os.path.dirname(root.rstrip("/")))
        self.process = None
        self.cli_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.cli_env["DOCKER_CONFIG"] = os.path.join(root, "cli")

    def command(self):
        """
        dockerd's command line: the shared README's, plus a trust key inside the stack's folder and
        C{--ip-forward=false} (otherwise dockerd turns the host's net.ipv4.ip_forward on), and a cgroup
        parent of the stack's own (otherwise C{/docker} is left in every hierarchy).
        """
        return [self.dockerd, f"--containerd={self.containerd_socket}", "-H", "unix://" + self.socket,
                "--data-root", self.data_root, "--exec-root", self.exec_root, "--pidfile", self.pidfile,
                "--storage-driver", "vfs", "--iptables=false", "--ip-masq=false", "--bridge=none",
                "--ip-forward=false", "--cgroup-parent", self.cgroup_parent, "--deprecated-key-path", self.key,
                *self.flags]

    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        """Start dockerd and wait until its API answers."""
        env = dict(os.environ, PATH=self.rbin + os.pathsep + os.environ.get("PATH", "/usr/sbin:/usr/bin"))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env)

        def answers():
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd exited with {self.process.returncode}:\n{self.log_tail()}")
            return self.run("version", "--format", "{{.Server.Version}}", check=False, timeout=30).rc == 0

        wait_for(answers, START_TIMEOUT, interval=0.2, message="dockerd to answer")
        return self

    def stop(self, timeout=60.0):
        """SIGTERM dockerd and wait for it (SIGKILL after C{timeout}, and an error)."""
        if not self.running():
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"dockerd did not stop within {timeout}s of SIGTERM:\n{self.log_tail()}")

    def kill(self):
        if self.running():
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # The CLI.

    def run(self, *args, input=None, check=True, timeout=CLI_TIMEOUT):
        """Run C{docker <args>} against this engine; a L{Result}. With C{check}, a failure raises."""
        argv = [self.docker_bin, "-H", "unix://" + self.socket, *args]
        try:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                                  env=self.cli_env, stdin=subprocess.DEVNULL if input is None else None)
        except subprocess.TimeoutExpired as e:
            raise DockerError(f"docker {' '.join(args)} did not return within {timeout}s "
                              f"(stdout {e.stdout!r}, stderr {e.stderr!r})")
        result = Result(args, proc.returncode, proc.stdout, proc.stderr)
        if check and result.rc != 0:
            raise DockerError(f"{result!r}")
        return result

    def inspect(self, name, template="{{json .}}"):
        """C{docker inspect} of one object, decoded (JSON by default)."""
        out = self.run("inspect", "--format", template, name).out
        return json.loads(out) if template == "{{json .}}" else out.strip()

    def state(self, name):
        """The container's C{.State} as a dict."""
        return self.inspect(name)["State"]

    def import_rootfs(self, rootfs):
        """C{docker import} a busybox rootfs as L{IMAGE}."""
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
        argv = [self.docker_bin, "-H", "unix://" + self.socket, "import", "-", IMAGE]
        proc = subprocess.run(argv, input=tar, capture_output=True, timeout=CLI_TIMEOUT, env=self.cli_env)
        if proc.returncode != 0:
            raise DockerError(f"docker import failed: {proc.stderr.decode(errors='replace')}")

    def container_ids(self):
        return self.run("ps", "-aq", "--no-trunc").out.split()

    def swarm_state(self):
        return self.run("info", "--format", "{{.Swarm.LocalNodeState}}").out.strip()


class Stack:
    """
    A containerd-tx daemon and a dockerd on it, in one temp folder.

    @ivar daemon: the L{TxDaemon}.
    @ivar engine: the L{Engine}.
    @ivar gates: a host folder tests bind into containers to release them (C{-v gates:/gate}).
    """

    def __init__(self, flags=()):
        bin_dir, reason = engine_dir()
        if reason:
            raise AssertionError(reason)
        processes.become_subreaper()
        self.root = tempfile.mkdtemp(prefix="ctx-docker-", dir="/tmp")
        self.rbin = os.path.join(self.root, "rbin")
        os.makedirs(self.rbin)
        os.symlink(shutil.which("runc"), os.path.join(self.rbin, "docker-runc"))
        self.rootfs = bundles.make_rootfs(os.path.join(self.root, "rootfs"))
        self.gates = os.path.join(self.root, "gates")
        os.makedirs(self.gates)
        self.host = HostTraces()
        self.daemon = TxDaemon(os.path.join(self.root, "ctd"), self.rbin)
        os.makedirs(self.daemon.workdir)
        self.engine = Engine(bin_dir, os.path.join(self.root, "docker"), self.daemon.socket, self.rbin, flags)
        os.makedirs(self.engine.root)
        self.destroyed = False

    def start(self):
        self.daemon.start()
        self.engine.start()
        self.engine.import_rootfs(self.rootfs)
        return self

    def ensure_running(self):
        """Bring back what a failed test left stopped (the daemon first: dockerd needs it)."""
        if not self.daemon.running():
            self.daemon.start()
        if not self.engine.running():
            self.engine.start()
        self.wait_reconnected()

    def start_daemon(self):
        """Start containerd-tx again under a running dockerd, and wait until dockerd has reconnected."""
        self.daemon.start()
        self.wait_reconnected()

    def wait_reconnected(self):
        """
        Wait until dockerd's gRPC connection to containerd-tx is up. After containerd restarts, dockerd's
        client redials with a backoff (up to 2 s in libcontainerd) and fails calls meanwhile with
        "grpc: the connection is unavailable", as it did with containerd 0.2. `docker info` asks containerd
        for its version and shows N/A while the call fails.
        """
        poll(lambda: self.engine.run("info", "--format", "{{.ContainerdCommit.ID}}").out.strip() != "N/A",
             START_TIMEOUT, interval=0.2, message="dockerd to reconnect to containerd-tx")

    def gate(self, name):
        """A fresh host folder for one container's gate files; C{-v <it>:/gate}."""
        path = os.path.join(self.gates, name)
        os.makedirs(path)
        return path

    def reset(self):
        """
        A test's clean-up: leave the swarm, remove every container, network and volume the test made, and
        check that the daemon and the runtime are left with no container.
        """
        self.ensure_running()
        self.remove_engine_objects()
        _settle(self.engine.container_ids, "dockerd to have no container")
        _settle(self.daemon.containers, "containerd-tx to list no container")
        _settle(self.daemon.runtime_leftovers, "the runtime to have no container")
        shutil.rmtree(self.gates, ignore_errors=True)
        os.makedirs(self.gates, exist_ok=True)

    def remove_engine_objects(self):
        """Through the engine: leave the swarm, remove every container, network and volume."""
        engine = self.engine
        if engine.swarm_state() not in ("inactive", ""):
            engine.run("swarm", "leave", "--force")
            wait_for(lambda: engine.swarm_state() == "inactive", SETTLE_TIMEOUT, interval=0.2,
                     message="the engine to leave the swarm")
            # The engine takes the swarm's networks (ingress, overlays) down by itself, after the leave.
            _settle(lambda: engine.run("network", "ls", "-q", "--filter", "scope=swarm").out.split(),
                    "the swarm's networks to go")
        ids = engine.container_ids()
        if ids:
            engine.run("rm", "-f", "-v", *ids)
        networks = set(engine.run("network", "ls", "--format", "{{.Name}}").out.split())
        for network in sorted(networks - {"bridge", "host", "none"}):
            # docker_gwbridge keeps "active endpoints" until the ingress sandbox is gone.
            _settle(lambda: [r.err.strip() for r in [engine.run("network", "rm", network, check=False)]
                             if r.rc != 0 and "No such network" not in r.err],
                    f"network {network} to be removed")
        volumes = engine.run("volume", "ls", "-q").out.split()
        if volumes:
            engine.run("volume", "rm", *volumes)

    def keep_logs(self):
        """
        Under trial (whose working folder is its C{_trial_temp} or one under it), keep dockerd's and
        containerd-tx's logs in C{docker-logs/<stack>/} there, to read after a failure.
        """
        if not any(part.startswith("_trial") for part in os.getcwd().split(os.sep)):
            return
        keep = os.path.join(os.getcwd(), "docker-logs", os.path.basename(self.root))
        os.makedirs(keep, exist_ok=True)
        for path, name in ((self.engine.log_path, "dockerd.log"), (self.daemon.log_path, "containerd-tx.log")):
            if os.path.exists(path):
                shutil.copyfile(path, os.path.join(keep, name))

    def destroy(self):
        """
        Take everything down, whatever state it is in: the engine's containers and swarm state, dockerd, its
        mounts, its traces on the host, the daemon, the runtime's containers, the monitor, the folder.
        Raises (after doing all of it) if something could not be cleaned.
        """
        if self.destroyed:
            return
        self.destroyed = True
        problems = []
        if self.engine.running() and self.daemon.running():
            try:
                self.remove_engine_objects()
            except Exception as e:  # noqa: BLE001 - the rest must still be cleaned
                problems.append(f"removing the engine's containers and networks: {e}")
        try:
            self.engine.stop()
        except AssertionError as e:
            problems.append(str(e))
        self.engine.kill()
        left = unmount_under(self.root)
        if left:
            problems.append(f"mounts left: {left}")
        problems.extend(self.host.remove())
        if self.daemon.running():
            try:
                self.daemon.stop()
            except AssertionError as e:
                problems.append(str(e))
        self.keep_logs()
        if self.daemon.process is not None:
            leftovers = self.daemon.runtime_leftovers()
            if leftovers:
                problems.append(f"runtime containers left (deleted now): {leftovers}")
            self.daemon.destroy()
        processes.reap_orphans()
        problems.extend(remove_cgroups(self.engine.cgroup_parent))
        if not mounts_under(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        if problems:
            raise AssertionError("docker tier clean-up: " + "; ".join(problems))


def _settle(found, message):
    """Wait until C{found()} is empty; the error says what it still was."""
    last = []

    def empty():
        last[:] = [found()]
        return not last[0]

    try:
        wait_for(empty, SETTLE_TIMEOUT, interval=0.2, message=message)
    except AssertionError as e:
        raise AssertionError(f"{e}; still there: {last[0] if last else '?'}")


_current = {"key": None, "stack": None}


def shared_stack(key, flags=()):
    """
    The stack for C{key} (a test class), started on first use. Asking for another key destroys the
    previous stack first; the last one is destroyed when the process exits.
    """
    stack = _current["stack"]
    if stack is not None and (_current["key"] != key or stack.destroyed):
        _current["stack"] = _current["key"] = None
        stack.destroy()
    if _current["stack"] is None:
        stack = Stack(flags)
        _current["stack"], _current["key"] = stack, key
        try:
            stack.start()
        except BaseException:
            _current["stack"] = _current["key"] = None
            stack.destroy()
            raise
    return _current["stack"]


def destroy_shared():
    """Destroy the current shared stack, if any."""
    stack = _current["stack"]
    _current["stack"] = _current["key"] = None
    if stack is not None:
        stack.destroy()


@atexit.register
def _at_exit():
    try:
        destroy_shared()
    except AssertionError as e:
        print(f"\n{e}", flush=True)


def poll(predicate, timeout=SETTLE_TIMEOUT, interval=0.1, message="condition"):
    """L{wait_for} with the tier's generous default deadline."""
    return wait_for(predicate, timeout, interval, message)
