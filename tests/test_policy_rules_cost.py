"""Cost rules: compliant, non-compliant, missing-property and config-override cases, on prod-shaped resources."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime import rpc

from keel.cost import estimate_graph
from keel.plan import Plan
from keel.policy import policy_provider, policy_resource, stack_resources
from policies.framework import planned_graph
from tests.policy_helpers import run_stack_rule

BUDGET = "aws:budgets/budget:Budget"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
BUDGET_URN = f"urn:pulumi:test::keel::{BUDGET}::budget"
NAT = "aws:ec2/natGateway:NatGateway"
US_EAST_1 = policy_provider("us-east-1")


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
    name: str,
    instance_types: list[str],
    max_size: float,
    ami: str = "AL2023_x86_64_NVIDIA",
    **extra: Any,
) -> Any:
    props = {
        "amiType": ami,
        "instanceTypes": instance_types,
        "scalingConfig": {"minSize": 0.0, "desiredSize": 0.0, "maxSize": max_size},
        **extra,
    }
    return policy_resource(NODE_GROUP, props, name=name, provider=US_EAST_1)


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


# -------------------------------------------------------------------------------- peak-spend-within-budget
# Figures from keel/prices/aws.yaml (us-east-1): g6.2xlarge $0.9776/h, g6.4xlarge $1.3232/h, gp3 $0.08/GB-month,
# NAT $0.045/h + $0.045/GB, spot at 0.4 x on-demand; 730 h a month; a node group without a launch template
# has EKS's default 20 GB root volume.

#: 10 nodes at peak on the priciest listed type: 10 x 1.3232 x 730 + 10 x 20 x 0.08 = 9,675.36 a month.
L4_POOL_PEAK = 10 * 1.3232 * 730 + 10 * 20 * 0.08


def l4_pool(**extra: Any) -> Any:
    return node_group("gpu-l4-od-ng", ["g6.2xlarge", "g6.4xlarge"], 10.0, **extra)


def test_peak_within_budget_is_compliant() -> None:
    assert run_stack_rule("peak-spend-within-budget", [l4_pool(), budget("ACTUAL", limit="9700")]) == []


def test_peak_over_budget_is_a_violation_priced_at_the_most_expensive_type() -> None:
    findings = run_stack_rule("peak-spend-within-budget", [l4_pool(), budget("ACTUAL", limit="9600")])
    assert round(L4_POOL_PEAK, 2) == 9675.36
    assert findings == [
        (
            "peak spend $9,675/month exceeds budget budget $9,600/month; largest: (stack) $9,675/month "
            "(list prices as of 2026-11-27)",
            BUDGET_URN,
        )
    ]


def test_spot_groups_are_priced_at_the_spot_estimate() -> None:
    spot = l4_pool(capacityType="SPOT")  # 10 x 0.4 x 1.3232 x 730 + 16 = 3,879.74
    assert run_stack_rule("peak-spend-within-budget", [spot, budget("ACTUAL", limit="3900")]) == []
    assert len(run_stack_rule("peak-spend-within-budget", [spot, budget("ACTUAL", limit="3870")])) == 1


def test_usage_priced_resources_count_their_tagged_volume() -> None:
    nat = policy_resource(
        NAT, {"tags": {"keel:cost-assumed-gb": "1000"}}, name="nat", provider=US_EAST_1
    )  # 0.045 x 730 + 1000 x 0.045 = 77.85
    resources = [l4_pool(), nat, budget("ACTUAL", limit="9754")]  # 9,753.21
    assert run_stack_rule("peak-spend-within-budget", resources) == []
    resources[-1] = budget("ACTUAL", limit="9753")
    assert len(run_stack_rule("peak-spend-within-budget", resources)) == 1


def test_share_of_budget_setting_keeps_headroom() -> None:
    resources = [l4_pool(), budget("ACTUAL", limit="10000")]
    assert run_stack_rule("peak-spend-within-budget", resources) == []
    findings = run_stack_rule("peak-spend-within-budget", resources, {"maxShareOfBudget": 0.9})
    assert [m for m, _ in findings] == [
        "peak spend $9,675/month exceeds budget budget $9,000/month (90% of its $10,000); largest: (stack) "
        "$9,675/month (list prices as of 2026-11-27)"
    ]


def test_each_unpriced_resource_is_reported_on_itself_so_it_can_be_exempted() -> None:
    p5 = node_group("p5", ["x99.unlisted"], 1.0)  # a type no price table lists
    untagged_nat = policy_resource(NAT, {}, name="nat", provider=US_EAST_1)
    resources = [p5, untagged_nat, budget("ACTUAL")]
    assert run_stack_rule("peak-spend-within-budget", resources) == [
        (
            f"cannot price nat ({NAT}): usage-priced, and it has no keel:cost-assumed-gb tag: set keel:usage; "
            "peak spend is a lower bound",
            untagged_nat.urn,
        ),
        (
            f"cannot price p5 ({NODE_GROUP}): no on-demand price for x99.unlisted in us-east-1 in the "
            "price table; peak spend is a lower bound",
            p5.urn,
        ),
    ]
    exempt = {"exemptions": [{"resource": "p5", "reason": "priced by the capacity reservation team"}]}
    assert [urn for _, urn in run_stack_rule("peak-spend-within-budget", resources, exempt)] == [
        untagged_nat.urn
    ]


def test_values_unknown_at_preview_do_not_block_the_estimate() -> None:
    # Under `pulumi preview` ids and ARNs of resources not created yet are unknown; the estimate does not read them.
    pending = node_group(
        "pending", ["g6.2xlarge", "g6.4xlarge"], 10.0, nodeRoleArn=rpc.UNKNOWN, subnetIds=[rpc.UNKNOWN]
    )
    assert run_stack_rule("peak-spend-within-budget", [pending, budget("ACTUAL", limit="9700")]) == []


def test_an_unknown_value_the_estimate_needs_is_reported_never_priced_as_zero() -> None:
    unknown_max = policy_resource(
        NODE_GROUP,
        {"instanceTypes": ["g6.2xlarge"], "scalingConfig": {"minSize": 0.0, "maxSize": rpc.UNKNOWN}},
        name="pending",
        provider=US_EAST_1,
    )
    endpoint = policy_resource(
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        {"vpcEndpointType": "Interface", "subnetIds": rpc.UNKNOWN},
        name="sts",
        provider=US_EAST_1,
    )
    findings = run_stack_rule("peak-spend-within-budget", [unknown_max, endpoint, budget("ACTUAL")])
    assert [(urn, message.split(": ", 1)[1]) for message, urn in findings] == [
        (
            endpoint.urn,
            "an interface endpoint is priced per subnet, and its subnetIds are not known; peak spend is a lower "
            "bound",
        ),
        (
            unknown_max.urn,
            "its scalingConfig minSize and maxSize must be known numbers to price it; peak spend is a lower bound",
        ),
    ]


def test_without_a_monthly_usd_budget_or_a_region_nothing_can_be_checked() -> None:
    quarterly = budget("ACTUAL", timeUnit="QUARTERLY")
    assert run_stack_rule("peak-spend-within-budget", [l4_pool(), quarterly]) == [
        ("no monthly COST budget in USD: cannot check peak spend", None)
    ]
    no_provider = policy_resource(NODE_GROUP, {"instanceTypes": ["g6.2xlarge"]}, name="ng")
    assert run_stack_rule("peak-spend-within-budget", [no_provider, budget("ACTUAL")]) == [
        ("no AWS provider with an explicit region: cannot price the stack", None)
    ]


def test_over_budget_peak_can_be_exempted_on_the_budget() -> None:
    resources = [l4_pool(), budget("ACTUAL", limit="100")]
    exemption = {"resource": "budget", "reason": "GPU pools billed to the research account"}
    assert run_stack_rule("peak-spend-within-budget", resources, {"exemptions": [exemption]}) == []


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_policy_prices_what_the_plan_prices(plans: dict[str, Plan], env: str) -> None:
    """Under the engine the policy sees only custom resources with their outputs; same figures regardless."""
    plan = plans[env]
    assert plan.cost is not None
    seen_by_policy = estimate_graph(
        planned_graph(stack_resources(plan.graph)), region=plan.spec.aws.region, budget=None
    )
    assert seen_by_policy.peak.total == pytest.approx(plan.cost.peak.total)
    assert seen_by_policy.idle.total == pytest.approx(plan.cost.idle.total)
    assert seen_by_policy.unpriced == plan.cost.unpriced == ()
    assert seen_by_policy.peak.by_component == pytest.approx(plan.cost.peak.by_component)


def test_over_budget_names_the_largest_component_when_the_engine_passes_components(
    plans: dict[str, Plan],
) -> None:
    # The engine gives stack policies every resource: components and the stack too, none of them priced.
    resources = stack_resources(plans["prod"].graph)
    assert any(r.resource_type.startswith("keel:") for r in resources)
    budget_urn = next(r.urn for r in resources if r.resource_type == BUDGET)
    findings = run_stack_rule("peak-spend-within-budget", resources, {"maxShareOfBudget": 0.1})
    assert [(urn, message.split("; largest: ")[1].split(" $")[0]) for message, urn in findings] == [
        (budget_urn, "gpu-l40s-x4-od")
    ]
