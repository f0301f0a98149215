"""
The daemon's own metrics: a registry of timers, counters and gauges (L{registry}), and the sinks that
report it: a periodic log in containerd 0.2's layout (L{stdout}), Graphite's plaintext protocol
(L{graphite}) and an HTTP C{/metrics} page in Prometheus' text format with a C{/healthz} probe
(L{prometheus}).

Everything here lives in the reactor thread: metrics are updated and read there, and no sink blocks it.
"""

from containerd_tx.metrics.registry import (
    CONTAINER_CREATE_TIME,
    CONTAINER_DELETE_TIME,
    CONTAINER_START_TIME,
    CONTAINER_STATS_TIME,
    CONTAINERS,
    EVENT_SUBSCRIBERS,
    EVENTS,
    EXEC_PROCESS_TIME,
    EXIT_PROCESS_TIME,
    FDS,
    TASKS,
    THREADS,
    Counter,
    Gauge,
    Metrics,
    Timer,
    process_gauges,
)

__all__ = [
    "Metrics", "Timer", "Counter", "Gauge", "process_gauges",
    "CONTAINER_START_TIME", "CONTAINER_CREATE_TIME", "CONTAINER_DELETE_TIME", "CONTAINER_STATS_TIME",
    "EXEC_PROCESS_TIME", "EXIT_PROCESS_TIME", "CONTAINERS", "EVENTS", "EVENT_SUBSCRIBERS", "TASKS",
    "THREADS", "FDS",
]
