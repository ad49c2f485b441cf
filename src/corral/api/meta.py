"""Object metadata and the shared building blocks of every kind.

These mirror ``k8s.io/apimachinery`` types closely enough that a Kubernetes user
reads them without surprise. Core kinds allow unknown fields (a server must
round-trip what it does not model); corral's own kinds build on
:class:`StrictModel` and reject them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class LenientModel(BaseModel):
    """Base of core-kind models: unknown fields are kept, as Kubernetes round-trips them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, allow_inf_nan=False)


class StrictModel(BaseModel):
    """Base of corral.dev models: unknown fields are an error naming the field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class OwnerReference(LenientModel):
    api_version: str = Field(alias="apiVersion")
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = Field(default=None, alias="blockOwnerDeletion")


class ManagedFieldsEntry(LenientModel):
    manager: str | None = None
    operation: str | None = None
    api_version: str | None = Field(default=None, alias="apiVersion")
    time: str | None = None
    fields_type: str | None = Field(default=None, alias="fieldsType")
    fields_v1: dict[str, Any] | None = Field(default=None, alias="fieldsV1")
    subresource: str | None = None


class ObjectMeta(LenientModel):
    name: str | None = None
    generate_name: str | None = Field(default=None, alias="generateName")
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    generation: int | None = None
    creation_timestamp: str | None = Field(default=None, alias="creationTimestamp")
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")
    deletion_grace_period_seconds: int | None = Field(default=None, alias="deletionGracePeriodSeconds")
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = Field(default=None, alias="ownerReferences")
    finalizers: list[str] | None = None
    managed_fields: list[ManagedFieldsEntry] | None = Field(default=None, alias="managedFields")


class ListMeta(LenientModel):
    resource_version: str | None = Field(default=None, alias="resourceVersion")
    continue_: str | None = Field(default=None, alias="continue")
    remaining_item_count: int | None = Field(default=None, alias="remainingItemCount")


class Condition(LenientModel):
    """A status condition as ``metav1.Condition`` defines it."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = Field(default=None, alias="lastTransitionTime")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class LabelSelectorRequirement(LenientModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(LenientModel):
    match_labels: dict[str, str] | None = Field(default=None, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, alias="matchExpressions")


class StrictObjectMeta(ObjectMeta):
    """Metadata inside strict kinds: metadata itself stays lenient (kubectl adds fields)."""


class CorralObject(StrictModel):
    """Base for corral.dev/v1alpha1 kinds: strict spec and status, lenient metadata."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
