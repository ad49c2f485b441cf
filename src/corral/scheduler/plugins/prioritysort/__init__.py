"""QueueSort: higher priority first, then the older group (FIFO within a priority)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.scheduler.framework import QueuedGroup

NAME = "PrioritySort"


class PrioritySort:
    name = NAME

    def less(self, a: QueuedGroup, b: QueuedGroup) -> bool:
        if a.priority != b.priority:
            return a.priority > b.priority
        return (a.timestamp, a.key) < (b.timestamp, b.key)


def new(args: Mapping[str, Any]) -> PrioritySort:
    return PrioritySort()
