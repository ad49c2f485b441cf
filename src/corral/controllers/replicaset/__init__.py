"""The ReplicaSet controller: keeps ``spec.replicas`` pods matching the selector (plan + reconciler)."""
