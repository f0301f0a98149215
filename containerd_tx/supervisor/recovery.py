# -*- test-case-name: tests.integration.test_restart -*-
"""
Start-up: adopt what a previous daemon left in the state dir.
"""

import os

from twisted.logger import Logger

from containerd_tx import cgroups
from containerd_tx.model import CREATING, INIT

log = Logger()


class Recovery:
    """Supervisor tasks for adopting containers (mixed into L{containerd_tx.supervisor.Supervisor})."""

    async def recover(self):
        """
        Adopt every container recorded in the state dir: running ones go on being supervised, exits that
        happened while no daemon ran are reported with their true status, half-made ones are cleaned up.
        """
        live = {(p["container"], p["process"]): p for p in self.monitor.processes}
        # Exits the monitor could not write to disk (ENOSPC, EIO) and kept in memory for us.
        unwritten = {}
        for record in getattr(self.monitor, "exits", ()):
            unwritten.setdefault(record["container"], {})[record["process"]] = record
        containers = self.store.load()
        for container in containers:
            self.containers[container.id] = container
        exits = []
        for container in containers:
            records = {r["process"]: r for r in self.store.read_exit_records(container.id)}
            records.update(unwritten.get(container.id, {}))
            for process in list(container.processes.values()):
                key = (container.id, process.id)
                if key in live and not process.system_pid:
                    process.system_pid = live[key]["pid"]
                    self.store.save_process(container.id, process)
                if key in live and live[key].get("fostered") and process.id not in records:
                    # A process a dead monitor left to the previous daemon, which is gone too: the monitor
                    # moves its stdio; nobody can read its status now, so it is watched by pidfd (255).
                    await self._watch_fostered(container, process, live[key]["pid"])
                if process.id in records:
                    record = records[process.id]
                    if not process.system_pid:
                        process.system_pid = record.get("pid", 0)
                    exits.append(record)
                elif key not in live:
                    lost = await self._lost_process(container, process)
                    if lost is not None:
                        exits.append(lost)
            if container.status == CREATING:
                # The init's record may be gone: never written (killed between the two records) or dropped
                # just above as a process that never started.
                init = container.processes.get(INIT)
                if init is not None and init.system_pid:
                    self._started(container, init.system_pid)
                else:
                    log.warn("container {id} was being created when the daemon stopped: removing it",
                             id=container.id)
                    await self._discard(container, self._runtime_of(container))
                    continue
            log.info("adopted container {id} ({status})", id=container.id, status=container.status)
        for record in exits:
            self.handle_exit(record)
        for records in unwritten.values():
            for record in records.values():
                self.monitor.exit_handled(record)

    async def _watch_fostered(self, container, process, pid):
        try:
            await self.monitor.adopt(container.id, process.id, pid, self.store.container_dir(container.id))
        except Exception as e:
            log.warn("cannot watch {id}/{pid}: {e}", id=container.id, pid=process.id, e=e)

    async def _lost_process(self, container, process):
        """
        A recorded process the monitor does not know (the monitor itself was restarted): watch it again if it
        lives; otherwise return an exit record with the unknown status 255 (as containerd reports it).
        """
        if process.system_pid and _alive(process.system_pid) and _in_cgroups(container, process.system_pid):
            try:
                await self.monitor.adopt(container.id, process.id, process.system_pid,
                                         self.store.container_dir(container.id))
                return None
            except Exception as e:
                log.warn("cannot watch {id}/{pid}: {e}", id=container.id, pid=process.id, e=e)
        if process.system_pid:
            return {"container": container.id, "process": process.id, "pid": process.system_pid,
                    "status": 255}
        container.processes.pop(process.id, None)
        self.store.remove_process(container.id, process.id)
        return None



def _in_cgroups(container, pid):
    """
    Whether the live process C{pid} is still in the container's cgroups: host pids are reused quickly, and a
    pid on disk may now be a stranger's (the container's processes are all in its cgroups). A pid read from
    disk comes with the cgroups, which are recorded in the same write; without them there is no telling.
    """
    if not container.cgroups:
        return True
    return pid in cgroups.cgroup_pids(container.cgroups)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
