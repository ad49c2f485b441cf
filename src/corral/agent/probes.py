"""Readiness, liveness and startup probes: how to run one, and how results add up.

:class:`ProbeTracker` is the pure part: consecutive successes and failures
against ``successThreshold``/``failureThreshold`` decide the probe's result.
:func:`run_probe` performs one check — ``exec`` (exit 0), ``httpGet``
(status 200–399, HTTP/1.1 over a raw connection so a probe costs one socket and
no client session), or ``tcpSocket`` (a connection opens) — within
``timeoutSeconds``. The host defaults to the pod IP; named ports resolve through
the container's ``ports``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corral.agent.process import CONTAINER_UMASK


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def from_spec(cls, probe: Mapping[str, Any], kind: str) -> ProbeTiming:
        success = int(probe.get("successThreshold") or 1)
        if kind in ("liveness", "startup"):
            success = 1  # Kubernetes requires 1 for these
        return cls(
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=max(1, success),
            failure_threshold=max(1, int(probe.get("failureThreshold") or 3)),
        )


class ProbeTracker:
    """Turns individual probe outcomes into the probe's result (pure)."""

    def __init__(self, success_threshold: int, failure_threshold: int, initial: bool | None) -> None:
        self.success_threshold = success_threshold
        self.failure_threshold = failure_threshold
        self.result = initial
        self.successes = 0
        self.failures = 0

    def observe(self, ok: bool) -> bool | None:
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.success_threshold:
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.failure_threshold:
                self.result = False
        return self.result


def resolve_port(port: Any, container: Mapping[str, Any]) -> int:
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for entry in container.get("ports") or []:
        if entry.get("name") == text:
            return int(entry["containerPort"])
    raise ValueError(f"port {text!r} is not a number and no container port has that name")


async def run_probe(probe: Mapping[str, Any], *, pod_ip: str, container: Mapping[str, Any],
                    env: Mapping[str, str], cwd: str | None, timeout: float, user: int | None = None,
                    group: int | None = None) -> tuple[bool, str]:
    """One check; returns ``(ok, message)``. An ``exec`` command runs as the container does (``user``/``group``:
    its ``runAsUser``/``runAsGroup``, see :mod:`corral.agent.identity`)."""
    try:
        if "exec" in probe:
            return await _exec_probe(list((probe["exec"] or {}).get("command") or []), env, cwd, timeout,
                                     user=user, group=group)
        if "httpGet" in probe:
            return await _http_probe(probe["httpGet"] or {}, pod_ip, container, timeout)
        if "tcpSocket" in probe:
            spec = probe["tcpSocket"] or {}
            host = spec.get("host") or pod_ip
            port = resolve_port(spec.get("port"), container)
            try:
                _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except (OSError, TimeoutError) as error:
                return False, f"tcp {host}:{port}: {error or 'timeout'}"
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return True, ""
    except ValueError as error:
        return False, str(error)
    return False, "probe has no exec, httpGet or tcpSocket handler (grpc is not supported)"


async def _exec_probe(command: list[str], env: Mapping[str, str], cwd: str | None,
                      timeout: float, *, user: int | None = None, group: int | None = None) -> tuple[bool, str]:
    if not command:
        return False, "exec probe has no command"
    switch: dict[str, Any] = {}
    if user is not None or group is not None:
        switch = {"user": user, "group": group, "extra_groups": []}
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=dict(env), cwd=cwd or None, start_new_session=True,
            umask=CONTAINER_UMASK, **switch)
    except OSError as error:
        return False, f"exec {command[0]!r}: {error}"
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return False, f"exec probe timed out after {timeout:g}s"
    text = output.decode(errors="replace").strip()[-512:]
    return process.returncode == 0, text


async def _http_probe(spec: Mapping[str, Any], pod_ip: str, container: Mapping[str, Any],
                      timeout: float) -> tuple[bool, str]:
    host = spec.get("host") or pod_ip
    port = resolve_port(spec.get("port"), container)
    path = spec.get("path") or "/"
    if str(spec.get("scheme", "HTTP")).upper() == "HTTPS":
        return False, "httpGet with scheme HTTPS is not supported by the corral agent"
    headers = "".join(f"{h.get('name')}: {h.get('value')}\r\n" for h in spec.get("httpHeaders") or [])
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: corral-probe/1.0\r\n"
               f"Accept: */*\r\nConnection: close\r\n{headers}\r\n").encode()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as error:
        return False, f"GET http://{host}:{port}{path}: {error or 'timeout'}"
    parts = status_line.decode(errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f"GET http://{host}:{port}{path}: malformed response {status_line[:80]!r}"
    code = int(parts[1])
    return 200 <= code < 400, f"HTTP {code}"
