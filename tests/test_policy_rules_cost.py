"""Cost rules: compliant, non-compliant, missing-property and config-override cases, on prod-shaped resources."""

from __future__ import annotations

from typing import Any

from keel.policy import policy_resource
from tests.policy_helpers import run_stack_rule

BUDGET = "aws:budgets/budget:Budget"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
BUDGET_URN = f"urn:pulumi:test::keel::{BUDGET}::budget"
#: On-demand us-east-1 list prices (USD per hour), as an environment's policy config would give them.
PRICES = {"g6.xlarge": 0.8048, "g6.2xlarge": 0.9776, "g6e.12xlarge": 10.49264}


def _notification(kind: str, threshold: float) -> dict[str, Any]:
    return {
        "comparisonOperator": "GREATER_THAN",
        "notificationType": kind,
        "threshold": threshold,
        "thresholdType": "PERCENTAGE",
        "subscriberEmailAddresses": ["finops@example.com"],
    }


def budget(*kinds: str, limit: str = "60000.00", name: str = "budget", **extra: Any) -> Any:
    props: dict[str, Any] = {
        "budgetType": "COST",
        "timeUnit": "MONTHLY",
        "limitAmount": limit,
        "limitUnit": "USD",
        "notifications": [_notification(kind, 80.0 + i) for i, kind in enumerate(kinds)],
        **extra,
    }
    return policy_resource(BUDGET, props, name=name)


def node_group(
    name: str, instance_types: list[str], max_size: float, ami: str = "AL2023_x86_64_NVIDIA"
) -> Any:
    props = {
        "amiType": ami,
        "instanceTypes": instance_types,
        "scalingConfig": {"minSize": 0.0, "desiredSize": 0.0, "maxSize": max_size},
    }
    return policy_resource(NODE_GROUP, props, name=name)


def prod_pools() -> list[Any]:
    """Prod's GPU node groups: peak = (2 + 6) x $0.9776 + (1 + 2) x $10.49264 per hour."""
    return [
        node_group("gpu-l4-od-ng", ["g6.xlarge", "g6.2xlarge"], 2.0),
        node_group("gpu-l4-spot-ng", ["g6.xlarge", "g6.2xlarge"], 6.0),
        node_group("gpu-l40s-x4-od-ng", ["g6e.12xlarge"], 1.0),
        node_group("gpu-l40s-x4-spot-ng", ["g6e.12xlarge"], 2.0),
        node_group("cluster-system-ng", ["m7i.xlarge"], 6.0, ami="AL2023_x86_64_STANDARD"),
    ]


# ------------------------------------------------------------------------------------------- budget-exists


def test_budget_with_actual_and_forecasted_notifications_is_compliant() -> None:
    resources = [budget("ACTUAL", "ACTUAL", "FORECASTED")]
    assert run_stack_rule("budget-exists", resources) == []


def test_stack_without_budget_is_a_violation() -> None:
    assert run_stack_rule("budget-exists", prod_pools()) == [
        ("the stack has no AWS Budget: nothing alerts on spend", None)
    ]


def test_budget_without_forecast_notification_is_a_violation() -> None:
    assert run_stack_rule("budget-exists", [budget("ACTUAL")]) == [
        ("budget budget has no FORECASTED notification", BUDGET_URN)
    ]


def test_budget_without_notifications_is_a_violation() -> None:
    bare = policy_resource(BUDGET, {"budgetType": "COST", "limitAmount": "100"}, name="budget")
    assert run_stack_rule("budget-exists", [bare]) == [
        ("budget budget has no ACTUAL or FORECASTED notification", BUDGET_URN)
    ]


def test_one_complete_budget_is_enough() -> None:
    resources = [budget("ACTUAL", name="usage"), budget("ACTUAL", "FORECASTED")]
    assert run_stack_rule("budget-exists", resources) == []


def test_required_notification_types_setting() -> None:
    resources = [budget("ACTUAL")]
    assert run_stack_rule("budget-exists", resources, {"requiredNotificationTypes": ["ACTUAL"]}) == []


# ---------------------------------------------------------------------------------- gpu-peak-within-budget


def test_prod_gpu_peak_fits_its_budget() -> None:
    resources = [*prod_pools(), budget("ACTUAL", "FORECASTED")]
    # (8 x 0.9776 + 3 x 10.49264) x 730 ~ $28,688 < $60,000
    assert run_stack_rule("gpu-peak-within-budget", resources, {"hourlyPriceUsd": PRICES}) == []


def test_gpu_peak_over_budget_is_a_violation() -> None:
    resources = [*prod_pools(), budget("ACTUAL", "FORECASTED", limit="20000.00")]
    assert run_stack_rule("gpu-peak-within-budget", resources, {"hourlyPriceUsd": PRICES}) == [
        (
            "peak GPU spend $28,688/month (4 GPU node groups at maxSize, 730 h) exceeds budget budget limit "
            "$20,000/month; largest: gpu-l40s-x4-spot-ng $15,319",
            BUDGET_URN,
        )
    ]


def test_hours_per_month_setting_changes_the_verdict() -> None:
    resources = [*prod_pools(), budget("ACTUAL", "FORECASTED", limit="20000.00")]
    config = {"hourlyPriceUsd": PRICES, "hoursPerMonth": 400}  # business hours only
    assert run_stack_rule("gpu-peak-within-budget", resources, config) == []


def test_unpriced_instance_type_is_reported_separately() -> None:
    prices = {k: v for k, v in PRICES.items() if k != "g6.xlarge"}
    findings = run_stack_rule(
        "gpu-peak-within-budget", [*prod_pools(), budget("ACTUAL")], {"hourlyPriceUsd": prices}
    )
    assert findings == [
        (
            "no price for g6.xlarge: cannot check peak GPU spend",
            f"urn:pulumi:test::keel::{NODE_GROUP}::gpu-l4-od-ng",
        )
    ]


def test_priced_part_over_budget_is_reported_even_when_some_types_lack_a_price() -> None:
    prices = {"g6e.12xlarge": PRICES["g6e.12xlarge"]}
    findings = run_stack_rule(
        "gpu-peak-within-budget",
        [*prod_pools(), budget("ACTUAL", limit="10000")],
        {"hourlyPriceUsd": prices},
    )
    assert [message for message, _ in findings] == [
        "no price for g6.xlarge: cannot check peak GPU spend",
        "no price for g6.2xlarge: cannot check peak GPU spend",
        "peak GPU spend $22,979/month (2 GPU node groups at maxSize, 730 h) exceeds budget budget limit "
        "$10,000/month; largest: gpu-l40s-x4-spot-ng $15,319",
    ]


def test_without_prices_the_check_is_off() -> None:
    # The default (no price table) cannot judge anything: advisory until issue 5's cost model.
    resources = [*prod_pools(), budget("ACTUAL", limit="1")]
    assert run_stack_rule("gpu-peak-within-budget", resources) == []


def test_gpu_node_group_without_instance_types_or_max_size() -> None:
    resources = [
        policy_resource(NODE_GROUP, {"amiType": "BOTTLEROCKET_x86_64_NVIDIA"}, name="bare"),
        node_group("no-max", ["g6.xlarge"], 0.0),
        budget("ACTUAL"),
    ]
    assert run_stack_rule("gpu-peak-within-budget", resources, {"hourlyPriceUsd": PRICES}) == [
        (
            "GPU node group bare names no instanceTypes: cannot check peak GPU spend",
            f"urn:pulumi:test::keel::{NODE_GROUP}::bare",
        )
    ]


def test_gpu_pools_without_a_monthly_usd_budget() -> None:
    quarterly = budget("ACTUAL", timeUnit="QUARTERLY")
    assert run_stack_rule(
        "gpu-peak-within-budget", [*prod_pools(), quarterly], {"hourlyPriceUsd": PRICES}
    ) == [("no monthly COST budget in USD: cannot check peak GPU spend", None)]


def test_cpu_only_stack_has_nothing_to_check() -> None:
    resources = [node_group("system", ["m7i.xlarge"], 6.0, ami="AL2023_x86_64_STANDARD")]
    assert run_stack_rule("gpu-peak-within-budget", resources, {"hourlyPriceUsd": PRICES}) == []


def test_over_budget_peak_can_be_exempted_on_the_budget() -> None:
    resources = [*prod_pools(), budget("ACTUAL", limit="100")]
    exemption = {"resource": "budget", "reason": "GPU pools billed to the research account"}
    config = {"hourlyPriceUsd": PRICES, "exemptions": [exemption]}
    assert run_stack_rule("gpu-peak-within-budget", resources, config) == []
