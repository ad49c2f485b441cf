"""corral's scheduler framework: extension points, Status, CycleState, registry, profiles,
and the pure placement entry point.

Contract (what the live scheduler, queues and the trace replay code against):

- A pod is a :class:`PodRequest` (``types.pod_request_from_obj(pod_dict)`` parses one;
  trace loaders build them directly). A group is a sequence of them; a bare pod is a
  group of one.
- The cluster is a :class:`corral.scheduler.cache.Snapshot` (numpy arrays over nodes and
  devices). Build it from ``NodeSpec`` values (``cache.node_spec_from_obj(node_dict)``),
  account already-bound pods with ``snapshot.add_pod_obj(pod_dict)``, keep it current with
  ``upsert_node``/``remove_node``/``assume``/``forget``.
- ``Framework(profile, registry)`` instantiates a :class:`Profile` (``Profile.default()``,
  ``Profile.for_policy("fgd")``, or ``load_config(path)[scheduler_name]``) with plugins from a
  :class:`Registry` (``corral.scheduler.plugins.default_registry()``). Each plugin joins every
  extension point (Protocol in :mod:`.interfaces`) it implements: QueueSort, PreFilter,
  Filter (vectorised masks), PostFilter, Score (vectorised, [0, 100], weighted), device
  choice, Reserve/Unreserve, Permit, Bind.
- ``schedule_group(snapshot, pods, framework, rng=..., assume=True) -> GroupResult``: pure
  except for mutating ``snapshot``. Places every member (node *and* devices) or none.
  ``result.placements[i]`` is a :class:`Placement` (``node``, ``node_index``, ``devices``;
  ``placement.gpu_devices`` is the ``corral.dev/gpu-devices`` annotation value). On failure
  ``result.failure`` is a :class:`Diagnosis`: ``reason_counts`` (each node once, under its
  first rejecting reason), ``node_reasons``, ``unresolvable`` mask, ``status``, and
  ``message()`` in kube-scheduler's words (``0/5000 nodes are available: ...``).
  With ``assume=True`` successful placements stay accounted in the snapshot; the caller
  binds and calls ``snapshot.forget(pod.key)`` for any bind that fails (then re-queues the
  whole group). Ties between equal scores go to the lowest ``snapshot.rank``.
- ``Status`` codes: SUCCESS, UNSCHEDULABLE, UNRESOLVABLE, WAIT, SKIP, ERROR, with ``reasons``.
"""

from corral.scheduler.framework.cycle_state import CycleState
from corral.scheduler.framework.interfaces import (
    BindPlugin,
    DeviceChooserPlugin,
    Diagnosis,
    FilterPlugin,
    FilterResult,
    PermitPlugin,
    Plugin,
    PostFilterPlugin,
    PreFilterPlugin,
    QueuedGroup,
    QueueSortPlugin,
    Rejection,
    ReservePlugin,
    ScorePlugin,
)
from corral.scheduler.framework.profile import (
    ConfigError,
    PluginRef,
    Profile,
    load_config,
    profiles_from_config,
)
from corral.scheduler.framework.registry import PluginFactory, Registry
from corral.scheduler.framework.runtime import (
    Framework,
    GroupResult,
    diagnose,
    schedule_group,
    schedule_one,
    select_node,
)
from corral.scheduler.framework.status import Code, Status
from corral.scheduler.framework.types import (
    DeviceAssignment,
    Placement,
    PodRequest,
    PodSpecError,
    SelectorRequirement,
    SelectorTerm,
    Taint,
    Toleration,
    format_gpu_devices,
    parse_gpu_devices,
    pod_request_from_obj,
)

__all__ = [
    "BindPlugin",
    "Code",
    "ConfigError",
    "CycleState",
    "DeviceAssignment",
    "DeviceChooserPlugin",
    "Diagnosis",
    "FilterPlugin",
    "FilterResult",
    "Framework",
    "GroupResult",
    "PermitPlugin",
    "Placement",
    "Plugin",
    "PluginFactory",
    "PluginRef",
    "PodRequest",
    "PodSpecError",
    "PostFilterPlugin",
    "PreFilterPlugin",
    "Profile",
    "QueueSortPlugin",
    "QueuedGroup",
    "Registry",
    "Rejection",
    "ReservePlugin",
    "ScorePlugin",
    "SelectorRequirement",
    "SelectorTerm",
    "Status",
    "Taint",
    "Toleration",
    "diagnose",
    "format_gpu_devices",
    "load_config",
    "parse_gpu_devices",
    "pod_request_from_obj",
    "profiles_from_config",
    "schedule_group",
    "schedule_one",
    "select_node",
]
