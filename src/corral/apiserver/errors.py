"""Kubernetes ``Status`` errors.

Every failure the API server answers is an :class:`ApiError`: an HTTP code, a
CamelCase ``reason`` as Kubernetes uses them (``NotFound``, ``AlreadyExists``,
``Conflict``, ``Invalid``, ``BadRequest``, ``Gone``, ``Unauthorized`` ...) and a
message that names the object, the field and the problem.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as a ``kind: Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The ``Status`` body, its keys in kube-apiserver's order.

        kube-apiserver writes Go struct fields in declaration order (``details`` before ``code``;
        ``name``, ``group``, ``kind``, ``causes`` within ``details``), and clients compare error
        bodies as text: the Kubernetes Python client's ``FailToCreateError`` prints them verbatim.
        """
        body: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason,
        }
        if self.details:
            body["details"] = _in_go_order(self.details)
        body["code"] = self.code
        return body


# StatusDetails' fields in the order kube-apiserver's Go struct declares them.
_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")


def _in_go_order(details: dict[str, Any]) -> dict[str, Any]:
    rank = {key: index for index, key in enumerate(_DETAILS_ORDER)}
    return dict(sorted(details.items(), key=lambda item: rank.get(item[0], len(rank))))


def _details(kind: str, name: str, group: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    resource = f"{plural}.{group}" if group else plural
    return ApiError(404, "NotFound", f'{resource} "{name}" not found', _details(plural, name, group))


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    resource = f"{plural}.{group}" if group else plural
    return ApiError(409, "AlreadyExists", f'{resource} "{name}" already exists', _details(plural, name, group))


def conflict(plural: str, name: str, why: str, group: str = "") -> ApiError:
    resource = f"{plural}.{group}" if group else plural
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {resource} "{name}": {why}',
        _details(plural, name, group),
    )


def invalid(kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> ApiError:
    """422 Invalid: ``causes`` are ``(field, problem)`` pairs."""
    text = "; ".join(f"{field}: {problem}" if field else problem for field, problem in causes)
    qualified = f"{kind}.{group}" if group else kind
    details = _details(kind, name, group)
    details["causes"] = [{"reason": "FieldValueInvalid", "message": problem, "field": field} for field, problem in causes]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)
