"""
What the supervisor needs from an OCI runtime. One implementation drives runc and crun
(L{containerd_tx.runtime.runc.RuncRuntime}); unit tests use a fake.
"""

from zope.interface import Attribute, Interface


class IRuntime(Interface):
    """
    An OCI runtime. Every method returns a Deferred; failures are
    L{containerd_tx.errors.RuntimeFailure} carrying the runtime's own message.
    """

    name = Attribute("The runtime's name as clients spell it (e.g. 'runc').")

    def run(container_id, bundle, process_stdio, register, global_args=(), no_pivot_root=False,
            console_socket=None, timeout=None):
        """
        Create and start a container detached (C{run -d}).

        @param process_stdio: (stdin, stdout, stderr) paths or None for /dev/null.
        @param register: C{(container id, process id, record dir)}: who the monitor reports the exit of.
        @param timeout: seconds; past it the runtime is killed and the Deferred fails with DeadlineExceeded.
        @return: Deferred firing with the container init's host pid.
        """

    def exec(container_id, process_json_path, process_stdio, register, global_args=(),
             console_socket=None, timeout=None):
        """
        Start a process in a running container detached; fires with its host pid.
        """

    def kill(container_id, signal, global_args=(), all=False):
        """Send a signal to the container's init (or all its processes)."""

    def delete(container_id, global_args=(), force=False):
        """Remove the container's runtime state (force: kill it first)."""

    def pause(container_id, global_args=()):
        """Freeze every process of the container."""

    def resume(container_id, global_args=()):
        """Thaw a paused container."""

    def update(container_id, resources_json_path, global_args=()):
        """Apply new resource limits (an OCI LinuxResources JSON file)."""

    def checkpoint(container_id, image_path, work_path, options, global_args=()):
        """
        Dump the container with CRIU; options: exit, tcp, unix_sockets, shell, empty_ns.
        """

    def restore(container_id, bundle, image_path, work_path, options, process_stdio, register, global_args=(),
                no_pivot_root=False, console_socket=None, timeout=None):
        """Restore a container from a CRIU image detached; fires with its init's host pid."""

    def list(global_args=()):
        """Fires with the runtime's containers: a list of dicts with at least C{id} and C{status}."""

    def cgroup_paths(container_id, global_args=()):
        """
        The container's cgroup directories as the runtime recorded them (subsystem -> absolute path), read at
        once from its state; C{{}} when the runtime records none. For when its init is already gone from /proc.
        """
