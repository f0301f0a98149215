# -*- test-case-name: tests.unit.test_supervisor -*-
"""
The state the supervisor's parts share, declared in one place.
"""

from containerd_tx.metrics.registry import Metrics


class SharedState:
    """
    What the supervisor's mixins (L{containerd_tx.supervisor.core}, C{exits}, C{recovery}, C{execs},
    C{updates}, C{checkpoints}) share: the collaborators and fields set here, and nothing else. A field a
    single mixin needs is its own (core's are set in its constructor); a private field read by more than
    one mixin is declared here, with who writes it.

    The contract:

      - Everything is read and written in the reactor thread only; nothing blocks it.
      - A container is in exactly one of L{containers} (being created, running, paused) and L{_ending}
        (its init has exited, its end is being handled); a key of L{_early_exits}, L{_exit_waiters} or
        L{_exiting} names a process of a container in one of them.
      - Every process's exit is handled once: L{_exiting} holds it while it is.

    Besides their public methods, the mixins call these of each other:

      - core: C{_transitions(container_id)} (the per-container lock of exec, pause and resume),
        C{_runtime_of(container)}, C{_started(container, pid)}, C{_discard(container, runtime)},
        C{_console_socket()};
      - exits: C{handle_exit(record)}, C{_deliver_early_exit(container_id, process_id)}.

    @ivar store: the L{containerd_tx.state_store.StateStore}.
    @ivar events: the L{containerd_tx.events.EventLog}.
    @ivar monitor: the L{containerd_tx.runtime.monitor_seam.IMonitor}; core's constructor has it report
        exits to C{handle_exit} (its C{report_exits_to}).
    @ivar metrics: the L{containerd_tx.metrics.registry.Metrics} the timers go to.
    @ivar oom: an L{containerd_tx.oom.OomWatcher}, or None (--no-oom-notify).
    @ivar start_timeout: seconds a runtime start may take before it is killed.
    @ivar containers: container id -> L{containerd_tx.model.Container}, those being created included.
        Written by core (create, discard) and exits (an init's exit moves its container to L{_ending});
        recovery fills it at start-up.
    @ivar _ending: container id -> Container whose init has exited: no longer listed (containerd 0.2.9
        removes a container before it reports the exit), still being deleted from the runtime. Written by
        exits; core's create of the same id waits for it to go.
    @ivar _ended_waiters: container id -> Deferreds fired by exits once that container is completely gone
        (core's create of the same id waits on them).
    @ivar _early_exits: (container id, process id) -> exit record that arrived before its process was known
        to be started. Written by exits; delivered next turn once core (create) or execs (exec) has
        started the process, dropped by them when the start fails.
    @ivar _exit_waiters: (container id, process id) -> Deferred exits fires once that process's exit has
        been handled (an init's end waits for its exec'd processes).
    @ivar _exiting: (container id, process id) of the exits being handled now (exits only).
    """

    def __init__(self, reactor, store, events, monitor, metrics, oom, start_timeout):
        self._reactor = reactor
        self.store = store
        self.events = events
        self.monitor = monitor
        self.metrics = metrics if metrics is not None else Metrics(reactor)
        self.oom = oom
        self.start_timeout = start_timeout
        self.containers = {}
        self._ending = {}
        self._ended_waiters = {}
        self._early_exits = {}
        self._exit_waiters = {}
        self._exiting = set()
