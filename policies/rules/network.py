"""Network rules: nothing reachable from the internet that need not be, and traffic recorded."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from policies.framework import depends_on, of_type, prop, resource_rule, stack_rule, truthy


@resource_rule(
    name="subnet-no-auto-public-ip",
    description="Subnets must not give instances public IP addresses automatically.",
    domain="network",
    category="security",
    severity="high",
    remediation="Set mapPublicIpOnLaunch to false; nodes reach the internet through NAT, never directly.",
    types=["aws:ec2/subnet:Subnet"],
)
def subnet_no_auto_public_ip(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    if truthy(prop(resource, "mapPublicIpOnLaunch")):
        yield f"subnet {resource.name} assigns public IPs on launch"


@stack_rule(
    name="vpc-flow-logs-enabled",
    description="Every VPC records all its traffic in flow logs.",
    domain="network",
    category="security",
    severity="medium",
    remediation="Add an aws.ec2.FlowLog with trafficType ALL for the VPC (the Network component does).",
)
def vpc_flow_logs_enabled(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[tuple[str, str | None]]:
    flow_logs = [f for f in of_type(resources, "aws:ec2/flowLog:FlowLog") if prop(f, "trafficType") == "ALL"]
    for vpc in of_type(resources, "aws:ec2/vpc:Vpc"):
        if not any(depends_on(f, vpc, "vpcId") for f in flow_logs):
            yield f"VPC {vpc.name} has no flow log recording ALL traffic", vpc.urn
