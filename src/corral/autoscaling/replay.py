"""Replay a request trace through an autoscaling policy on a virtual clock.

A discrete-event model of one service behind the gateway: requests arrive at
their trace times, each replica serves one request at a time for the request's
trace execution time, new replicas become ready after a cold start drawn from a
distribution, and the policy is consulted every ``tick`` seconds with the same
:class:`~corral.autoscaling.metrics.MetricsWindow` (900 s long) the live
controller fills. As the activator does, a request that finds no replica at all
triggers one at once.

Dispatch is what corral's gateway does: one FIFO queue per service; a request
starts at once on an idle ready replica, otherwise it waits, and the first
replica that frees up *or becomes ready* (even one created after the request
arrived) takes the oldest waiting request. So a request can wait a few seconds
for a busy replica instead of a cold start, under every policy alike.

Scale-down removes replicas that are still starting first (the newest first, as
a ReplicaSet prefers not-ready pods), then idle ones; busy replicas are never
killed — they finish their request and then leave (draining). Replica time is
billed from creation (the GPU is held while the model loads) to removal,
starting and draining included.

Everything here is pure computation on numbers; ``bench/autoscaling_replay.py``
reads the trace files and prints the figures.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from corral.autoscaling.metrics import MetricsWindow, Sample
from corral.autoscaling.policy import Decision, ScalerSpec, ScalerState

PolicyFn = Callable[[MetricsWindow, int, int, ScalerSpec, ScalerState], Decision]


@dataclass
class ReplayResult:
    requests: int
    slo_wait: float
    waits: list[float] = field(default_factory=list)
    replica_seconds: float = 0.0
    replicas_created: int = 0
    peak_replicas: int = 0
    span_seconds: float = 0.0
    starting_seconds: float = 0.0
    """Replica time spent starting (billed, never serving)."""
    arrivals_at_zero: int = 0
    """Requests that arrived when the service had no replica at all (cold from zero)."""
    split: float | None = None
    replica_seconds_before_split: float = 0.0
    """Replica time billed before ``split`` (to report the two parts of a trace from one run)."""

    @property
    def slo_attainment(self) -> float:
        if not self.waits:
            return 1.0
        return sum(1 for w in self.waits if w < self.slo_wait) / len(self.waits)

    @property
    def replica_hours(self) -> float:
        return self.replica_seconds / 3600.0

    def part(self, first: bool, index: int) -> tuple[float, float]:
        """(slo_attainment, replica_hours) of the requests before (``first``) or from ``index`` on,
        and of the replica time before or after ``split``. Requests start in arrival order (one
        FIFO queue), so ``waits[i]`` is the i-th arrival's wait."""
        waits = self.waits[:index] if first else self.waits[index:]
        attained = sum(1 for w in waits if w < self.slo_wait) / len(waits) if waits else 1.0
        before = self.replica_seconds_before_split
        return attained, (before if first else self.replica_seconds - before) / 3600.0

    def wait_percentile(self, q: float) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[index]


@dataclass
class _Replica:
    created: float
    ready_at: float
    ready: bool = False
    busy: bool = False
    draining: bool = False
    serving: float = 0.0


_ARRIVAL, _READY, _DONE = 0, 1, 2


def peak_concurrency(arrivals: Sequence[float], exec_times: Sequence[float]) -> int:
    """Most requests running at once if every request started on arrival."""
    events: list[tuple[float, int]] = []
    for start, duration in zip(arrivals, exec_times, strict=True):
        events.append((start, 1))
        events.append((start + duration, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    peak = running = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def replay(
    arrivals: Sequence[float],
    exec_times: Sequence[float],
    cold_start: Callable[[], float],
    policy: PolicyFn | None,
    spec: ScalerSpec,
    *,
    tick: float = 2.0,
    slo_wait: float = 10.0,
    fixed_replicas: int | None = None,
    window_seconds: float = 900.0,
    split: float | None = None,
) -> ReplayResult:
    """Run the trace; ``policy=None`` with ``fixed_replicas`` models a fixed, always-ready pool.

    ``window_seconds`` is the metrics window's length (900 s, as the controller keeps);
    ``split`` (a time) also bills replica time before it separately.
    """
    if len(arrivals) != len(exec_times):
        raise ValueError("arrivals and exec_times differ in length")
    result = ReplayResult(requests=len(arrivals), slo_wait=slo_wait, split=split)
    if not arrivals:
        return result
    order = sorted(range(len(arrivals)), key=lambda i: arrivals[i])
    t0 = arrivals[order[0]]
    events: list[tuple[float, int, int, int]] = []  # (time, kind, seq, payload)
    seq = 0

    def push(time: float, kind: int, payload: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (time, kind, seq, payload))

    for i in order:
        push(arrivals[i], _ARRIVAL, i)

    replicas: dict[int, _Replica] = {}
    idle: list[int] = []  # ready, not busy
    queue: deque[tuple[float, int]] = deque()
    next_id = 0
    in_flight = 0
    window = MetricsWindow(max_age=max(window_seconds, spec.service_time_window, spec.stable_window) + tick)
    state = ScalerState()
    # Per-tick accumulators.
    area = 0.0
    last_change = t0
    tick_arrivals = tick_completions = 0
    tick_service = 0.0
    pending_arrivals = len(arrivals)
    last_event_time = t0
    ready_count = 0
    ready_total = 0.0
    tick_ready: list[tuple[float, bool]] = []

    def account(now: float) -> None:
        nonlocal area, last_change
        area += (in_flight + len(queue)) * (now - last_change)
        last_change = now

    def add_replica(now: float, ready_now: bool = False) -> None:
        nonlocal next_id
        delay = 0.0 if ready_now else max(0.0, cold_start())
        replica = _Replica(created=now, ready_at=now + delay)
        replicas[next_id] = replica
        result.replicas_created += 1
        if ready_now:
            replica.ready = True
            idle.append(next_id)
        else:
            push(now + delay, _READY, next_id)
        next_id += 1
        result.peak_replicas = max(result.peak_replicas, len(replicas))

    def remove_replica(now: float, rid: int) -> None:
        replica = replicas.pop(rid)
        result.replica_seconds += now - replica.created
        if split is not None:
            result.replica_seconds_before_split += max(0.0, min(now, split) - replica.created)
        result.starting_seconds += min(now, replica.ready_at) - replica.created
        if not replica.ready:
            tick_ready.append((now - replica.created, False))

    def start(now: float, rid: int) -> None:
        nonlocal in_flight
        arrived, index = queue.popleft()
        result.waits.append(now - arrived)
        replicas[rid].busy = True
        replicas[rid].serving = exec_times[index]
        in_flight += 1
        push(now + exec_times[index], _DONE, rid)

    def live_count() -> int:
        return sum(1 for r in replicas.values() if not r.draining)

    def scale_to(now: float, desired: int) -> None:
        current = live_count()
        if desired > current:
            for _ in range(desired - current):
                add_replica(now)
            return
        surplus = current - desired
        starting = sorted((rid for rid, r in replicas.items() if not r.ready and not r.draining), reverse=True)
        for rid in starting:
            if surplus == 0:
                return
            remove_replica(now, rid)
            surplus -= 1
        while surplus and idle:
            remove_replica(now, idle.pop())
            surplus -= 1
        for replica in replicas.values():
            if surplus == 0:
                return
            if replica.busy and not replica.draining:
                replica.draining = True
                surplus -= 1

    if fixed_replicas is not None:
        for _ in range(fixed_replicas):
            add_replica(t0, ready_now=True)

    next_tick = t0
    while events or queue or in_flight:
        event_time = events[0][0] if events else math.inf
        if policy is not None and next_tick <= event_time:
            now = next_tick
            account(now)
            sample = Sample(
                time=now,
                duration=tick,
                concurrency=area / tick,
                arrivals=tick_arrivals,
                completions=tick_completions,
                service_seconds=tick_service,
                in_flight=in_flight,
                queued=len(queue),
                ready=sum(1 for r in replicas.values() if r.ready),
                time_to_ready=ready_total / ready_count if ready_count else None,
                ready_observations=tuple(tick_ready),
            )
            window.add(sample)
            area = 0.0
            tick_arrivals = tick_completions = 0
            tick_service = 0.0
            tick_ready = []
            ready = sample.ready
            decision = policy(window, ready, live_count(), spec, state)
            state = decision.state
            scale_to(now, decision.replicas)
            next_tick = now + tick
            quiet = not replicas and not queue and in_flight == 0 and decision.replicas == 0
            if quiet and pending_arrivals and event_time - now > 2 * tick:
                # Nothing happens until the next arrival: cover the gap with one empty sample.
                gap_end = now + math.floor((event_time - now) / tick) * tick
                window.add(Sample(time=gap_end, duration=gap_end - now, concurrency=0.0))
                next_tick = gap_end + tick
                last_change = gap_end
            continue
        now, kind, _, payload = heapq.heappop(events)
        account(now)
        last_event_time = max(last_event_time, now)
        if kind == _ARRIVAL:
            pending_arrivals -= 1
            tick_arrivals += 1
            queue.append((now, payload))
            if idle:
                start(now, idle.pop())
            elif policy is not None and live_count() == 0:
                result.arrivals_at_zero += 1
                add_replica(now)  # the activator's immediate poke
        elif kind == _READY:
            replica = replicas.get(payload)
            if replica is None or replica.ready_at != now or replica.ready:
                continue
            replica.ready = True
            ready_count += 1
            ready_total += now - replica.created
            tick_ready.append((now - replica.created, True))
            if queue:
                start(now, payload)
            else:
                idle.append(payload)
        else:  # _DONE
            in_flight -= 1
            tick_completions += 1
            replica = replicas[payload]
            tick_service += replica.serving
            replica.busy = False
            if replica.draining:
                remove_replica(now, payload)
            elif queue:
                start(now, payload)
            else:
                idle.append(payload)
    end = max(last_event_time, next_tick)
    for rid in list(replicas):
        remove_replica(end, rid)
    result.span_seconds = end - t0
    return result
