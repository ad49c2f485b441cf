"""Revisioned object store: an in-memory index over a durable SQLite (WAL) log, with watch history.

Layer: imports `corral.api` and `corral.util`. See :mod:`corral.store.store` for the design.
"""

from corral.store.store import (
    AlreadyExistsError,
    ConflictError,
    Entry,
    ExpiredError,
    NotFoundError,
    ObjectTooLargeError,
    Store,
    StoreError,
    UnavailableError,
    Watcher,
    WatchEvent,
    Write,
    encode,
)

__all__ = [
    "AlreadyExistsError", "ConflictError", "Entry", "ExpiredError", "NotFoundError", "ObjectTooLargeError", "Store", "StoreError", "UnavailableError",
    "WatchEvent", "Watcher", "Write", "encode",
]
