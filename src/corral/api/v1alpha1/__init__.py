"""corral.dev/v1alpha1 kinds, one module each exporting ``resource_type()``."""
