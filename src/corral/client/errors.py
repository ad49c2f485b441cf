"""Errors raised by the client: one :class:`ApiError` carrying the server's ``Status``."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A non-2xx answer from the API server.

    ``code`` is the HTTP status, ``reason`` the ``Status.reason`` (``NotFound``,
    ``AlreadyExists``, ``Conflict``, ``Gone``, ``Invalid``, …) and ``message`` the
    server's explanation. ``status`` is the whole ``Status`` object when there was one.
    """

    def __init__(self, code: int, reason: str, message: str, status: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status or {}

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        return self.code == 409

    @property
    def gone(self) -> bool:
        return self.code == 410

    @classmethod
    def from_status(cls, code: int, body: Any) -> ApiError:
        """Build from a response body that may or may not be a ``Status``."""
        if isinstance(body, dict) and body.get("kind") == "Status":
            return cls(int(body.get("code") or code), str(body.get("reason") or ""), str(body.get("message") or ""), body)
        return cls(code, "", str(body)[:2000])
