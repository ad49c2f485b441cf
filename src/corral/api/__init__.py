"""Kinds as pydantic models and the registry that maps group/version/resource to them.

Layer: imports only `corral.util`.
"""
