"""Shared fixtures.

e2e tests need the ``corral`` command and ``kubectl``; without them they skip with a
clear reason, except under ``CI=true`` where a missing tool is a failure.
"""

from __future__ import annotations

import os
import shutil

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


@pytest.fixture
def kubectl() -> str:
    return require_tool("kubectl")
