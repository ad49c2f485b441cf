"""Label/field selectors, name validation, human durations and Go's ParseBool."""

from __future__ import annotations

import pytest

from corral.api.selectors import SelectorError, labels_match, matcher, parse_label_selector
from corral.apiserver.errors import ApiError
from corral.apiserver.handlers import parse_bool
from corral.apiserver.tables import human_duration
from corral.apiserver.validation import name_problem


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True), ("a==b", {"a": "c"}, False), ("a!=b", {}, True), ("a!=b", {"a": "b"}, False),
        ("a in (x, y)", {"a": "y"}, True), ("a notin (x,y)", {"a": "x"}, False), ("a notin (x)", {}, True),
        ("a", {"a": ""}, True), ("!a", {"a": "1"}, False), ("a=1,b in (2),!c", {"a": "1", "b": "2"}, True),
        ("example.com/role=gpu", {"example.com/role": "gpu"}, True), ("", {"any": "thing"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), labels) is expected


@pytest.mark.parametrize("bad", ["a in (x", "=b", "a b", "a=b c"])
def test_bad_label_selectors_say_where(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_field_selectors_missing_fields_match_empty() -> None:
    match = matcher(None, "spec.nodeName=,status.phase!=Running")
    assert match is not None
    assert match({"spec": {}, "status": {"phase": "Pending"}})
    assert not match({"spec": {"nodeName": "n"}, "status": {}})
    assert matcher("", "") is None


@pytest.mark.parametrize(("name", "ok"), [("web-1", True), ("a.b.c", True), ("Web", False), ("-a", False),
                                          ("a_b", False), ("x" * 254, False)])
def test_dns1123_subdomain_names(name: str, ok: bool) -> None:
    assert (name_problem("Pod", name) is None) is ok


def test_namespace_and_service_names_are_labels() -> None:
    assert name_problem("Namespace", "a.b") is not None
    assert name_problem("Service", "1abc") is not None
    assert name_problem("Service", "abc") is None


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
                                               (10 * 3600, "10h"), (3 * 86400 + 3600, "3d1h"), (30 * 86400, "30d")])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_parse_bool_is_gos() -> None:
    for text in ("1", "t", "T", "TRUE", "true", "True"):
        assert parse_bool(text, "watch") is True
    for text in ("0", "f", "F", "FALSE", "false", "False"):
        assert parse_bool(text, "watch") is False
    assert parse_bool(None, "watch") is False
    with pytest.raises(ApiError):
        parse_bool("yes", "watch")
