"""Entry point of the CrossGuard pack: `pulumi preview --policy-pack policies --policy-pack-config ...`.

Only assembles the pack; the rules live in policies/rules/. Constructing PolicyPack starts the policy server
and never returns, so nothing else may import this module.
"""

import sys
from pathlib import Path

# The engine runs the pack from this directory; rules import as `policies.*`, so put the repo root first.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.pack import INITIAL_CONFIG, PACK_NAME, build_policies

PolicyPack(
    name=PACK_NAME,
    description="Keel guardrails for AI inference platforms: network, cluster, GPU compute, data, secrets, cost, "
    "tagging and Kubernetes workloads.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(),
    initial_config=INITIAL_CONFIG,  # type: ignore[arg-type]
)
