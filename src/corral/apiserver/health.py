"""``/healthz``, ``/livez`` and ``/readyz`` as kube-apiserver answers them.

The API server checks itself (``ping``, and ``store`` once it is started); components
that run beside it (``corral up``: scheduler, queue manager, controllers, agent, gateway)
add their own checks with :meth:`HealthChecks.add`, typically their supervisor's
:meth:`~corral.util.supervise.Supervisor.check`, which fails while one of their loops is
crash-looping. Only ``/readyz`` runs the components' checks: a component whose loop keeps
crashing makes the server not ready (HTTP 500) but not dead (``/livez`` stays 200, so a
supervisor does not restart a process that is still serving the API).

The body is kube's: ``ok`` when everything passes; with ``?verbose`` (or on failure) one
line per check, ``[+]name ok`` or ``[-]name failed: reason``, then ``readyz check passed``
or ``readyz check failed``. ``?exclude=name`` leaves a check out, as in Kubernetes. The
paths need no token; without one, the reasons are withheld (``failed: reason withheld``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from corral.util.supervise import HealthCheck, describe


@dataclass
class HealthChecks:
    """Named readiness checks, run in the order they were added."""

    checks: dict[str, HealthCheck] = field(default_factory=dict)

    def add(self, name: str, check: HealthCheck) -> None:
        self.checks[name] = check

    def run(self, exclude: frozenset[str] = frozenset()) -> list[tuple[str, str | None]]:
        """``(name, None)`` for each passing check, ``(name, why)`` for each failing one."""
        results: list[tuple[str, str | None]] = []
        for name, check in self.checks.items():
            if name in exclude:
                continue
            try:
                results.append((name, check()))
            except Exception as error:  # a broken check fails itself, not the endpoint
                results.append((name, f"the check raised {describe(error)}"))
        return results


def health_response(endpoint: str, query: Mapping[str, str], *, ready: bool, checks: HealthChecks,
                    exclude: list[str] | None = None, reasons: bool = True) -> tuple[int, str]:
    """``(status code, body)`` for ``/healthz``, ``/livez`` or ``/readyz`` (``endpoint`` without the slash).

    ``reasons=False`` (a request without a valid token: these paths are public) withholds
    why a check failed, as kube-apiserver does; the logs say it.
    """
    results: list[tuple[str, str | None]] = [("ping", None)]
    if endpoint == "readyz":
        results.append(("store", None if ready else "the API server is starting or stopping"))
        results.extend(checks.run(frozenset(exclude or ())))
    failed = any(why is not None for _, why in results)
    verbose = "verbose" in query
    if not failed and not verbose:
        return 200, "ok"
    lines = [f"[+]{name} ok" if why is None else f"[-]{name} failed: {why if reasons else 'reason withheld'}"
             for name, why in results]
    lines.append(f"{endpoint} check {'failed' if failed else 'passed'}")
    return (500 if failed else 200), "\n".join(lines) + "\n"
