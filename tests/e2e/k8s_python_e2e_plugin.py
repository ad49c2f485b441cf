"""pytest plugin loaded into the Kubernetes Python client's own e2e suite (``-p``), nothing else.

The suite imports itself as ``kubernetes.e2e_test``, but the ``kubernetes`` wheel on PyPI ships
without it, and putting a checkout's ``kubernetes/`` on ``sys.path`` would shadow the pinned client
with the checkout's. So this extends the installed package's ``__path__`` with the directory that
holds the suite (``CORRAL_K8S_PYTHON_E2E``): the tests run unchanged, against the pinned client.
"""

from __future__ import annotations

import os

import kubernetes

SUITE_PARENT = os.path.join(os.environ["CORRAL_K8S_PYTHON_E2E"], "kubernetes")
if SUITE_PARENT not in kubernetes.__path__:
    kubernetes.__path__.append(SUITE_PARENT)
