"""Fast JSON for the hot paths (API server, store, client): orjson with a stdlib fallback.

:func:`dumps` gives compact UTF-8 JSON bytes (the same text as ``json.dumps(obj,
separators=(",", ":"), ensure_ascii=False)`` for JSON-shaped data); :func:`loads` parses
bytes or str. orjson handles integers up to 64 bits; an object it cannot encode (a
larger integer, a non-JSON type the stdlib would accept) falls back to :mod:`json`, so
callers see the stdlib's behaviour, only faster. Parse errors are ``ValueError`` (orjson's
``JSONDecodeError`` is one), as with :mod:`json`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    try:
        return orjson.dumps(obj, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def loads(data: bytes | bytearray | str) -> Any:
    """Parse JSON text (raises ``ValueError`` on malformed input)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson refuses integers beyond 64 bits and lone surrogates that the stdlib accepts
        return json.loads(data)
