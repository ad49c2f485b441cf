"""Owner references and cascading deletion: the names the API server and the collector share.

A delete request names a propagation policy. ``Background`` needs nothing from the object:
the garbage collector notices later that a dependent's owners are gone. ``Foreground`` and
``Orphan`` are carried by a finalizer on the owner, which the API server adds and the
collector removes once it has deleted (foreground) or released (orphan) the dependents —
the same finalizer names Kubernetes uses, so clients that look for them keep working.
Events and leases are not collected (they churn and are never owners in practice), so the
server does not put either finalizer on them; Kubernetes' collector ignores events too.
"""

from __future__ import annotations

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
PROPAGATION_POLICIES = ("Background", "Foreground", "Orphan")
GC_FINALIZERS: dict[str, str] = {"Foreground": FOREGROUND_FINALIZER, "Orphan": ORPHAN_FINALIZER}
GC_IGNORED_PLURALS = frozenset({"events", "leases", "namespaces"})
