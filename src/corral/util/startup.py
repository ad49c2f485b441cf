"""Start-up failures a user can act on: which file, and what is wrong with it.

Every layer that reads a file at start-up (the store's ``store.db``, the API server's
``tokens.csv`` and TLS files, a kubeconfig, the machine-wide lock files) raises
:class:`StartupError` naming the file and the reason instead of letting a decoder's
exception escape. ``corral up``/``corral agent`` print it as one line,
``cannot start: <path>: <reason>``, and exit non-zero — no traceback, and the file is left
exactly as it was so that the user can inspect or repair it.
"""

from __future__ import annotations

from pathlib import Path


class StartupError(Exception):
    """A file corral needs at start-up cannot be used; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def describe_os_error(error: OSError) -> str:
    """``"<path>: <reason>"`` for an OSError (``[Errno 13] ...: '/x'`` becomes ``/x: Permission denied``)."""
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def describe_decode_error(error: UnicodeDecodeError) -> str:
    """Where undecodable bytes are, in a user's words."""
    return f"not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})"
