"""The Job controller: runs pods until ``completions`` succeed (plan + reconciler)."""
