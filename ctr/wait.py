# -*- test-case-name: tests.unit.test_ctr_wait -*-
"""
C{ctr containers wait}: block until a process of a container exits and print its exit status.
"""

import click

from ctr import cli, errors, events


def stored_exit(stub, container_id, process_id, since_last_start=False):
    """
    @param since_last_start: count only exits after the container's last C{start-container} event (the
        exits of the container now listed, not of an earlier one with the same id).
    @return: the exit status of the last stored C{exit} event of process C{process_id} of container
        C{container_id}, or C{None} when the event log holds none.
    """
    from containerd_tx.api import containerd_pb2

    request = containerd_pb2.EventsRequest(id=container_id, storedOnly=True)
    request.timestamp.SetInParent()  # the whole stored log: a timestamp given, at the epoch
    status = None
    for event in stub.Events(request):
        if event.type == "start-container" and since_last_start:
            status = None
        elif event.type == "exit" and event.pid == process_id:
            status = event.status
    return status


def listed_container(stub, container_id):
    """
    @return: the C{Container} named C{container_id} as State lists it, or C{None}.
    @raise grpc.RpcError: for errors other than NOT_FOUND.
    """
    from containerd_tx.api import containerd_pb2

    try:
        state = stub.State(containerd_pb2.StateRequest(id=container_id))
    except Exception as error:
        if errors.is_rpc_error(error) and errors.rpc_code(error) == "NOT_FOUND":
            return None
        raise
    return next((c for c in state.containers if c.id == container_id), None)


def wait_status(stub, container_id, process_id):
    """
    Wait for a process to exit, or find how it exited if it already has.

    The events stream is opened from a moment before the state is read, so an exit after that moment is on
    the stream, and one before it is in the stored log.

    @return: the process's exit status.
    @raise client.ClientError: when the process is neither running nor in the event log.
    """
    from containerd_tx.api import containerd_pb2

    stream = stub.Events(containerd_pb2.EventsRequest(id=container_id, timestamp=events.now()))
    try:
        container = listed_container(stub, container_id)
        if container is not None and any(p.pid == process_id for p in container.processes):
            if container.status == "stopped" and process_id == "init":
                # The init has exited: the container is listed until the runtime has deleted it, and its
                # exit event may be older than the stream.
                status = stored_exit(stub, container_id, process_id, since_last_start=True)
                if status is not None:
                    return status
            from ctr.stdio import wait_for_exit

            return wait_for_exit(stream, container_id, process_id)
    finally:
        stream.cancel()
    status = stored_exit(stub, container_id, process_id)
    if status is None:
        what = "" if process_id == "init" else f"process {process_id} of "
        raise errors.ClientError(f"{what}container {container_id} not found")
    return status


@click.command(
    epilog="""\b
Examples:
  ctr containers wait web               # prints 137 after: ctr containers kill -s KILL web
  ctr containers wait -p worker web
  status=$(ctr containers wait web)

If the process has already exited, its status is taken from the daemon's event log.
""",
)
@click.option("--pid", "-p", default="init", show_default=True, shell_complete=cli.complete_process_id,
              help="Process id in the container.")
@cli.container_id_argument()
def wait(pid, container_id):
    """Wait for a process of container ID to exit; print its exit status."""
    click.echo(wait_status(cli.api(), container_id, pid))
