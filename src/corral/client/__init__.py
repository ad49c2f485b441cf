"""Async REST client for the Kubernetes API, informers (list+watch caches) and the rate-limited work queue.

Everything that is not the API server talks to the API through this package only, so the
same code runs against corral's embedded server and a real cluster.
"""
