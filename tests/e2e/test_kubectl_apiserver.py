"""Real kubectl (the one on PATH) against an in-process API server over HTTPS."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from corral.apiserver.server import RunningServer
from corral.testing.apiserver import running_apiserver

pytestmark = pytest.mark.e2e

POD_YAML = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
    - name: main
      image: busybox
      env: [{name: A, value: "1"}]
"""


class Kubectl:
    def __init__(self, binary: str, server: RunningServer) -> None:
        self.binary = binary
        self.server = server
        self.env = {**os.environ, "KUBECONFIG": str(server.kubeconfig), "KUBECACHEDIR": str(Path(str(server.kubeconfig)).parent / "cache")}

    async def run(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        process = await asyncio.create_subprocess_exec(
            self.binary, *args, env=self.env, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin is not None else None), 30)
        if check:
            assert process.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
            assert not err.strip() or b"Warning" in err, err.decode()
        return out.decode() + (err.decode() if not check else "")


@pytest.fixture
async def k(kubectl: str, tmp_path: Path) -> AsyncIterator[Kubectl]:
    async with running_apiserver(tmp_path) as server:
        yield Kubectl(kubectl, server)


async def test_apply_create_then_changed_file_then_server_side(k: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD_YAML)
    assert "pod/web created" in await k.run("apply", "-f", str(manifest))
    changed = POD_YAML.replace("app: web", "app: web2").replace('value: "1"', 'value: "2"')
    manifest.write_text(changed)
    assert "pod/web configured" in await k.run("apply", "-f", str(manifest))
    pod = json.loads(await k.run("get", "pod", "web", "-o", "json"))
    assert pod["metadata"]["labels"] == {"app": "web2"}
    assert pod["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]
    assert pod["metadata"]["generation"] == 2
    assert "serverside-applied" in await k.run("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n")
    assert "serverside-applied" in await k.run("apply", "--server-side", "-f", str(cm))
    got = json.loads(await k.run("get", "configmap", "cfg", "-o", "json", "--show-managed-fields"))
    assert got["data"] == {"a": "1"}
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in got["metadata"]["managedFields"])


async def test_get_output_formats_selectors_and_all_namespaces(k: Kubectl) -> None:
    await k.run("apply", "-f", "-", stdin=POD_YAML)
    await k.run("apply", "-f", "-", stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n")
    await k.run("apply", "-n", "team", "-f", "-", stdin=POD_YAML.replace("name: web", "name: api").replace("app: web", "app: api"))
    table = await k.run("get", "pods")
    assert table.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and "web" in table
    wide = await k.run("get", "pods", "-o", "wide")
    assert "IP" in wide.split("\n")[0] and "NODE" in wide.split("\n")[0]
    assert (await k.run("get", "pods", "-o", "name")).strip() == "pod/web"
    assert yaml.safe_load(await k.run("get", "pod", "web", "-o", "yaml"))["spec"]["schedulerName"] == "corral"
    everything = await k.run("get", "pods", "-A")
    assert "NAMESPACE" in everything and "team" in everything and "default" in everything
    assert (await k.run("get", "pods", "-A", "-l", "app=api", "-o", "name")).strip() == "pod/api"
    assert (await k.run("get", "pods", "-A", "--field-selector", "metadata.namespace=team", "-o", "name")).strip() == "pod/api"
    assert "Pending" in await k.run("describe", "pod", "web")
    assert "No resources found" in await k.run("get", "nodes", check=False)


async def test_patch_label_annotate_delete(k: Kubectl) -> None:
    await k.run("apply", "-f", "-", stdin=POD_YAML)
    await k.run("patch", "pod", "web", "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    await k.run("patch", "pod", "web", "--type=json", "-p", '[{"op":"add","path":"/metadata/labels/j","value":"2"}]')
    await k.run("patch", "pod", "web", "-p", '{"spec":{"containers":[{"name":"main","image":"busybox:2"}]}}')
    await k.run("label", "pod", "web", "tier=front")
    await k.run("annotate", "pod", "web", "note=hello")
    pod = json.loads(await k.run("get", "pod", "web", "-o", "json"))
    assert pod["metadata"]["labels"] == {"app": "web", "m": "1", "j": "2", "tier": "front"}
    assert pod["metadata"]["annotations"]["note"] == "hello"
    assert pod["spec"]["containers"][0]["image"] == "busybox:2" and pod["spec"]["containers"][0]["env"]
    assert 'pod "web" deleted' in await k.run("delete", "pod", "web")
    assert "No resources found" in await k.run("get", "pods", check=False)


async def test_get_watch_sees_added_modified_deleted(k: Kubectl) -> None:
    process = await asyncio.create_subprocess_exec(
        k.binary, "get", "pods", "--watch", "--output-watch-events", "--request-timeout=20s", env=k.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    try:
        await asyncio.sleep(1.0)
        await k.run("apply", "-f", "-", stdin=POD_YAML)
        await k.run("label", "pod", "web", "x=1")
        await k.run("delete", "pod", "web")
        seen: list[str] = []
        async with asyncio.timeout(15):
            while not {"ADDED", "MODIFIED", "DELETED"} <= set(seen):
                line = (await process.stdout.readline()).decode()
                assert line, "kubectl get --watch ended early"
                seen.append(line.split()[0])
    finally:
        process.terminate()
        await process.wait()


async def test_explain_and_logs(k: Kubectl) -> None:
    explained = await k.run("explain", "pod.spec")
    assert "containers" in explained and "nodeName" in explained
    await k.run("apply", "-f", "-", stdin=POD_YAML)
    assert k.server.kubeconfig is not None
    log = k.server.kubeconfig.parent / "logs" / "default" / "web" / "main.log"
    log.parent.mkdir(parents=True)
    log.write_text("hello from web\n")
    assert (await k.run("logs", "web")) == "hello from web\n"


async def test_typed_create_commands_send_protobuf_and_work(k: Kubectl) -> None:
    await k.run("create", "namespace", "team")
    await k.run("create", "configmap", "cfg", "-n", "team", "--from-literal=a=1")
    await k.run("create", "secret", "generic", "pw", "-n", "team", "--from-literal=p=secret")
    assert json.loads(await k.run("get", "configmap", "cfg", "-n", "team", "-o", "json"))["data"] == {"a": "1"}
    secret = json.loads(await k.run("get", "secret", "pw", "-n", "team", "-o", "json"))
    assert secret["data"] == {"p": "c2VjcmV0"} and secret["type"] == "Opaque"


async def test_auth_whoami_names_the_token_identity(k: Kubectl) -> None:
    whoami = await k.run("auth", "whoami")
    assert "admin" in whoami and "system:masters" in whoami
