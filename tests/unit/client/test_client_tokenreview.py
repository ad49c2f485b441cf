"""TokenCheck: a component's own token at once; others asked of the API server, answers cached for ttl."""

from __future__ import annotations

from corral.client.tokenreview import TokenCheck, bearer_token
from corral.testing.clock import FakeClock


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("Bearer  abc ") == "abc"
    assert bearer_token(None) is None
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None


async def test_own_token_without_review_and_nothing_else() -> None:
    check = TokenCheck("mine")
    assert check.quick("Bearer mine") is True
    assert await check.check("Bearer mine")
    assert not await check.check("Bearer other")
    assert not await check.check(None)
    assert not await TokenCheck(None).check("Bearer ")  # no own token: the empty one is not it


async def test_other_tokens_are_reviewed_once_per_ttl() -> None:
    asked: list[str] = []

    async def review(token: str) -> bool:
        asked.append(token)
        return token == "good"

    clock = FakeClock()
    check = TokenCheck("mine", review, ttl=30, clock=clock)
    assert await check.check("Bearer good") and await check.check("Bearer good")
    assert not await check.check("Bearer bad") and not await check.check("Bearer bad")
    assert asked == ["good", "bad"]
    clock.advance(31)
    assert await check.check("Bearer good")
    assert asked == ["good", "bad", "good"]


async def test_an_unreachable_api_server_refuses_and_asks_again() -> None:
    calls = 0

    async def review(token: str) -> bool:
        nonlocal calls
        calls += 1
        raise OSError("connection refused")

    check = TokenCheck("mine", review)
    assert not await check.check("Bearer x")
    assert not await check.check("Bearer x")
    assert calls == 2
