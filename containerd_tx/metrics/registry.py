# -*- test-case-name: tests.unit.test_metrics -*-
"""
A small metrics registry in the manner of go-metrics (which containerd 0.2 used) and Dropwizard Metrics:
timers, counters and gauges, read as plain data by the reporters.

Timers
======

A L{Timer} records durations (in seconds) and keeps:

  - C{count} and C{sum} of every duration ever recorded;
  - an B{exponentially-decaying reservoir} of at most 1028 durations (go-metrics' C{ExpDecaySample(1028,
    0.015)}, Dropwizard's C{ExponentiallyDecayingReservoir}: forward decay with priority sampling, after
    Cormode et al.). Recent durations are strongly preferred (alpha 0.015 gives the last ~5 minutes most of
    the weight), memory is bounded by the reservoir size, and the landmark is rescaled every hour so the
    weights never overflow. C{min}, C{max}, C{mean}, C{stddev} (population, as go-metrics computes it)
    and the quantiles C{median}, C{p75}, C{p95}, C{p99}, C{p999} are computed over the reservoir's values,
    unweighted, with go-metrics' / Dropwizard's interpolation (position C{q * (n + 1)});
  - cumulative counts per duration bucket (L{BUCKETS}, upper bounds in seconds, over every duration ever
    recorded), which the Prometheus page exposes as a histogram: unlike quantiles of a sample, buckets add up
    across daemons and over time;
  - a meter: the mean rate since creation and 1, 5 and 15-minute exponentially-weighted moving averages
    of the rate (events per second), ticked every 5 seconds with C{alpha = 1 - exp(-5 / 60 / minutes)}.

Time comes only from the injected reactor (C{reactor.seconds()}). The meter ticks lazily: every update
and every read first applies the ticks that are due (as Dropwizard's C{Meter.tickIfNecessary} does), so
no C{LoopingCall} runs and a L{twisted.internet.task.Clock} drives everything in tests.

Not thread-safe: update and read in the reactor thread.
"""

import bisect
import contextlib
import heapq
import itertools
import math
import os
import random

from twisted.logger import Logger

log = Logger()

# The metric names containerd 0.2 registered (the daemon registers them; reporters keep them verbatim).
CONTAINER_START_TIME = "container-start-time"
CONTAINER_CREATE_TIME = "container-create-time"
CONTAINER_DELETE_TIME = "container-delete-time"
CONTAINER_STATS_TIME = "container-stats-time"
EXEC_PROCESS_TIME = "exec-process-time"
EXIT_PROCESS_TIME = "exit-process-time"
CONTAINERS = "containers"
EVENTS = "events"
OOM_EVENTS = "oom-events"
EVENT_SUBSCRIBERS = "event-subscribers"
TASKS = "tasks"
THREADS = "threads"
FDS = "fds"

#: What each metric is, in which unit: the help texts of the Prometheus page (and the README's table).
DESCRIPTIONS = {
    CONTAINER_START_TIME: "Time a whole CreateContainer takes (state record, runtime start, state read), in seconds.",
    CONTAINER_CREATE_TIME: "Time the OCI runtime's run or restore command takes, in seconds.",
    CONTAINER_DELETE_TIME: "Time the OCI runtime's delete command takes after a container's init exits, in seconds.",
    CONTAINER_STATS_TIME: "Time reading one Stats sample from cgroups and /proc takes, in seconds.",
    EXEC_PROCESS_TIME: "Time one AddProcess (exec into a container) takes, in seconds.",
    EXIT_PROCESS_TIME: "Time handling one process exit (events, runtime delete, state records) takes, in seconds.",
    CONTAINERS: "Containers this daemon supervises that are running or paused (being created not counted).",
    EVENTS: "Events emitted (start-container, start-process, exit, oom, paused, resumed, ...) since the daemon started.",
    OOM_EVENTS: "Out-of-memory kills in containers' memory cgroups reported as oom events (needs --oom-notify).",
    EVENT_SUBSCRIBERS: "Open Events API streams.",
    TASKS: "API calls waiting for the daemon's reactor thread (not containers' tasks).",
    THREADS: "Threads of the daemon process, native ones included (from /proc/self/status).",
    FDS: "Open file descriptors of the daemon process (entries of /proc/self/fd).",
}

#: The upper bounds, in seconds, of every timer's duration buckets (a container start is tens to hundreds of
#: milliseconds; a runtime stuck on a lock or a slow disk takes seconds).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

TIMER = "timer"
COUNTER = "counter"
GAUGE = "gauge"

#: The quantiles every timer reports, with the snapshot keys they appear under.
QUANTILES = ((0.5, "median"), (0.75, "p75"), (0.95, "p95"), (0.99, "p99"), (0.999, "p999"))

#: The rate keys of a timer snapshot, with their window in minutes (None: the mean rate).
RATES = (("m1_rate", 1), ("m5_rate", 5), ("m15_rate", 15), ("mean_rate", None))

TICK_INTERVAL = 5.0
RESERVOIR_SIZE = 1028
RESERVOIR_ALPHA = 0.015
RESCALE_THRESHOLD = 3600.0


def percentiles(values, quantiles):
    """
    Quantiles of C{values} as go-metrics' C{SamplePercentiles} and Dropwizard's C{UniformSnapshot} compute
    them: sort, take position C{q * (n + 1)} (1-based), interpolate linearly between its neighbours, clamp
    to the first and last value.

    @param values: numbers (any order).
    @param quantiles: numbers in [0, 1].
    @return: a list of floats, one per quantile (zeros when C{values} is empty).
    """
    ordered = sorted(values)
    size = len(ordered)
    scores = []
    for q in quantiles:
        if size == 0:
            scores.append(0.0)
            continue
        position = q * (size + 1)
        if position < 1.0:
            scores.append(float(ordered[0]))
        elif position >= size:
            scores.append(float(ordered[-1]))
        else:
            lower = ordered[int(position) - 1]
            upper = ordered[int(position)]
            scores.append(lower + (position - math.floor(position)) * (upper - lower))
    return scores


class ExpDecayReservoir:
    """
    A bounded sample of values biased towards recent ones (forward decay, priority sampling).

    Each value gets the priority C{exp(alpha * (t - landmark)) / u}, C{u} uniform in (0, 1]; the C{size}
    values of highest priority are kept in a min-heap. Every C{RESCALE_THRESHOLD} seconds (checked on
    update) the landmark moves to now and the priorities are scaled down to match.
    """

    def __init__(self, clock, size=RESERVOIR_SIZE, alpha=RESERVOIR_ALPHA, rng=None):
        """
        @param clock: a zero-argument callable returning seconds (the reactor's C{seconds}).
        @param rng: a L{random.Random} (seeded in tests).
        """
        self._clock = clock
        self._size = size
        self._alpha = alpha
        self._random = rng or random.Random()
        self._heap = []
        self._sequence = itertools.count()
        self._landmark = clock()
        self._next_rescale = self._landmark + RESCALE_THRESHOLD

    def __len__(self):
        return len(self._heap)

    def update(self, value):
        """Offer one value to the sample."""
        now = self._clock()
        if now >= self._next_rescale:
            self._rescale(now)
        weight = math.exp(self._alpha * (now - self._landmark))
        priority = weight / (1.0 - self._random.random())  # the divisor is in (0, 1]
        item = (priority, next(self._sequence), value)
        if len(self._heap) < self._size:
            heapq.heappush(self._heap, item)
        elif priority > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def _rescale(self, now):
        factor = math.exp(-self._alpha * (now - self._landmark))
        self._landmark = now
        self._next_rescale = now + RESCALE_THRESHOLD
        self._heap = [(priority * factor, sequence, value) for priority, sequence, value in self._heap]
        heapq.heapify(self._heap)

    def values(self):
        """The sampled values (unordered)."""
        return [value for _, _, value in self._heap]

    def clear(self):
        """Forget every value and restart the landmark now."""
        self._heap = []
        self._landmark = self._clock()
        self._next_rescale = self._landmark + RESCALE_THRESHOLD


class EWMA:
    """
    An exponentially-weighted moving average of a rate, ticked every C{TICK_INTERVAL} seconds (the
    Unix load-average formula, as in go-metrics and Dropwizard).
    """

    def __init__(self, minutes, interval=TICK_INTERVAL):
        self.alpha = 1.0 - math.exp(-interval / 60.0 / minutes)
        self.interval = interval
        self._uncounted = 0
        self._rate = 0.0
        self._initialized = False

    def update(self, n):
        """Count C{n} events into the current tick."""
        self._uncounted += n

    def tick(self, ticks=1):
        """
        Close C{ticks} intervals: the first gets the events counted since the last tick, the others
        none (so they only decay the average, in closed form).
        """
        if ticks < 1:
            return
        instant = self._uncounted / self.interval
        self._uncounted = 0
        if self._initialized:
            self._rate += self.alpha * (instant - self._rate)
        else:
            self._rate = instant
            self._initialized = True
        if ticks > 1:
            self._rate *= (1.0 - self.alpha) ** (ticks - 1)

    def rate(self):
        """Events per second."""
        return self._rate


class Meter:
    """
    Counts events and their rates: mean since creation, and 1, 5, 15-minute EWMAs ticked lazily from the
    clock.
    """

    def __init__(self, clock):
        self._clock = clock
        self._start = clock()
        self._last_tick = self._start
        self._count = 0
        self._ewmas = {1: EWMA(1), 5: EWMA(5), 15: EWMA(15)}

    def _tick_if_necessary(self):
        now = self._clock()
        age = now - self._last_tick
        if age >= TICK_INTERVAL:
            ticks = int(age // TICK_INTERVAL)
            self._last_tick += ticks * TICK_INTERVAL
            for ewma in self._ewmas.values():
                ewma.tick(ticks)

    def mark(self, n=1):
        """Record C{n} events now."""
        self._tick_if_necessary()
        self._count += n
        for ewma in self._ewmas.values():
            ewma.update(n)

    def count(self):
        """Events recorded so far."""
        return self._count

    def rate(self, minutes):
        """The C{minutes}-minute moving average rate, events per second (1, 5 or 15)."""
        self._tick_if_necessary()
        return self._ewmas[minutes].rate()

    def mean_rate(self):
        """Events per second since creation."""
        elapsed = self._clock() - self._start
        if self._count == 0 or elapsed <= 0:
            return 0.0
        return self._count / elapsed


class Timer:
    """
    Durations of an operation, in seconds: a decaying sample for their distribution and a meter for
    their rate. Get one with L{Metrics.timer}.
    """

    kind = TIMER

    def __init__(self, clock, rng=None):
        self._clock = clock
        self._reservoir = ExpDecayReservoir(clock, rng=rng)
        self._meter = Meter(clock)
        self._sum = 0.0
        self._buckets = [0] * len(BUCKETS)  # not cumulative: one per bound, durations above the last in none

    def update(self, seconds):
        """Record one duration (seconds, negative values count as zero)."""
        seconds = max(0.0, float(seconds))
        self._reservoir.update(seconds)
        self._meter.mark(1)
        self._sum += seconds
        index = bisect.bisect_left(BUCKETS, seconds)
        if index < len(BUCKETS):
            self._buckets[index] += 1

    def update_since(self, start):
        """Record the time since C{start}, a value of the same clock (C{reactor.seconds()})."""
        self.update(self._clock() - start)

    @contextlib.contextmanager
    def time(self):
        """
        A context manager recording how long its block takes (also when the block raises)::

            with metrics.timer("container-stats-time").time():
                stats = read_stats(cgroups, pid)
        """
        start = self._clock()
        try:
            yield self
        finally:
            self.update_since(start)

    def time_deferred(self, deferred):
        """
        Record the time from now until C{deferred} fires (either way); returns C{deferred}, whose result
        is untouched.
        """
        start = self._clock()

        def record(result):
            self.update_since(start)
            return result

        return deferred.addBoth(record)

    def count(self):
        """How many durations were recorded."""
        return self._meter.count()

    def snapshot(self):
        """
        The timer's figures as a dict of floats (durations in seconds, rates in events per second):
        C{count}, C{sum}, C{min}, C{max}, C{mean}, C{stddev}, C{median}, C{p75}, C{p95}, C{p99},
        C{p999}, C{m1_rate}, C{m5_rate}, C{m15_rate}, C{mean_rate}, and C{buckets}: a tuple of C{(upper
        bound, durations at most that long)} pairs over L{BUCKETS} (cumulative). The distribution figures are
        over the decaying sample; C{count}, C{sum} and C{buckets} over every update.
        """
        values = self._reservoir.values()
        size = len(values)
        if size:
            mean = sum(values) / size
            variance = sum((v - mean) ** 2 for v in values) / size
            low, high = min(values), max(values)
        else:
            mean = variance = low = high = 0.0
        data = {
            "count": self._meter.count(),
            "sum": self._sum,
            "min": low,
            "max": high,
            "mean": mean,
            "stddev": math.sqrt(variance),
        }
        for (_, key), value in zip(QUANTILES, percentiles(values, [q for q, _ in QUANTILES])):
            data[key] = value
        for key, minutes in RATES:
            data[key] = self._meter.mean_rate() if minutes is None else self._meter.rate(minutes)
        data["buckets"] = tuple(zip(BUCKETS, itertools.accumulate(self._buckets)))
        return data


class Counter:
    """
    A number that goes up and down (go-metrics' Counter: C{containers}, C{events}...). Get one with
    L{Metrics.counter}.
    """

    kind = COUNTER

    def __init__(self):
        self._count = 0

    def inc(self, n=1):
        """Add C{n}."""
        self._count += n

    def dec(self, n=1):
        """Subtract C{n}."""
        self._count -= n

    def count(self):
        """The current value."""
        return self._count

    def clear(self):
        """Back to zero."""
        self._count = 0

    def snapshot(self):
        """The current value."""
        return self._count


class Gauge:
    """
    A value computed on read by a function. Register one with L{Metrics.gauge}.
    """

    kind = GAUGE

    def __init__(self, fn):
        self.fn = fn

    def value(self):
        """Call the function now and return its number."""
        return self.fn()

    def snapshot(self):
        """The same as L{value}."""
        return self.value()


class Metrics:
    """
    Named timers, counters and gauges. A name belongs to one metric of one kind.

    @ivar reactor: provides C{seconds()}; the only clock the metrics use.
    """

    def __init__(self, reactor=None, rng=None):
        """
        @param reactor: an L{IReactorTime} (the global reactor when omitted).
        @param rng: a L{random.Random} for the timers' reservoirs (seed it in tests).
        """
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self._rng = rng
        self._metrics = {}

    def _get_or_create(self, name, kind, factory):
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = factory()
        elif metric.kind != kind:
            raise ValueError(f"metric {name!r} is a {metric.kind}, not a {kind}")
        return metric

    def timer(self, name):
        """The timer called C{name}, created on first use."""
        return self._get_or_create(name, TIMER, lambda: Timer(self.reactor.seconds, rng=self._rng))

    def counter(self, name):
        """The counter called C{name}, created on first use."""
        return self._get_or_create(name, COUNTER, Counter)

    def gauge(self, name, fn):
        """
        Register (or re-point) the gauge C{name}: C{fn()} returns its number and is called on every read.
        """
        gauge = self._get_or_create(name, GAUGE, lambda: Gauge(fn))
        gauge.fn = fn
        return gauge

    @contextlib.contextmanager
    def time(self, name, failures=True):
        """
        A context manager recording how long its block takes in the timer C{name} (one of this module's
        constants)::

            with metrics.time(CONTAINER_STATS_TIME):
                sample = read_stats(cgroups, pid)

        @param failures: also record a block that raises; False records only blocks that complete (an
            operation's duration when it succeeded).
        """
        timer = self.timer(name)
        start = self.reactor.seconds()
        try:
            yield timer
        except BaseException:
            if failures:
                timer.update_since(start)
            raise
        timer.update_since(start)

    def unregister(self, name):
        """Forget the metric C{name} (no error when unknown)."""
        self._metrics.pop(name, None)

    def get(self, name):
        """The metric called C{name}, or None."""
        return self._metrics.get(name)

    def names(self):
        """Every registered name, sorted."""
        return sorted(self._metrics)

    def snapshot(self):
        """
        Every metric's current figures as plain data::

            {"timers": {name: {"count": ..., "min": ..., ... see Timer.snapshot}},
             "counters": {name: int},
             "gauges": {name: number}}

        A gauge whose function raises is left out (and the failure logged).
        """
        result = {"timers": {}, "counters": {}, "gauges": {}}
        for name in sorted(self._metrics):
            metric = self._metrics[name]
            if metric.kind == GAUGE:
                try:
                    value = metric.value()
                except Exception:
                    log.failure("gauge {name} failed", name=name)
                    continue
                result["gauges"][name] = value
            else:
                result[metric.kind + "s"][name] = metric.snapshot()
        return result


def count_threads(status="/proc/self/status"):
    """
    Threads of this process as the kernel counts them (the C{Threads:} line of C{/proc/self/status}):
    C{threading.active_count()} misses the native threads of grpcio and other C extensions.
    """
    with open(status, "rb") as f:
        for line in f:
            if line.startswith(b"Threads:"):
                return int(line.split()[1])
    raise ValueError(f"no Threads: line in {status}")


def count_fds(fd_dir="/proc/self/fd"):
    """Open file descriptors of this process."""
    return len(os.listdir(fd_dir))


def process_gauges(metrics):
    """Register the C{threads} and C{fds} gauges of this process on C{metrics}."""
    metrics.gauge(THREADS, count_threads)
    metrics.gauge(FDS, count_fds)
    return metrics
