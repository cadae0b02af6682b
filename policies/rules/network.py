"""Network rules: nothing reachable from the internet that need not be, and traffic recorded.

Security-group rules come in several shapes (inline ``ingress`` blocks, standalone ingress-rule resources).
Each shape has a reader below that turns it into ``Ingress`` records keyed by type token; the rules only see
those records, so another cloud's firewall joins by adding a reader for its type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from policies.framework import Resource, depends_on, items, of_type, prop, resource_rule, stack_rule, truthy

#: CIDRs that mean "anyone on the internet".
WORLD = frozenset({"0.0.0.0/0", "::/0"})
ALL_PROTOCOLS = frozenset({"-1", "all"})
#: Protocols whose from/to ports are ports (for ICMP they are type and code).
PORT_PROTOCOLS = frozenset({"tcp", "udp", "6", "17"})
MAX_PORT = 65535


@dataclass(frozen=True)
class Ingress:
    """One inbound permission: who (CIDRs), how (protocol) and where (port range)."""

    label: str
    cidrs: tuple[str, ...]
    protocol: str
    from_port: int
    to_port: int

    @property
    def world(self) -> tuple[str, ...]:
        return tuple(c for c in self.cidrs if c in WORLD)

    @property
    def all_traffic(self) -> bool:
        return self.protocol in ALL_PROTOCOLS

    def reaches(self, port: int) -> bool:
        if self.all_traffic:
            return True
        return self.protocol in PORT_PROTOCOLS and self.from_port <= port <= self.to_port

    @property
    def all_ports(self) -> bool:
        return self.all_traffic or (
            self.protocol in PORT_PROTOCOLS and self.from_port <= 0 and self.to_port >= MAX_PORT
        )


def _port(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def _ingress(label: str, cidrs: Iterable[Any], protocol: Any, from_port: Any, to_port: Any) -> Ingress:
    # A port-based rule without ports is read as the whole range (the conservative reading).
    return Ingress(
        label=label,
        cidrs=tuple(str(c) for c in cidrs if c),
        protocol=str(protocol if protocol is not None else "-1").lower(),
        from_port=_port(from_port, 0),
        to_port=_port(to_port, MAX_PORT),
    )


def _aws_security_group(resource: Resource) -> Iterator[Ingress]:
    for index, block in enumerate(items(prop(resource, "ingress"))):
        if not isinstance(block, Mapping):
            continue
        yield _ingress(
            f"security group {resource.name} ingress[{index}]",
            [*items(block.get("cidrBlocks")), *items(block.get("ipv6CidrBlocks"))],
            block.get("protocol"),
            block.get("fromPort"),
            block.get("toPort"),
        )


def _aws_ingress_rule(resource: Resource) -> Iterator[Ingress]:
    yield _ingress(
        f"security group rule {resource.name}",
        [prop(resource, "cidrIpv4"), prop(resource, "cidrIpv6")],
        prop(resource, "ipProtocol"),
        prop(resource, "fromPort"),
        prop(resource, "toPort"),
    )


def _aws_security_group_rule(resource: Resource) -> Iterator[Ingress]:
    if prop(resource, "type") != "ingress":
        return
    yield _ingress(
        f"security group rule {resource.name}",
        [*items(prop(resource, "cidrBlocks")), *items(prop(resource, "ipv6CidrBlocks"))],
        prop(resource, "protocol"),
        prop(resource, "fromPort"),
        prop(resource, "toPort"),
    )


#: Type token -> reader of its inbound permissions.
INGRESS_READERS: dict[str, Callable[[Resource], Iterator[Ingress]]] = {
    "aws:ec2/securityGroup:SecurityGroup": _aws_security_group,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _aws_ingress_rule,
    "aws:ec2/securityGroupRule:SecurityGroupRule": _aws_security_group_rule,
}


def ingress_of(resource: Resource) -> list[Ingress]:
    reader = INGRESS_READERS.get(resource.resource_type)
    return list(reader(resource)) if reader else []


# ------------------------------------------------------------------------------------------------- rules


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


@resource_rule(
    name="launch-template-no-public-ip",
    description="Launch templates must not give instances a public IP address.",
    domain="network",
    category="security",
    severity="high",
    remediation=(
        "Remove associatePublicIpAddress from the launch template's networkInterfaces (or set it to false); "
        "nodes belong in private subnets behind NAT."
    ),
    types=["aws:ec2/launchTemplate:LaunchTemplate"],
)
def launch_template_no_public_ip(
    resource: ResourceValidationArgs, config: Mapping[str, Any]
) -> Iterable[str]:
    for index, interface in enumerate(items(prop(resource, "networkInterfaces"))):
        if isinstance(interface, Mapping) and truthy(interface.get("associatePublicIpAddress")):
            yield (
                f"launch template {resource.name} gives instances a public IP "
                f"(networkInterfaces[{index}].associatePublicIpAddress)"
            )


@resource_rule(
    name="sg-no-public-admin-ports",
    description="No security group rule opens an administrative port to the whole internet.",
    domain="network",
    category="security",
    severity="critical",
    remediation=(
        "Replace 0.0.0.0/0 and ::/0 on administrative ports with the VPC CIDR or a named source security "
        "group; reach nodes through SSM Session Manager and the cluster through its private endpoint."
    ),
    types=list(INGRESS_READERS),
    settings={
        "adminPorts": {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": MAX_PORT},
            "default": [22, 3389, 5432, 3306, 6443, 10250],
            "description": "Ports that must never be reachable from 0.0.0.0/0 or ::/0.",
        }
    },
)
def sg_no_public_admin_ports(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    admin_ports = [int(p) for p in config.get("adminPorts") or []]
    for rule in ingress_of(resource):
        if not rule.world:
            continue
        open_ports = [p for p in admin_ports if rule.reaches(p)]
        if open_ports:
            ports = ", ".join(str(p) for p in open_ports)
            yield f"{rule.label} opens administrative port(s) {ports} to {', '.join(rule.world)}"


@resource_rule(
    name="sg-no-public-all-ports",
    description="No security group rule opens every port or protocol to the whole internet.",
    domain="network",
    category="security",
    severity="critical",
    remediation=(
        "Open only the ports the service needs, from the narrowest source that works (the VPC CIDR, a "
        "security group or a load balancer), never protocol -1 or 0-65535 from 0.0.0.0/0 or ::/0."
    ),
    types=list(INGRESS_READERS),
)
def sg_no_public_all_ports(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    for rule in ingress_of(resource):
        if rule.world and rule.all_ports:
            what = (
                "all traffic"
                if rule.all_traffic
                else f"{rule.protocol} ports {rule.from_port}-{rule.to_port}"
            )
            yield f"{rule.label} opens {what} to {', '.join(rule.world)}"


@resource_rule(
    name="default-sg-no-rules",
    description="The VPC's default security group allows no traffic at all.",
    domain="network",
    category="security",
    severity="medium",
    remediation=(
        "Manage the default security group with aws.ec2.DefaultSecurityGroup and empty ingress and egress "
        "lists; give workloads their own security groups instead."
    ),
    types=["aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"],
)
def default_sg_no_rules(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    # Adopting the default group removes every rule it had; only the rules declared here remain.
    for direction in ("ingress", "egress"):
        count = len(items(prop(resource, direction)))
        if count:
            yield f"default security group {resource.name} has {count} {direction} rule(s)"
