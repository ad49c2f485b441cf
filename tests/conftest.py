"""Shared fixtures.

e2e tests need the ``corral`` command and ``kubectl``, and the trace tests the data in
``../shared``; without them they skip with a clear reason, except under ``CI=true`` where
a missing tool or data set is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require_tool(name: str) -> str:
    """Path of a tool on PATH; skip the test without it, fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        message = f"{name!r} is not on PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true requires every e2e test to run")
        pytest.skip(message)
    return path


def require_shared(relative: str) -> Path:
    """The ``shared/`` directory that holds ``relative`` (``$CORRAL_SHARED`` or a ``shared/`` beside
    a parent of the tests); skip the test without it, fail under CI=true."""
    env = os.environ.get("CORRAL_SHARED")
    if env and (Path(env) / relative).exists():
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / relative).exists():
            return parent / "shared"
    if os.environ.get("CI") == "true":
        pytest.fail(f"../shared/{relative} is missing, and CI=true requires it")
    pytest.skip(f"shared data (../shared/{relative}) not found; set CORRAL_SHARED")


@pytest.fixture
def kubectl() -> str:
    return require_tool("kubectl")
