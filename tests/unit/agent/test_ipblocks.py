"""Pod IP blocks: one per agent on a machine, claimed with locks that die with their process."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.agent.ipblocks import (
    FIRST_BLOCK,
    LAST_BLOCK,
    ClaimedBlock,
    candidate_blocks,
    claim_block,
    covering_blocks,
    lock_name,
    pod_ip_block,
    read_previous,
    record,
)
from corral.util.startup import StartupError

ALL = {ipaddress.IPv4Network(f"127.{n}.0.0/16") for n in range(FIRST_BLOCK, LAST_BLOCK + 1)}

HOLDER = """
import sys
from pathlib import Path
from corral.agent.ipblocks import claim_block
claimed = claim_block(Path(sys.argv[1]), sys.argv[2])
print(claimed.network, flush=True)
sys.stdin.read()  # hold the claim until the test closes stdin (or kills us)
"""


def holder(lock_dir: Path, node: str) -> subprocess.Popen[str]:
    """Another process that claims a block for ``node`` and holds it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[3] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_dir), node], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def claimed_by(process: subprocess.Popen[str]) -> ipaddress.IPv4Network:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else ""
    return ipaddress.IPv4Network(line.strip())


def end(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()


@given(st.text(min_size=1, max_size=30), st.sampled_from(sorted(ALL)) | st.none())
def test_candidates_are_every_block_once_starting_with_the_previous_or_the_hashed_one(
        node: str, previous: ipaddress.IPv4Network | None) -> None:
    order = candidate_blocks(node, previous)
    assert len(order) == len(ALL) and set(order) == ALL
    assert order[0] == (previous or pod_ip_block(node))


def test_a_block_held_by_another_process_is_skipped_and_freed_when_that_process_dies(tmp_path: Path) -> None:
    other = holder(tmp_path, "node-a")
    try:
        theirs = claimed_by(other)
        assert theirs == pod_ip_block("node-a")
        ours = claim_block(tmp_path, "node-a")
        assert ours.network != theirs, "a held block is never handed out twice"
        assert ours.network == candidate_blocks("node-a")[1]
        ours.release()
    finally:
        end(other)  # SIGKILL: no clean-up code runs, the kernel drops the lock
    again = claim_block(tmp_path, "node-a")
    assert again.network == theirs
    again.release()


def test_a_released_block_is_claimed_again(tmp_path: Path) -> None:
    first = claim_block(tmp_path, "n")
    first.release()
    assert claim_block(tmp_path, "n").network == first.network


def test_concurrent_agents_in_separate_processes_never_share_a_block(tmp_path: Path) -> None:
    processes = [holder(tmp_path, "same-name") for _ in range(12)]
    try:
        blocks = [claimed_by(p) for p in processes]
        assert len(set(blocks)) == len(blocks), blocks
    finally:
        for process in processes:
            end(process)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(held=st.sets(st.sampled_from(sorted(ALL)), max_size=40),
       nodes=st.lists(st.sampled_from(["a", "b", "gpu-box", "x" * 40]), min_size=1, max_size=12))
def test_claims_never_share_a_block_nor_take_a_held_one(tmp_path_factory: pytest.TempPathFactory,
                                                        held: set[ipaddress.IPv4Network], nodes: list[str]) -> None:
    # Locks on separate open files conflict within one process too, as between processes.
    lock_dir = tmp_path_factory.mktemp("locks")
    others = [claim_block(lock_dir, "ignored", explicit=network) for network in held]
    claims: list[ClaimedBlock] = []
    try:
        claims = [claim_block(lock_dir, node) for node in nodes]
        networks = [c.network for c in claims]
        assert len(set(networks)) == len(networks)
        assert not set(networks) & held
    finally:
        for claim in claims + others:
            claim.release()


def test_an_explicit_block_in_use_is_an_error_naming_it(tmp_path: Path) -> None:
    mine = claim_block(tmp_path, "n", explicit=ipaddress.IPv4Network("127.42.0.0/16"))
    with pytest.raises(StartupError, match=r"127\.42\.0\.0/24 is in use by another corral agent"):
        claim_block(tmp_path, "m", explicit=ipaddress.IPv4Network("127.42.0.0/24"))
    # ... and automatic claims go around it
    assert claim_block(tmp_path, "m", previous=ipaddress.IPv4Network("127.42.0.0/16")).network != mine.network
    assert covering_blocks(ipaddress.IPv4Network("127.40.0.0/14")) == [
        ipaddress.IPv4Network(f"127.{n}.0.0/16") for n in range(40, 44)]


def test_a_lock_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious")
    os.symlink(target, tmp_path / lock_name(ipaddress.IPv4Network("127.42.0.0/16")))
    with pytest.raises(StartupError, match="not a regular file"):
        claim_block(tmp_path, "n", explicit=ipaddress.IPv4Network("127.42.0.0/16"))
    assert target.read_text() == "precious"


def test_the_previous_block_is_remembered_and_garbage_is_no_hint(tmp_path: Path) -> None:
    path = tmp_path / "pod-cidr"
    assert read_previous(path) is None
    record(path, ipaddress.IPv4Network("127.9.0.0/16"))
    assert read_previous(path) == ipaddress.IPv4Network("127.9.0.0/16")
    path.write_bytes(b"\xff\xfe")
    assert read_previous(path) is None


def test_the_lock_dir_is_shared_by_every_user(tmp_path: Path) -> None:
    lock_dir = tmp_path / "corral-locks"
    old = os.umask(0o077)
    try:
        claim_block(lock_dir, "n").release()
    finally:
        os.umask(old)
    assert lock_dir.stat().st_mode & 0o7777 == 0o1777
    assert (lock_dir / lock_name(pod_ip_block("n"))).stat().st_mode & 0o777 == 0o644
