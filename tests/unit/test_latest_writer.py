"""LatestWriter: per key, one write at a time and the latest value last, whatever each write takes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.util.latest import LatestWriter

# (key, value, how long its write takes in ms, how long until the next submit in ms)
SUBMITS = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 99), st.integers(0, 3), st.integers(0, 2)),
                   min_size=1, max_size=25)


async def run(submits: list[tuple[str, int, int, int]]) -> tuple[dict[str, int], dict[str, list[int]], int]:
    stored: dict[str, int] = {}
    written: dict[str, list[int]] = {}
    in_flight: dict[str, int] = {}
    most_at_once = 0
    delays = {(key, value): delay for key, value, delay, _ in submits}
    tasks: set[asyncio.Task[None]] = set()

    async def write(key: str, value: int) -> None:
        nonlocal most_at_once
        in_flight[key] = in_flight.get(key, 0) + 1
        most_at_once = max(most_at_once, in_flight[key])
        await asyncio.sleep(delays[(key, value)] / 1000)
        stored[key] = value  # the server applies writes in the order they complete
        written.setdefault(key, []).append(value)
        in_flight[key] -= 1

    def spawn(coro: Awaitable[None]) -> None:
        tasks.add(asyncio.ensure_future(coro))

    writer: LatestWriter[str, int] = LatestWriter(write, spawn)
    for key, value, _, pause in submits:
        writer.submit(key, value)
        await asyncio.sleep(pause / 1000)
    while writer.busy:
        await asyncio.gather(*tasks)
    return stored, written, most_at_once


@settings(max_examples=60, deadline=None)
@given(SUBMITS)
def test_the_last_submitted_value_is_the_last_written_and_writes_never_overlap(
        submits: list[tuple[str, int, int, int]]) -> None:
    submits = [(key, index, delay, pause) for index, (key, _, delay, pause) in enumerate(submits)]  # values in order
    stored, written, most_at_once = asyncio.run(run(submits))
    last = {key: value for key, value, _, _ in submits}
    assert stored == last
    assert most_at_once == 1
    for key, values in written.items():  # only submitted values, in submission order (stale ones skipped)
        assert values == sorted(values) and set(values) <= {v for k, v, _, _ in submits if k == key}
