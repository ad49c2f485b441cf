"""Trace loaders: files → :class:`Trace` (nodes as ``NodeSpec``, pods as ``PodRequest``).

``alibaba-gpu-v2023`` (``openb_node_list_*.csv`` + ``openb_pod_list_*.csv``, as published at
github.com/alibaba/clusterdata, ``cluster-trace-gpu-v2023``):

- node row ``sn, cpu_milli, memory_mib, gpu, model`` → a node with ``gpu`` devices of that
  model (label ``nvidia.com/gpu.product``), 1001 pods allowed (the reference simulator's limit);
- pod row ``name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, ...`` →
  ``gpu_count = num_gpu``, per-GPU ``gpu_milli`` clamped to [0, 1000] (a share when
  ``num_gpu == 1`` and it is below 1000), ``gpu_spec`` split on ``|`` into accepted models
  (``V100M16|V100M32``; empty/NaN = any). ``num_gpu == 0`` is a CPU-only pod. Time columns
  are ignored: the FGD protocol replays pods in random order and never deletes them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from corral.scheduler.cache import DeviceSpec, NodeSpec
from corral.scheduler.framework import PodRequest
from corral.scheduler.framework.types import LABEL_GPU_PRODUCT, MILLI

MIB = 2**20


class TraceFormatError(ValueError):
    """A trace file that does not match its format; the message names the file, row and column."""


@dataclass(frozen=True, slots=True)
class Trace:
    name: str
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodRequest, ...]

    @property
    def gpu_milli_capacity(self) -> int:
        return sum(len(n.devices) for n in self.nodes) * MILLI


def _num(row: dict[str, str], col: str, path: Path, line: int) -> int:
    raw = (row.get(col) or "").strip()
    try:
        return int(float(raw)) if raw else 0
    except ValueError:
        raise TraceFormatError(f"{path}:{line}: column {col!r}: {raw!r} is not a number") from None


def _rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise TraceFormatError(f"{path}: missing column(s) {', '.join(missing)}")
        return [(i + 2, row) for i, row in enumerate(reader)]


def alibaba_nodes(path: Path) -> list[NodeSpec]:
    nodes = []
    for line, row in _rows(path, ("sn", "cpu_milli", "memory_mib", "gpu", "model")):
        gpus = _num(row, "gpu", path, line)
        model = (row.get("model") or "").strip()
        if model.lower() == "nan":
            model = ""
        labels = {"kubernetes.io/hostname": row["sn"]}
        if gpus:
            labels[LABEL_GPU_PRODUCT] = model
            labels["nvidia.com/gpu.count"] = str(gpus)
        nodes.append(
            NodeSpec(
                name=row["sn"],
                cpu_milli=_num(row, "cpu_milli", path, line),
                memory=_num(row, "memory_mib", path, line) * MIB,
                pods=1001,
                devices=tuple(DeviceSpec(index=i, model=model) for i in range(gpus)),
                labels=labels,
            )
        )
    return sorted(nodes, key=lambda n: n.name)


def alibaba_pods(path: Path) -> list[PodRequest]:
    pods = []
    for line, row in _rows(path, ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")):
        k = _num(row, "num_gpu", path, line)
        m = min(max(_num(row, "gpu_milli", path, line), 0), MILLI)
        spec_raw = (row.get("gpu_spec") or "").strip()
        tokens = [t for t in spec_raw.split("|") if t and t.lower() != "nan"]
        if k <= 0 or m == 0:
            k, m = 0, MILLI
        pods.append(
            PodRequest(
                key=row["name"],
                cpu_milli=_num(row, "cpu_milli", path, line),
                memory=_num(row, "memory_mib", path, line) * MIB,
                gpu_count=k,
                gpu_milli=m,
                gpu_models=frozenset(tokens) if tokens and k else None,
            )
        )
    return sorted(pods, key=lambda p: p.key)


def load_alibaba(nodes: Path, pods: Path) -> Trace:
    name = pods.stem
    return Trace(name, tuple(alibaba_nodes(nodes)), tuple(alibaba_pods(pods)))


Loader = Callable[[Path, Path], Trace]
LOADERS: dict[str, Loader] = {"alibaba-gpu-v2023": load_alibaba}
"""Trace formats by name. Add a format by adding a loader here."""


def detect_format(pods: Path) -> str:
    with pods.open(newline="") as fh:
        header = next(csv.reader(fh), [])
    if {"name", "num_gpu", "gpu_milli"} <= set(header):
        return "alibaba-gpu-v2023"
    raise TraceFormatError(f"{pods}: unknown trace format (header {header[:6]}); known: {', '.join(LOADERS)}")


def load_trace(nodes: str | Path, pods: str | Path, fmt: str | None = None) -> Trace:
    """Load a trace, detecting the format from the pod file's header unless ``fmt`` is given."""
    nodes, pods = Path(nodes), Path(pods)
    for p in (nodes, pods):
        if not p.is_file():
            raise TraceFormatError(f"{p}: no such file")
    fmt = fmt or detect_format(pods)
    if fmt not in LOADERS:
        raise TraceFormatError(f"unknown trace format {fmt!r}; known: {', '.join(LOADERS)}")
    return LOADERS[fmt](nodes, pods)
