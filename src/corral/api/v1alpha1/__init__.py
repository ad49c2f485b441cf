"""corral.dev/v1alpha1 kinds: Queue, PodGroup, TrainingJob, InferenceService, Pipeline."""
