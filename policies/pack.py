"""The pack's contents: every registered rule as a CrossGuard policy, plus the pack's initial config.

Importing this module registers the rules and builds policy objects; it does not start the policy server
(constructing ``PolicyPack`` does, and only ``policies/__main__.py`` does that).
"""

from __future__ import annotations

from typing import Any

import policies.rules  # noqa: F401  (registers every rule)
from policies.framework import RULES, to_policy

PACK_NAME = "keel"

#: Settings the pack ships with, applied after schema defaults and before a --policy-pack-config file.
#: Environment differences belong in policies/config/<env>.json, not here.
INITIAL_CONFIG: dict[str, Any] = {}


def build_policies() -> list[Any]:
    """One CrossGuard policy per registered rule."""
    return [to_policy(rule) for rule in RULES]
