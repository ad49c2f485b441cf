"""Per-cycle scratch space shared by the plugins of one scheduling decision (one group)."""

from __future__ import annotations

from typing import Any

import numpy as np


class CycleState:
    """Key/value data for one scheduling cycle, plus the cycle's RNG and the group so far.

    ``rng`` is injected (seeded by the caller) so that decisions are reproducible;
    ``group_nodes`` holds the node rows already chosen for earlier members of the group
    (topology plugins use it to keep a gang together); ``group_size`` is the member count.
    """

    __slots__ = ("_data", "group_nodes", "group_size", "rng")

    def __init__(self, rng: np.random.Generator | None = None, group_size: int = 1) -> None:
        self._data: dict[str, Any] = {}
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.group_nodes: list[int] = []
        self.group_size = group_size

    def read(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def clone(self) -> CycleState:
        other = CycleState(self.rng, self.group_size)
        other._data = dict(self._data)
        other.group_nodes = list(self.group_nodes)
        return other
