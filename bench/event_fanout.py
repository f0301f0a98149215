#!/usr/bin/env python3
"""
Event fan-out: S subscribers (gRPC Events streams, each in its own thread and on its own channel by default)
while the daemon emits E events as fast as it can. The producer is the cheapest one the API has: pause/resume
cycles (UpdateContainer status "paused"/"running") on K running containers, one producer thread per container,
each cycle a `runc pause` and a `runc resume` and two events.

Measured: events/sec delivered (total deliveries / time from the first event's timestamp to the last
receipt), the rate the events were produced at, delivery latency (event timestamp -> receipt in the client
thread, all deliveries: median, p99, max), and loss: every subscriber must get exactly the E events the
daemon's own log holds (replayed with storedOnly), in the same order; anything else counts as lost,
duplicated or out of order. Then a replay round measures raw delivery capacity without the runtime in the
way: S fresh subscribers replay the E stored events at once (EventsRequest timestamp + storedOnly).

    python3 bench/event_fanout.py                     # S=100, E=1000, K=4
    python3 bench/event_fanout.py -s 10 -e 2000 -k 8 --shared-channel

The daemon gets --max-subscribers 2S+8 and --retain-count E+500 (its feed limit is retain-count+1024, so no
stream is cut for being E behind). The last line is a one-line summary of the live round.
"""

import argparse
import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpc  # noqa: E402

from bench.common import (  # noqa: E402
    BenchDaemon, cleanup_dir, create_containers, kill_all_containers, load_average, percentile, proc_cpu_seconds,
    reap_children, sleeper_bundle,
)
from containerd_tx.api import containerd_pb2 as pb  # noqa: E402
from containerd_tx.api import containerd_pb2_grpc as pb_grpc  # noqa: E402

PREFIX = "fan-"


class Subscriber(threading.Thread):
    """One Events stream read in its own thread; keeps (type, id, timestamp ns, receipt ns) of our events."""

    def __init__(self, address, channel=None, request=None):
        super().__init__(daemon=True)
        self._own_channel = channel is None
        self.channel = grpc.insecure_channel(address) if channel is None else channel
        self.call = pb_grpc.APIStub(self.channel).Events(request or pb.EventsRequest())
        self.received = []
        self.error = None
        self.ended = False

    def run(self):
        try:
            for event in self.call:
                now = time.time_ns()
                if event.id.startswith(PREFIX) and event.type in ("pause", "resume"):
                    self.received.append((event.type, event.id, event.timestamp.ToNanoseconds(), now))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                self.error = f"{e.code().name}: {e.details()}"
        finally:
            self.ended = True

    def stop(self):
        self.call.cancel()
        if self.is_alive():
            self.join(10)
        self.close()

    def close(self):
        if self._own_channel:
            self.channel.close()


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def cycle(stub, container_id, cycles):
    for _ in range(cycles):
        stub.UpdateContainer(pb.UpdateContainerRequest(id=container_id, pid="init", status="paused"), timeout=60)
        stub.UpdateContainer(pb.UpdateContainerRequest(id=container_id, pid="init", status="running"), timeout=60)


def check(subscribers, reference, barrier_ns):
    """Compare each subscriber's events after the barrier with the reference; (lost, duplicated, disordered)."""
    expected = [(t, i, ts) for t, i, ts, _ in reference]
    expected_set = set(expected)
    lost = duplicated = disordered = 0
    for sub in subscribers:
        got = [(t, i, ts) for t, i, ts, _ in sub.received if ts > barrier_ns]
        if got == expected:
            continue
        got_set = set(got)
        lost += len(expected_set - got_set)
        duplicated += len(got) - len(got_set)
        if [e for e in got if e in expected_set] != [e for e in expected if e in got_set]:
            disordered += 1
    return lost, duplicated, disordered


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("-s", "--subscribers", type=int, default=100, help="Events streams (default 100)")
    parser.add_argument("-e", "--events", type=int, default=1000, help="events to emit (even; default 1000)")
    parser.add_argument("-k", "--containers", type=int, default=4,
                        help="containers paused/resumed in parallel, one producer thread each (default 4)")
    parser.add_argument("--shared-channel", action="store_true",
                        help="all subscribers on one gRPC channel (default: a channel each, like separate clients)")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay round")
    parser.add_argument("--runtime", default="runc", help="runc or crun (default runc)")
    args = parser.parse_args()
    cycles_total = args.events // 2
    if args.events % 2 or cycles_total % args.containers:
        raise SystemExit("bench: --events must be even and its half a multiple of --containers")
    cycles = cycles_total // args.containers

    print(f"load average at start: {load_average()} ({os.cpu_count()} cores)", flush=True)
    daemon = BenchDaemon.start_new(
        args=["--max-subscribers", str(2 * args.subscribers + 8), "--retain-count", str(args.events + 500)],
        runtime=args.runtime,
    )
    subscribers = []
    shared = None
    try:
        bundle = sleeper_bundle(daemon.workdir)
        ids = [f"{PREFIX}{i}" for i in range(args.containers)]
        create_containers(daemon.stub, bundle, ids, args.containers)

        shared = grpc.insecure_channel(daemon.address) if args.shared_channel else None
        subscribers = [Subscriber(daemon.address, shared) for _ in range(args.subscribers)]
        for sub in subscribers:
            sub.start()
        # Barrier: pause/resume until every stream has seen a warm-up event, then note the last one's timestamp.
        deadline = time.monotonic() + 30
        while not all(sub.received for sub in subscribers):
            if time.monotonic() > deadline:
                raise SystemExit("bench: subscribers did not all connect within 30s")
            cycle(daemon.stub, ids[0], 1)
            time.sleep(0.2)
        last = subscribers[0].received[-1][2]
        wait_until(lambda: all(sub.received[-1][2] == last for sub in subscribers), 10, "the warm-up events")
        barrier_ns = last
        errors = [sub.error for sub in subscribers if sub.error]
        if errors:
            raise SystemExit(f"bench: {len(errors)} streams failed, first: {errors[0]}")
        print(f"{args.subscribers} subscribers connected "
              f"({'one shared channel' if args.shared_channel else 'a channel each'})", flush=True)

        cpu_before = proc_cpu_seconds(daemon.process.pid)
        client_before = _own_cpu()
        load_before = load_average()
        started = time.perf_counter()
        producers = [threading.Thread(target=cycle, args=(daemon.stub, cid, cycles)) for cid in ids]
        for p in producers:
            p.start()
        for p in producers:
            p.join()
        produced_wall = time.perf_counter() - started

        def all_delivered():
            return all(sum(1 for e in sub.received[-args.events:] if e[2] > barrier_ns) >= args.events
                       or sub.ended for sub in subscribers)

        try:
            wait_until(all_delivered, 60, "every subscriber to get every event")
        except SystemExit as e:
            print(e)
        cpu = proc_cpu_seconds(daemon.process.pid) - cpu_before
        client_cpu = _own_cpu() - client_before
        wall = time.perf_counter() - started
        print(f"load {load_before} -> {load_average()}; in {wall:.2f}s the daemon used {cpu:.2f}s CPU "
              f"({100 * cpu / wall:.0f}% of one core), this client {client_cpu:.2f}s "
              f"({100 * client_cpu / wall:.0f}%)")

        reference = Subscriber(daemon.address, request=pb.EventsRequest(
            timestamp=_timestamp(barrier_ns), storedOnly=True))
        reference.run()  # in this thread: the stream ends after the replay
        reference.close()
        if len(reference.received) != args.events:
            print(f"warning: the daemon's log holds {len(reference.received)} events, not {args.events}")
        stamps = [ts for _, _, ts, _ in reference.received]
        if stamps != sorted(set(stamps)):
            print("warning: the daemon's own log is not strictly ordered by timestamp")

        live = [[e for e in sub.received if e[2] > barrier_ns] for sub in subscribers]
        deliveries = sum(len(events) for events in live)
        first_ns = stamps[0]
        last_receipt = max(e[3] for events in live for e in events)
        latencies = sorted((e[3] - e[2]) / 1e9 for events in live for e in events)
        lost, duplicated, disordered = check(subscribers, reference.received, barrier_ns)
        errors = [sub.error for sub in subscribers if sub.error]
        delivered_rate = deliveries / ((last_receipt - first_ns) / 1e9)
        produced_rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)
        print(f"\nlive: {len(stamps)} events produced in {(stamps[-1] - stamps[0]) / 1e9:.2f}s "
              f"({produced_rate:.0f} events/s by {args.containers} producers; client wall {produced_wall:.2f}s)")
        print(f"  deliveries {deliveries} of {args.events * args.subscribers} in "
              f"{(last_receipt - first_ns) / 1e9:.2f}s: {delivered_rate:.0f} events/sec delivered")
        print(f"  latency event->receipt: median {percentile(latencies, 50) * 1000:.1f}ms "
              f"p99 {percentile(latencies, 99) * 1000:.1f}ms max {latencies[-1] * 1000:.1f}ms")
        print(f"  lost {lost}, duplicated {duplicated}, subscribers out of order {disordered}, "
              f"stream errors {len(errors)}{': ' + errors[0] if errors else ''}", flush=True)

        for sub in subscribers:
            sub.stop()
        subscribers = []

        if not args.no_replay:
            # Replay: the stored events to S fresh streams at once; no runtime in the way.
            request = pb.EventsRequest(timestamp=_timestamp(barrier_ns), storedOnly=True)
            cpu_before = proc_cpu_seconds(daemon.process.pid)
            client_before = _own_cpu()
            replay_start = time.time_ns()
            replayers = [Subscriber(daemon.address, shared, request) for _ in range(args.subscribers)]
            for sub in replayers:
                sub.start()
            for sub in replayers:
                sub.join(120)
            replay_end = max(sub.received[-1][3] for sub in replayers if sub.received)
            cpu = proc_cpu_seconds(daemon.process.pid) - cpu_before
            client_cpu = _own_cpu() - client_before
            got = sum(len(sub.received) for sub in replayers)
            complete = sum(1 for sub in replayers if [e[:3] for e in sub.received] ==
                           [e[:3] for e in reference.received])
            seconds = (replay_end - replay_start) / 1e9
            print(f"\nreplay: {got} deliveries to {args.subscribers} fresh subscribers in {seconds:.2f}s: "
                  f"{got / seconds:.0f} events/sec; {complete} of {args.subscribers} complete and in order; "
                  f"daemon CPU {cpu:.2f}s ({cpu / got * 1e6:.0f} us per delivery), this client "
                  f"{client_cpu:.2f}s", flush=True)
            subscribers = replayers

        killed, teardown = kill_all_containers(daemon.stub)
        print(f"teardown (Signal 9 to {killed}, until State is empty): {teardown:.2f}s")
    finally:
        for sub in subscribers:
            sub.stop()
        if shared is not None:
            shared.close()
        daemon.destroy()
        reap_children()
        cleanup_dir(daemon.workdir)
    print(f"events/sec {delivered_rate:.0f} delivered to {args.subscribers} subscribers, "
          f"worst latency {latencies[-1] * 1000:.0f}ms, lost {lost} "
          f"(produced {produced_rate:.0f}/s by pause/resume)")


def _own_cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timestamp(ns):
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


if __name__ == "__main__":
    main()
