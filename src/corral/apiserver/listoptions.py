"""List and watch options (``resourceVersion``, ``resourceVersionMatch``, ``sendInitialEvents``), checked as kube-apiserver does.

Kubernetes validates these together (``ValidateListOptions`` in apimachinery) and answers a
bad combination with ``422 Invalid`` on ``ListOptions.meta.k8s.io`` naming the field. The
rules, for a **list**:

* ``resourceVersionMatch`` needs a ``resourceVersion`` and no ``continue``; its values are
  ``NotOlderThan`` and ``Exact`` (``Exact`` not with ``resourceVersion=0``);
* ``sendInitialEvents`` is forbidden.

For a **watch**:

* ``sendInitialEvents`` (true or false) needs ``resourceVersionMatch=NotOlderThan``;
* ``resourceVersionMatch`` is forbidden without ``sendInitialEvents``, and must be
  ``NotOlderThan``; neither goes with ``continue``.

What a watch then sends (:meth:`ListOptions.initial_events`): with ``sendInitialEvents=true``
(the *watch-list* of client-go 1.27+, the default of kubectl 1.35 and helm 4) an ``ADDED``
event for every object matching the selectors, then — if ``allowWatchBookmarks`` — a
``BOOKMARK`` whose ``metadata.resourceVersion`` is the snapshot's and whose annotation
``k8s.io/initial-events-end: "true"`` tells the client its list is complete, then the
changes after it. Without ``sendInitialEvents``, the legacy rules: ``resourceVersion`` unset
or ``0`` sends the current objects as ``ADDED`` (no closing bookmark), any other starts
after it. ``sendInitialEvents=false`` sends no initial events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.apiserver import errors
from corral.apiserver.errors import ApiError

NOT_OLDER_THAN = "NotOlderThan"
EXACT = "Exact"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
TRUE_VALUES = frozenset({"", "1", "t", "T", "TRUE", "true", "True"})
FALSE_VALUES = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True)
class ListOptions:
    """The checked options of one list or watch request."""

    watch: bool
    resource_version: str
    resource_version_match: str
    send_initial_events: bool | None
    allow_bookmarks: bool

    @property
    def initial_events(self) -> bool:
        """Whether a watch starts with the current objects as ``ADDED`` events."""
        if self.send_initial_events is not None:
            return self.send_initial_events
        return self.resource_version in ("", "0")

    @property
    def initial_events_end_bookmark(self) -> bool:
        """Whether a watch sends the bookmark that closes its initial events (watch-list)."""
        return self.send_initial_events is True and self.allow_bookmarks

    def minimum_rv(self) -> int | None:
        """The ``resourceVersion`` as a number, ``None`` when unset or ``0`` (any)."""
        if self.resource_version in ("", "0"):
            return None
        try:
            value = int(self.resource_version)
        except ValueError:
            raise errors.bad_request(f"invalid resourceVersion {self.resource_version!r}: expected an integer") from None
        if value < 0:
            raise errors.bad_request(f"invalid resourceVersion {self.resource_version!r}: must not be negative")
        return value


def parse_optional_bool(value: str | None, name: str) -> bool | None:
    """Go's ``strconv.ParseBool`` for a query parameter (empty counts as true, as Kubernetes' query
    conversion does); ``None`` when the parameter is absent, 400 when it is not a boolean."""
    if value is None:
        return None
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise errors.bad_request(f"invalid boolean value {value!r} for query parameter {name!r} (use true or false)")


def _invalid(causes: list[tuple[str, str]]) -> ApiError:
    return errors.invalid("ListOptions", "", causes, group="meta.k8s.io")


def parse_list_options(query: Mapping[str, str]) -> ListOptions:
    """The list/watch options of a request's query, or the 400/422 kube-apiserver answers."""
    watch = bool(parse_optional_bool(query.get("watch"), "watch"))
    rv = query.get("resourceVersion") or ""
    match = query.get("resourceVersionMatch") or ""
    send_initial = parse_optional_bool(query.get("sendInitialEvents"), "sendInitialEvents")
    has_continue = bool(query.get("continue"))
    causes: list[tuple[str, str]] = []
    if watch:
        if send_initial is not None and match != NOT_OLDER_THAN:
            causes.append(("resourceVersionMatch", "Forbidden: sendInitialEvents requires setting "
                           f"resourceVersionMatch to {NOT_OLDER_THAN}"))
        if match:
            if send_initial is None:
                causes.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden for watch "
                               "unless sendInitialEvents is provided"))
            if match != NOT_OLDER_THAN:
                causes.append(("resourceVersionMatch", f'Unsupported value: "{match}": supported values: '
                               f'"{NOT_OLDER_THAN}"'))
            if has_continue:
                causes.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden when continue "
                               "is provided"))
    else:
        if match:
            if not rv:
                causes.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden unless "
                               "resourceVersion is provided"))
            if has_continue:
                causes.append(("resourceVersionMatch", "Forbidden: resourceVersionMatch is forbidden when continue "
                               "is provided"))
            if match not in (EXACT, NOT_OLDER_THAN):
                causes.append(("resourceVersionMatch", f'Unsupported value: "{match}": supported values: '
                               f'"{EXACT}", "{NOT_OLDER_THAN}", ""'))
            if match == EXACT and rv == "0":
                causes.append(("resourceVersionMatch", 'Forbidden: resourceVersionMatch "exact" is forbidden for '
                               'resourceVersion "0"'))
        if send_initial is not None:
            causes.append(("sendInitialEvents", "Forbidden: sendInitialEvents is forbidden for list"))
    if causes:
        raise _invalid(causes)
    bookmarks = bool(parse_optional_bool(query.get("allowWatchBookmarks"), "allowWatchBookmarks"))
    return ListOptions(watch, rv, match, send_initial, bookmarks)


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """What kube-apiserver answers when a ``NotOlderThan`` read asks for a version the server has not reached."""
    return ApiError(504, "Timeout", f"Too large resource version: {requested}, current: {current}",
                    {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})
