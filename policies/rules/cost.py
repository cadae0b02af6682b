"""Cost rules: spend is watched by a budget, and the GPU fleet at full scale fits inside it.

``gpu-peak-within-budget`` prices instance types from its ``hourlyPriceUsd`` setting: an interim, advisory
check until issue 5's cost model replaces the price table. With no prices configured it has nothing to
compare and reports nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource

from policies.framework import as_map, items, of_type, prop, stack_rule
from policies.rules.compute import is_gpu_group

BUDGET = "aws:budgets/budget:Budget"


@stack_rule(
    name="budget-exists",
    description="The stack has an AWS Budget that notifies on both actual and forecasted spend.",
    domain="cost",
    category="cost",
    severity="medium",
    remediation="Enable the Budget component (budget.monthly_limit_usd and alert emails in the stack config): "
    "it creates a monthly COST budget with ACTUAL and FORECASTED notifications.",
    settings={
        "requiredNotificationTypes": {
            "type": "array",
            "items": {"type": "string", "enum": ["ACTUAL", "FORECASTED"]},
            "default": ["ACTUAL", "FORECASTED"],
            "description": "Notification types one budget must carry together.",
        }
    },
)
def budget_exists(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[tuple[str, str | None]]:
    required = [str(t) for t in config.get("requiredNotificationTypes") or []]
    budgets = of_type(resources, BUDGET)
    if not budgets:
        yield "the stack has no AWS Budget: nothing alerts on spend", None
        return
    gaps: list[tuple[PolicyResource, list[str]]] = []
    for budget in budgets:
        types = {as_map(n).get("notificationType") for n in items(prop(budget, "notifications"))}
        missing = [t for t in required if t not in types]
        if not missing:
            return
        gaps.append((budget, missing))
    for budget, missing in gaps:
        yield f"budget {budget.name} has no {' or '.join(missing)} notification", budget.urn


def _monthly_limit(budget: PolicyResource) -> float | None:
    if prop(budget, "budgetType") != "COST" or prop(budget, "timeUnit") != "MONTHLY":
        return None
    if prop(budget, "limitUnit", "USD") != "USD":
        return None
    try:
        return float(str(prop(budget, "limitAmount")))
    except ValueError:
        return None


@stack_rule(
    name="gpu-peak-within-budget",
    description="Advisory until issue 5's cost model replaces the hourlyPriceUsd setting: every GPU node "
    "group at maxSize, priced per hour from that setting, must fit in the monthly budget.",
    domain="cost",
    category="cost",
    severity="medium",
    remediation="Lower the GPU pools' max_nodes, raise budget.monthly_limit_usd, or add the missing instance "
    "types to hourlyPriceUsd (on-demand USD per hour) in the environment's policy config.",
    settings={
        "hourlyPriceUsd": {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0},
            "default": {},
            "description": "On-demand USD per hour by instance type; empty turns the check off.",
        },
        "hoursPerMonth": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 730,
            "description": "Hours a node runs in a month at peak.",
        },
    },
)
def gpu_peak_within_budget(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[tuple[str, str | None]]:
    prices = {str(k): float(v) for k, v in as_map(config.get("hourlyPriceUsd")).items()}
    hours = float(config.get("hoursPerMonth") or 730)
    groups = [g for g in resources if is_gpu_group(g)]
    if not prices or not groups:
        return
    peak = 0.0
    costs: list[tuple[float, str]] = []
    unpriced: dict[str, str] = {}
    for group in groups:
        types = [str(t) for t in items(prop(group, "instanceTypes"))]
        if not types:
            yield (
                f"GPU node group {group.name} names no instanceTypes: cannot check peak GPU spend",
                group.urn,
            )
            continue
        missing = [t for t in types if t not in prices]
        for instance_type in missing:
            unpriced.setdefault(instance_type, group.urn)
        if missing:
            continue
        cost = float(prop(group, "scalingConfig.maxSize", 0)) * max(prices[t] for t in types) * hours
        costs.append((cost, group.name))
        peak += cost
    for instance_type, urn in unpriced.items():
        yield f"no price for {instance_type}: cannot check peak GPU spend", urn
    limits = [(limit, b) for b in of_type(resources, BUDGET) if (limit := _monthly_limit(b)) is not None]
    if not limits:
        yield "no monthly COST budget in USD: cannot check peak GPU spend", None
        return
    limit, budget = max(limits, key=lambda pair: pair[0])
    # Unpriced groups only add to the peak: a partial sum over the budget is already a violation.
    if peak > limit:
        largest = max(costs)
        yield (
            f"peak GPU spend ${peak:,.0f}/month ({len(costs)} GPU node groups at maxSize, {hours:g} h) exceeds "
            f"budget {budget.name} limit ${limit:,.0f}/month; largest: {largest[1]} ${largest[0]:,.0f}",
            budget.urn,
        )
