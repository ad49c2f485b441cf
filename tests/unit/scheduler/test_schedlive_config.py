"""Scheduler config file and node sampling."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.scheduler.cycle import BindDecision, Scheduler
from corral.scheduler.framework import ConfigError, Profile
from corral.scheduler.plugins import default_registry
from corral.scheduler.sampling import SampledFramework, nodes_to_score
from corral.scheduler.service import SchedulerConfig
from corral.testing import FakeClock

from .schedlive_build import bound, nodes, pod


def test_nodes_to_score_follows_kube_scheduler() -> None:
    assert nodes_to_score(50) == 50
    assert nodes_to_score(5000) == 500  # 50 - 5000/125 = 10 %
    assert nodes_to_score(20000) == 1000  # floor of 5 %
    assert nodes_to_score(1000, 100) == 1000
    assert nodes_to_score(1000, 20) == 200
    assert nodes_to_score(300, 1) == 100


def test_sampling_rotates_over_the_cluster_and_never_misses_a_fit() -> None:
    framework = SampledFramework(Profile.default(), default_registry(), percentage=10)
    sched = Scheduler(framework=framework, clock=FakeClock())
    for n in nodes(1000, gpus=1):
        sched.node_upsert(n)
    for i in range(1000):
        sched.pod_upsert(pod(f"p{i}", gpus=1))
    placed = 0
    while (decision := sched.schedule_next()) is not None:
        assert isinstance(decision, BindDecision), "every pod fits somewhere, sampled or not"
        for b in decision.bindings:
            sched.pod_upsert(bound(b.pod, b.node, b.devices))
            placed += 1
    assert placed == 1000


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "sched.yaml"
    path.write_text(
        "apiVersion: corral.dev/v1alpha1\nkind: SchedulerConfiguration\n"
        "bindConcurrency: 8\npreemption: false\npercentageOfNodesToScore: 20\nnominationTimeoutSeconds: 45\n"
        "profiles:\n- schedulerName: corral\n  plugins: [NodeResourcesFit, GpuDevices, {name: MostAllocated, weight: 2}]\n"
    )
    config = SchedulerConfig.load(path)
    assert config.bind_concurrency == 8 and config.preemption is False
    assert config.percentage_of_nodes_to_score == 20
    assert config.nomination_timeout == 45 and SchedulerConfig().nomination_timeout == 300
    assert [p.name for p in config.profile.plugins] == ["NodeResourcesFit", "GpuDevices", "MostAllocated"]
    path.write_text("bindConcurency: 8\n")
    with pytest.raises(ConfigError, match="bindConcurency: unknown field"):
        SchedulerConfig.load(path)
    path.write_text("nominationTimeoutSeconds: 0\n")
    with pytest.raises(ConfigError, match="nominationTimeoutSeconds: must be a number >= 1"):
        SchedulerConfig.load(path)
    path.write_text("preemption: maybe\n")
    with pytest.raises(ConfigError, match="preemption: must be true or false"):
        SchedulerConfig.load(path)
