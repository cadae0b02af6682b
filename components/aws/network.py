"""The environment's VPC: private node subnets per AZ, NAT per tier, VPC endpoints and encrypted flow logs."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws
from pydantic import AfterValidator, Field, field_validator, model_validator

from components.aws.logs import encrypted_log_group
from components.aws.policy_documents import assume_role_policy, document
from components.base import (
    AwsContext,
    ComponentArgs,
    Stateful,
    StrInput,
    child_options,
    named_tags,
)

#: The retention periods CloudWatch Logs accepts (``PutRetentionPolicy``); 0 (never expire) is not offered.
CLOUDWATCH_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


def _check_retention(days: int) -> int:
    if days not in CLOUDWATCH_RETENTION_DAYS:
        raise ValueError(
            f"log retention {days} days is not a CloudWatch Logs retention period; "
            f"allowed: {sorted(CLOUDWATCH_RETENTION_DAYS)}"
        )
    return days


#: A CloudWatch Logs retention in days, validated against the values the service accepts.
RetentionDays = Annotated[int, AfterValidator(_check_retention)]

#: EKS cluster names: letters, digits, hyphens and underscores, starting alphanumeric, at most 100 characters.
CLUSTER_NAME_PATTERN = r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"

#: Interface endpoints nodes need to pull images, get credentials, ship logs and read secrets without NAT.
INTERFACE_ENDPOINT_SERVICES = ("ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager", "kms")

# Private subnets are the VPC split in eight (/19s of a /16); public ones are small slices of the last eighth.
_PRIVATE_SPLIT_BITS = 3
_PUBLIC_SPLIT_BITS = 8
_MAX_AZS = 2**_PRIVATE_SPLIT_BITS - 1


class NetworkArgs(ComponentArgs):
    """Inputs of :class:`Network`."""

    context: AwsContext
    """Account, region and partition the VPC is created in. Required."""
    cidr: str
    """The VPC's IPv4 CIDR, a network address with a prefix between /16 and /20 (e.g. ``10.20.0.0/16``).
    Environments must use non-overlapping ranges. Required."""
    availability_zones: list[str] = Field(min_length=1, max_length=_MAX_AZS)
    """Availability zone names in the context's region (e.g. ``["us-east-1a", "us-east-1b"]``); one private
    subnet per zone, in this order. Given explicitly so no lookup is needed. Required."""
    nat: Literal["single", "per-az"]
    """``"single"``: one NAT gateway in the first zone shared by all (cheaper, one zone's outage cuts egress);
    ``"per-az"``: one NAT gateway per zone, each zone routing through its own. Required."""
    cluster_name: str = Field(pattern=CLUSTER_NAME_PATTERN)
    """Name of the EKS cluster that uses the VPC, for the ``kubernetes.io/cluster/<name>`` subnet tag and
    the flow-log group name. Required."""
    flow_log_retention_days: RetentionDays
    """Days the VPC flow logs are kept; one of the CloudWatch Logs retention periods. Required."""
    assumed_nat_gb_per_month: float | None = Field(default=None, ge=0)
    """GB all NAT gateways process per month together, split evenly and tagged on each gateway for the cost
    model (``keel:cost-assumed-gb``). Default: ``None`` (untagged: the gateways' traffic is unpriced)."""
    assumed_flow_log_gb_per_month: float | None = Field(default=None, ge=0)
    """GB of flow logs ingested per month, tagged on the log group for the cost model. Default: ``None``."""
    log_key_arn: StrInput
    """ARN of the KMS key encrypting the flow-log group. Its key policy must allow the
    ``logs.<region>.amazonaws.com`` principal. Required."""
    tags: Mapping[str, str]
    """The environment's merged tags, put on every taggable resource. Required."""
    stateful: Stateful = Stateful()
    """Protection of the flow-log group (it holds audit data). Default: unprotected."""

    @field_validator("cidr")
    @classmethod
    def _cidr_is_an_ipv4_network(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as error:
            raise ValueError(
                f"cidr {value!r} is not an IPv4 network address such as '10.20.0.0/16' ({error})"
            ) from error
        if not 16 <= network.prefixlen <= 20:
            raise ValueError(f"cidr {value!r} has prefix /{network.prefixlen}; allowed: /16 to /20")
        return value

    @model_validator(mode="after")
    def _zones_are_in_region(self) -> NetworkArgs:
        zones = self.availability_zones
        if len(set(zones)) != len(zones):
            raise ValueError(f"availability_zones {zones} contains duplicates; each zone may appear once")
        pattern = re.compile(rf"^{re.escape(self.context.region)}[a-z]$")
        wrong = [zone for zone in zones if not pattern.match(zone)]
        if wrong:
            raise ValueError(
                f"availability_zones {wrong} are not zone names in region {self.context.region!r}; "
                f"allowed: names like '{self.context.region}a'"
            )
        return self


def subnet_plan(cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """The private and public subnet CIDRs for ``zone_count`` zones, carved deterministically from ``cidr``.

    Private subnets are the first eighths of the VPC (a /19 each in a /16); public subnets, only used by NAT
    gateways, are /24-sized slices (for a /16) at the start of the last eighth, which no private subnet uses.
    """
    vpc = ipaddress.IPv4Network(cidr)
    eighths = list(vpc.subnets(prefixlen_diff=_PRIVATE_SPLIT_BITS))
    if zone_count > len(eighths) - 1:
        raise ValueError(f"{zone_count} zones do not fit {cidr}: at most {len(eighths) - 1}")
    public_pool = eighths[-1].subnets(new_prefix=vpc.prefixlen + _PUBLIC_SPLIT_BITS)
    public = [next(public_pool) for _ in range(zone_count)]
    return [str(net) for net in eighths[:zone_count]], [str(net) for net in public]


def endpoint_service_name(context: AwsContext, service: str) -> str:
    """A VPC endpoint service name, e.g. ``com.amazonaws.us-east-1.ecr.api`` (reverse DNS of the suffix)."""
    prefix = ".".join(reversed(context.dns_suffix.split(".")))
    return f"{prefix}.{context.region}.{service}"


class Network(pulumi.ComponentResource):
    """A VPC for one environment's EKS cluster.

    Nodes live in private subnets (one per zone, tagged for internal load balancers); public subnets exist
    only to host NAT gateways. AWS APIs the nodes need (S3, ECR, STS, logs, Secrets Manager, KMS) are reached
    through VPC endpoints, and all traffic is recorded in flow logs kept in a KMS-encrypted log group.
    The VPC's default security group is adopted and emptied so nothing can use it by accident.
    """

    vpc_id: pulumi.Output[str]
    """The VPC id."""
    private_subnet_ids: list[pulumi.Output[str]]
    """Private subnet ids, one per availability zone in the order given."""
    public_subnet_ids: list[pulumi.Output[str]]
    """Public (NAT-only) subnet ids: one for ``"single"`` NAT, one per zone for ``"per-az"``."""
    private_route_table_ids: list[pulumi.Output[str]]
    """Private route table ids, one per availability zone."""
    endpoint_security_group_id: pulumi.Output[str]
    """The security group of the interface endpoints (HTTPS from the VPC only)."""
    nat_gateway_count: int
    """How many NAT gateways the network has (known before deployment, for cost estimates)."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("keel:aws:Network", name, None, opts)
        zones = args.availability_zones
        private_cidrs, public_cidrs = subnet_plan(args.cidr, len(zones))
        nat_zones = zones if args.nat == "per-az" else zones[:1]

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=named_tags(args.tags, name),
            opts=child_options(self),
        )
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=named_tags(args.tags, f"{name}-default-do-not-use"),
            opts=child_options(self),
        )

        # Public side: only what NAT needs. The internet gateway exists only because NAT needs it.
        public_subnets: list[aws.ec2.Subnet] = []
        nat_gateways: list[aws.ec2.NatGateway] = []
        if nat_zones:
            igw = aws.ec2.InternetGateway(
                f"{name}-igw",
                vpc_id=vpc.id,
                tags=named_tags(args.tags, f"{name}-igw"),
                opts=child_options(self),
            )
            public_rt = aws.ec2.RouteTable(
                f"{name}-public-rt",
                vpc_id=vpc.id,
                tags=named_tags(args.tags, f"{name}-public"),
                opts=child_options(self),
            )
            aws.ec2.Route(
                f"{name}-public-default",
                route_table_id=public_rt.id,
                destination_cidr_block="0.0.0.0/0",
                gateway_id=igw.id,
                opts=child_options(self),
            )
            for zone, cidr in zip(nat_zones, public_cidrs, strict=False):
                subnet = aws.ec2.Subnet(
                    f"{name}-public-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=cidr,
                    availability_zone=zone,
                    map_public_ip_on_launch=False,
                    tags=named_tags(args.tags, f"{name}-public-{zone}"),
                    opts=child_options(self),
                )
                aws.ec2.RouteTableAssociation(
                    f"{name}-public-{zone}",
                    subnet_id=subnet.id,
                    route_table_id=public_rt.id,
                    opts=child_options(self),
                )
                eip = aws.ec2.Eip(
                    f"{name}-nat-{zone}",
                    domain="vpc",
                    tags=named_tags(args.tags, f"{name}-nat-{zone}"),
                    opts=child_options(self, depends_on=[igw]),
                )
                nat_gateways.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{zone}",
                        allocation_id=eip.allocation_id,
                        subnet_id=subnet.id,
                        connectivity_type="public",
                        tags=named_tags(
                            args.tags,
                            f"{name}-nat-{zone}",
                            assumed_gb=None
                            if args.assumed_nat_gb_per_month is None
                            else args.assumed_nat_gb_per_month / len(nat_zones),
                        ),
                        opts=child_options(self, depends_on=[igw]),
                    )
                )
                public_subnets.append(subnet)

        private_subnets: list[aws.ec2.Subnet] = []
        private_rts: list[aws.ec2.RouteTable] = []
        for index, (zone, cidr) in enumerate(zip(zones, private_cidrs, strict=True)):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=named_tags(
                    args.tags,
                    f"{name}-private-{zone}",
                    {
                        f"kubernetes.io/cluster/{args.cluster_name}": "shared",
                        "kubernetes.io/role/internal-elb": "1",
                    },
                ),
                opts=child_options(self),
            )
            route_table = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                tags=named_tags(args.tags, f"{name}-private-{zone}"),
                opts=child_options(self),
            )
            if nat_gateways:
                nat = nat_gateways[index] if args.nat == "per-az" else nat_gateways[0]
                aws.ec2.Route(
                    f"{name}-private-{zone}-default",
                    route_table_id=route_table.id,
                    destination_cidr_block="0.0.0.0/0",
                    nat_gateway_id=nat.id,
                    opts=child_options(self),
                )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}",
                subnet_id=subnet.id,
                route_table_id=route_table.id,
                opts=child_options(self),
            )
            private_subnets.append(subnet)
            private_rts.append(route_table)

        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=endpoint_service_name(args.context, "s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags=named_tags(args.tags, f"{name}-s3"),
            opts=child_options(self),
        )
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            vpc_id=vpc.id,
            description="Interface VPC endpoints: HTTPS from inside the VPC only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    description="HTTPS from the VPC",
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_blocks=[args.cidr],
                )
            ],
            tags=named_tags(args.tags, f"{name}-endpoints"),
            opts=child_options(self),
        )
        for service in INTERFACE_ENDPOINT_SERVICES:
            aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}",
                vpc_id=vpc.id,
                service_name=endpoint_service_name(args.context, service),
                vpc_endpoint_type="Interface",
                private_dns_enabled=True,
                subnet_ids=[subnet.id for subnet in private_subnets],
                security_group_ids=[endpoint_sg.id],
                tags=named_tags(args.tags, f"{name}-{service}"),
                opts=child_options(self),
            )

        self._flow_logs(name, args, vpc)

        self.vpc_id = vpc.id
        self.private_subnet_ids = [subnet.id for subnet in private_subnets]
        self.public_subnet_ids = [subnet.id for subnet in public_subnets]
        self.private_route_table_ids = [rt.id for rt in private_rts]
        self.endpoint_security_group_id = endpoint_sg.id
        self.nat_gateway_count = len(nat_gateways)
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": pulumi.Output.all(*self.private_subnet_ids),
                "public_subnet_ids": pulumi.Output.all(*self.public_subnet_ids),
                "private_route_table_ids": pulumi.Output.all(*self.private_route_table_ids),
                "endpoint_security_group_id": self.endpoint_security_group_id,
                "nat_gateway_count": self.nat_gateway_count,
            }
        )

    def _flow_logs(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc) -> None:
        ctx = args.context
        log_group = encrypted_log_group(
            self,
            f"{name}-flow-logs",
            log_group_name=f"/aws/vpc/{args.cluster_name}/flow-logs",
            retention_days=args.flow_log_retention_days,
            key_arn=args.log_key_arn,
            tags=args.tags,
            tag_name=f"{name}-flow-logs",
            assumed_gb_per_month=args.assumed_flow_log_gb_per_month,
            stateful=args.stateful,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            description=f"VPC flow logs of {name} delivering to their CloudWatch log group",
            assume_role_policy=assume_role_policy(
                "vpc-flow-logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": ctx.account_id},
                    "ArnLike": {"aws:SourceArn": ctx.arn("ec2", "vpc-flow-log/*")},
                },
            ),
            tags=named_tags(args.tags, f"{name}-flow-logs"),
            opts=child_options(self),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=document(
                [
                    {
                        "Sid": "WriteThisLogGroup",
                        "Effect": "Allow",
                        "Action": [
                            "logs:CreateLogStream",
                            "logs:PutLogEvents",
                            "logs:DescribeLogStreams",
                        ],
                        "Resource": [log_group.arn, pulumi.Output.concat(log_group.arn, ":*")],
                    },
                    {
                        # DescribeLogGroups is a list call: it cannot be scoped to one group.
                        "Sid": "FindLogGroups",
                        "Effect": "Allow",
                        "Action": "logs:DescribeLogGroups",
                        "Resource": ctx.arn("logs", "log-group:*"),
                    },
                ]
            ),
            opts=child_options(self),
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            tags=named_tags(args.tags, f"{name}-flow-logs"),
            opts=child_options(self, depends_on=[policy]),
        )
