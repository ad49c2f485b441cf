"""The gateway's route table: a pure structure built from InferenceService and pod objects."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.gateway.routing import build_route_table
from tests.integration.inference_support import pod, service


def test_default_prefix_matches_at_boundaries_only() -> None:
    table = build_route_table([service("digits")], [pod("d-1", "digits", "r1", 8000)])
    assert table.match(None, "/v1/models/digits:predict") is not None
    assert table.match(None, "/v1/models/digits/infer") is not None
    assert table.match(None, "/v1/models/digits") is not None
    assert table.match(None, "/v1/models/digitsx:predict") is None
    assert table.match(None, "/other") is None


def test_host_longest_prefix_and_model_specificity() -> None:
    services = [
        service("generic", route={"pathPrefix": "/v1"}),
        service("embed", route={"pathPrefix": "/v1", "model": "minilm"}),
        service("hosted", route={"host": "api.example.com", "pathPrefix": "/v1"}),
        service("deep", route={"pathPrefix": "/v1/special"}),
    ]
    table = build_route_table(services, [])
    assert table.match(None, "/v1/embeddings", "minilm").service == "default/embed"
    assert table.match(None, "/v1/embeddings", "other").service == "default/generic"
    assert table.match(None, "/v1/embeddings").service == "default/generic"
    assert table.match("api.example.com:8080", "/v1/embeddings", "minilm").service == "default/hosted"
    assert table.match(None, "/v1/special/x").service == "default/deep"
    assert table.needs_model(None, "/v1/embeddings")
    assert not table.needs_model(None, "/v1/special/x")


def test_only_ready_running_pods_with_an_ip_are_backends() -> None:
    pods = [
        pod("a", "svc", "r1", 8000),
        pod("b", "svc", "r1", 8001, ready=False),
        {**pod("c", "svc", "r1", 8002), "metadata": {**pod("c", "svc", "r1", 8002)["metadata"],
                                                     "deletionTimestamp": "2026-01-01T00:00:00Z"}},
        pod("d", "other", "r1", 8003),
    ]
    table = build_route_table([service("svc")], pods)
    route = table.by_service["default/svc"]
    assert [b.address for t in route.revisions for b in t.backends] == ["127.0.0.1:8000"]


def test_traffic_split_follows_status_and_skips_revisions_without_replicas() -> None:
    traffic = [{"revision": "r1", "percent": 80}, {"revision": "r2", "percent": 20}]
    table = build_route_table([service("svc", traffic=traffic)],
                              [pod("a", "svc", "r1", 8000), pod("b", "svc", "r2", 8001)])
    route = table.by_service["default/svc"]
    rng = random.Random(7)
    counts = Counter(route.pick_revision(rng).name for _ in range(10_000))
    assert 1800 <= counts["r2"] <= 2200
    # A canary with no ready replica gives its share back to the stable revision.
    table = build_route_table([service("svc", traffic=traffic)], [pod("a", "svc", "r1", 8000)])
    route = table.by_service["default/svc"]
    assert {route.pick_revision(rng).name for _ in range(200)} == {"r1"}


def test_strip_prefix_rewrites_the_upstream_path() -> None:
    table = build_route_table([service("svc", route={"pathPrefix": "/svc/x", "stripPrefix": True})], [])
    route = table.by_service["default/svc"]
    assert route.upstream_path("/svc/x/predict") == "/predict"
    assert route.upstream_path("/svc/x") == "/"


@settings(max_examples=100, deadline=None)
@given(percents=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=4),
       ready=st.lists(st.booleans(), min_size=4, max_size=4), seed=st.integers(0, 1000))
def test_a_pick_is_always_a_revision_with_ready_replicas(percents, ready, seed) -> None:
    traffic = [{"revision": f"r{i}", "percent": p} for i, p in enumerate(percents)]
    pods = [pod(f"p{i}", "svc", f"r{i}", 8000 + i, ready=ready[i]) for i in range(len(percents))]
    route = build_route_table([service("svc", traffic=traffic)], pods).by_service["default/svc"]
    rng = random.Random(seed)
    choice = route.pick_revision(rng)
    if not any(ready[: len(percents)]):
        assert choice is None
    else:
        assert choice is not None and choice.backends
        if any(p > 0 and ready[i] for i, p in enumerate(percents)):
            assert choice.percent > 0
