"""Keel's rules, one module per domain. Importing this package registers them all (policies.framework.RULES)."""

from policies.rules import (  # noqa: F401
    cluster,
    compute,
    cost,
    data,
    kubernetes,
    network,
    secrets,
    tagging,
)
