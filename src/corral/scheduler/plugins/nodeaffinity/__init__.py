"""Node selector and node affinity. Filter: ``nodeSelector`` and required node affinity
(OR of terms, AND of expressions; ``matchFields`` on ``metadata.name``). Score: the sum of
weights of the preferred terms a node matches, scaled to [0, 100].

Label tests run on per-key value arrays (``snapshot.label_values``), so each expression is
a few numpy operations over all nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from corral.scheduler.cache import Snapshot
from corral.scheduler.framework import (
    CycleState,
    FilterResult,
    PodRequest,
    Rejection,
    SelectorRequirement,
    SelectorTerm,
)
from corral.scheduler.framework.interfaces import BoolArray, FloatArray, IntArray

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"


def _as_int(v: Any) -> float:
    try:
        return float(int(str(v)))
    except ValueError:
        return float("nan")


def requirement_mask(snapshot: Snapshot, req: SelectorRequirement, *, field: bool = False) -> BoolArray:
    values = np.array(snapshot.nodes, dtype=object) if field else snapshot.label_values(req.key)
    present = values != None  # noqa: E711 - elementwise on an object array
    op = req.operator
    if op == "Exists":
        return np.asarray(present, dtype=np.bool_)
    if op == "DoesNotExist":
        return np.asarray(~present, dtype=np.bool_)
    if op in ("In", "NotIn"):
        hit = np.isin(values, np.array(req.values, dtype=object)) & present
        return np.asarray(hit if op == "In" else ~hit, dtype=np.bool_)
    if op in ("Gt", "Lt"):
        if len(req.values) != 1:
            return np.zeros(len(values), dtype=np.bool_)
        bound = _as_int(req.values[0])
        nums = np.array([_as_int(v) if v is not None else np.nan for v in values], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return np.asarray((nums > bound) if op == "Gt" else (nums < bound), dtype=np.bool_)
    return np.zeros(len(values), dtype=np.bool_)


def term_mask(snapshot: Snapshot, term: SelectorTerm) -> BoolArray:
    mask = np.ones(len(snapshot), dtype=np.bool_)
    if not term.expressions and not term.fields:
        return ~mask  # an empty term matches nothing (Kubernetes semantics)
    for req in term.expressions:
        mask &= requirement_mask(snapshot, req)
    for req in term.fields:
        mask &= requirement_mask(snapshot, req, field=req.key == "metadata.name")
    return mask


class NodeAffinity:
    name = NAME

    def filter(self, state: CycleState, snapshot: Snapshot, pod: PodRequest) -> FilterResult:
        n = len(snapshot)
        if not pod.node_selector and not pod.required_terms:
            return FilterResult(snapshot.all_nodes)
        ok = np.ones(n, dtype=np.bool_)
        for key, value in pod.node_selector.items():
            ok &= snapshot.label_values(key) == value
        if pod.required_terms:
            any_term = np.zeros(n, dtype=np.bool_)
            for term in pod.required_terms:
                any_term |= term_mask(snapshot, term)
            ok &= any_term
        return FilterResult.of(n, Rejection(REASON, ~ok, resolvable=False))

    def score(self, state: CycleState, snapshot: Snapshot, pod: PodRequest, nodes: IntArray) -> FloatArray:
        if not pod.preferred_terms:
            return np.zeros(len(nodes))
        total = np.zeros(len(snapshot), dtype=np.float64)
        for weight, term in pod.preferred_terms:
            total += weight * term_mask(snapshot, term)
        sub = total[nodes]
        top = sub.max()
        return sub * (100.0 / top) if top > 0 else np.zeros(len(nodes))


def new(args: Mapping[str, Any]) -> NodeAffinity:
    return NodeAffinity()
