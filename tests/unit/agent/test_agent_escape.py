"""Nothing a pod starts outlives it, and nothing it names is written outside its directory.

Real processes: a container that starts children which ``setsid``, move to a new process
group, daemonize with a double fork, or simply run in the background; a crash-looping
container that leaves a sleeper behind on every run. Both ways of finding them are
exercised: a cgroup per container where this machine lets us create one, and the
fallback (markers, ancestry and a child subreaper) everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.agent import reaper
from corral.agent.cgroups import Cgroups
from corral.agent.status import pod_status
from corral.agent.worker import PodWorker, RuntimeConfig
from corral.util.clock import SystemClock
from corral.util.paths import PathEscapeError, inside

from .helpers import PY, make_pod, py, wait_for

NODE = f"esc-{uuid.uuid4().hex[:8]}"
SLEEPER = "import time; time.sleep(1000)"


def _cgroups() -> Cgroups | None:
    cgroups, _why = Cgroups.detect(NODE, want_limits=False)
    return cgroups


@pytest.fixture(scope="module", autouse=True)
def _remove_node_cgroup() -> Any:
    yield
    cgroups = _cgroups()
    if cgroups is not None:
        for path in (*cgroups.base.glob("pod-*/*"), *cgroups.base.glob("pod-*"), cgroups.base):
            with contextlib.suppress(OSError):
                path.rmdir()


@pytest.fixture(params=["fallback", "cgroup"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> RuntimeConfig:
    cgroups = None
    orphan_reaper = None
    if request.param == "cgroup":
        cgroups = _cgroups()
        if cgroups is None:
            pytest.skip(f"no cgroup v2 subtree can be created here: {Cgroups.detect(NODE)[1]}")
    else:
        assert reaper.enable_subreaper()
        orphan_reaper = reaper.OrphanReaper()
    return RuntimeConfig(data_dir=tmp_path / "data", node_name=NODE, backoff_initial=0.2, backoff_max=0.2,
                         log_index_period=0.05, host_env=dict(os.environ), cgroups=cgroups,
                         orphan_reaper=orphan_reaper)


@pytest.fixture
async def workers() -> AsyncIterator[list[PodWorker]]:
    started: list[PodWorker] = []
    yield started
    for worker in started:
        await worker.terminate(grace=0)
        worker.cleanup()


def _start(workers: list[PodWorker], pod: dict[str, Any], config: RuntimeConfig) -> PodWorker:
    worker = PodWorker(pod, "127.9.0.7", config, clock=SystemClock(), on_change=lambda: None)
    worker.start()
    workers.append(worker)
    return worker


def _alive_with(mark: str) -> list[int]:
    """Live (not zombie) processes with an argument starting with ``mark``."""
    found = []
    for info in reaper.list_processes():
        if info.state in ("Z", "X"):
            continue
        try:
            cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
        except OSError:
            continue
        if any(arg.startswith(mark.encode()) for arg in cmdline.split(b"\0")):
            found.append(info.pid)
    return found


def _zombie_children() -> set[int]:
    return {pid for pid in reaper.child_pids() if (info := reaper.read_stat(pid)) and info.state == "Z"}


def _escaping_program(mark: str) -> str:
    sleeper = f"[{PY!r}, '-c', {SLEEPER!r}, {mark!r} + '-%s']"
    return f"""
import os, subprocess, sys, time
subprocess.Popen({sleeper % 'setsid'}, start_new_session=True)      # (a) a new session
subprocess.Popen({sleeper % 'setpgid'}, process_group=0)            # (b) a new process group
if os.fork() == 0:                                                   # (c) daemonized: double fork
    os.setsid()
    if os.fork() == 0:
        os.execv({PY!r}, {sleeper % 'daemon'})
    os._exit(0)
os.wait()
subprocess.Popen({sleeper % 'background'})                          # (d) a plain background child
print('ready', flush=True)
time.sleep(1000)
"""


async def test_deleting_a_pod_kills_children_that_left_its_session_group_or_parent(
        config: RuntimeConfig, workers: list[PodWorker]) -> None:
    mark = f"corral-escape-{uuid.uuid4().hex}"
    zombies_before = _zombie_children()
    worker = _start(workers, make_pod("escape", [py("main", _escaping_program(mark))], grace=1), config)
    await wait_for(lambda: len(_alive_with(mark)) == 4, 20, what="the four escaping children")
    await asyncio.wait_for(worker.terminate(grace=1), 10)
    assert _alive_with(mark) == [], "processes survived the pod's deletion"
    if config.orphan_reaper is not None:  # the re-parented ones were reaped, not left as zombies
        await wait_for(lambda: not (_zombie_children() - zombies_before), 5, what="orphans reaped")


async def test_each_crash_loop_run_leaves_nothing_behind(config: RuntimeConfig, workers: list[PodWorker]) -> None:
    mark = f"corral-crashloop-{uuid.uuid4().hex}"
    program = (f"import subprocess, sys; subprocess.Popen([{PY!r}, '-c', {SLEEPER!r}, {mark!r}],"
               " start_new_session=True); sys.exit(1)")
    worker = _start(workers, make_pod("crashloop", [py("main", program)], restart_policy="Always"), config)
    most = 0
    deadline = asyncio.get_running_loop().time() + 30
    while worker.runtime.containers[0].restart_count < 5:
        most = max(most, len(_alive_with(mark)))
        assert asyncio.get_running_loop().time() < deadline, "the container did not restart 5 times"
        await asyncio.sleep(0.02)
    assert most <= 1, f"{most} sleepers alive at once: earlier runs left theirs behind"
    await worker.terminate(grace=0)
    assert _alive_with(mark) == []


# ------------------------------------------------------------------ paths (issue 22 item 5)


def test_inside_refuses_every_way_out(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "link").symlink_to(tmp_path)
    assert inside(tmp_path / "base", "c", "0.log") == tmp_path / "base" / "c" / "0.log"
    for names in (["../x"], ["..", "x"], ["/etc/passwd"], ["a/../../x"], ["."], [""], ["a\x00b"], ["link", "x"]):
        with pytest.raises(PathEscapeError):
            inside(tmp_path / "base", *names)


@pytest.mark.parametrize("where", ["container", "init", "uid", "label"])
async def test_a_pod_whose_names_leave_its_directory_fails_and_writes_nothing(
        tmp_path: Path, where: str) -> None:
    config = RuntimeConfig(data_dir=tmp_path / "data", node_name=NODE, host_env=dict(os.environ))
    (tmp_path / "data").mkdir()
    pod = make_pod("evil", [py("main", "print('ran')")])
    if where == "container":
        pod["spec"]["containers"][0]["name"] = "../../../x"
    elif where == "init":
        pod["spec"]["initContainers"] = [py("../../../../y", "print('ran')")]
    elif where == "uid":
        pod["metadata"]["uid"] = "../../z"
    else:
        pod["metadata"]["labels"] = {"corral.dev/training-job": "../../../../w"}
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    worker = PodWorker(pod, "127.9.0.8", config, clock=SystemClock(), on_change=lambda: None)
    worker.start()
    await asyncio.wait_for(worker.finished.wait(), 10)
    status = pod_status(worker.pod, worker.runtime, SystemClock().now())
    assert status["phase"] == "Failed"
    assert status["reason"] == "InvalidPodPaths" and "leaves" in status["message"]
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before, "something was written"
    await worker.terminate(grace=0)
    worker.cleanup()
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


@given(st.lists(st.lists(st.sampled_from(["a", ".", "/", "..", "\x00", "b/..", "~"]), max_size=6).map("".join),
                min_size=1, max_size=3))
def test_inside_is_inside_or_raises(names: list[str]) -> None:
    base = Path("/tmp/corral-inside-base/pods")
    try:
        joined = inside(base, *names)
    except PathEscapeError:
        return
    resolved = Path(os.path.realpath(joined))
    assert resolved != Path(os.path.realpath(base)) and Path(os.path.realpath(base)) in resolved.parents
