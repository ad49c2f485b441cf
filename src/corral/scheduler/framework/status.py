"""``Status``: what every extension point returns, with a code and reasons a person can read.

Codes follow kube-scheduler's framework: ``SUCCESS``; ``UNSCHEDULABLE`` (may fit after the
cluster changes, e.g. preemption frees room); ``UNRESOLVABLE`` (no change to other pods
helps, e.g. a node selector no node matches); ``WAIT`` (Permit: hold the reservation);
``SKIP`` (PreFilter/PreScore: this plugin has nothing to say about the pod); ``ERROR``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.Enum):
    """Result codes of a framework stage."""

    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    UNRESOLVABLE = "UnschedulableAndUnresolvable"
    WAIT = "Wait"
    SKIP = "Skip"
    ERROR = "Error"


@dataclass(frozen=True, slots=True)
class Status:
    """A stage's verdict: ``code``, human ``reasons`` and the ``plugin`` that said it."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        """The reasons joined as one sentence fragment."""
        return ", ".join(self.reasons)

    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def is_rejected(self) -> bool:
        """True for UNSCHEDULABLE and UNRESOLVABLE."""
        return self.code in (Code.UNSCHEDULABLE, Code.UNRESOLVABLE)

    def with_plugin(self, plugin: str) -> Status:
        return Status(self.code, self.reasons, plugin)

    @staticmethod
    def success() -> Status:
        return _SUCCESS

    @staticmethod
    def skip() -> Status:
        return _SKIP

    @staticmethod
    def unschedulable(*reasons: str) -> Status:
        return Status(Code.UNSCHEDULABLE, tuple(reasons))

    @staticmethod
    def unresolvable(*reasons: str) -> Status:
        return Status(Code.UNRESOLVABLE, tuple(reasons))

    @staticmethod
    def wait(*reasons: str) -> Status:
        return Status(Code.WAIT, tuple(reasons))

    @staticmethod
    def error(*reasons: str) -> Status:
        return Status(Code.ERROR, tuple(reasons))


_SUCCESS = Status()
_SKIP = Status(Code.SKIP)
