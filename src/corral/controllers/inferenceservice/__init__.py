"""The InferenceService controller: revisions, replica pods, canary rollouts and autoscaling."""

from corral.controllers.inferenceservice.controller import InferenceServiceController, http_feed

__all__ = ["InferenceServiceController", "http_feed"]
