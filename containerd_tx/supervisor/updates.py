# -*- test-case-name: tests.unit.test_supervisor,tests.integration.test_update -*-
"""
Pause, resume and live resource updates of running containers.
"""

import json
import os

from twisted.logger import Logger

from containerd_tx.errors import FailedPrecondition, InvalidArgument
from containerd_tx.events import PAUSE, RESUME
from containerd_tx.layout import write_atomically
from containerd_tx.model import PAUSED, RUNNING

log = Logger()


class Updates:
    """
    Supervisor tasks that change running containers (mixed into L{containerd_tx.supervisor.Supervisor}; the state
    they share with the other tasks is L{containerd_tx.supervisor.shared.SharedState}).
    """

    async def set_status(self, container_id, status):
        """
        Pause (C{"paused"}) or resume (C{"running"}) a container.

        @raise InvalidArgument: another status.
        @raise FailedPrecondition: already in that state, or stopped.
        """
        async with self._transitions(container_id):
            await self._set_status(container_id, status)

    async def _set_status(self, container_id, status):
        container = self.get(container_id)
        if status == PAUSED:
            if container.status != RUNNING:
                raise FailedPrecondition(f"container {container_id} is {container.status}: cannot pause it")
            await self._runtime_of(container).pause(container_id, container.runtime_args)
            container.status, event = PAUSED, PAUSE
        elif status == RUNNING:
            if container.status != PAUSED:
                raise FailedPrecondition(f"container {container_id} is {container.status}: cannot resume it")
            await self._runtime_of(container).resume(container_id, container.runtime_args)
            container.status, event = RUNNING, RESUME
        else:
            raise InvalidArgument(f"invalid status {status!r}: use \"paused\" or \"running\"")
        self.store.save_container(container)
        # No pid, as containerd 0.2.9 sends pause and resume events.
        self.events.emit(event, container_id, "")
        log.info("container {id} {event}d", id=container_id, event=event)

    async def update_resources(self, container_id, resources):
        """
        Apply new cgroup limits to a running (or paused) container.

        @param resources: an OCI LinuxResources dict (see L{containerd_tx.resources.linux_resources}); an
            empty one changes nothing, as in containerd 0.2.9, but the container must still be running or
            paused.
        """
        container = self.get(container_id)
        if container.status not in (RUNNING, PAUSED):
            raise FailedPrecondition(f"container {container_id} is {container.status}: cannot update it")
        if not resources:
            log.debug("container {id}: resource update with every field zero, nothing to change", id=container_id)
            return
        path = os.path.join(self.store.container_dir(container_id), "resources-update.json")
        write_atomically(path, json.dumps(resources).encode())
        try:
            await self._runtime_of(container).update(container_id, path, container.runtime_args)
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        log.info("container {id} resources updated: {resources}", id=container_id, resources=resources)
