"""Bearer-token checks for the endpoints corral's components serve besides the API server.

The node agent (``/pods``, ``/containerLogs``) and the gateway (``/_corral/routes``,
``/metrics``, ``/feed``) show cluster state and pod output, so they take the same bearer
tokens as the API server — the way a kubelet authenticates with a TokenReview against
kube-apiserver. The design, chosen as the simplest that is sound:

- each component already holds a token: the one in the kubeconfig it talks to the API
  server with. A request presenting that token is accepted at once (constant-time
  comparison), which is the common case (``corral up`` gives every component the admin
  token, and the API server presents its own token when it proxies ``pods/log``);
- any other token is asked about at the API server: a ``SelfSubjectReview``
  (``POST /apis/authentication.k8s.io/v1/selfsubjectreviews``) sent *with that token*
  answers 201 when the API server accepts it and 401 when not. Answers are cached for
  ``ttl`` seconds (tokens are long-lived; a revoked token stops working within ``ttl``);
- no ``Authorization: Bearer`` header, or a component with neither a token nor a client:
  refused.

:class:`TokenCheck` is pure apart from the review call, which is injected.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from corral.client.rest import ApiClient
from corral.util.clock import Clock, SystemClock

Review = Callable[[str], Awaitable[bool]]
"""Asks the API server whether a token is valid: True (accepted) or False (refused)."""
REVIEW_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
MAX_CACHED = 1024


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not header or not header.startswith("Bearer "):
        return None
    token = header[7:].strip()
    return token or None


def api_review(client: ApiClient) -> Review:
    """A :data:`Review` that sends a SelfSubjectReview with the presented token to ``client``'s server."""

    async def review(token: str) -> bool:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        async with client.session.post(REVIEW_PATH, json=body, headers={"Authorization": f"Bearer {token}"}) as answer:
            await answer.read()
            if answer.status in (401, 403):
                return False
            if answer.status >= 300:
                raise RuntimeError(f"the API server answered {answer.status} to a token review")
            return True

    return review


class TokenCheck:
    """Accepts the component's own token, and tokens the API server accepts (cached ``ttl`` seconds)."""

    def __init__(self, own_token: str | None, review: Review | None = None, *, ttl: float = 30.0,
                 clock: Clock | None = None) -> None:
        self.own_token = own_token or ""
        self.review = review
        self.ttl = ttl
        self.clock = clock or SystemClock()
        self._cache: dict[str, tuple[bool, float]] = {}

    @classmethod
    def for_client(cls, client: ApiClient, *, ttl: float = 30.0, clock: Clock | None = None) -> TokenCheck:
        """Tokens equal to ``client``'s own, or accepted by its API server."""
        return cls(client.token, api_review(client), ttl=ttl, clock=clock)

    def quick(self, header: str | None) -> bool | None:
        """The answer when it needs no review (True/False), or None when the API server must be asked."""
        token = bearer_token(header)
        if token is None:
            return False
        if self.own_token and hmac.compare_digest(token.encode(), self.own_token.encode()):
            return True
        cached = self._cache.get(token)
        if cached is not None and self.clock.monotonic() < cached[1]:
            return cached[0]
        return None if self.review is not None else False

    async def check(self, header: str | None) -> bool:
        """Whether the request with this ``Authorization`` header may see the endpoint."""
        answer = self.quick(header)
        if answer is not None:
            return answer
        token = bearer_token(header)
        assert token is not None and self.review is not None
        try:
            accepted = await self.review(token)
        except Exception:  # the API server cannot be asked: refuse, and ask again next time
            return False
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[token] = (accepted, self.clock.monotonic() + self.ttl)
        return accepted
