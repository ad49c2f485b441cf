import asyncio

import pytest

from corral.client import QueueClosedError, WorkQueue


async def test_a_key_is_queued_once() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"


async def test_a_key_being_processed_is_not_handed_out_twice() -> None:
    queue = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # changed while a worker holds it
    assert len(queue) == 0
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(queue.get(), 0.05)
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "a"


async def test_waiting_worker_wakes_on_add() -> None:
    queue = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_rate_limited_backoff_doubles_and_forget_resets() -> None:
    queue = WorkQueue(base_delay=0.01, max_delay=0.04)
    assert queue.backoff("k") == 0.01
    queue.add_rate_limited("k")
    assert queue.backoff("k") == 0.02
    queue.add_rate_limited("k")
    queue.add_rate_limited("k")
    assert queue.backoff("k") == 0.04  # capped
    assert await asyncio.wait_for(queue.get(), 1) == "k"
    queue.forget("k")
    assert queue.backoff("k") == 0.01


async def test_add_after_delays_and_earliest_timer_wins() -> None:
    queue = WorkQueue()
    loop = asyncio.get_running_loop()
    started = loop.time()
    queue.add_after("k", 0.2)
    queue.add_after("k", 0.05)
    assert await asyncio.wait_for(queue.get(), 1) == "k"
    elapsed = loop.time() - started
    assert 0.04 <= elapsed < 0.19


async def test_shutdown_releases_waiting_workers() -> None:
    queue = WorkQueue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shutdown()
    with pytest.raises(QueueClosedError):
        await asyncio.wait_for(getter, 1)
    queue.add("late")
    assert len(queue) == 0
