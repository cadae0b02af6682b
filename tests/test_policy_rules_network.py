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


# ------------------------------------------------------------------------------ launch-template-no-public-ip

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


def test_launch_template_private_interfaces_are_compliant() -> None:
    args = resource_args(LAUNCH_TEMPLATE, {"networkInterfaces": [{"associatePublicIpAddress": "false"}]})
    assert run_resource_rule("launch-template-no-public-ip", args) == []


def test_launch_template_public_ip_is_violation() -> None:
    # The provider carries this flag as a string.
    args = resource_args(
        LAUNCH_TEMPLATE,
        {"networkInterfaces": [{"deviceIndex": 0.0}, {"associatePublicIpAddress": "true"}]},
        name="gpu-lt",
    )
    assert run_resource_rule("launch-template-no-public-ip", args) == [
        "launch template gpu-lt gives instances a public IP (networkInterfaces[1].associatePublicIpAddress)"
    ]


def test_launch_template_without_interfaces_is_compliant() -> None:
    # Keel's templates declare no interfaces: nodes take the (private) subnet's setting.
    assert run_resource_rule("launch-template-no-public-ip", resource_args(LAUNCH_TEMPLATE, {})) == []


def test_launch_template_public_ip_exempted_through_config() -> None:
    args = resource_args(
        LAUNCH_TEMPLATE,
        {"networkInterfaces": [{"associatePublicIpAddress": True}]},
        name="bastion-lt",
        config={"exemptions": [{"resource": "bastion-lt", "reason": "break-glass bastion, ticket SEC-12"}]},
    )
    assert run_resource_rule("launch-template-no-public-ip", args) == []


# ------------------------------------------------------------------------------------ security group shapes

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"


def _sg(*ingress: dict[str, Any], name: str = "web", config: dict[str, Any] | None = None) -> Any:
    return resource_args(SECURITY_GROUP, {"ingress": list(ingress)}, name=name, config=config)


def _tcp(port_from: int, port_to: int, *cidrs: str) -> dict[str, Any]:
    return {
        "protocol": "tcp",
        "fromPort": float(port_from),
        "toPort": float(port_to),
        "cidrBlocks": list(cidrs),
    }


def test_admin_ports_from_the_vpc_only_are_compliant() -> None:
    args = _sg(_tcp(22, 22, "10.0.0.0/16"), _tcp(443, 443, "0.0.0.0/0"))
    assert run_resource_rule("sg-no-public-admin-ports", args) == []


def test_ssh_from_the_world_is_violation() -> None:
    args = _sg(_tcp(443, 443, "10.0.0.0/16"), _tcp(22, 22, "10.0.0.0/8", "0.0.0.0/0"))
    assert run_resource_rule("sg-no-public-admin-ports", args) == [
        "security group web ingress[1] opens administrative port(s) 22 to 0.0.0.0/0"
    ]


def test_port_range_over_postgres_from_ipv6_world_is_violation() -> None:
    args = resource_args(
        INGRESS_RULE,
        {"cidrIpv6": "::/0", "ipProtocol": "tcp", "fromPort": 5400.0, "toPort": 5500.0},
        name="db-in",
    )
    assert run_resource_rule("sg-no-public-admin-ports", args) == [
        "security group rule db-in opens administrative port(s) 5432 to ::/0"
    ]


def test_security_group_rule_ingress_and_egress() -> None:
    ingress = resource_args(
        SG_RULE,
        {
            "type": "ingress",
            "protocol": "tcp",
            "fromPort": 10250.0,
            "toPort": 10250.0,
            "cidrBlocks": ["0.0.0.0/0"],
        },
        name="kubelet",
    )
    egress = resource_args(
        SG_RULE,
        {"type": "egress", "protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]},
        name="out",
    )
    assert run_resource_rule("sg-no-public-admin-ports", ingress) == [
        "security group rule kubelet opens administrative port(s) 10250 to 0.0.0.0/0"
    ]
    assert run_resource_rule("sg-no-public-admin-ports", egress) == []


def test_all_traffic_from_the_world_opens_every_admin_port_and_icmp_opens_none() -> None:
    everything = _sg({"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]})
    assert run_resource_rule("sg-no-public-admin-ports", everything) == [
        "security group web ingress[0] opens administrative port(s) 22, 3389, 5432, 3306, 6443, 10250 to 0.0.0.0/0"
    ]
    # For ICMP, fromPort/toPort are the ICMP type and code, not ports.
    icmp = _sg({"protocol": "icmp", "fromPort": 0.0, "toPort": 65535.0, "cidrBlocks": ["0.0.0.0/0"]})
    assert run_resource_rule("sg-no-public-admin-ports", icmp) == []


def test_admin_ports_missing_properties() -> None:
    # No ingress at all: nothing is open.
    assert run_resource_rule("sg-no-public-admin-ports", resource_args(SECURITY_GROUP, {})) == []
    # A source security group instead of CIDRs: not the world.
    by_group = _sg({"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "securityGroups": ["sg-123"]})
    assert run_resource_rule("sg-no-public-admin-ports", by_group) == []
    # A TCP rule from the world without ports is read as the whole range.
    no_ports = resource_args(INGRESS_RULE, {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "tcp"}, name="wide")
    assert run_resource_rule("sg-no-public-admin-ports", no_ports) == [
        "security group rule wide opens administrative port(s) 22, 3389, 5432, 3306, 6443, 10250 to 0.0.0.0/0"
    ]


def test_admin_ports_setting_changes_the_verdict() -> None:
    config = {"adminPorts": [8080]}
    assert run_resource_rule("sg-no-public-admin-ports", _sg(_tcp(22, 22, "0.0.0.0/0"), config=config)) == []
    assert run_resource_rule(
        "sg-no-public-admin-ports", _sg(_tcp(8000, 9000, "0.0.0.0/0"), config=config)
    ) == ["security group web ingress[0] opens administrative port(s) 8080 to 0.0.0.0/0"]


# ---------------------------------------------------------------------------------- sg-no-public-all-ports


def test_single_port_from_the_world_is_not_all_ports() -> None:
    assert run_resource_rule("sg-no-public-all-ports", _sg(_tcp(443, 443, "0.0.0.0/0"))) == []
    # Every port, but only from inside the VPC.
    assert run_resource_rule("sg-no-public-all-ports", _sg(_tcp(0, 65535, "10.0.0.0/16"))) == []


def test_all_protocols_from_the_world_is_violation() -> None:
    args = _sg(
        _tcp(443, 443, "10.0.0.0/16"),
        {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]},
    )
    assert run_resource_rule("sg-no-public-all-ports", args) == [
        "security group web ingress[1] opens all traffic to 0.0.0.0/0"
    ]


def test_full_port_range_from_the_world_is_violation() -> None:
    args = resource_args(
        SG_RULE,
        {
            "type": "ingress",
            "protocol": "udp",
            "fromPort": 0.0,
            "toPort": 65535.0,
            "ipv6CidrBlocks": ["::/0"],
        },
        name="udp-any",
    )
    assert run_resource_rule("sg-no-public-all-ports", args) == [
        "security group rule udp-any opens udp ports 0-65535 to ::/0"
    ]
    all_keyword = resource_args(INGRESS_RULE, {"cidrIpv4": "0.0.0.0/0", "ipProtocol": "ALL"}, name="any")
    assert run_resource_rule("sg-no-public-all-ports", all_keyword) == [
        "security group rule any opens all traffic to 0.0.0.0/0"
    ]


def test_all_ports_missing_properties() -> None:
    assert run_resource_rule("sg-no-public-all-ports", resource_args(INGRESS_RULE, {})) == []
    # No protocol at all on a world-open rule: read as every protocol.
    no_protocol = resource_args(INGRESS_RULE, {"cidrIpv4": "0.0.0.0/0"}, name="bare")
    assert run_resource_rule("sg-no-public-all-ports", no_protocol) == [
        "security group rule bare opens all traffic to 0.0.0.0/0"
    ]


def test_all_ports_exempted_through_config() -> None:
    args = _sg(
        {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]},
        name="honeypot",
        config={"exemptions": [{"resource": "honeypot", "reason": "research honeypot, isolated VPC"}]},
    )
    assert run_resource_rule("sg-no-public-all-ports", args) == []


# ------------------------------------------------------------------------------------- default-sg-no-rules

DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"


def test_default_sg_without_rules_is_compliant() -> None:
    args = resource_args(DEFAULT_SG, {"ingress": [], "egress": [], "vpcId": "vpc-1"})
    assert run_resource_rule("default-sg-no-rules", args) == []


def test_default_sg_with_rules_is_violation() -> None:
    args = resource_args(
        DEFAULT_SG,
        {
            "ingress": [{"protocol": "-1", "self": True, "fromPort": 0.0, "toPort": 0.0}],
            "egress": [_tcp(0, 65535, "0.0.0.0/0")],
        },
        name="default",
    )
    assert run_resource_rule("default-sg-no-rules", args) == [
        "default security group default has 1 ingress rule(s)",
        "default security group default has 1 egress rule(s)",
    ]


def test_default_sg_missing_rules_is_compliant() -> None:
    # Adopting the default group strips its rules; none declared means none remain.
    assert run_resource_rule("default-sg-no-rules", resource_args(DEFAULT_SG, {"vpcId": "vpc-1"})) == []


def test_default_sg_exempted_through_config() -> None:
    args = resource_args(
        DEFAULT_SG,
        {"egress": [_tcp(443, 443, "0.0.0.0/0")]},
        name="legacy-default",
        config={
            "exemptions": [{"resource": "legacy-default", "reason": "imported VPC, migration in KEEL-88"}]
        },
    )
    assert run_resource_rule("default-sg-no-rules", args) == []


def test_flow_logs_missing_traffic_type_is_violation() -> None:
    vpc = policy_resource("aws:ec2/vpc:Vpc", {"cidrBlock": "10.0.0.0/16"}, name="vpc")
    flow_log = link(policy_resource("aws:ec2/flowLog:FlowLog", {}, name="fl"), "vpcId", vpc)
    assert [message for message, _ in run_stack_rule("vpc-flow-logs-enabled", [vpc, flow_log])] == [
        "VPC vpc has no flow log recording ALL traffic"
    ]


def test_flow_logs_vpc_exempted_through_config() -> None:
    exemption = {"resource": "vpc", "reason": "sandbox VPC, torn down nightly"}
    findings = run_stack_rule(
        "vpc-flow-logs-enabled", _vpc_and_flow_log("REJECT"), {"exemptions": [exemption]}
    )
    assert findings == []
