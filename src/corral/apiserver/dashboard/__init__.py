"""The read-only web dashboard, served by the API server under ``/dashboard/``.

The page (``static/``: plain HTML, CSS and JS — nothing to build) is public, since it
holds no data; everything it shows comes from authenticated requests with the user's
bearer token: ``GET /dashboard/api/state`` (see :mod:`.summary`) every two seconds and a
live watch on ``/api/v1/events``. ``corral up`` prints the page's URL with the token in
the fragment (``#token=…``), which browsers never send to the server.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

from aiohttp import web

from corral.apiserver.dashboard.summary import ParseCache, summarize
from corral.store import Store

STATIC_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css"}
PREFIX = "/dashboard"

__all__ = ["PREFIX", "Dashboard", "is_public", "summarize"]

_SUMMARY_RESOURCES = {
    "nodes": "nodes", "pods": "pods", "queues": "queues.corral.dev", "podgroups": "podgroups.corral.dev",
    "trainingjobs": "trainingjobs.corral.dev", "inferenceservices": "inferenceservices.corral.dev",
    "events": "events",
}


def is_public(path: str) -> bool:
    """The page and its static assets need no token; the state endpoint (and anything else) does.

    ``path`` is the canonical path (:func:`corral.apiserver.paths.route_path`), the same
    string :meth:`Dashboard.serve` routes on: public are ``/dashboard``, ``/dashboard/``
    and ``/dashboard/NAME`` for one segment ``NAME`` other than ``api``.
    """
    if path in (PREFIX, PREFIX + "/"):
        return True
    if not path.startswith(PREFIX + "/"):
        return False
    rest = path[len(PREFIX) + 1:]
    return "/" not in rest and rest != "api"


def _static(name: str) -> web.Response:
    if "/" in name or name.startswith("."):
        raise web.HTTPNotFound(text=f"no dashboard asset {name!r}")
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    content_type = STATIC_TYPES.get(suffix)
    asset = resources.files(__package__).joinpath("static", name)
    if content_type is None or not asset.is_file():
        raise web.HTTPNotFound(text=f"no dashboard asset {name!r}")
    return web.Response(body=asset.read_bytes(), content_type=content_type,
                        headers={"Cache-Control": "no-cache"})


class Dashboard:
    """Serves ``/dashboard``.

    The encoded summary is reused while the store has not changed, and for at most
    ``max_staleness`` seconds while it has (a busy cluster changes every few
    milliseconds — node leases alone — and the page refreshes every 2 s anyway), so
    any number of open dashboards cost at most one summary per second.
    """

    def __init__(self, store: Store, *, max_staleness: float = 1.0) -> None:
        self.store = store
        self.cache = ParseCache()
        self.max_staleness = max_staleness
        self._encoded: tuple[int, float, bytes] | None = None

    def state(self) -> dict[str, Any]:
        """The summary document from the store's current objects."""
        lists = {name: [entry.obj for entry in self.store.iter_all(resource)]
                 for name, resource in _SUMMARY_RESOURCES.items()}
        return summarize(lists.pop("nodes"), lists.pop("pods"), cache=self.cache, **lists)

    def encoded_state(self) -> bytes:
        revision, now = self.store.rv, time.monotonic()
        cached = self._encoded
        if cached is None or (cached[0] != revision and now - cached[1] >= self.max_staleness):
            cached = (revision, now, json.dumps(self.state(), separators=(",", ":")).encode())
            self._encoded = cached
        return cached[2]

    async def serve(self, path: str) -> web.StreamResponse:
        """Answer ``path`` (canonical, under ``/dashboard``: the one authentication was decided on)."""
        rest = path[len(PREFIX):]
        if rest == "":
            raise web.HTTPFound(PREFIX + "/")
        if rest == "/":
            return _static("index.html")
        if rest in ("/api/state", "/api/state/"):
            return web.Response(body=self.encoded_state(), content_type="application/json")
        return _static(rest[1:])
