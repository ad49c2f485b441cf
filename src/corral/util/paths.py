"""Per-pod paths that cannot leave their directory.

Every file the agent writes for a pod lives under a base directory (``<data>/pods/<uid>``,
``<data>/checkpoints/<namespace>``, a container cgroup …) joined with names taken from
the pod: its uid, namespace, container names, labels. The API server rejects names that
are not DNS labels, but the agent does not rely on it — a pod stored some other way
(an older server, a direct store write) must not make it write, or later delete, files
elsewhere. :func:`inside` is the one place that joins a base and such names: it raises
:class:`PathEscapeError` unless the normalised result is strictly inside the base (not
the base itself), with ``..``, absolute names, NUL bytes and symlinks in the base all
taken into account.
"""

from __future__ import annotations

import os
from pathlib import Path


class PathEscapeError(ValueError):
    """A name taken from a pod would put a file outside the directory meant for it."""


def inside(base: Path, *names: str) -> Path:
    """``base/names…``, guaranteed to be strictly below ``base`` (see the module docstring)."""
    for name in names:
        if not name or "\x00" in name or os.path.isabs(name):
            raise PathEscapeError(f"{name!r} is not a relative name (joined to {base})")
    root = Path(os.path.realpath(base))
    resolved = Path(os.path.realpath(root.joinpath(*names)))
    if resolved == root or root not in resolved.parents:
        raise PathEscapeError(f"{'/'.join(names)!r} leaves {base}")
    return base.joinpath(*names)  # as given (callers compare and print it); checked resolved
