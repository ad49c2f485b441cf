"""Inference gateway: routing, load balancing, activator and metrics.
"""
