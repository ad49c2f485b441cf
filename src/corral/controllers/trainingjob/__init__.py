"""The TrainingJob controller: gangs of PyTorch workers with checkpoint-aware self-healing.

``policy`` holds every decision as pure functions of a snapshot (job, pods, PodGroup, time);
``controller`` reads that snapshot from the API, applies the plan and records events.
"""
