"""Network rules: compliant, non-compliant, missing-property and config-override cases."""

from __future__ import annotations

from typing import Any

from keel.policy import link, policy_resource, resource_args
from tests.policy_helpers import run_resource_rule, run_stack_rule


def test_subnet_private_is_compliant() -> None:
    assert (
        run_resource_rule(
            "subnet-no-auto-public-ip", resource_args("aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": False})
        )
        == []
    )


def test_subnet_auto_public_ip_is_violation() -> None:
    messages = run_resource_rule(
        "subnet-no-auto-public-ip",
        resource_args("aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": True}, name="public-a"),
    )
    assert messages == ["subnet public-a assigns public IPs on launch"]


def test_subnet_missing_property_is_compliant() -> None:
    # AWS defaults mapPublicIpOnLaunch to false.
    assert run_resource_rule("subnet-no-auto-public-ip", resource_args("aws:ec2/subnet:Subnet", {})) == []


def test_subnet_exempted_through_config() -> None:
    args = resource_args(
        "aws:ec2/subnet:Subnet",
        {"mapPublicIpOnLaunch": True},
        name="bastion",
        config={"exemptions": [{"resource": "bastion", "reason": "break-glass bastion subnet"}]},
    )
    assert run_resource_rule("subnet-no-auto-public-ip", args) == []


def _vpc_and_flow_log(traffic: str) -> list[Any]:
    vpc = policy_resource("aws:ec2/vpc:Vpc", {"cidrBlock": "10.0.0.0/16"}, name="vpc")
    flow_log = link(
        policy_resource("aws:ec2/flowLog:FlowLog", {"trafficType": traffic}, name="fl"), "vpcId", vpc
    )
    return [vpc, flow_log]


def test_flow_logs_all_traffic_is_compliant() -> None:
    assert run_stack_rule("vpc-flow-logs-enabled", _vpc_and_flow_log("ALL")) == []


def test_flow_logs_rejected_only_is_violation() -> None:
    findings = run_stack_rule("vpc-flow-logs-enabled", _vpc_and_flow_log("REJECT"))
    assert findings == [
        ("VPC vpc has no flow log recording ALL traffic", "urn:pulumi:test::keel::aws:ec2/vpc:Vpc::vpc")
    ]
