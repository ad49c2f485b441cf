"""Simulation: simulated nodes registered through the API, and in-process trace replay.
"""
