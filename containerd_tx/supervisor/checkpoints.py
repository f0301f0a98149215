# -*- test-case-name: tests.unit.test_supervisor,tests.integration.test_checkpoint -*-
"""
Checkpoints: CRIU images of running containers, stored as
C{<checkpointDir or bundle/checkpoints>/<name>/} with a C{config.json} of the options they were taken with.

A checkpoint is dumped into a hidden C{.<name>.partial-*} folder and renamed into place only when complete,
so a failed or interrupted dump is never listed.
"""

import json
import os
import shutil
import time

from twisted.internet import threads
from twisted.logger import Logger

from containerd_tx.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from containerd_tx.layout import write_atomically
from containerd_tx.model import PAUSED, RUNNING

log = Logger()

OPTIONS_FILE = "config.json"
#: Written by the daemon into every checkpoint it makes: only a folder with it is ever listed or deleted, so a
#: checkpointDir pointed at bundles or other folders with a config.json never loses anything.
MARKER_FILE = ".containerd-tx-checkpoint"


def checkpoint_root(bundle, checkpoint_dir):
    """Where a container's checkpoints live."""
    if checkpoint_dir:
        if not os.path.isabs(checkpoint_dir):
            raise InvalidArgument(f"checkpointDir {checkpoint_dir!r} must be an absolute path")
        return checkpoint_dir
    return os.path.join(bundle, "checkpoints")


def is_checkpoint(root, name):
    """Whether C{root/name} is a complete checkpoint this daemon wrote (a real folder with the marker)."""
    folder = os.path.join(root, name)
    return (not os.path.islink(folder) and os.path.isdir(folder)
            and os.path.isfile(os.path.join(folder, MARKER_FILE)))


def read_checkpoint(root, name):
    """
    The options a checkpoint was taken with.

    @raise NotFound: no complete checkpoint of that name.
    """
    path = os.path.join(root, name, OPTIONS_FILE)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        raise NotFound(f"checkpoint {name} not found in {root}")
    if not isinstance(record, dict):
        raise NotFound(f"checkpoint {name} in {root} has no readable options")
    return record


class Checkpoints:
    """
    Supervisor tasks for checkpoints (mixed into L{containerd_tx.supervisor.Supervisor}; the state
    they share with the other tasks is L{containerd_tx.supervisor.shared.SharedState}).
    """

    async def create_checkpoint(self, container_id, options, checkpoint_dir=""):
        """
        Checkpoint a running container.

        @param options: dict with name, exit, tcp, unix_sockets, shell, empty_ns.
        @raise AlreadyExists: a checkpoint of that name exists.
        @raise FailedPrecondition: the container is not running, or CRIU could not dump it (CRIU's reason
            included); the container then keeps running.
        """
        container = self.get(container_id)
        if container.status not in (RUNNING, PAUSED):
            raise FailedPrecondition(f"container {container_id} is {container.status}: cannot checkpoint it")
        root = checkpoint_root(container.bundle, checkpoint_dir)
        name = options["name"]
        final = os.path.join(root, name)
        if os.path.exists(final):
            raise AlreadyExists(f"checkpoint {name} already exists in {root}")
        os.makedirs(root, mode=0o700, exist_ok=True)
        partial = os.path.join(root, f".{name}.partial-{os.getpid()}-{time.monotonic_ns()}")
        os.mkdir(partial, 0o700)
        work = os.path.join(self.store.container_dir(container_id), f"criu-dump-{name}")
        os.makedirs(work, mode=0o700, exist_ok=True)
        try:
            await self._runtime_of(container).checkpoint(container_id, partial, work, options,
                                                         container.runtime_args)
            record = dict(options, timestamp=time.time())
            write_atomically(os.path.join(partial, OPTIONS_FILE), json.dumps(record).encode())
            write_atomically(os.path.join(partial, MARKER_FILE), b"written by containerd-tx\n")
            if os.path.exists(final):
                raise AlreadyExists(f"checkpoint {name} already exists in {root}")
            os.rename(partial, final)
        except BaseException:
            # The work dir (CRIU's dump.log) stays for diagnosis until the container goes.
            await threads.deferToThread(shutil.rmtree, partial, True)
            raise
        shutil.rmtree(work, ignore_errors=True)
        log.info("container {id}: checkpoint {name} written to {path}", id=container_id, name=name, path=final)

    def list_checkpoints(self, container_id, checkpoint_dir=""):
        """
        The container's complete checkpoints (those this daemon wrote) with their options, sorted by name.

        @raise NotFound: unknown container.
        """
        container = self.get(container_id)
        root = checkpoint_root(container.bundle, checkpoint_dir)
        try:
            names = sorted(n for n in os.listdir(root) if not n.startswith("."))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if not is_checkpoint(root, name):
                continue
            try:
                found.append(read_checkpoint(root, name))
            except NotFound:
                continue
        return found

    async def delete_checkpoint(self, container_id, name, checkpoint_dir=""):
        """
        Remove a checkpoint from disk; only a folder this daemon wrote as a checkpoint (see L{MARKER_FILE}).

        @raise NotFound: unknown container or checkpoint.
        """
        container = self.get(container_id)
        root = checkpoint_root(container.bundle, checkpoint_dir)
        if not is_checkpoint(root, name):
            # A folder this daemon did not write as a checkpoint (a bundle, say) is never deleted.
            raise NotFound(f"checkpoint {name} not found in {root}")
        read_checkpoint(root, name)
        await threads.deferToThread(shutil.rmtree, os.path.join(root, name))
        log.info("container {id}: checkpoint {name} deleted", id=container_id, name=name)
