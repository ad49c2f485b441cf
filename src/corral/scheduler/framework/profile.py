"""Scheduler profiles: which plugins run, with which weights and args, loadable from YAML.

Config file (``corral up --scheduler-config FILE``)::

    apiVersion: corral.dev/v1alpha1
    kind: SchedulerConfiguration
    profiles:
    - schedulerName: corral
      plugins:                       # each plugin joins every extension point it implements
      - NodeUnschedulable
      - TaintToleration
      - NodeAffinity
      - NodeResourcesFit
      - GpuDevices
      - {name: corral, weight: 4}    # weight applies to Score
      - {name: Topology, weight: 1}
      pluginConfig:
      - name: fgd
        args: {}

``plugins`` replaces the default list when given; ``disabled: [names]`` removes from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SCHEDULER_NAME = "corral"

DEFAULT_PLUGINS: tuple[tuple[str, int], ...] = (
    ("PrioritySort", 1),
    ("NodeUnschedulable", 1),
    ("NodeName", 1),
    ("TaintToleration", 1),
    ("NodeAffinity", 1),
    ("NodeResourcesFit", 1),
    ("GpuDevices", 1),
    ("corral", 5),
    ("BalancedAllocation", 1),
    ("Topology", 2),
)
"""The default profile: the filters every placement needs, corral's GPU policy (it scores
pods without GPUs too, steering them away from free GPUs), balance and topology."""

FILTERS: tuple[str, ...] = ("NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodeResourcesFit", "GpuDevices")


class ConfigError(ValueError):
    """A scheduler config that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class PluginRef:
    name: str
    weight: int = 1
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Profile:
    """One scheduler profile: ``scheduler_name`` and its plugins in order."""

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    plugins: tuple[PluginRef, ...] = tuple(PluginRef(n, w) for n, w in DEFAULT_PLUGINS)

    @staticmethod
    def default() -> Profile:
        return Profile()

    @staticmethod
    def for_policy(policy: str, *, args: Mapping[str, Any] | None = None, extra_filters: Sequence[str] = ()) -> Profile:
        """The trace-replay profile: the filters and exactly one score plugin, ``policy``
        (as the FGD paper's simulator runs it: weight 1, no other scores)."""
        refs = [PluginRef(n) for n in (*FILTERS, *extra_filters)]
        refs.append(PluginRef(policy, 1, dict(args or {})))
        return Profile(scheduler_name=policy, plugins=tuple(refs))


def _plugin_ref(raw: Any, where: str, plugin_args: Mapping[str, Mapping[str, Any]]) -> PluginRef:
    if isinstance(raw, str):
        return PluginRef(raw, 1, plugin_args.get(raw, {}))
    if isinstance(raw, Mapping) and isinstance(raw.get("name"), str):
        weight = raw.get("weight", 1)
        if not isinstance(weight, int) or weight < 0:
            raise ConfigError(f"{where}.weight: must be a non-negative integer, not {weight!r}")
        args = raw.get("args", plugin_args.get(raw["name"], {}))
        if not isinstance(args, Mapping):
            raise ConfigError(f"{where}.args: must be a mapping")
        return PluginRef(raw["name"], weight, args)
    raise ConfigError(f"{where}: expected a plugin name or {{name, weight, args}}, not {raw!r}")


def profiles_from_config(data: Mapping[str, Any]) -> dict[str, Profile]:
    """Profiles by scheduler name from a parsed SchedulerConfiguration."""
    raw_profiles = data.get("profiles")
    if raw_profiles is None:
        return {DEFAULT_SCHEDULER_NAME: Profile.default()}
    if not isinstance(raw_profiles, list):
        raise ConfigError("profiles: must be a list")
    out: dict[str, Profile] = {}
    for i, raw in enumerate(raw_profiles):
        where = f"profiles[{i}]"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: must be a mapping")
        name = raw.get("schedulerName", DEFAULT_SCHEDULER_NAME)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.schedulerName: must be a non-empty string")
        plugin_args: dict[str, Mapping[str, Any]] = {}
        for j, pc in enumerate(raw.get("pluginConfig") or ()):
            if not isinstance(pc, Mapping) or not isinstance(pc.get("name"), str):
                raise ConfigError(f"{where}.pluginConfig[{j}]: expected {{name, args}}")
            plugin_args[pc["name"]] = pc.get("args") or {}
        if "plugins" in raw:
            if not isinstance(raw["plugins"], list):
                raise ConfigError(f"{where}.plugins: must be a list")
            refs = [_plugin_ref(p, f"{where}.plugins[{j}]", plugin_args) for j, p in enumerate(raw["plugins"])]
        else:
            refs = [PluginRef(n, w, plugin_args.get(n, {})) for n, w in DEFAULT_PLUGINS]
        disabled = set(raw.get("disabled") or ())
        refs = [r for r in refs if r.name not in disabled]
        if name in out:
            raise ConfigError(f"{where}.schedulerName: duplicate profile {name!r}")
        out[name] = Profile(name, tuple(refs))
    return out


def load_config(path: str | Path) -> dict[str, Profile]:
    """Read a SchedulerConfiguration YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return profiles_from_config(data)
