"""The metrics window every autoscaling policy reads.

The gateway (or the replay simulator) records one :class:`Sample` per tick for a
service: the time-averaged number of requests in the system (in flight plus
queued) over the tick, the arrivals and completions in the tick, and the
instantaneous queue and replica counts at its end. A :class:`MetricsWindow` keeps
the samples of the last ``max_age`` seconds and answers the aggregate questions
the policies ask (mean concurrency over the last N seconds, arrival rate, mean
service time, time since traffic was last seen, and the recent arrival rate
"as seen from now" that corral's predictive policy uses — see :meth:`MetricsWindow.recent_rate`).

The samples that carry arrivals or completions are also indexed on their own,
so the questions a policy asks every tick cost time in proportion to the
requests in the window, not to its length (the replay benchmark asks them
about a million times).

The window is a plain value container: policies never mutate it, and the same
window type is filled from live gateway counters and from the virtual clock of
``bench/autoscaling_replay.py``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

READY_OBSERVATIONS = 256
"""How many recent replica start-ups (time to ready, or age when removed before ready) a window keeps."""


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
    ready_observations: tuple[tuple[float, bool], ...] = ()
    """Replica start-ups that ended in the tick: (seconds since creation, became ready). ``False``
    means the replica was removed while still starting — its time to ready is only known to be longer."""


class Survival:
    """A Kaplan–Meier survival curve of replica start-up times, censoring included.

    Replicas removed while starting are censored observations (their time to ready is only
    known to exceed their age); leaving them out would make start-ups look faster than they
    are exactly when the autoscaler cancels slow ones.
    """

    def __init__(self, observations: Iterable[tuple[float, bool]]) -> None:
        ordered = sorted(observations, key=lambda o: (o[0], not o[1]))
        at_risk = len(ordered)
        survival = 1.0
        self.times: list[float] = []
        self.values: list[float] = []
        """``values[i]`` = P(T > times[i])."""
        index = 0
        while index < len(ordered):
            time = ordered[index][0]
            ready = removed = 0
            while index < len(ordered) and ordered[index][0] == time:
                if ordered[index][1]:
                    ready += 1
                else:
                    removed += 1
                index += 1
            if ready and at_risk:
                survival *= 1.0 - ready / at_risk
                self.times.append(time)
                self.values.append(survival)
            at_risk -= ready + removed
        self.observations = len(ordered)

    def above(self, seconds: float) -> float:
        """P(time to ready > ``seconds``)."""
        index = bisect_right(self.times, seconds) - 1
        return self.values[index] if index >= 0 else 1.0

    def below(self, seconds: float) -> float:
        """P(time to ready < ``seconds``) — ready within ``seconds``."""
        index = bisect_right(self.times, seconds - 1e-9) - 1
        return 1.0 - (self.values[index] if index >= 0 else 1.0)

    def mean_first(self, starts: int) -> float:
        """Expected time until the first of ``starts`` independent start-ups is ready.

        ``∫ S(t)^starts dt`` up to the last observed ready time (the curve says nothing beyond it).
        """
        total = 0.0
        previous_time = 0.0
        previous_value = 1.0
        for time, value in zip(self.times, self.values, strict=True):
            total += (time - previous_time) * previous_value**starts
            previous_time, previous_value = time, value
        return total


class MetricsWindow:
    """The samples of the last ``max_age`` seconds, oldest first."""

    def __init__(self, max_age: float = 600.0) -> None:
        if max_age <= 0:
            raise ValueError("max_age must be positive")
        self.max_age = max_age
        self._samples: deque[Sample] = deque()
        self._arrivals: deque[tuple[float, float, int]] = deque()
        """(end time, start time, arrivals) of the samples that saw arrivals."""
        self._completions: deque[tuple[float, int, float]] = deque()
        """(end time, completions, service seconds) of the samples that saw completions."""
        self._time_to_ready: tuple[float, float] | None = None
        """(end time, value) of the latest sample that carried a measured time-to-ready."""
        self._last_active: float | None = None
        self._ready_observations: deque[tuple[float, bool]] = deque(maxlen=READY_OBSERVATIONS)
        self._survival: Survival | None = None

    def add(self, sample: Sample) -> None:
        if self._samples and sample.time < self._samples[-1].time:
            raise ValueError("samples must be added in time order")
        self._samples.append(sample)
        if sample.arrivals > 0:
            self._arrivals.append((sample.time, sample.time - sample.duration, sample.arrivals))
        if sample.completions > 0:
            self._completions.append((sample.time, sample.completions, sample.service_seconds))
        if sample.time_to_ready is not None:
            self._time_to_ready = (sample.time, sample.time_to_ready)
        if sample.ready_observations:
            self._ready_observations.extend(sample.ready_observations)
            self._survival = None
        if sample.concurrency > 0 or sample.arrivals > 0 or sample.in_flight > 0 or sample.queued > 0:
            self._last_active = sample.time
        horizon = sample.time - self.max_age
        while self._samples and self._samples[0].time <= horizon:
            self._samples.popleft()
        while self._arrivals and self._arrivals[0][0] <= horizon:
            self._arrivals.popleft()
        while self._completions and self._completions[0][0] <= horizon:
            self._completions.popleft()
        if self._time_to_ready is not None and self._time_to_ready[0] <= horizon:
            self._time_to_ready = None

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

    def recent_rate(self, min_seconds: float = 0.0, lead: float = 0.0) -> float:
        """The highest arrival rate over any window that ends now, optionally projected ``lead`` ahead.

        ``max over k of (arrivals in the last k arrival-bearing samples) / (max(min_seconds, age) + lead)``,
        where ``age`` is how long ago the oldest of those samples began. Right after a burst it is
        the burst's rate; when arrivals stop it decays like ``count / time since they came`` —
        the shape of a bursty, self-exciting arrival process's hazard (the longer it has been quiet,
        the longer it is likely to stay quiet), without any fitted constant. ``lead`` asks the same
        question about ``lead`` seconds from now, assuming nothing arrives meanwhile.
        """
        now = self.now
        best = 0.0
        count = 0
        for _, start, arrivals in reversed(self._arrivals):
            count += arrivals
            best = max(best, count / (max(min_seconds, now - start) + lead))
        return best

    def mean_service_time(self, seconds: float) -> float | None:
        """Mean execution time of the requests completed in the last ``seconds``; None if none."""
        horizon = self.now - seconds
        count = 0
        total = 0.0
        for end, completions, service in reversed(self._completions):
            if end <= horizon:
                break
            count += completions
            total += service
        return total / count if count else None

    def time_to_ready(self) -> float | None:
        """The latest measured replica time-to-ready, if any sample in the window carries one."""
        return self._time_to_ready[1] if self._time_to_ready is not None else None

    def start_up(self) -> Survival | None:
        """The start-up time curve of the recent replicas (None until one became ready)."""
        if self._survival is None and any(ready for _, ready in self._ready_observations):
            self._survival = Survival(self._ready_observations)
        return self._survival

    def idle_for(self) -> float:
        """Seconds since traffic was last seen (``inf`` if never)."""
        if self._last_active is None:
            return float("inf")
        return self.now - self._last_active
