"""Autoscaling policies: pure functions from a metrics window to a replica count.

Three policies share one signature — ``(window, ready, current, spec, state) ->
Decision`` — and keep whatever memory they need in an immutable
:class:`ScalerState` that the caller stores and passes back, so the controller,
the unit tests and the replay benchmark drive the very same code.

``kpa``
    Knative's KPA as documented and implemented in ``knative/serving``
    (``pkg/autoscaler/scaling/autoscaler.go``): the desired count is the mean
    concurrency (or request rate) over the *stable* window divided by
    ``target × target_utilization``; when the *panic* window's count reaches
    ``panic_threshold`` × the ready replicas the policy panics — it follows the
    panic window and never scales down until the panic condition has been absent
    for a whole stable window. Scale-up and scale-down are bounded by
    ``max_scale_up_rate × ready`` and ``ready / max_scale_down_rate``. The count
    only reaches zero after it has wanted zero for ``scale_to_zero_grace``.

``hpa``
    The Kubernetes HPA ratio rule: ``ceil(current × observed / target)``, with a
    10 % tolerance band and a scale-down stabilisation window (the highest
    recommendation of the window wins).

``predictive``
    corral's default: queue-aware, predictive, priced. Each replica serves
    ``target`` requests, so every request in the system right now (in flight or
    queued, as the gateway sees it, not a lagging average) needs a slot at once.
    On top of that it keeps *warm spares*, each priced like a ski-rental
    decision: a spare costs one replica-second per second; it earns
    ``miss_cost`` (replica-seconds one request waiting longer than
    ``queue_wait`` is worth) times the rate at which it saves such a wait. The
    k-th spare saves one when a request arrives (rate λ), none of the n busy
    replicas frees up within the queue wait (``exp(-queue_wait·n/S)``, S the
    measured service time — a request may wait that long for a busy replica at
    the gateway's FIFO queue) and k-1 other spares were taken within one cold
    start (the time a replacement needs) and are still busy: Poisson(λ·min(S,
    cold start)) ≥ k-1. A spare is kept (or started) while that rate ×
    ``miss_cost`` ≥ 1. λ is
    :meth:`MetricsWindow.recent_rate` seen one cold start ahead — the highest
    rate over any window ending now, counted as if it ended when a replica
    started now could be ready: ``count / (time since + cold start)``. Right
    after a burst it is the burst's rate; when arrivals stop it decays like
    1/(time since) — the hazard of a bursty arrival process — so the keep-alive
    after a burst grows with the burst, and scale-to-zero needs no timer of its
    own. The last replica also stays ``scale_to_zero_grace`` after the last
    request.

    *Hedged cold starts.* Start-up times of model servers are bimodal (a model
    in a node's cache loads in seconds, one fetched from the registry in tens
    of seconds). From the replicas' recent start-ups — a Kaplan–Meier curve in
    which a replica removed while still starting is a censored observation —
    :func:`hedged_starts` prices starting ``h`` replicas for a request that
    waits with no replica free: the first ready serves it and the rest are
    removed while starting (scale-down takes not-ready replicas first). A
    missed wait then needs every one of the ``h`` start-ups to miss it, so a
    spare is worth ``P(start-up > queue_wait)^h`` of what it is worth when
    start-ups are slow; with start-ups that all take about as long, ``h`` is 1
    and nothing changes. The gain assumes start-up times of concurrent
    replicas are independent (different nodes, caches, registry mirrors);
    hedged starts hold GPUs briefly while they load.

    Inputs are live measurements (arrivals, in-flight requests, service time,
    replica start-ups), the latency objective and one price the user sets;
    nothing is fitted to a trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from corral.autoscaling.metrics import MetricsWindow, Survival

Metric = Literal["concurrency", "rps"]
PolicyName = Literal["kpa", "hpa", "predictive"]


@dataclass(frozen=True)
class ScalerSpec:
    """The knobs of a service's autoscaling (the InferenceService ``autoscaling`` block)."""

    min_replicas: int = 0
    max_replicas: int = 10
    metric: Metric = "concurrency"
    target: float = 1.0
    """Per-replica target: concurrent requests (concurrency) or requests/second (rps)."""
    target_utilization: float = 0.7
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    """Panic when the panic window wants ``panic_threshold`` × the ready replicas (2.0 = 200 %)."""
    scale_to_zero_grace: float = 30.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    default_service_time: float = 1.0
    """predictive: service time assumed until the gateway has measured one (seconds)."""
    service_time_window: float = 600.0
    cold_start: float = 20.0
    """predictive: a replica's time from creation to ready (the controller measures it)."""
    queue_wait: float = 10.0
    """predictive: how long a request may wait at the gateway for a replica (the latency objective)."""
    miss_cost: float = 120.0
    """predictive: replica-seconds one request waiting longer than ``queue_wait`` is worth."""
    max_hedged_starts: int = 4
    """predictive: at most this many replicas started at once for one waiting request (1 = no hedging)."""
    tolerance: float = 0.1
    """hpa: no change while observed/target is within this band of 1."""

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError("minReplicas must be >= 0")
        if self.max_replicas < max(1, self.min_replicas):
            raise ValueError("maxReplicas must be >= max(1, minReplicas)")
        if self.target <= 0:
            raise ValueError("autoscaling.target must be > 0")
        if not 0 < self.target_utilization <= 1:
            raise ValueError("autoscaling.targetUtilization must be in (0, 1]")
        if self.stable_window <= 0 or self.panic_window <= 0 or self.panic_window > self.stable_window:
            raise ValueError("autoscaling windows must satisfy 0 < panicWindow <= stableWindow")
        if self.max_scale_up_rate <= 1 or self.max_scale_down_rate <= 1:
            raise ValueError("autoscaling scale rates must be > 1")
        if self.queue_wait < 0:
            raise ValueError("autoscaling.queueWaitSeconds must be >= 0")
        if self.miss_cost < 0:
            raise ValueError("autoscaling.missCostSeconds must be >= 0")
        if self.cold_start < 0:
            raise ValueError("autoscaling.coldStartSeconds must be >= 0")
        if self.max_hedged_starts < 1:
            raise ValueError("autoscaling.maxHedgedStarts must be >= 1")


@dataclass(frozen=True)
class ScalerState:
    """What a policy remembers between decisions; the caller stores and passes it back."""

    panic_since: float | None = None
    max_panic_pods: int = 0
    zero_since: float | None = None
    recommendations: tuple[tuple[float, int], ...] = field(default=())
    service_time: float | None = None


@dataclass(frozen=True)
class Decision:
    replicas: int
    state: ScalerState
    reason: str
    panic: bool = False


def _observed(window: MetricsWindow, spec: ScalerSpec, seconds: float) -> float:
    if spec.metric == "rps":
        return window.arrival_rate(seconds)
    return window.mean_concurrency(seconds)


def _rate_bounds(ready: int, spec: ScalerSpec) -> tuple[int, int]:
    base = max(1, ready)
    up = math.ceil(spec.max_scale_up_rate * base)
    down = math.floor(base / spec.max_scale_down_rate)
    return down, up


def _clamp(value: int, spec: ScalerSpec) -> int:
    return max(spec.min_replicas, min(spec.max_replicas, value))


def _apply_zero_grace(
    desired: int, current: int, now: float, state: ScalerState, spec: ScalerSpec, *, hold: int = 1
) -> tuple[int, ScalerState, str | None]:
    """Hold ``hold`` replicas (at least one) until the policy has wanted zero for the grace period.

    ``hold`` lets a policy keep its scale-down rate on the way to zero (4 ready at rate 2
    hold 2, then 1), as Knative's KPA does.
    """
    if desired > 0:
        return desired, replace(state, zero_since=None), None
    if current == 0:
        return 0, replace(state, zero_since=state.zero_since if state.zero_since is not None else now), None
    zero_since = state.zero_since if state.zero_since is not None else now
    if now - zero_since >= spec.scale_to_zero_grace:
        return 0, replace(state, zero_since=zero_since), "ScaleToZero"
    return max(1, min(current, hold)), replace(state, zero_since=zero_since), "ScaleToZeroGrace"


def kpa(window: MetricsWindow, ready: int, current: int, spec: ScalerSpec, state: ScalerState) -> Decision:
    """Knative's KPA (see the module docstring)."""
    now = window.now
    per_pod = spec.target * spec.target_utilization
    stable = _observed(window, spec, spec.stable_window)
    panic = _observed(window, spec, spec.panic_window)
    # Requests waiting at the activator count as concurrency (Knative's activator reports them).
    latest = window.latest
    if latest is not None and ready == 0 and latest.queued + latest.in_flight > 0:
        stable = max(stable, float(latest.queued + latest.in_flight))
        panic = max(panic, float(latest.queued + latest.in_flight))
    down, up = _rate_bounds(ready, spec)
    desired_stable = min(max(math.ceil(stable / per_pod), down), up)
    desired_panic = min(max(math.ceil(panic / per_pod), down), up)
    if stable == 0:
        desired_stable = 0
    if panic == 0:
        desired_panic = 0
    base = max(1, ready)
    over = (panic / per_pod) / base >= spec.panic_threshold
    panic_since = state.panic_since
    max_panic = state.max_panic_pods
    if over:
        panic_since = now
    elif panic_since is not None and now - panic_since >= spec.stable_window:
        panic_since = None
        max_panic = 0
    if panic_since is not None:
        desired = max(desired_panic, max_panic, desired_stable)
        max_panic = desired
        reason = "Panic"
    else:
        desired = desired_stable
        reason = "Stable"
    state = replace(state, panic_since=panic_since, max_panic_pods=max_panic)
    desired, state, zero_reason = _apply_zero_grace(desired, current, now, state, spec, hold=down)
    return Decision(_clamp(desired, spec), state, zero_reason or reason, panic=panic_since is not None)


def hpa(window: MetricsWindow, ready: int, current: int, spec: ScalerSpec, state: ScalerState) -> Decision:
    """The Kubernetes HPA ratio rule with scale-down stabilisation."""
    now = window.now
    observed = _observed(window, spec, spec.panic_window)
    base = max(1, ready)
    per_pod = observed / base
    ratio = per_pod / (spec.target * spec.target_utilization)
    if ready == 0:
        raw = math.ceil(observed / (spec.target * spec.target_utilization))
    elif abs(ratio - 1.0) <= spec.tolerance:
        raw = ready
    else:
        raw = math.ceil(ready * ratio)
    down, up = _rate_bounds(ready, spec)
    raw = min(max(raw, down if observed > 0 else 0), up)
    recs = (*tuple((t, r) for t, r in state.recommendations if now - t < spec.stable_window), (now, raw))
    desired = max(r for _, r in recs)
    state = replace(state, recommendations=recs)
    if window.idle_for() < spec.stable_window:
        desired = max(desired, 1)
    desired, state, zero_reason = _apply_zero_grace(desired, current, now, state, spec)
    return Decision(_clamp(desired, spec), state, zero_reason or "Ratio")


def poisson_quantile(mean: float, level: float) -> int:
    """Smallest k with P(Poisson(mean) <= k) >= level."""
    if mean <= 0:
        return 0
    k = 0
    term = math.exp(-mean)
    total = term
    while total < level and k < 10_000:
        k += 1
        term *= mean / k
        total += term
    return k


def poisson_tail(mean: float, k: int) -> float:
    """P(Poisson(mean) >= k)."""
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    term = math.exp(-mean)
    below = term
    for i in range(1, k):
        term *= mean / i
        below += term
    return max(0.0, 1.0 - below)


def hedged_starts(start_up: Survival | None, spec: ScalerSpec) -> int:
    """How many replicas to start at once for one request that waits with no replica to take it.

    Start-up times vary (a model already in a node's cache loads in seconds, one fetched from
    the registry in tens of seconds), so the first of ``h`` start-ups is ready sooner than one.
    Each extra start is priced like a spare: it is worth ``miss_cost × P(the first h miss the
    queue wait but the h+1-th does not)`` and costs the extra replica time until the first is
    ready, ``(h+1)·E[first of h+1] − h·E[first of h]`` (the others are removed then). With
    start-ups that all take the same time, nothing is gained and one start is made.
    """
    if start_up is None or spec.max_hedged_starts <= 1 or spec.miss_cost <= 0:
        return 1
    late = start_up.above(spec.queue_wait)
    starts = 1
    replica_time = start_up.mean_first(1)  # replica-seconds until the first of ``starts`` is ready
    while starts < spec.max_hedged_starts:
        gain = spec.miss_cost * late**starts * (1.0 - late)
        more = (starts + 1) * start_up.mean_first(starts + 1)
        if gain < more - replica_time or gain <= 0:
            break
        starts, replica_time = starts + 1, more
    return starts


def warm_spares(
    rate: float, busy: float, service_time: float, cold_start: float, spec: ScalerSpec, *, cold_miss: float = 1.0
) -> int:
    """How many spare request slots pay for themselves (see the module docstring).

    The k-th spare saves a long wait at rate ``rate · P(no busy replica frees within the queue
    wait) · P(a start-up made then misses the wait) · P(Poisson(rate · min(service time, cold
    start)) >= k - 1)``; it is worth keeping while that rate times ``miss_cost`` is at least 1
    (one replica-second per second). ``cold_miss`` is P(the hedged start-ups made for a request
    that finds no spare all miss the wait) — 1 when every start-up takes longer than the wait.
    """
    if rate <= 0 or spec.miss_cost <= 0:
        return 0
    none_frees = math.exp(-spec.queue_wait * busy / max(service_time, 1e-9))
    value = spec.miss_cost * rate * none_frees * cold_miss
    spares = 0
    # Spares taken within one cold start and still busy when it ends: M/G/inf occupancy.
    taken = rate * min(service_time, cold_start)
    while spares < 10_000 and value * poisson_tail(taken, spares) >= 1.0:
        spares += 1
    return spares


def _sized(in_system: int, rate: float, service_time: float, cold_start: float, spec: ScalerSpec, *,
           cold_miss: float) -> int:
    """Replicas for ``in_system`` requests plus their spares, monotone in ``in_system``.

    More busy replicas make spares less needed (one of them may free up in time), so the
    count is the best over every load up to ``in_system``: more load never means fewer replicas.
    """
    slots = max(spec.target, 1e-9)
    best = 0
    for busy in range(in_system + 1):
        spares = warm_spares(rate, busy, service_time, cold_start, spec, cold_miss=cold_miss)
        best = max(best, math.ceil((busy + spares) / slots - 1e-9))
        if spares == 0:
            break
    return max(best, math.ceil(in_system / slots - 1e-9))


def predictive(
    window: MetricsWindow, ready: int, current: int, spec: ScalerSpec, state: ScalerState
) -> Decision:
    """corral's queue-aware, predictive policy (see the module docstring)."""
    latest = window.latest
    measured = window.mean_service_time(spec.service_time_window)
    service_time = measured if measured is not None else (state.service_time or spec.default_service_time)
    state = replace(state, service_time=service_time, zero_since=None)
    in_system = (latest.in_flight + latest.queued) if latest is not None else 0
    cold_start = window.time_to_ready()
    if cold_start is None:
        cold_start = spec.cold_start
    # The arrival rate as a replica started now would see it once ready (see the module docstring).
    rate = window.recent_rate(lead=cold_start)
    start_up = window.start_up()
    hedge = hedged_starts(start_up, spec)
    cold_miss = start_up.above(spec.queue_wait) ** hedge if start_up is not None else 1.0
    desired = _sized(in_system, rate, service_time, cold_start, spec, cold_miss=cold_miss)
    hedged = False
    if latest is not None and latest.queued and hedge > 1:
        # Requests wait with no replica free: start several and keep the first ready (hedging).
        slots = max(spec.target, 1e-9)
        wanted = math.ceil(latest.in_flight / slots - 1e-9) + math.ceil(latest.queued / slots - 1e-9) * hedge
        hedged = wanted > desired
        desired = max(desired, wanted)
    if spec.metric == "rps":
        desired = max(desired, math.ceil(window.arrival_rate(spec.panic_window) / spec.target - 1e-9))
    desired = min(desired, math.ceil(spec.max_scale_up_rate * max(1, ready)))
    down, _ = _rate_bounds(ready, spec)
    if desired < current:
        desired = max(desired, min(current, down))
    if hedged:
        reason = "Hedged"
    else:
        reason = "Predictive" if desired > math.ceil(in_system / max(spec.target, 1e-9) - 1e-9) else "Queue"
    if desired == 0:
        if window.idle_for() < spec.scale_to_zero_grace:
            desired, reason = 1, "ScaleToZeroGrace"
        else:
            reason = "ScaleToZero" if current > 0 else "Idle"
    return Decision(_clamp(desired, spec), state, reason)


def decide(
    policy: PolicyName,
    window: MetricsWindow,
    ready: int,
    current: int,
    spec: ScalerSpec,
    *,
    state: ScalerState,
) -> Decision:
    """Run the named policy."""
    if policy == "kpa":
        return kpa(window, ready, current, spec, state)
    if policy == "hpa":
        return hpa(window, ready, current, spec, state)
    if policy == "predictive":
        return predictive(window, ready, current, spec, state)
    raise ValueError(f"unknown autoscaling policy {policy!r} (kpa, hpa or predictive)")
