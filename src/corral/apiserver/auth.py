"""Bearer-token authentication from a tokens file.

The file (``DATA/tokens.csv``) uses the Kubernetes static-token format, one token a
line: ``token,user,uid,"group1,group2"``. Every token carries an identity
(:class:`Identity`) that handlers see on the request; namespace-scoped roles are
decided from it in a later issue. ``corral up`` creates the file with an ``admin``
token (group ``system:masters``) and writes that token into the kubeconfig.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from corral.util.startup import StartupError, describe_decode_error


@dataclass(frozen=True)
class Identity:
    user: str
    uid: str
    groups: tuple[str, ...] = ()


class TokenFile:
    """Tokens read from a file; :meth:`ensure_admin` creates an admin token when none exists."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tokens: dict[str, Identity] = {}

    def load(self) -> None:
        self._tokens = {}
        if not self.path.exists():
            return
        try:
            rows = list(csv.reader(io.StringIO(self.path.read_text(encoding="utf-8"))))
        except UnicodeDecodeError as error:
            raise StartupError(self.path, describe_decode_error(error)) from None
        except csv.Error as error:
            raise StartupError(self.path, f"not a token CSV file: {error}") from None
        for row in rows:
            if len(row) < 2 or not row[0].strip() or row[0].startswith("#"):
                continue
            groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g)
            self._tokens[row[0].strip()] = Identity(row[1].strip(), (row[2] if len(row) > 2 else row[1]).strip(), groups)

    def ensure_admin(self) -> str:
        """The admin token, creating it (file mode 0600) when the file has none."""
        self.load()
        for token, identity in self._tokens.items():
            if identity.user == "admin":
                return token
        token = secrets.token_urlsafe(32)
        self.add(token, Identity("admin", "admin", ("system:masters",)))
        return token

    def add(self, token: str, identity: Identity) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = io.StringIO()
        csv.writer(line).writerow([token, identity.user, identity.uid, ",".join(identity.groups)])
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line.getvalue())
        self._tokens[token] = identity

    def identify(self, token: str) -> Identity | None:
        return self._tokens.get(token)
