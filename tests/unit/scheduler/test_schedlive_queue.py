"""The scheduling queue: QueueSort order, backoff, unschedulable parking and moves."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from corral.scheduler.queue import SchedulingQueue
from corral.testing import FakeClock


def drain(queue: SchedulingQueue) -> list[str]:
    out = []
    while (key := queue.pop_nowait()) is not None:
        out.append(key)
    return out


def test_priority_then_creation_then_key() -> None:
    queue = SchedulingQueue(clock=FakeClock())
    queue.add("pod:a/low", 0, 1.0)
    queue.add("pod:a/high-late", 10, 5.0)
    queue.add("pod:a/high-early", 10, 2.0)
    queue.add("pod:a/low-same-b", 0, 1.0)
    assert drain(queue) == ["pod:a/high-early", "pod:a/high-late", "pod:a/low", "pod:a/low-same-b"]


def test_unschedulable_waits_for_a_cluster_change_then_backoff() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock=clock, initial_backoff=1.0, max_backoff=8.0, unschedulable_timeout=60.0)
    queue.add("pod:a/x", 0, 0.0)
    assert queue.pop_nowait() == "pod:a/x"
    queue.unschedulable("pod:a/x")
    assert queue.pop_nowait() is None
    clock.advance(5)
    assert queue.pop_nowait() is None, "parked until the cluster changes"
    queue.move_all_to_active()
    assert queue.pop_nowait() == "pod:a/x", "backoff of 1 s already passed"
    queue.unschedulable("pod:a/x")
    queue.move_all_to_active()
    assert queue.pop_nowait() is None, "second attempt backs off 2 s"
    clock.advance(2)
    assert queue.pop_nowait() == "pod:a/x"


def test_change_while_in_flight_is_not_missed() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock=clock, initial_backoff=1.0)
    queue.add("pod:a/x", 0, 0.0)
    assert queue.pop_nowait() == "pod:a/x"
    queue.move_all_to_active()  # a node appeared during the attempt
    queue.unschedulable("pod:a/x")
    clock.advance(1)
    assert queue.pop_nowait() == "pod:a/x"


def test_unschedulable_timeout_retries_without_events() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock=clock, unschedulable_timeout=30.0)
    queue.add("pod:a/x", 0, 0.0)
    queue.pop_nowait()
    queue.unschedulable("pod:a/x")
    clock.advance(29)
    assert queue.pop_nowait() is None
    clock.advance(1)
    assert queue.pop_nowait() == "pod:a/x"


def test_removed_keys_never_come_back() -> None:
    queue = SchedulingQueue(clock=FakeClock())
    queue.add("pod:a/x", 0, 0.0)
    queue.add("pod:a/y", 0, 0.0)
    queue.remove("pod:a/x")
    assert drain(queue) == ["pod:a/y"]
    queue.done("pod:a/y")
    queue.add("pod:a/y", 0, 0.0)
    assert queue.attempts("pod:a/y") == 0


async def test_pop_waits_for_backoff_on_the_clock() -> None:
    clock = FakeClock()
    queue = SchedulingQueue(clock=clock, initial_backoff=4.0)
    queue.add("pod:a/x", 0, 0.0)
    assert await queue.pop() == "pod:a/x"
    queue.retry("pod:a/x")
    task = asyncio.ensure_future(queue.pop())
    await asyncio.sleep(0.01)
    assert not task.done()
    clock.advance(4)
    assert await asyncio.wait_for(task, 1) == "pod:a/x"
    closer = asyncio.ensure_future(queue.pop())
    await asyncio.sleep(0.01)
    queue.close()
    assert await asyncio.wait_for(closer, 1) is None


@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(0, 3), st.sampled_from("abcdefgh")), max_size=30))
def test_every_pending_key_pops_exactly_once_in_sort_order(entries: list[tuple[int, int, str]]) -> None:
    queue = SchedulingQueue(clock=FakeClock())
    latest: dict[str, tuple[int, int]] = {}
    for priority, created, name in entries:
        queue.add(f"pod:ns/{name}", priority, float(created))
        latest[f"pod:ns/{name}"] = (priority, created)
    popped = drain(queue)
    assert sorted(popped) == sorted(latest)
    order = [(-latest[k][0], latest[k][1], k) for k in popped]
    assert order == sorted(order)
