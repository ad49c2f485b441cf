"""Built-in scheduler plugins, one package each (they never import each other), and the
registry that names them. Score policies from the FGD paper are selectable by name:
``random``, ``dotprod``, ``gpu-clustering``, ``gpu-packing``, ``bestfit``, ``fgd``; ``corral``
is corral's own fragmentation-aware policy (the default for GPU pods)."""

from __future__ import annotations

from corral.scheduler.framework import Registry
from corral.scheduler.plugins import (
    allocation,
    bestfit,
    corralpolicy,
    dotprod,
    fgd,
    gpuclustering,
    gpudevices,
    gpupacking,
    nodeaffinity,
    nodename,
    noderesources,
    nodeunschedulable,
    prioritysort,
    random,
    tainttoleration,
    topology,
)

POLICIES: tuple[str, ...] = ("random", "dotprod", "gpu-clustering", "gpu-packing", "bestfit", "fgd", "corral")
"""Placement score policies selectable by name (``corral sim trace --policy``)."""


def default_registry() -> Registry:
    """A fresh registry of every built-in plugin."""
    return Registry(
        {
            prioritysort.NAME: prioritysort.new,
            nodeunschedulable.NAME: nodeunschedulable.new,
            nodename.NAME: nodename.new,
            tainttoleration.NAME: tainttoleration.new,
            nodeaffinity.NAME: nodeaffinity.new,
            noderesources.NAME: noderesources.new,
            gpudevices.NAME: gpudevices.new,
            topology.NAME: topology.new,
            "LeastAllocated": allocation.new_least,
            "MostAllocated": allocation.new_most,
            "BalancedAllocation": allocation.new_balanced,
            random.NAME: random.new,
            dotprod.NAME: dotprod.new,
            gpuclustering.NAME: gpuclustering.new,
            gpupacking.NAME: gpupacking.new,
            bestfit.NAME: bestfit.new,
            fgd.NAME: fgd.new,
            corralpolicy.NAME: corralpolicy.new,
        }
    )


__all__ = ["POLICIES", "default_registry"]
