"""The one path every decision about a request is made on: authentication and routing.

Why: a request path has several spellings that a router may treat alike —
``/dashboard//api/state``, ``/dashboard/%2Fapi/state``, ``/x/../dashboard/api/state``.
When the check "does this path need a token?" looks at one spelling and the router at
another, a protected route is reachable without a token (issue 22). So both fronts of
the API server (aiohttp's middleware and the lean HTTP/1.1 front) turn the raw request
target into one canonical path with :func:`route_path` *before* either decision, and
authentication and routing both read that string and nothing else.

The rules, on the raw (still percent-encoded) path, segment by segment:

- an encoded slash (``%2F``/``%2f``) is rejected: no Kubernetes name or path segment
  contains ``/``, and decoding it would change which route answers;
- a dot segment (``.`` or ``..``, raw or percent-encoded such as ``%2e%2E``) is rejected,
  as kube-apiserver rejects ``.`` and ``..`` as names: resolving it would change routing;
- empty segments (``//``) are collapsed, since every router here already ignores them;
  a trailing slash is kept (``/dashboard/`` and ``/dashboard`` are different answers);
- every other segment is percent-decoded once (``%252F`` becomes the literal ``%2F``).

Rejections are :class:`~corral.apiserver.errors.ApiError` 400 (``BadRequest``) naming
the segment. Case is not folded: routes match exactly, so ``/Dashboard/api/state`` is
simply not a public path (401 without a token, 404 with one).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from corral.apiserver.errors import ApiError

DOT_SEGMENTS = frozenset({".", ".."})


def route_path(target: str) -> str:
    """The canonical path of a raw request target (path, optional ``?query``), or ``ApiError`` 400."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        if "://" not in path:
            raise ApiError(400, "BadRequest", f"the request path {path[:200]!r} must start with '/'")
        path = urlsplit(path).path or "/"  # absolute-form target (a proxy-style request line)
    if "%" not in path and "//" not in path and "/." not in path:
        return path  # the common case: nothing to decode, collapse or check
    segments: list[str] = []
    raw_segments = path.split("/")
    last = len(raw_segments) - 1
    for index, raw in enumerate(raw_segments):
        if raw == "":
            if index == last and index > 0:
                segments.append("")  # keep the trailing slash
            continue
        if "%2f" in raw.lower():
            raise ApiError(400, "BadRequest", f"the request path segment {raw[:200]!r} contains an encoded '/' "
                           "(%2F), which no route accepts")
        try:
            segment = unquote(raw, errors="strict") if "%" in raw else raw
        except UnicodeDecodeError:
            raise ApiError(400, "BadRequest", f"the request path segment {raw[:200]!r} is not UTF-8 once "
                           "percent-decoded") from None
        if segment in DOT_SEGMENTS:
            raise ApiError(400, "BadRequest", f"the request path segment {raw!r} is a dot segment ('.' or '..'), "
                           "which no route accepts")
        segments.append(segment)
    if segments == [""] or not segments:
        return "/"
    return "/" + "/".join(segments)
