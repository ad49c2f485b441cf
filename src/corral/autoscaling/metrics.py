"""The metrics window every autoscaling policy reads.

The gateway (or the replay simulator) records one :class:`Sample` per tick for a
service: the time-averaged number of requests in the system (in flight plus
queued) over the tick, the arrivals and completions in the tick, and the
instantaneous queue and replica counts at its end. A :class:`MetricsWindow` keeps
the samples of the last ``max_age`` seconds and answers the aggregate questions
the policies ask (mean concurrency over the last N seconds, arrival rate, mean
service time, time since traffic was last seen).

The window is a plain value container: policies never mutate it, and the same
window type is filled from live gateway counters and from the virtual clock of
``bench/autoscaling_replay.py``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One tick of a service's load, ending at ``time`` (seconds, monotonic)."""

    time: float
    duration: float
    concurrency: float
    """Time-averaged requests in the system (in flight + queued) over the tick."""
    arrivals: int = 0
    completions: int = 0
    service_seconds: float = 0.0
    """Sum of the execution times of the requests that completed in the tick."""
    in_flight: int = 0
    queued: int = 0
    ready: int = 0
    time_to_ready: float | None = None
    """The replicas' measured creation-to-ready time so far (seconds), if any became ready."""


class MetricsWindow:
    """The samples of the last ``max_age`` seconds, oldest first."""

    def __init__(self, max_age: float = 600.0) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        self.max_age = max_age
        self._samples: deque[Sample] = deque()
        self._last_active: float | None = None

    def add(self, sample: Sample) -> None:
        if self._samples and sample.time < self._samples[-1].time:
            raise ValueError("samples must be added in time order")
        self._samples.append(sample)
        if sample.concurrency > 0 or sample.arrivals > 0 or sample.in_flight > 0 or sample.queued > 0:
            self._last_active = sample.time
        horizon = sample.time - self.max_age
        while self._samples and self._samples[0].time <= horizon:
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)

    @property
    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    @property
    def now(self) -> float:
        return self._samples[-1].time if self._samples else 0.0

    @property
    def last_active(self) -> float | None:
        """End time of the last sample that saw any traffic (kept even after it ages out)."""
        return self._last_active

    def _recent(self, seconds: float) -> Iterator[Sample]:
        horizon = self.now - seconds
        for sample in reversed(self._samples):
            if sample.time <= horizon:
                return
            yield sample

    def mean_concurrency(self, seconds: float) -> float:
        """Time-weighted mean concurrency over the last ``seconds`` (0 with no samples)."""
        total = 0.0
        weight = 0.0
        for sample in self._recent(seconds):
            total += sample.concurrency * sample.duration
            weight += sample.duration
        return total / weight if weight > 0 else 0.0

    def max_concurrency(self, seconds: float) -> float:
        return max((s.concurrency for s in self._recent(seconds)), default=0.0)

    def arrival_rate(self, seconds: float) -> float:
        """Arrivals per second over the last ``seconds`` (divided by the covered time)."""
        count = 0
        covered = 0.0
        for sample in self._recent(seconds):
            count += sample.arrivals
            covered += sample.duration
        return count / covered if covered > 0 else 0.0

    def mean_service_time(self, seconds: float) -> float | None:
        """Mean execution time of the requests completed in the last ``seconds``; None if none."""
        count = 0
        total = 0.0
        for sample in self._recent(seconds):
            count += sample.completions
            total += sample.service_seconds
        return total / count if count else None

    def time_to_ready(self) -> float | None:
        """The latest measured replica time-to-ready, if any sample carries one."""
        for sample in reversed(self._samples):
            if sample.time_to_ready is not None:
                return sample.time_to_ready
        return None

    def idle_for(self) -> float:
        """Seconds since traffic was last seen (``inf`` if never)."""
        if self._last_active is None:
            return float("inf")
        return self.now - self._last_active
