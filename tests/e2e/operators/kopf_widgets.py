"""A kopf operator that installs its own CRD at startup and answers each object's creation and update.

kopf keeps its progress in ``status.kopf`` and stores each handler's result under
``status.<handler>``, through the ``status`` subresource: what any kopf operator does.
"""

from __future__ import annotations

import time
from typing import Any

import kopf
from kubernetes import client, config
from kubernetes.client.rest import ApiException

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "kopfexamples.kopf.dev"},
    "spec": {
        "group": "kopf.dev", "scope": "Namespaced",
        "names": {"plural": "kopfexamples", "singular": "kopfexample", "kind": "KopfExample", "shortNames": ["kex"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
        }],
    },
}


@kopf.on.startup()
def install_crd(logger: kopf.Logger, **_: Any) -> None:
    config.load_kube_config()
    api = client.ApiextensionsV1Api()
    try:
        api.create_custom_resource_definition(CRD)
    except ApiException as error:
        if error.status != 409:
            raise
    for _attempt in range(100):
        crd = api.read_custom_resource_definition(CRD["metadata"]["name"])
        if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
            logger.info("CRD established")
            return
        time.sleep(0.1)
    raise kopf.PermanentError("the CRD never became established")


@kopf.on.create("kopf.dev", "v1", "kopfexamples")
def greet(spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    return {"message": f"hello {spec.get('field', 'nobody')}"}


@kopf.on.update("kopf.dev", "v1", "kopfexamples")
def regreet(spec: kopf.Spec, **_: Any) -> dict[str, Any]:
    return {"message": f"hello again {spec.get('field', 'nobody')}"}
