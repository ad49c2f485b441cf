"""corral: the AI layer of Kubernetes.

Embedded mode runs a Kubernetes-compatible API server on SQLite, a GPU-aware
scheduler, controllers, an inference gateway and a node agent in one process;
the same scheduler and controllers run against a real cluster. See
``docs/`` and the README for the tour.
"""

__version__ = "0.1.0"
