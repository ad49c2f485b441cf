"""Async REST client for the Kubernetes API, informers (list+watch caches) and the rate-limited work queue.

Everything that is not the API server talks to the API through this package only, so the
same code runs against corral's embedded server and a real cluster.
"""

from corral.client.errors import ApiError
from corral.client.events import EventRecorder
from corral.client.informer import Informer, InformerFactory
from corral.client.kubeconfig import Connection, KubeconfigError, load_kubeconfig
from corral.client.rest import ApiClient, WatchEvent, object_key, resource_path, split_key
from corral.client.workqueue import QueueClosedError, WorkQueue

__all__ = [
    "ApiClient", "ApiError", "Connection", "EventRecorder", "Informer", "InformerFactory", "KubeconfigError", "QueueClosedError",
    "WatchEvent", "WorkQueue", "load_kubeconfig", "object_key", "resource_path", "split_key",
]
