"""corral.dev/v1alpha1 kinds: one module per kind, each exporting ``resource_type()``."""
