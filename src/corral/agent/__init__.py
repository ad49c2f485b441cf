"""Node agent: runs bound pods as processes, discovers GPUs, probes, logs, node lease.
"""
