"""The read-only web dashboard, served by the API server under ``/dashboard/``.

The page (``static/``: plain HTML, CSS and JS — nothing to build) is public, since it
holds no data; everything it shows comes from authenticated requests with the user's
bearer token: ``GET /dashboard/api/state`` (see :mod:`.summary`) every two seconds and a
live watch on ``/api/v1/events``. ``corral up`` prints the page's URL with the token in
the fragment (``#token=…``), which browsers never send to the server.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from aiohttp import web

from corral.apiserver.dashboard.summary import summarize
from corral.store import Store

STATIC_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css"}
PREFIX = "/dashboard"

__all__ = ["PREFIX", "is_public", "serve", "summarize"]

_SUMMARY_RESOURCES = {
    "nodes": "nodes", "pods": "pods", "queues": "queues.corral.dev", "podgroups": "podgroups.corral.dev",
    "trainingjobs": "trainingjobs.corral.dev", "inferenceservices": "inferenceservices.corral.dev",
    "events": "events",
}


def is_public(path: str) -> bool:
    """The static assets need no token; the state endpoint does."""
    return (path == PREFIX or path.startswith(PREFIX + "/")) and not path.startswith(PREFIX + "/api/")


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


def state(store: Store) -> dict[str, Any]:
    """The summary document from the store's current objects."""
    lists = {name: [entry.obj for entry in store.iter_all(resource)] for name, resource in _SUMMARY_RESOURCES.items()}
    return summarize(lists.pop("nodes"), lists.pop("pods"), **lists)


async def serve(request: web.Request, store: Store) -> web.StreamResponse:
    """Answer a request under ``/dashboard``."""
    rest = request.path[len(PREFIX):].strip("/")
    if rest == "":
        if not request.path.endswith("/"):
            raise web.HTTPFound(PREFIX + "/")
        return _static("index.html")
    if rest == "api/state":
        return web.json_response(state(store))
    return _static(rest)
