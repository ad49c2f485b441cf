"""Per-service load accounting: Prometheus metrics and the feed the autoscaler reads.

Each service has a :class:`ServiceStats`: requests in flight and queued, and
cumulative counters (arrivals, completions, summed service time, the time
integral of requests in the system, and per-revision requests and errors).
The autoscaler turns two snapshots of the cumulative counters into a
:class:`~corral.autoscaling.metrics.Sample` (concurrency = Δintegral / Δt), so a
missed poll loses no information and several readers can poll independently.

The same numbers are exported for Prometheus (``/_corral/metrics``) from a
registry owned by the gateway instance (no process-global registry). Nothing
on the request path touches prometheus_client: requests only bump plain
integers (per-revision/code counts and a bucket array per service, found with
``bisect``), and a collector turns them into counters and a histogram at
scrape time. That keeps the per-request cost at a few dictionary updates.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from corral.util.clock import Clock

_CODES = {code: str(code) for code in range(100, 600)}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass
class RevisionStats:
    requests: int = 0
    errors: int = 0
    """Responses with status >= 500 and failed connections."""


@dataclass
class ServiceStats:
    in_flight: int = 0
    queued: int = 0
    arrivals: int = 0
    completions: int = 0
    service_seconds: float = 0.0
    integral: float = 0.0
    last_change: float = 0.0
    activations: int = 0
    rejected: int = 0
    revisions: dict[str, RevisionStats] = field(default_factory=dict)
    answered: dict[tuple[str, str], int] = field(default_factory=dict)
    """Requests answered per (revision, code) — ``corral_gateway_requests_total``."""
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    """Non-cumulative counts per latency bucket (the last is +Inf)."""
    latency_sum: float = 0.0

    def _advance(self, now: float) -> None:
        self.integral += (self.in_flight + self.queued) * (now - self.last_change)
        self.last_change = now

    def snapshot(self, now: float) -> dict[str, Any]:
        self._advance(now)
        return {
            "time": now,
            "inFlight": self.in_flight,
            "queued": self.queued,
            "arrivals": self.arrivals,
            "completions": self.completions,
            "serviceSeconds": self.service_seconds,
            "concurrencyIntegral": self.integral,
            "activations": self.activations,
            "rejected": self.rejected,
            "revisions": {name: {"requests": r.requests, "errors": r.errors} for name, r in self.revisions.items()},
        }


class GatewayMetrics:
    """All services' stats plus their Prometheus exports."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.services: dict[str, ServiceStats] = {}
        self.registry.register(_StatsCollector(self))

    @staticmethod
    def _observe(stats: ServiceStats, revision: str, code: str, seconds: float) -> None:
        key = (revision, code)
        answered = stats.answered
        answered[key] = answered.get(key, 0) + 1
        stats.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        stats.latency_sum += seconds

    def stats(self, service: str) -> ServiceStats:
        stats = self.services.get(service)
        if stats is None:
            stats = self.services[service] = ServiceStats(last_change=self.clock.monotonic())
        return stats

    def arrive(self, service: str) -> ServiceStats:
        stats = self.stats(service)
        stats._advance(self.clock.monotonic())
        stats.arrivals += 1
        stats.queued += 1
        return stats

    def dispatch(self, service: str) -> None:
        stats = self.stats(service)
        stats._advance(self.clock.monotonic())
        stats.queued -= 1
        stats.in_flight += 1

    @staticmethod
    def arrive_and_dispatch(stats: ServiceStats, now: float) -> None:
        """A request that found a replica at once: ``arrive`` and ``dispatch`` in one step."""
        stats.integral += (stats.in_flight + stats.queued) * (now - stats.last_change)
        stats.last_change = now
        stats.arrivals += 1
        stats.in_flight += 1

    def complete(self, stats: ServiceStats, revision: str, code: int, started: float, arrived: float,  # noqa: PLR0917
                 now: float) -> None:
        """``finish`` for a caller that already holds the stats and the time."""
        stats.integral += (stats.in_flight + stats.queued) * (now - stats.last_change)
        stats.last_change = now
        stats.in_flight -= 1
        stats.completions += 1
        stats.service_seconds += now - started
        rev = stats.revisions.get(revision)
        if rev is None:
            rev = stats.revisions[revision] = RevisionStats()
        rev.requests += 1
        if code >= 500:
            rev.errors += 1
        key = (revision, _CODES.get(code) or str(code))
        answered = stats.answered
        answered[key] = answered.get(key, 0) + 1
        seconds = now - arrived
        stats.latency_buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        stats.latency_sum += seconds

    def give_up(self, service: str) -> None:
        """A held request left without being dispatched (queue timeout or rejection)."""
        stats = self.stats(service)
        stats._advance(self.clock.monotonic())
        stats.queued -= 1

    def finish(self, service: str, revision: str, code: int, started: float, arrived: float) -> None:
        now = self.clock.monotonic()
        stats = self.stats(service)
        stats._advance(now)
        stats.in_flight -= 1
        stats.completions += 1
        stats.service_seconds += now - started
        rev = stats.revisions.setdefault(revision, RevisionStats())
        rev.requests += 1
        if code >= 500:
            rev.errors += 1
        self._observe(stats, revision, str(code), now - arrived)

    def attempt_failed(self, service: str, revision: str) -> None:
        """A try on one replica failed at the connection level (the request may be retried)."""
        stats = self.stats(service)
        rev = stats.revisions.setdefault(revision, RevisionStats())
        rev.requests += 1
        rev.errors += 1
        key = (revision, "connection-failed")
        stats.answered[key] = stats.answered.get(key, 0) + 1

    def answer_without_replica(self, service: str, code: int, arrived: float) -> None:
        self._observe(self.stats(service), "", str(code), self.clock.monotonic() - arrived)

    def feed(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        return {"time": now, "services": {name: s.snapshot(now) for name, s in self.services.items()}}


class _StatsCollector(Collector):
    """Gauges read from the live stats at scrape time (nothing to update per request)."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        concurrency = GaugeMetricFamily("corral_gateway_concurrency", "Requests in flight to replicas",
                                        labels=["service"])
        queued = GaugeMetricFamily("corral_gateway_queued", "Requests held by the gateway (queue and activator)",
                                   labels=["service"])
        arrivals = CounterMetricFamily("corral_gateway_arrivals", "Requests received (rps = rate of this)",
                                       labels=["service"])
        activations = CounterMetricFamily("corral_gateway_activations", "Scale-from-zero activations",
                                          labels=["service"])
        requests = CounterMetricFamily("corral_gateway_requests", "Requests answered",
                                       labels=["service", "revision", "code"])
        latency = HistogramMetricFamily("corral_gateway_request_duration_seconds",
                                        "Time from arrival at the gateway to the end of the response",
                                        labels=["service"])
        for name, stats in list(self.metrics.services.items()):
            concurrency.add_metric([name], stats.in_flight)
            queued.add_metric([name], stats.queued)
            arrivals.add_metric([name], stats.arrivals)
            activations.add_metric([name], stats.activations)
            for (revision, code), count in list(stats.answered.items()):
                requests.add_metric([name, revision, code], count)
            if stats.answered:
                cumulative = 0
                buckets: list[tuple[str, float]] = []
                for bound, count in zip((*LATENCY_BUCKETS, float("inf")), stats.latency_buckets, strict=True):
                    cumulative += count
                    buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
                latency.add_metric([name], buckets, stats.latency_sum)
        yield from (concurrency, queued, arrivals, activations, requests, latency)
