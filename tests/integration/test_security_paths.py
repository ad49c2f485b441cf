"""No protected endpoint answers data without a token, however its path is spelled (issue 22, item 1).

Real servers (the API server with both of its fronts, the gateway, the agent), raw HTTP/1.1
requests written byte for byte (HTTP client libraries normalise paths, which would hide the
very spellings under test). Every spelling of every protected route, sent without a token,
must get 400, 401 or 404 — never 200 — and the spellings that mean the same route must
still reach it with a token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.agent.agent import Agent, AgentConfig
from corral.apiserver import dashboard
from corral.apiserver.errors import ApiError
from corral.apiserver.paths import route_path
from corral.apiserver.server import RunningServer, start_server
from corral.client import ApiClient
from corral.client.tokenreview import TokenCheck
from corral.gateway.server import Gateway

API_PROTECTED = [
    "/dashboard/api/state",
    "/metrics",
    "/api",
    "/api/v1",
    "/api/v1/pods",
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces/default/secrets",
    "/api/v1/nodes",
    "/apis",
    "/apis/corral.dev/v1alpha1/queues",
    "/openapi/v3",
]
GATEWAY_PROTECTED = ["/_corral/routes", "/_corral/metrics", "/_corral/feed"]
AGENT_PROTECTED = ["/pods", "/containerLogs/default/p", "/containerLogs/default/p/main"]
DENIED = {400, 401, 404}


def spellings(path: str) -> list[str]:
    """Ways to write ``path`` that some router might take for it."""
    segments = path.strip("/").split("/")
    variants = {path, path + "/", "/" + path, path.upper(), path.title(), path + "?x=1", path + "/.", path + "/%2e"}
    for cut in range(1, len(segments) + 1):
        head, tail = "/".join(segments[:cut - 1]), "/".join(segments[cut - 1:])
        lead = f"/{head}" if head else ""
        variants.add(f"{lead}//{tail}")
        variants.add(f"{lead}/./{tail}")
        variants.add(f"{lead}/%2e/{tail}")
        variants.add(f"{lead}/x/../{tail}")
        variants.add(f"{lead}/x/%2E%2e/{tail}")
        variants.add(f"{lead}/{tail.replace('/', '%2F', 1)}")
        variants.add(f"{lead}/{tail.replace('/', '%2f', 1)}")
        variants.add(f"{lead}/%2F{tail}")
        variants.add(f"{lead}/{tail[0].upper()}{tail[1:]}")
        first = tail.split("/")[0]
        variants.add(f"{lead}/{''.join(f'%{ord(c):02X}' for c in first)}{tail[len(first):]}")  # fully encoded
    return sorted(variants)


async def raw_get(url: str, target: str, token: str | None = None) -> tuple[int, bytes]:
    """One ``GET target HTTP/1.1`` on a fresh connection, exactly as written."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n".encode("latin-1"))
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@dataclass
class Servers:
    api: RunningServer
    gateway: Gateway
    agent: Agent


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    api = await start_server(tmp_path / "api", tls=False)
    assert api.kubeconfig is not None
    client = ApiClient.from_kubeconfig(api.kubeconfig)
    gateway = Gateway(token_check=TokenCheck.for_client(client))
    await gateway.start()
    agent = Agent(client, AgentConfig(data_dir=tmp_path / "agent", node_name="node-a", discover_gpus=False,
                                      heartbeat_interval=0.5, lease_duration=2))
    await agent.start()
    try:
        yield Servers(api, gateway, agent)
    finally:
        await agent.stop()
        await gateway.stop()
        await client.close()
        await api.stop()


async def assert_denied(url: str, paths: list[str]) -> int:
    checked = 0
    for path in paths:
        for target in spellings(path):
            status, body = await raw_get(url, target)
            assert status in DENIED, f"GET {target} without a token answered {status}: {body[:300]!r}"
            if status != 404:  # a router's own 404 page need not be a Status; ours are
                assert json.loads(body)["kind"] == "Status", (target, body[:200])
            checked += 1
    return checked


async def test_no_spelling_of_a_protected_api_route_answers_without_a_token(servers: Servers) -> None:
    checked = await assert_denied(servers.api.url, API_PROTECTED)
    assert checked > 150
    # the two reproductions, by name
    for target in ("/dashboard//api/state", "/dashboard/%2Fapi/state", "/dashboard/%2fapi/state",
                   "/dashboard/x/../api/state", "/dashboard/./api/state", "/dashboard/%2e/api/state"):
        status, _ = await raw_get(servers.api.url, target)
        assert status in (400, 401), target


async def test_collapsed_slashes_reach_the_same_route_with_a_token(servers: Servers) -> None:
    token = servers.api.token
    for target in ("/dashboard//api/state", "//api/v1/pods", "/api//v1/namespaces//default/pods", "/api/v1/pods/"):
        status, body = await raw_get(servers.api.url, target, token)
        assert status == 200, (target, body[:200])
    for target in ("/dashboard/%2Fapi/state", "/api/v1/namespaces/default%2Fx/pods", "/api/v1/../v1/pods",
                   "/api/v1/%2e%2e/v1/pods"):
        status, body = await raw_get(servers.api.url, target, token)
        assert status == 400, (target, body[:200])
        assert json.loads(body)["reason"] == "BadRequest"
    status, _ = await raw_get(servers.api.url, "/dashboard/app.js")  # the page's assets stay public
    assert status == 200
    assert (await raw_get(servers.api.url, "/healthz"))[0] == 200


async def test_gateway_introspection_needs_a_token_in_every_spelling(servers: Servers) -> None:
    checked = await assert_denied(servers.gateway.url, GATEWAY_PROTECTED)
    assert checked > 30
    assert (await raw_get(servers.gateway.url, "/_corral/healthz"))[0] == 200
    status, body = await raw_get(servers.gateway.url, "/_corral/routes", servers.api.token)
    assert status == 200 and "routes" in json.loads(body)


async def test_gateway_asks_the_api_server_about_other_tokens(servers: Servers) -> None:
    assert servers.api.server.tokens.path.exists()
    from corral.apiserver.auth import Identity

    servers.api.server.tokens.add("second-token", Identity("viewer", "viewer"))
    assert (await raw_get(servers.gateway.url, "/_corral/routes", "second-token"))[0] == 200
    assert (await raw_get(servers.gateway.url, "/_corral/routes", "wrong-token"))[0] == 401
    status, _ = await raw_get(f"http://127.0.0.1:{servers.agent.port}", "/pods", "second-token")
    assert status == 200


async def test_agent_introspection_needs_a_token_in_every_spelling(servers: Servers) -> None:
    url = f"http://127.0.0.1:{servers.agent.port}"
    checked = await assert_denied(url, AGENT_PROTECTED)
    assert checked > 30
    assert (await raw_get(url, "/healthz"))[0] == 200
    status, body = await raw_get(url, "/pods", servers.api.token)
    assert status == 200 and json.loads(body)["kind"] == "PodList"


@pytest.mark.parametrize(("target", "expected"), [
    ("/api/v1/pods", "/api/v1/pods"),
    ("/api/v1/pods?watch=1", "/api/v1/pods"),
    ("//api//v1/pods", "/api/v1/pods"),
    ("/dashboard//", "/dashboard/"),
    ("/dashboard/", "/dashboard/"),
    ("/", "/"),
    ("//", "/"),
    ("/api/v1/namespaces/a%20b/pods", "/api/v1/namespaces/a b/pods"),
    ("/api/v1/namespaces/a%252Fb/pods", "/api/v1/namespaces/a%2Fb/pods"),
    ("http://h:1/api/v1/pods", "/api/v1/pods"),
])
def test_route_path_canonical_forms(target: str, expected: str) -> None:
    assert route_path(target) == expected


@pytest.mark.parametrize("target", [
    "/a/%2F/b", "/a%2fb", "/a/./b", "/a/../b", "/a/%2e/b", "/a/%2E%2e/b", "/..", "/a/.", "/a/%ff", "api/v1",
])
def test_route_path_rejects_what_would_change_routing(target: str) -> None:
    with pytest.raises(ApiError) as raised:
        route_path(target)
    assert raised.value.code == 400 and raised.value.reason == "BadRequest"


SEGMENT = st.sampled_from(["", ".", "..", "%2e", "%2E%2e", "%2F", "%2f", "dashboard", "api", "state", "v1", "pods",
                           "%61pi", "app.js", "a%20b", "%25", "x"])


@given(st.lists(SEGMENT, max_size=8), st.booleans())
def test_route_path_output_is_canonical_and_stable(segments: list[str], trailing: bool) -> None:
    target = "/" + "/".join(segments) + ("/" if trailing else "")
    try:
        path = route_path(target)
    except ApiError as error:
        assert error.code == 400
        return
    inner = path.strip("/").split("/")
    assert path.startswith("/") and "//" not in path
    assert not any(part in (".", "..") for part in inner)
    if "%" not in path:
        assert route_path(path) == path  # canonical: deciding twice gives the same answer
    if dashboard.is_public(path):  # the only public dashboard paths: the page and one-segment assets
        assert path in ("/dashboard", "/dashboard/") or (path.count("/") == 2 and path != "/dashboard/api")
