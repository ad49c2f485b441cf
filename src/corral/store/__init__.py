"""Revisioned object store: an in-memory index over a durable SQLite (WAL) log, with watch history.

Layer: imports `corral.api` and `corral.util`.
"""
