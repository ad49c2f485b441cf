"""corral.dev/v1alpha1 kinds: Queue, PodGroup, TrainingJob, InferenceService, Pipeline.

One module per kind, each exporting ``resource_type()``; :mod:`corral.api.kinds` lists them.
"""
