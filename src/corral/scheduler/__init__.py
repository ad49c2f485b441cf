"""GPU-aware scheduler: framework, plugins, snapshot, queue, admission and preemption.

Decisions are pure functions of a snapshot so the simulator drives the same code.
"""
