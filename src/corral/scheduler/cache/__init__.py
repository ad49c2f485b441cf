"""The scheduler's in-memory snapshot of nodes, devices and placed pods, in numpy arrays.

:class:`Snapshot` holds one row per node (cpu/memory/pod-count allocatable and used, extended
resources, unschedulable, taint-set id, GPU model id, topology block/rack ids, a fixed
tie-break ``rank``) and one ``(node, device)`` cell per GPU (free milli, memory, NVLink
island), plus MIG slices. Plugins read these arrays and compute masks/scores over all nodes
at once; :meth:`Snapshot.assume` / :meth:`Snapshot.forget` apply or undo a placement and bump
``node_version`` for the touched node so plugins can memoise per-node values.

Build it from node/pod JSON dicts (:func:`node_spec_from_obj`, :meth:`Snapshot.add_pod_obj`)
or directly from :class:`NodeSpec` values (the trace loaders do this).
"""

from corral.scheduler.cache.snapshot import DeviceSpec, MigSlice, NodeSpec, Snapshot, node_spec_from_obj

__all__ = ["DeviceSpec", "MigSlice", "NodeSpec", "Snapshot", "node_spec_from_obj"]
