"""The autoscaler loop's state: gateway feed snapshots → metrics windows → desired replicas.

The gateway publishes cumulative per-service counters (``/_corral/feed``). Each
tick, :meth:`Autoscaler.observe` turns the difference between two snapshots into
one :class:`~corral.autoscaling.metrics.Sample` per service (concurrency is the
change of the time integral of requests in the system over the elapsed time),
appends it to that service's window and runs the service's policy. The
windows and policy states are soft state: after a restart they refill within a
stable window, and the last decision is also kept in the service's status.

:meth:`Autoscaler.activate` is the activator's fast path: a request held for a
service at zero makes it want at least one replica at once, without waiting
for the next tick.

The predictive policy also reads, per sample, the replica start-ups that
ended since the last tick (``start_ups``, reported once per pod by the
InferenceService controller): its start-up curve prices hedged cold starts.
Start-ups reported for a tick whose sample is not taken (a repeated feed time)
wait for the next sample rather than being lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from corral.api.registry import Obj
from corral.autoscaling.metrics import MetricsWindow, Sample
from corral.autoscaling.policy import Decision, PolicyName, ScalerSpec, ScalerState, decide


def _fraction(auto: dict[str, Any], percent_key: str, default: float) -> float:
    return float(auto[percent_key]) / 100.0 if percent_key in auto else default


def scaler_spec(service: Obj) -> tuple[PolicyName, ScalerSpec]:
    spec = service.get("spec") or {}
    auto = spec.get("autoscaling") or {}
    policy: PolicyName = auto.get("policy", "predictive")
    # Defaults are ScalerSpec's (one place), except minReplicas: a service keeps one replica unless told 0.
    stable = float(auto.get("stableWindowSeconds", ScalerSpec.stable_window))
    return policy, ScalerSpec(
        min_replicas=int(spec.get("minReplicas", 1)),
        max_replicas=int(spec.get("maxReplicas", ScalerSpec.max_replicas)),
        metric=auto.get("metric", ScalerSpec.metric),
        target=float(auto.get("target", ScalerSpec.target)),
        target_utilization=_fraction(auto, "targetUtilizationPercent", ScalerSpec.target_utilization),
        stable_window=stable,
        panic_window=min(stable, float(auto.get("panicWindowSeconds", ScalerSpec.panic_window))),
        panic_threshold=_fraction(auto, "panicThresholdPercent", ScalerSpec.panic_threshold),
        scale_to_zero_grace=float(auto.get("scaleToZeroGracePeriodSeconds", ScalerSpec.scale_to_zero_grace)),
        max_scale_up_rate=float(auto.get("maxScaleUpRate", ScalerSpec.max_scale_up_rate)),
        max_scale_down_rate=float(auto.get("maxScaleDownRate", ScalerSpec.max_scale_down_rate)),
        queue_wait=float(auto.get("queueWaitSeconds", ScalerSpec.queue_wait)),
        miss_cost=float(auto.get("missCostSeconds", ScalerSpec.miss_cost)),
        max_hedged_starts=int(auto.get("maxHedgedStarts", ScalerSpec.max_hedged_starts)),
    )


@dataclass
class _Track:
    window: MetricsWindow
    state: ScalerState
    last: dict[str, Any] | None = None
    decision: Decision | None = None
    activated: bool = False
    start_ups: list[tuple[float, bool]] = field(default_factory=list)
    """Start-ups reported but not yet carried by a sample."""


class Autoscaler:
    """Per-service windows and decisions, fed by gateway snapshots."""

    def __init__(self, tick: float = 2.0) -> None:
        self.tick = tick
        self._tracks: dict[str, _Track] = {}
        self.feed_time: float | None = None
        self.revision_counters: dict[str, dict[str, dict[str, int]]] = {}
        self.outstanding: dict[str, dict[str, int]] = {}
        """Requests in flight at the gateway per replica pod name, per service."""

    def _track(self, key: str) -> _Track:
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(MetricsWindow(max_age=900.0), ScalerState())
        return track

    def forget(self, key: str) -> None:
        self._tracks.pop(key, None)
        self.revision_counters.pop(key, None)
        self.outstanding.pop(key, None)

    def window(self, key: str) -> MetricsWindow | None:
        """The service's metrics window (None until the service has been observed)."""
        track = self._tracks.get(key)
        return track.window if track is not None else None

    def desired(self, key: str) -> Decision | None:
        track = self._tracks.get(key)
        return track.decision if track is not None else None

    def activate(self, key: str, service: Obj | None = None) -> Decision:
        """The activator's poke: want at least one replica now."""
        track = self._track(key)
        current = track.decision.replicas if track.decision is not None else 0
        limit = scaler_spec(service)[1].max_replicas if service is not None else 1
        track.decision = Decision(max(1, min(limit, current)), track.state, "Activation")
        track.activated = True
        return track.decision

    def observe(
        self,
        feed: dict[str, Any],
        services: dict[str, Obj],
        replicas: dict[str, tuple[int, int, float | None]],
        start_ups: Mapping[str, Sequence[tuple[float, bool]]] | None = None,
    ) -> dict[str, Decision]:
        """One tick: ``replicas`` maps service key → (ready, current, measured time-to-ready);
        ``start_ups`` maps service key → the replica start-ups that ended since the last tick,
        each (seconds since creation, became ready) — ``False`` for a replica removed while starting."""
        now = float(feed.get("time", 0.0))
        snapshots: dict[str, Any] = feed.get("services") or {}
        decisions: dict[str, Decision] = {}
        for key, service in services.items():
            track = self._track(key)
            snap = snapshots.get(key)
            if snap is not None:
                self.revision_counters[key] = snap.get("revisions") or {}
                self.outstanding[key] = snap.get("outstanding") or {}
            sample = self._sample(track, snap, now)
            ready, current, ttr = replicas.get(key, (0, 0, None))
            if start_ups and start_ups.get(key):
                track.start_ups.extend(start_ups[key])
            if track.window.latest is not None and sample.time <= track.window.now:
                continue
            sample = replace(sample, ready=ready, time_to_ready=ttr, ready_observations=tuple(track.start_ups))
            track.start_ups.clear()
            track.window.add(sample)
            policy, spec = scaler_spec(service)
            decision = decide(policy, track.window, ready, current, spec, state=track.state)
            track.state = decision.state
            if track.activated and decision.replicas == 0 and (sample.queued > 0 or sample.in_flight > 0):
                decision = Decision(1, decision.state, "Activation")
            track.activated = track.activated and decision.replicas == 0
            track.decision = decision
            decisions[key] = decision
        for key in [k for k in self._tracks if k not in services]:
            self.forget(key)
        return decisions

    def _sample(self, track: _Track, snap: dict[str, Any] | None, now: float) -> Sample:
        if snap is None:
            return Sample(time=now, duration=self.tick, concurrency=0.0)
        last = track.last
        track.last = snap
        in_flight = int(snap.get("inFlight", 0))
        queued = int(snap.get("queued", 0))
        at = float(snap.get("time", now))
        if last is None or at <= float(last["time"]) or snap["arrivals"] < last["arrivals"]:
            return Sample(time=now, duration=self.tick, concurrency=float(in_flight + queued),
                          in_flight=in_flight, queued=queued)
        duration = at - float(last["time"])
        return Sample(
            time=now,
            duration=duration,
            concurrency=max(0.0, (float(snap["concurrencyIntegral"]) - float(last["concurrencyIntegral"])) / duration),
            arrivals=int(snap["arrivals"]) - int(last["arrivals"]),
            completions=int(snap["completions"]) - int(last["completions"]),
            service_seconds=float(snap["serviceSeconds"]) - float(last["serviceSeconds"]),
            in_flight=in_flight,
            queued=queued,
        )

