"""Level-triggered reconcilers, one package per kind, run by `controllers.runtime`.
"""
