from corral.client import WorkQueue
from corral.controllers.runtime import Controller, Result


class Noop:
    async def reconcile(self, key: str) -> Result | None:
        return None


def test_a_given_empty_queue_is_the_one_used() -> None:
    queue = WorkQueue()  # empty, hence falsy: must not be swapped for a fresh one
    assert Controller("c", Noop(), queue=queue).queue is queue
