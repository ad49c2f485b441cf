"""``authorization.k8s.io/v1``: SelfSubjectAccessReview and SelfSubjectRulesReview (``kubectl auth can-i``).

Both are create-only and answer for the identity of the request's token. The decision
comes from :func:`authorize` / :func:`rules_for`, the one place that says what an
identity may do. corral has no RBAC yet (the tenancy issue adds roles): every
authenticated token may do everything, so a review says ``allowed: true`` and the rules
are ``*`` on everything, which is exactly what the server enforces today. When roles
arrive, these two functions change and the reviews follow.

Bodies are checked as kube-apiserver does: a SelfSubjectAccessReview needs exactly one
of ``spec.resourceAttributes`` and ``spec.nonResourceAttributes`` (422 naming the field
otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from corral.apiserver import errors
from corral.apiserver.auth import Identity

GROUP = "authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
ACCESS_REVIEW = "SelfSubjectAccessReview"
RULES_REVIEW = "SelfSubjectRulesReview"
KINDS = {"selfsubjectaccessreviews": ACCESS_REVIEW, "selfsubjectrulesreviews": RULES_REVIEW}
EVERYONE_MAY = "corral has no RBAC yet: every authenticated token may do everything"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def authorize(identity: Identity, attributes: dict[str, Any]) -> Decision:
    """May ``identity`` do what ``attributes`` (resource or non-resource attributes) describe?"""
    del identity, attributes  # every authenticated identity may do everything until RBAC exists
    return Decision(True, EVERYONE_MAY)


def rules_for(identity: Identity, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The resource and non-resource rules ``identity`` has in ``namespace``."""
    del identity, namespace
    return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            [{"verbs": ["*"], "nonResourceURLs": ["*"]}])


def _spec(body: Any, kind: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request(f"the request body must be a {kind} object, not {type(body).__name__}")
    if body.get("kind") not in (None, kind) or body.get("apiVersion") not in (None, API_VERSION):
        raise errors.bad_request(f"the request body is a {body.get('apiVersion')}/{body.get('kind')}; "
                                 f"expected {API_VERSION}/{kind}")
    spec = body.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise errors.invalid(kind, "", [("spec", f"Invalid value: must be an object, not {type(spec).__name__}")],
                             group=GROUP)
    return spec


def _answer(body: dict[str, Any], kind: str, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": {**metadata, "creationTimestamp": None},
            "spec": spec, "status": status}


def access_review(body: Any, identity: Identity) -> dict[str, Any]:
    """The answered SelfSubjectAccessReview for ``body``."""
    spec = _spec(body, ACCESS_REVIEW)
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        both = "not both" if resource is not None else "one is required"
        raise errors.invalid(ACCESS_REVIEW, "", [(
            "spec.resourceAttributes", f"Invalid value: exactly one of nonResourceAttributes or resourceAttributes "
            f"must be specified ({both})")], group=GROUP)
    for name, attributes in (("resourceAttributes", resource), ("nonResourceAttributes", non_resource)):
        if attributes is not None and not isinstance(attributes, dict):
            raise errors.invalid(ACCESS_REVIEW, "", [(f"spec.{name}", "Invalid value: must be an object")], group=GROUP)
    decision = authorize(identity, resource if isinstance(resource, dict) else cast(dict[str, Any], non_resource))
    return _answer(body, ACCESS_REVIEW, spec, {"allowed": decision.allowed, "reason": decision.reason})


def rules_review(body: Any, identity: Identity) -> dict[str, Any]:
    """The answered SelfSubjectRulesReview for ``body`` (``spec.namespace`` may be empty)."""
    spec = _spec(body, RULES_REVIEW)
    namespace = spec.get("namespace", "")
    if not isinstance(namespace, str):
        raise errors.invalid(RULES_REVIEW, "", [("spec.namespace", "Invalid value: must be a string")], group=GROUP)
    resource_rules, non_resource_rules = rules_for(identity, namespace)
    return _answer(body, RULES_REVIEW, spec, {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                                              "incomplete": False})
