import json

from corral.apiserver.dashboard.summary import summarize


def node(name: str, gpus: int, *, simulated: bool = True, ready: str = "True") -> dict:
    devices = [{"index": i, "model": "H100-80GB", "memoryMiB": 81920, "simulated": simulated} for i in range(gpus)]
    return {"metadata": {"name": name, "labels": {"corral.dev/simulated-gpus": "true"} if simulated else {},
                         "annotations": {"corral.dev/devices": json.dumps(devices)}},
            "status": {"capacity": {"nvidia.com/gpu": str(gpus)}, "conditions": [{"type": "Ready", "status": ready}]}}


def pod(name: str, node_name: str | None, devices: str | None, phase: str = "Running", **extra: object) -> dict:
    annotations = {"corral.dev/gpu-devices": devices} if devices else {}
    obj = {"metadata": {"name": name, "namespace": "default", "annotations": annotations, "labels": {}},
           "spec": {"nodeName": node_name} if node_name else {}, "status": {"phase": phase}}
    obj["status"].update(extra)  # type: ignore[attr-defined]
    return obj


def test_devices_show_whole_and_fractional_use() -> None:
    doc = summarize(
        [node("n1", 2), node("n2", 1, ready="Unknown")],
        [pod("whole", "n1", "0"), pod("half-a", "n1", "1:0.5"), pod("quarter", "n1", "1:0.25"),
         pod("done", "n2", "0", phase="Succeeded")],
    )
    n1 = doc["nodes"][0]
    assert [d["used"] for d in n1["devices"]] == [1.0, 0.75]
    assert n1["devices"][1]["pods"] == [["default/half-a", 0.5, "Running", None],
                                        ["default/quarter", 0.25, "Running", None]]
    assert doc["nodes"][1]["devices"][0]["used"] == 0.0  # finished pods free their device
    assert doc["nodes"][1]["ready"] == "Unknown"
    assert doc["cluster"] == {"nodes": 2, "gpus": 3, "gpusUsed": 1.75, "allocation": round(1.75 / 3, 4),
                              "podPhases": {"Running": 3, "Succeeded": 1}}


def test_pending_pods_carry_their_reason() -> None:
    waiting = pod("big", None, None, phase="Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}])
    doc = summarize([node("n1", 1)], [waiting])
    assert doc["pending"] == [{"kind": "Pod", "key": "default/big", "queue": "", "group": "",
                               "reason": "Unschedulable",
                               "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]


def test_events_newest_first_and_bounded() -> None:
    events = [{"lastTimestamp": f"2026-01-01T00:00:{i:02d}Z", "type": "Normal", "reason": f"R{i}", "message": "m",
               "involvedObject": {"kind": "Pod", "name": "p"}} for i in range(60)]
    doc = summarize([], [], events=events * 2)
    assert len(doc["events"]) == 100
    assert doc["events"][0]["reason"] == "R59"
