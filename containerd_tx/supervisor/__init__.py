"""
The supervisor: the single owner of container state, living in the reactor thread.

Every change to a container happens here, one module per kind of task (as containerd 0.2's supervisor/ did):
L{core} (state, create, signal), L{exits}, L{recovery}, L{execs}, L{updates}, L{checkpoints}; what they share is
declared once, in L{shared}. The gRPC layer only translates requests into calls of this class (through the thread
bridge); the runtime driver only runs commands; the monitor process only spawns, reaps and records exits. Unit
tests drive it on fakes of the runtime and the monitor (C{tests.unit.test_supervisor}).
"""

from containerd_tx.supervisor.checkpoints import Checkpoints
from containerd_tx.supervisor.core import CreateRequest, Machine, SupervisorCore, read_machine
from containerd_tx.supervisor.execs import ExecRequest, Execs
from containerd_tx.supervisor.exits import ExitHandling
from containerd_tx.supervisor.recovery import Recovery
from containerd_tx.supervisor.updates import Updates


class Supervisor(SupervisorCore, ExitHandling, Recovery, Execs, Updates, Checkpoints):
    """The supervisor with every kind of task; see the modules of this package."""


__all__ = ["CreateRequest", "ExecRequest", "Machine", "Supervisor", "read_machine"]
