"""Cost rules: spend is watched by a budget, and the stack at full scale fits inside it.

``peak-spend-within-budget`` prices the stack with Keel's cost model (``keel.cost``: the shipped price table,
usage volumes from each resource's ``keel:cost-assumed-gb`` tag), the same figures ``keel cost`` prints, so the
offline plan and ``pulumi preview --policy-pack`` agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource

from keel.cost import estimate_graph
from policies.framework import as_map, items, of_type, planned_graph, prop, stack_rule

BUDGET = "aws:budgets/budget:Budget"
AWS_PROVIDER = "pulumi:providers:aws"


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
    name="peak-spend-within-budget",
    description="The stack's monthly cost at peak (every node group at maxSize on its most expensive "
    "instance type, plus everything else Keel prices), from Keel's cost model, fits in its monthly budget.",
    domain="cost",
    category="cost",
    severity="high",
    remediation="Run `keel cost ENV` to see what the peak is made of, then lower the GPU pools' maxSize, raise "
    "keel:budget.monthlyLimitUsd, or correct keel:usage; price an unpriced type in keel/prices/aws.yaml or in "
    "the file KEEL_PRICES names.",
    settings={
        "maxShareOfBudget": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 10,
            "default": 1,
            "description": "The share of the monthly budget peak spend may reach (0.9 keeps 10% headroom).",
        },
    },
)
def peak_spend_within_budget(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[tuple[str, str | None]]:
    limits = [(limit, b) for b in of_type(resources, BUDGET) if (limit := _monthly_limit(b)) is not None]
    if not limits:
        yield "no monthly COST budget in USD: cannot check peak spend", None
        return
    limit, budget = max(limits, key=lambda pair: pair[0])
    region = _home_region(resources)
    if region is None:
        yield "no AWS provider with an explicit region: cannot price the stack", None
        return
    share = float(config.get("maxShareOfBudget") or 1)
    report = estimate_graph(planned_graph(resources), region=region, budget=limit)
    for unpriced in report.unpriced:
        for name, urn in zip(unpriced.resources, unpriced.urns, strict=True):
            yield (
                f"cannot price {name} ({unpriced.type}): {unpriced.reason}; peak spend is a lower bound",
                urn,
            )
    allowed = limit * share
    if report.peak.total > allowed:
        component, amount = next(iter(report.peak.by_component.items()))
        of_budget = "" if share == 1 else f" ({share:.0%} of its ${limit:,.0f})"
        yield (
            f"peak spend ${report.peak.total:,.0f}/month exceeds budget {budget.name} ${allowed:,.0f}/month"
            f"{of_budget}; largest: {component} ${amount:,.0f}/month (list prices as of "
            f"{report.prices_as_of.isoformat()})",
            budget.urn,
        )


def _home_region(resources: Sequence[PolicyResource]) -> str | None:
    """The region of the EKS cluster's provider (the environment's region), else of the first AWS provider."""
    clusters = of_type(resources, "aws:eks/cluster:Cluster")
    providers = [r.provider for r in [*clusters, *resources] if r.provider is not None]
    for provider in providers:
        region = as_map(provider.props).get("region") if provider.resource_type == AWS_PROVIDER else None
        if isinstance(region, str) and region:
            return region
    return None
