"""Kubernetes-compatible HTTP API server (discovery, CRUD, patch, watch, subresources, tables, OpenAPI, authn).

Layer: top tier; imports `corral.store` and below.
"""
