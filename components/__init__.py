"""Reusable Pulumi components. Each takes a frozen, typed Args model and knows nothing of stacks or config."""
