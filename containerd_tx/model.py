# -*- test-case-name: tests.unit.test_supervisor -*-
"""
The daemon's picture of containers and their processes: plain data, owned by the supervisor.
"""

from dataclasses import dataclass, field

INIT = "init"

# Container statuses as the wire contract spells them.
CREATING = "creating"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"


@dataclass
class User:
    """Who a process runs as."""

    uid: int = 0
    gid: int = 0
    additional_gids: list = field(default_factory=list)


@dataclass
class Process:
    """
    One process of a container: the init (id C{"init"}) or an exec'd one (the client's id).
    """

    id: str
    args: list
    env: list = field(default_factory=list)
    cwd: str = "/"
    terminal: bool = False
    user: User = field(default_factory=User)
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    capabilities: list = field(default_factory=list)
    apparmor_profile: str = ""
    selinux_label: str = ""
    no_new_privileges: bool = False
    rlimits: list = field(default_factory=list)  # dicts: type, soft, hard
    system_pid: int = 0

    def to_record(self):
        """
        A JSON-able dict for the state dir. Written out field by field: C{dataclasses.asdict} deep-copies
        through reflection and was a tenth of the daemon's CPU per container start.
        """
        user = self.user
        return {
            "id": self.id, "args": list(self.args), "env": list(self.env), "cwd": self.cwd,
            "terminal": self.terminal,
            "user": {"uid": user.uid, "gid": user.gid, "additional_gids": list(user.additional_gids)},
            "stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr,
            "capabilities": list(self.capabilities), "apparmor_profile": self.apparmor_profile,
            "selinux_label": self.selinux_label, "no_new_privileges": self.no_new_privileges,
            "rlimits": [dict(r) for r in self.rlimits], "system_pid": self.system_pid,
        }

    @classmethod
    def from_record(cls, record):
        """The inverse of L{to_record}."""
        record = dict(record)
        record["user"] = User(**record.get("user", {}))
        return cls(**record)

    @classmethod
    def from_oci(cls, process_id, oci_process, stdio):
        """
        Build the picture of a process from an OCI config's C{process} object.

        @param stdio: (stdin, stdout, stderr) paths, "" for /dev/null.
        """
        user = oci_process.get("user") or {}
        caps = (oci_process.get("capabilities") or {}).get("bounding") or []
        return cls(
            id=process_id,
            args=list(oci_process.get("args") or []),
            env=list(oci_process.get("env") or []),
            cwd=oci_process.get("cwd") or "/",
            terminal=bool(oci_process.get("terminal")),
            user=User(
                uid=int(user.get("uid", 0)),
                gid=int(user.get("gid", 0)),
                additional_gids=[int(g) for g in user.get("additionalGids") or []],
            ),
            stdin=stdio[0],
            stdout=stdio[1],
            stderr=stdio[2],
            capabilities=list(caps),
            apparmor_profile=oci_process.get("apparmorProfile") or "",
            selinux_label=oci_process.get("selinuxLabel") or "",
            no_new_privileges=bool(oci_process.get("noNewPrivileges")),
            rlimits=[dict(r) for r in oci_process.get("rlimits") or []],
        )


@dataclass
class Container:
    """
    A container the daemon supervises.

    @ivar runtime: the runtime's name as the client gave it (or the daemon default).
    @ivar runtime_args: global runtime flags given by the client for this container.
    @ivar cgroups: subsystem -> absolute cgroup directory of the init, read once it runs.
    """

    id: str
    bundle: str
    runtime: str
    runtime_args: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    status: str = CREATING
    no_pivot_root: bool = False
    processes: dict = field(default_factory=dict)
    cgroups: dict = field(default_factory=dict)
    created_ns: int = 0

    @property
    def init(self):
        """The init process."""
        return self.processes[INIT]

    def to_record(self):
        """A JSON-able dict for the state dir (processes are stored separately)."""
        return {
            "id": self.id, "bundle": self.bundle, "runtime": self.runtime,
            "runtime_args": list(self.runtime_args), "labels": list(self.labels), "status": self.status,
            "no_pivot_root": self.no_pivot_root, "cgroups": dict(self.cgroups), "created_ns": self.created_ns,
        }

    @classmethod
    def from_record(cls, record, processes):
        """The inverse of L{to_record}."""
        return cls(processes=processes, **record)
