"""Trace replay: published GPU-cluster traces driven through corral's own scheduler plugins,
in-process, on an in-memory snapshot.

- :mod:`.loaders`: one loader per trace format, each turning files into ``NodeSpec`` and
  ``PodRequest`` values (the Alibaba GPU-sharing trace ``openb_*`` CSVs first). A new trace
  format is a new loader registered in ``LOADERS``; the engine does not change.
- :mod:`.replay`: the protocol of the FGD paper's simulator (``docs/simulation.md``): shuffle,
  inflate to 130 % of GPU capacity with clones, a fixed random node rank for ties, one pod
  at a time through ``schedule_group`` with a one-policy profile, metrics after every pod.
- :mod:`.metrics`: discretisation by arrived workload and aggregation over seeds.
- :mod:`.report`: summary JSON, curve CSV and PNG plots.
"""

from corral.sim.trace.loaders import LOADERS, Trace, load_trace
from corral.sim.trace.replay import RunResult, replay

__all__ = ["LOADERS", "RunResult", "Trace", "load_trace", "replay"]
