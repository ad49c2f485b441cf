"""The Deployment controller: rollouts through ReplicaSets, one per pod template (plan + reconciler)."""
