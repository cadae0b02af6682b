"""Each AWS component planned alone (explicit provider, small Args): the properties that matter, and bad input.

Every component is built under the offline engine (``keel.engine.run_program``), the same one behind ``keel plan``.
Graphs are cached per set of Args: planning is deterministic and a ``Graph`` is immutable.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from functools import cache
from itertools import combinations
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from pydantic import ValidationError

from components.aws.backups import Backups, BackupsArgs, VaultLock
from components.aws.budget import Budget, BudgetArgs
from components.aws.cluster import CONTROL_PLANE_LOG_TYPES, Cluster, ClusterArgs
from components.aws.keys import ALL_PURPOSES, EncryptionKeys, EncryptionKeysArgs
from components.aws.network import INTERFACE_ENDPOINT_SERVICES, Network, NetworkArgs
from components.aws.node_group import GpuNodePool, GpuNodePoolArgs, NodeGroup, NodeGroupArgs, Taint
from components.aws.policy_documents import document
from components.aws.secrets import Secrets, SecretsArgs, SecretSpec
from components.base import AwsContext, Stateful
from keel.engine import SECRET_MASK, Graph, PlannedResource, run_program
from keel.fakes import FakeContext, fake_id

ACCOUNT = "123456789012"
REGION = "eu-west-1"
COPY_REGION = "eu-central-1"
CONTEXT = AwsContext(account_id=ACCOUNT, region=REGION)
TAGS = {"environment": "test", "owner": "ml-platform", "cost-centre": "CC-1", "managed-by": "keel"}
PROVIDER_URN = "urn:pulumi:components::keel::pulumi:pulumi:Stack$pulumi:providers:aws::aws"

LOG_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/logs-key"
SECRETS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/secrets-key"
DATA_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/data-key"
BACKUP_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/backup-key"
NOTIFY_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/notify-key"

T_SUBNET = "aws:ec2/subnet:Subnet"
T_ROUTE = "aws:ec2/route:Route"
T_ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
T_NAT = "aws:ec2/natGateway:NatGateway"
T_ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
T_ROLE = "aws:iam/role:Role"
T_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
T_LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
T_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
T_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
T_ASG_TAG = "aws:autoscaling/tag:Tag"
T_KEY = "aws:kms/key:Key"
T_VAULT = "aws:backup/vault:Vault"
T_VAULT_LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"

Build = Callable[[pulumi.ResourceOptions], Mapping[str, Any] | None]


def plan(build: Build) -> Graph:
    """Plan one component under an explicit provider (default providers would be an error in a stack)."""

    def program() -> Mapping[str, Any] | None:
        provider = aws.Provider("aws", region=REGION, allowed_account_ids=[ACCOUNT])
        return build(pulumi.ResourceOptions(provider=provider))

    return run_program(program, stack="components")


def resource_id(resource: PlannedResource) -> str:
    """The id the engine handed the program for an EC2-style resource (derived from its URN only)."""
    return fake_id(
        FakeContext(urn=resource.urn, type=resource.type, name=resource.name, inputs=resource.inputs)
    )


def statements(policy: str) -> list[dict[str, Any]]:
    found = json.loads(policy)["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allows_everyone(statement: Mapping[str, Any]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    return isinstance(principal, dict) and "*" in as_list(principal.get("AWS", []))


# --------------------------------------------------------------------------------------------------- network

ZONES = [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
VPC_CIDR = "10.42.0.0/16"


@cache
def network_graph(nat: str) -> Graph:
    def build(opts: pulumi.ResourceOptions) -> None:
        Network(
            "net",
            NetworkArgs(
                context=CONTEXT,
                cidr=VPC_CIDR,
                availability_zones=ZONES,
                nat=nat,  # type: ignore[arg-type]  # parametrized Literal
                cluster_name="keel-test",
                flow_log_retention_days=90,
                log_key_arn=LOG_KEY,
                tags=TAGS,
            ),
            opts=opts,
        )

    return plan(build)


def private_subnets(graph: Graph) -> list[PlannedResource]:
    return [s for s in graph.of_type(T_SUBNET) if "kubernetes.io/role/internal-elb" in s.tags]


def public_subnets(graph: Graph) -> list[PlannedResource]:
    return [s for s in graph.of_type(T_SUBNET) if "kubernetes.io/role/internal-elb" not in s.tags]


@pytest.mark.parametrize("nat", ["single", "per-az"])
def test_network_private_subnets_one_per_zone_never_public_and_tagged_for_eks(nat: str) -> None:
    subnets = private_subnets(network_graph(nat))
    assert sorted(s.inputs["availabilityZone"] for s in subnets) == ZONES
    for subnet in subnets:
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
        assert subnet.tags["kubernetes.io/role/internal-elb"] == "1"
        assert subnet.tags["kubernetes.io/cluster/keel-test"] == "shared"
        assert TAGS.items() <= subnet.tags.items()


@pytest.mark.parametrize(("nat", "nat_count"), [("single", 1), ("per-az", len(ZONES))])
def test_network_nat_count_follows_mode_and_public_subnets_exist_only_for_nat(
    nat: str, nat_count: int
) -> None:
    graph = network_graph(nat)
    nats = graph.of_type(T_NAT)
    public = public_subnets(graph)
    assert len(nats) == nat_count
    assert {n.inputs["subnetId"] for n in nats} == {resource_id(s) for s in public}
    assert len(public) == nat_count
    for subnet in public:
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
        assert "kubernetes.io/role/elb" not in subnet.tags
    assert graph.one("aws:ec2/internetGateway:InternetGateway")


@pytest.mark.parametrize("nat", ["single", "per-az"])
def test_network_each_private_route_table_defaults_to_a_nat_in_its_own_zone(nat: str) -> None:
    graph = network_graph(nat)
    subnet_zone = {resource_id(s): s.inputs["availabilityZone"] for s in graph.of_type(T_SUBNET)}
    nat_zone = {resource_id(n): subnet_zone[n.inputs["subnetId"]] for n in graph.of_type(T_NAT)}
    private_ids = {resource_id(s) for s in private_subnets(graph)}
    # Private route table -> the zone of the one private subnet associated with it.
    rt_zone = {
        assoc.inputs["routeTableId"]: subnet_zone[assoc.inputs["subnetId"]]
        for assoc in graph.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
        if assoc.inputs["subnetId"] in private_ids
    }
    assert sorted(rt_zone.values()) == ZONES, "each private subnet needs its own route table"
    defaults = {
        r.inputs["routeTableId"]: r.inputs["natGatewayId"]
        for r in graph.of_type(T_ROUTE)
        if r.inputs["destinationCidrBlock"] == "0.0.0.0/0" and "natGatewayId" in r.inputs
    }
    assert set(defaults) == set(rt_zone)
    for rt_id, nat_id in defaults.items():
        assert nat_zone[nat_id] == (rt_zone[rt_id] if nat == "per-az" else ZONES[0])


def test_network_s3_gateway_endpoint_on_every_private_route_table() -> None:
    graph = network_graph("per-az")
    s3 = graph.one(T_ENDPOINT, "net-s3")
    private_rt_ids = {resource_id(rt) for rt in graph.of_type(T_ROUTE_TABLE) if rt.name != "net-public-rt"}
    assert s3.inputs["vpcEndpointType"] == "Gateway"
    assert s3.inputs["serviceName"] == f"com.amazonaws.{REGION}.s3"
    assert set(s3.inputs["routeTableIds"]) == private_rt_ids
    assert len(private_rt_ids) == len(ZONES)


def test_network_interface_endpoints_private_dns_in_private_subnets_https_from_vpc_only() -> None:
    graph = network_graph("single")
    interface = [e for e in graph.of_type(T_ENDPOINT) if e.inputs["vpcEndpointType"] == "Interface"]
    assert sorted(e.inputs["serviceName"] for e in interface) == sorted(
        f"com.amazonaws.{REGION}.{s}" for s in ("ecr.api", "ecr.dkr", "sts", "logs", "secretsmanager", "kms")
    )
    assert len(INTERFACE_ENDPOINT_SERVICES) == 6
    private_ids = {resource_id(s) for s in private_subnets(graph)}
    sg = graph.one("aws:ec2/securityGroup:SecurityGroup")
    for endpoint in interface:
        assert endpoint.inputs["privateDnsEnabled"] is True
        assert set(endpoint.inputs["subnetIds"]) == private_ids
        assert endpoint.inputs["securityGroupIds"] == [resource_id(sg)]
    (rule,) = sg.inputs["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)
    assert rule["cidrBlocks"] == [VPC_CIDR]
    assert {k: v for k, v in rule.items() if v} == {
        "protocol": "tcp",
        "fromPort": 443,
        "toPort": 443,
        "cidrBlocks": [VPC_CIDR],
        "description": "HTTPS from the VPC",
    }
    assert not sg.inputs.get("egress")


def test_network_flow_log_captures_all_traffic_into_an_encrypted_log_group_with_retention() -> None:
    graph = network_graph("single")
    flow_log = graph.one("aws:ec2/flowLog:FlowLog")
    group = graph.one(T_LOG_GROUP)
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestinationType"] == "cloud-watch-logs"
    assert flow_log.inputs["logDestination"] == group.outputs["arn"]
    assert flow_log.inputs["vpcId"] == resource_id(graph.one("aws:ec2/vpc:Vpc"))
    assert group.inputs["kmsKeyId"] == LOG_KEY
    assert group.inputs["retentionInDays"] == 90
    role = graph.one(T_ROLE)
    assert flow_log.inputs["iamRoleArn"] == role.outputs["arn"]
    (trust,) = statements(role.inputs["assumeRolePolicy"])
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_network_default_security_group_is_adopted_with_no_rules() -> None:
    default_sg = network_graph("single").one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default_sg.inputs["ingress"] == []
    assert default_sg.inputs["egress"] == []


@pytest.mark.parametrize("nat", ["single", "per-az"])
def test_network_subnets_inside_the_vpc_and_disjoint(nat: str) -> None:
    vpc = ipaddress.IPv4Network(VPC_CIDR)
    networks = [ipaddress.IPv4Network(s.inputs["cidrBlock"]) for s in network_graph(nat).of_type(T_SUBNET)]
    assert networks
    assert all(n.subnet_of(vpc) for n in networks)
    overlapping = [(a, b) for a, b in combinations(networks, 2) if a.overlaps(b)]
    assert overlapping == []


def test_fails_network_zone_outside_region() -> None:
    with pytest.raises(ValidationError, match=r"\['us-east-1a'\] are not zone names in region 'eu-west-1'"):
        NetworkArgs(
            context=CONTEXT,
            cidr=VPC_CIDR,
            availability_zones=[f"{REGION}a", "us-east-1a"],
            nat="single",
            cluster_name="keel-test",
            flow_log_retention_days=90,
            log_key_arn=LOG_KEY,
            tags=TAGS,
        )


@pytest.mark.parametrize(
    ("cidr", "message"),
    [("10.0.0.0/8", r"has prefix /8; allowed: /16 to /20"), ("10.0.0.1/16", "not an IPv4")],
)
def test_fails_network_bad_cidr(cidr: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NetworkArgs(
            context=CONTEXT,
            cidr=cidr,
            availability_zones=ZONES,
            nat="single",
            cluster_name="keel-test",
            flow_log_retention_days=90,
            log_key_arn=LOG_KEY,
            tags=TAGS,
        )


# --------------------------------------------------------------------------------------------------- cluster

ADMINS = [f"arn:aws:iam::{ACCOUNT}:role/platform-admin", f"arn:aws:iam::{ACCOUNT}:role/ci/keel-deployer"]
ALLOWED_CIDRS = ("198.51.100.0/24", "203.0.113.8/29")


@cache
def cluster_graph(public_access_cidrs: tuple[str, ...] = ()) -> Graph:
    def build(opts: pulumi.ResourceOptions) -> None:
        Cluster(
            "cl",
            ClusterArgs(
                context=CONTEXT,
                cluster_name="keel-test",
                kubernetes_version="1.33",
                subnet_ids=["subnet-a", "subnet-b"],
                public_access_cidrs=list(public_access_cidrs),
                secrets_key_arn=SECRETS_KEY,
                log_key_arn=LOG_KEY,
                log_retention_days=90,
                admin_role_arns=ADMINS,
                tags=TAGS,
            ),
            opts=opts,
        )

    return plan(build)


def eks(graph: Graph) -> PlannedResource:
    return graph.one("aws:eks/cluster:Cluster")


def issuer(graph: Graph) -> str:
    return eks(graph).outputs["identities"][0]["oidcs"][0]["issuer"]


def test_cluster_endpoint_private_only_by_default() -> None:
    vpc = eks(cluster_graph()).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert not vpc.get("publicAccessCidrs")


def test_cluster_public_endpoint_open_to_exactly_the_given_cidrs() -> None:
    vpc = eks(cluster_graph(ALLOWED_CIDRS)).inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == list(ALLOWED_CIDRS)


def test_fails_cluster_public_endpoint_open_to_the_internet() -> None:
    with pytest.raises(ValidationError, match=r"'0\.0\.0\.0/0' opens the API to the internet"):
        ClusterArgs(
            context=CONTEXT,
            cluster_name="keel-test",
            kubernetes_version="1.33",
            subnet_ids=["subnet-a", "subnet-b"],
            public_access_cidrs=["0.0.0.0/0"],
            secrets_key_arn=SECRETS_KEY,
            log_key_arn=LOG_KEY,
            log_retention_days=90,
            admin_role_arns=ADMINS,
            tags=TAGS,
        )


def test_cluster_secrets_encrypted_with_the_given_key_and_access_by_api_only() -> None:
    cluster = eks(cluster_graph()).inputs
    assert cluster["encryptionConfig"] == {"resources": ["secrets"], "provider": {"keyArn": SECRETS_KEY}}
    assert cluster["accessConfig"] == {
        "authenticationMode": "API",
        "bootstrapClusterCreatorAdminPermissions": False,
    }
    assert cluster["version"] == "1.33"


def test_cluster_ships_all_control_plane_logs_to_a_precreated_encrypted_group() -> None:
    graph = cluster_graph()
    cluster = eks(graph)
    group = graph.one(T_LOG_GROUP)
    assert sorted(cluster.inputs["enabledClusterLogTypes"]) == sorted(
        ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    )
    assert len(CONTROL_PLANE_LOG_TYPES) == 5
    # EKS writes to exactly this name; any other name and EKS creates its own unencrypted, never-expiring group.
    assert group.inputs["name"] == "/aws/eks/keel-test/cluster"
    assert group.inputs["kmsKeyId"] == LOG_KEY
    assert group.inputs["retentionInDays"] == 90
    assert group.urn in cluster.depends_on


def test_cluster_oidc_provider_trusts_sts_audience_at_the_cluster_issuer() -> None:
    graph = cluster_graph()
    oidc = graph.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert oidc.inputs["url"] == issuer(graph)
    assert issuer(graph).startswith("https://oidc.eks.")


def test_cluster_admin_roles_get_access_entries_and_cluster_admin_policy() -> None:
    graph = cluster_graph()
    entries = graph.of_type("aws:eks/accessEntry:AccessEntry")
    associations = graph.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert sorted(e.inputs["principalArn"] for e in entries) == sorted(ADMINS)
    assert all(e.inputs["type"] == "STANDARD" and e.inputs["clusterName"] == "keel-test" for e in entries)
    assert sorted(a.inputs["principalArn"] for a in associations) == sorted(ADMINS)
    for association in associations:
        assert association.inputs["policyArn"] == (
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        )
        assert association.inputs["accessScope"] == {"type": "cluster"}
        (entry,) = [e for e in entries if e.inputs["principalArn"] == association.inputs["principalArn"]]
        assert entry.urn in association.depends_on


def test_cluster_runs_the_five_core_addons_with_irsa_roles_for_cni_and_ebs() -> None:
    graph = cluster_graph()
    addons = {a.inputs["addonName"]: a for a in graph.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver"}
    roles = {r.name: r for r in graph.of_type(T_ROLE)}
    assert addons["vpc-cni"].inputs["serviceAccountRoleArn"] == roles["cl-vpc-cni"].outputs["arn"]
    assert addons["aws-ebs-csi-driver"].inputs["serviceAccountRoleArn"] == roles["cl-ebs-csi"].outputs["arn"]
    for name in ("kube-proxy", "eks-pod-identity-agent", "coredns"):
        assert "serviceAccountRoleArn" not in addons[name].inputs


@pytest.mark.parametrize(
    ("role_name", "service_account", "policy"),
    [
        ("cl-vpc-cni", "aws-node", "AmazonEKS_CNI_Policy"),
        ("cl-ebs-csi", "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"),
    ],
)
def test_cluster_irsa_trust_is_limited_to_one_service_account_and_the_sts_audience(
    role_name: str, service_account: str, policy: str
) -> None:
    graph = cluster_graph()
    role = graph.one(T_ROLE, role_name)
    oidc = graph.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    host = issuer(graph).removeprefix("https://")
    (trust,) = statements(role.inputs["assumeRolePolicy"])
    assert trust["Effect"] == "Allow"
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {"Federated": oidc.outputs["arn"]}
    assert trust["Condition"] == {
        "StringEquals": {
            f"{host}:sub": f"system:serviceaccount:kube-system:{service_account}",
            f"{host}:aud": "sts.amazonaws.com",
        }
    }
    attached = [
        a.inputs["policyArn"] for a in graph.of_type(T_ATTACHMENT) if a.inputs["role"] == role.outputs["name"]
    ]
    assert attached == [f"arn:aws:iam::aws:policy/{policy}"]


def test_cluster_system_nodes_boot_after_the_networking_addons() -> None:
    graph = cluster_graph()
    system = graph.one(T_NODE_GROUP, "cl-system-ng")
    addons = {a.inputs["addonName"]: a.urn for a in graph.of_type("aws:eks/addon:Addon")}
    for before in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert addons[before] in system.depends_on
    assert system.urn in graph.one("aws:eks/addon:Addon", "cl-coredns").depends_on


def test_fails_cluster_admin_that_is_not_a_role_arn() -> None:
    with pytest.raises(ValidationError, match=r"admin_role_arns entry 'arn:aws:iam::123456789012:user/bob'"):
        ClusterArgs(
            context=CONTEXT,
            cluster_name="keel-test",
            kubernetes_version="1.33",
            subnet_ids=["subnet-a", "subnet-b"],
            secrets_key_arn=SECRETS_KEY,
            log_key_arn=LOG_KEY,
            log_retention_days=90,
            admin_role_arns=[f"arn:aws:iam::{ACCOUNT}:user/bob"],
            tags=TAGS,
        )


# ---------------------------------------------------------------------------------------------- node groups

GPU_LABELS = {"keel.dev/model-family": "llama"}


def gpu_args(**overrides: Any) -> GpuNodePoolArgs:
    fields: dict[str, Any] = {
        "context": CONTEXT,
        "cluster_name": "keel-test",
        "subnet_ids": ["subnet-a", "subnet-b"],
        "instance_types": ["g6.xlarge", "g6.2xlarge"],
        "capacity_type": "SPOT",
        "min_size": 0,
        "max_size": 3,
        "desired_size": 0,
        "labels": GPU_LABELS,
        "gpus_per_instance": 4,
        "root_volume_gib": 300,
        "tags": TAGS,
        **overrides,
    }
    return GpuNodePoolArgs(**fields)


@cache
def gpu_graph() -> Graph:
    def build(opts: pulumi.ResourceOptions) -> None:
        GpuNodePool("gpu-l4", gpu_args(pool_name="l4"), opts=opts)

    return plan(build)


@cache
def system_graph() -> Graph:
    def build(opts: pulumi.ResourceOptions) -> None:
        NodeGroup(
            "sys",
            NodeGroupArgs(
                context=CONTEXT,
                cluster_name="keel-test",
                subnet_ids=["subnet-a"],
                instance_types=["m7i.large"],
                capacity_type="ON_DEMAND",
                min_size=2,
                max_size=4,
                desired_size=2,
                labels={"keel.dev/node-role": "system"},
                taints=[Taint(key="keel.dev/dedicated", value="system", effect="NO_EXECUTE")],
                tags=TAGS,
            ),
            opts=opts,
        )

    return plan(build)


def test_gpu_pool_uses_nvidia_ami_gpu_taint_and_pool_labels() -> None:
    group = gpu_graph().one(T_NODE_GROUP).inputs
    assert group["amiType"] == "AL2023_x86_64_NVIDIA"
    assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert group["labels"] == {**GPU_LABELS, "keel.dev/gpu-pool": "l4", "nvidia.com/gpu.present": "true"}
    assert group["instanceTypes"] == ["g6.xlarge", "g6.2xlarge"]


def test_gpu_pool_capacity_and_sizes_with_desired_size_left_to_the_autoscaler() -> None:
    group = gpu_graph().one(T_NODE_GROUP)
    assert group.inputs["capacityType"] == "SPOT"
    assert group.inputs["scalingConfig"] == {"minSize": 0, "maxSize": 3, "desiredSize": 0}
    assert "scalingConfig.desiredSize" in group.ignore_changes


def test_gpu_pool_launch_template_enforces_imdsv2_and_an_encrypted_gp3_root_volume() -> None:
    graph = gpu_graph()
    template = graph.one(T_LAUNCH_TEMPLATE)
    metadata = template.inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required"
    assert metadata["httpPutResponseHopLimit"] == 1
    assert metadata["httpEndpoint"] == "enabled"
    (root,) = template.inputs["blockDeviceMappings"]
    assert root["deviceName"] == "/dev/xvda"
    assert root["ebs"]["volumeType"] == "gp3"
    assert root["ebs"]["encrypted"] == "true"
    assert root["ebs"]["volumeSize"] == 300
    launch = graph.one(T_NODE_GROUP).inputs["launchTemplate"]
    assert launch == {"id": resource_id(template), "version": "1"}


def test_gpu_pool_instances_and_volumes_carry_the_environment_tags() -> None:
    template = gpu_graph().one(T_LAUNCH_TEMPLATE)
    by_type = {spec["resourceType"]: spec["tags"] for spec in template.inputs["tagSpecifications"]}
    for resource_type in ("instance", "volume"):
        assert TAGS.items() <= by_type[resource_type].items(), resource_type


def test_gpu_pool_advertises_labels_taint_and_gpus_to_the_autoscaler() -> None:
    graph = gpu_graph()
    asg = graph.one(T_NODE_GROUP).outputs["resources"][0]["autoscalingGroups"][0]["name"]
    tags = graph.of_type(T_ASG_TAG)
    assert {t.inputs["autoscalingGroupName"] for t in tags} == {asg}
    template = "k8s.io/cluster-autoscaler/node-template"
    assert {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in tags} == {
        f"{template}/label/keel.dev/model-family": "llama",
        f"{template}/label/keel.dev/gpu-pool": "l4",
        f"{template}/label/nvidia.com/gpu.present": "true",
        f"{template}/taint/nvidia.com/gpu": "true:NoSchedule",
        f"{template}/resources/nvidia.com/gpu": "4",
    }
    assert all(t.inputs["tag"]["propagateAtLaunch"] is False for t in tags)


@pytest.mark.parametrize("graph_of", [gpu_graph, system_graph], ids=["gpu-pool", "node-group"])
def test_node_role_has_exactly_the_worker_and_ecr_pull_policies(graph_of: Callable[[], Graph]) -> None:
    graph = graph_of()
    role = graph.one(T_ROLE)
    (trust,) = statements(role.inputs["assumeRolePolicy"])
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert not role.inputs.get("managedPolicyArns")
    assert not role.inputs.get("inlinePolicies")
    assert graph.of_type("aws:iam/rolePolicy:RolePolicy") == []
    attachments = graph.of_type(T_ATTACHMENT)
    assert all(a.inputs["role"] == role.outputs["name"] for a in attachments)
    assert sorted(a.inputs["policyArn"] for a in attachments) == [
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    ]
    group = graph.one(T_NODE_GROUP)
    assert group.inputs["nodeRoleArn"] == role.outputs["arn"]
    assert {a.urn for a in attachments} <= set(group.depends_on)


def test_node_group_standard_ami_own_taint_and_no_gpu_capacity() -> None:
    graph = system_graph()
    group = graph.one(T_NODE_GROUP).inputs
    assert group["amiType"] == "AL2023_x86_64_STANDARD"
    assert group["taints"] == [{"key": "keel.dev/dedicated", "value": "system", "effect": "NO_EXECUTE"}]
    assert group["labels"] == {"keel.dev/node-role": "system"}
    root = graph.one(T_LAUNCH_TEMPLATE).inputs["blockDeviceMappings"][0]["ebs"]
    assert root["volumeSize"] == 50
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in graph.of_type(T_ASG_TAG)}
    assert tags == {
        "k8s.io/cluster-autoscaler/node-template/label/keel.dev/node-role": "system",
        "k8s.io/cluster-autoscaler/node-template/taint/keel.dev/dedicated": "system:NoExecute",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_size": 3, "max_size": 1, "desired_size": 1}, r"min_size=3, desired_size=1, max_size=1"),
        ({"desired_size": 5}, r"desired_size=5, max_size=3 are inconsistent"),
        ({"labels": {"Bad Key!": "x"}}, r"labels key 'Bad Key!' is not a Kubernetes label key"),
        ({"labels": {"team": "-bad-"}}, r"labels\['team'\] value '-bad-' is not a Kubernetes label value"),
        ({"labels": {"keel.dev/gpu-pool": "x"}}, r"labels \['keel.dev/gpu-pool'\] are set by GpuNodePool"),
        ({"labels": {"nvidia.com/gpu.present": "x"}}, r"\['nvidia.com/gpu.present'\] are set by GpuNodePool"),
        (
            {"taints": [Taint(key="nvidia.com/gpu", value="x", effect="NO_EXECUTE")]},
            r"'nvidia.com/gpu' is added by GpuNodePool itself",
        ),
        ({"gpus_per_instance": 0}, r"gpus_per_instance"),
    ],
    ids=[
        "min>max",
        "desired>max",
        "bad-label-key",
        "bad-label-value",
        "reserved-pool",
        "reserved-present",
        "gpu-taint",
        "no-gpus",
    ],
)
def test_fails_gpu_pool_args(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        gpu_args(**overrides)


# ------------------------------------------------------------------------------------------------------ keys


@cache
def keys_graph() -> Graph:
    def build(opts: pulumi.ResourceOptions) -> None:
        EncryptionKeys(
            "keys",
            EncryptionKeysArgs(
                context=CONTEXT,
                name_prefix="keel-test",
                deletion_window_days=10,
                rotation_period_days=180,
                tags=TAGS,
                stateful=Stateful(protect=True),
            ),
            opts=opts,
        )

    return plan(build)


def key(purpose: str) -> PlannedResource:
    return keys_graph().one(T_KEY, f"keys-{purpose}")


def test_keys_one_rotating_key_per_purpose_with_the_deletion_window() -> None:
    keys = keys_graph().of_type(T_KEY)
    assert sorted(k.name for k in keys) == sorted(f"keys-{p}" for p in ALL_PURPOSES)
    assert len(keys) == 7
    for k in keys:
        assert k.inputs["enableKeyRotation"] is True
        assert k.inputs["rotationPeriodInDays"] == 180
        assert k.inputs["deletionWindowInDays"] == 10
        assert k.inputs["keyUsage"] == "ENCRYPT_DECRYPT"
        assert k.protect is True


@pytest.mark.parametrize("purpose", ALL_PURPOSES)
def test_key_policy_never_allows_everyone_and_admin_cannot_decrypt(purpose: str) -> None:
    policy = statements(key(purpose).inputs["policy"])
    assert [s["Sid"] for s in policy if s["Effect"] == "Allow" and allows_everyone(s)] == []
    (admin,) = [s for s in policy if s["Sid"] == "KeyAdministration"]
    assert admin["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert not {"kms:*", "kms:Decrypt", "kms:CreateGrant", "kms:Encrypt"} & set(admin["Action"])
    for statement in policy:
        if statement["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"} and statement is not admin:
            assert statement["Condition"]["StringEquals"]["kms:CallerAccount"] == ACCOUNT
            assert statement["Condition"]["StringEquals"]["kms:ViaService"].endswith(
                f".{REGION}.amazonaws.com"
            )


def test_logs_key_lets_cloudwatch_logs_use_it_only_for_this_accounts_log_groups() -> None:
    services = [s for s in statements(key("logs").inputs["policy"]) if "Service" in s["Principal"]]
    (logs,) = services
    assert logs["Principal"] == {"Service": f"logs.{REGION}.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:*"}
    }


def test_notifications_key_lets_budgets_and_cost_alerts_publish() -> None:
    services = [s for s in statements(key("notifications").inputs["policy"]) if "Service" in s["Principal"]]
    (alerts,) = services
    assert sorted(as_list(alerts["Principal"]["Service"])) == [
        "budgets.amazonaws.com",
        "costalerts.amazonaws.com",
    ]
    assert set(alerts["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert alerts["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


@pytest.mark.parametrize("purpose", [p for p in ALL_PURPOSES if p not in ("logs", "notifications")])
def test_other_keys_grant_no_service_principal(purpose: str) -> None:
    assert [s for s in statements(key(purpose).inputs["policy"]) if "Service" in s["Principal"]] == []


def test_keys_have_one_alias_each_pointing_at_their_key() -> None:
    graph = keys_graph()
    aliases = {a.inputs["name"]: a.inputs["targetKeyId"] for a in graph.of_type("aws:kms/alias:Alias")}
    assert aliases == {f"alias/keel-test-{p}": key(p).outputs["keyId"] for p in ALL_PURPOSES}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"purposes": ("logs", "logs")}, r"repeated: \['logs'\]"),
        ({"purposes": ()}, "at least one"),
        ({"deletion_window_days": 5}, "deletion_window_days"),
    ],
)
def test_fails_keys_args(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        EncryptionKeysArgs(
            context=CONTEXT, name_prefix="keel-test", tags=TAGS, stateful=Stateful(), **overrides
        )


# --------------------------------------------------------------------------------------------------- secrets

SENTINEL = "hf_SENTINEL_do_not_print_0123456789"


@cache
def secrets_graph() -> Graph:
    def build(opts: pulumi.ResourceOptions) -> Mapping[str, Any]:
        secrets = Secrets(
            "sec",
            SecretsArgs(
                context=CONTEXT,
                name_prefix="keel-test",
                key_arn=SECRETS_KEY,
                secrets=(
                    SecretSpec(
                        name="hf-token", description="model hub", value=pulumi.Output.secret(SENTINEL)
                    ),
                    SecretSpec(name="db-password", description="set out of band"),
                ),
                recovery_window_days=14,
                tags=TAGS,
                stateful=Stateful(protect=True, retain_on_delete=True),
            ),
            opts=opts,
        )
        return {"readHfToken": document(secrets.read_policy_statements(["hf-token"]))}

    return plan(build)


def test_secrets_encrypted_with_the_secrets_key_and_recoverable() -> None:
    secrets = secrets_graph().of_type("aws:secretsmanager/secret:Secret")
    assert sorted(s.inputs["name"] for s in secrets) == ["keel-test/db-password", "keel-test/hf-token"]
    for secret in secrets:
        assert secret.inputs["kmsKeyId"] == SECRETS_KEY
        assert secret.inputs["recoveryWindowInDays"] == 14
        assert (secret.protect, secret.retain_on_delete) == (True, True)


def test_secret_version_only_for_a_given_value_and_always_masked() -> None:
    graph = secrets_graph()
    (version,) = graph.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    hf_token = graph.one("aws:secretsmanager/secret:Secret", "sec-hf-token")
    assert version.name == "sec-hf-token-version"
    assert version.inputs["secretId"] == hf_token.outputs["name"]
    assert version.inputs["secretString"] == SECRET_MASK
    # Protecting a version would block every rotation; it is retained like its secret.
    assert (version.protect, version.retain_on_delete) == (False, True)


def test_secret_value_appears_nowhere_in_the_graph() -> None:
    graph = secrets_graph()
    dumped = json.dumps(
        [{"inputs": r.inputs, "outputs": r.outputs} for r in graph] + [graph.outputs], default=str
    )
    assert SENTINEL not in dumped
    assert SENTINEL not in repr(graph)


def test_fails_plain_string_secret_value_without_echoing_it() -> None:
    with pytest.raises(ValidationError, match=r"value is a plain str; allowed: a secret Output") as excinfo:
        SecretSpec(name="hf-token", description="model hub", value=SENTINEL)  # type: ignore[arg-type]
    assert SENTINEL not in str(excinfo.value)


def test_fails_plain_string_secret_value_given_as_a_mapping_without_echoing_it() -> None:
    with pytest.raises(ValidationError, match=r"secrets\.0\.value\n.*value is a plain str") as excinfo:
        SecretsArgs(
            context=CONTEXT,
            name_prefix="keel-test",
            key_arn=SECRETS_KEY,
            secrets=({"name": "hf-token", "description": "model hub", "value": SENTINEL},),  # type: ignore[arg-type]
            tags=TAGS,
            stateful=Stateful(),
        )
    assert SENTINEL not in str(excinfo.value)


def test_secret_read_statements_grant_only_the_named_secret() -> None:
    graph = secrets_graph()
    hf_token = graph.one("aws:secretsmanager/secret:Secret", "sec-hf-token")
    read, decrypt = statements(graph.outputs["readHfToken"])
    assert read["Effect"] == "Allow"
    assert read["Resource"] == [hf_token.outputs["arn"]]
    assert set(read["Action"]) == {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == SECRETS_KEY
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
    }


def test_fails_secret_read_statements_for_an_unknown_secret() -> None:
    def build(opts: pulumi.ResourceOptions) -> None:
        secrets = Secrets(
            "sec",
            SecretsArgs(
                context=CONTEXT,
                name_prefix="keel-test",
                key_arn=SECRETS_KEY,
                secrets=(SecretSpec(name="hf-token", description="model hub"),),
                tags=TAGS,
                stateful=Stateful(),
            ),
            opts=opts,
        )
        secrets.read_policy_statements(["hf-tokn"])

    with pytest.raises(ValueError, match=r"unknown: \['hf-tokn'\]; known: \['hf-token'\]"):
        plan(build)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"recovery_window_days": 0}, "allowed only with allow_force_delete=True"),
        ({"recovery_window_days": 3}, "must be 0 \\(force delete\\) or 7-30, got 3"),
    ],
)
def test_fails_secrets_recovery_window(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SecretsArgs(
            context=CONTEXT,
            name_prefix="keel-test",
            key_arn=SECRETS_KEY,
            secrets=(SecretSpec(name="hf-token", description="model hub"),),
            tags=TAGS,
            stateful=Stateful(),
            **overrides,
        )


# --------------------------------------------------------------------------------------------------- backups

COPY_PROVIDER_URN = "urn:pulumi:components::keel::pulumi:pulumi:Stack$pulumi:providers:aws::aws-copy"


def backups_args(**overrides: Any) -> BackupsArgs:
    fields: dict[str, Any] = {
        "context": CONTEXT,
        "name_prefix": "keel-test",
        "data_key_arn": DATA_KEY,
        "backup_key_arn": BACKUP_KEY,
        "noncurrent_version_days": 21,
        "daily_retention_days": 35,
        "tags": TAGS,
        "stateful": Stateful(protect=True),
        **overrides,
    }
    return BackupsArgs(**fields)


@cache
def backups_graph(full: bool) -> Graph:
    """``full``: weekly rule, copy to a second region, vault lock (prod-like); otherwise the minimum."""

    def build(opts: pulumi.ResourceOptions) -> None:
        extra: dict[str, Any] = {}
        if full:
            copy_provider = aws.Provider("aws-copy", region=COPY_REGION, allowed_account_ids=[ACCOUNT])
            extra = {
                "weekly_retention_days": 365,
                "copy_region": COPY_REGION,
                "copy_region_provider": copy_provider,
                "vault_lock": VaultLock(min_retention_days=7, max_retention_days=400),
            }
        Backups("bk", backups_args(**extra), opts=opts)

    return plan(build)


def bucket_setting(graph: Graph, kind: str) -> Mapping[str, Any]:
    (setting,) = [r for r in graph if r.type.startswith(f"aws:s3/{kind}:")]
    assert setting.inputs["bucket"] == resource_id(graph.one("aws:s3/bucket:Bucket"))
    return setting.inputs


def test_backups_bucket_versioned_kms_encrypted_and_private() -> None:
    graph = backups_graph(full=False)
    assert bucket_setting(graph, "bucketVersioning")["versioningConfiguration"] == {"status": "Enabled"}
    (rule,) = bucket_setting(graph, "bucketServerSideEncryptionConfiguration")["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": DATA_KEY,
    }
    assert rule["bucketKeyEnabled"] is True
    block = bucket_setting(graph, "bucketPublicAccessBlock")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert {flag: block[flag] for flag in flags} == dict.fromkeys(flags, True)
    assert bucket_setting(graph, "bucketOwnershipControls")["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"
    }


def test_backups_bucket_policy_denies_insecure_transport() -> None:
    graph = backups_graph(full=False)
    arn = graph.one("aws:s3/bucket:Bucket").outputs["arn"]
    (deny,) = statements(bucket_setting(graph, "bucketPolicy")["policy"])
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Action"] == "s3:*"
    assert sorted(deny["Resource"]) == sorted([arn, f"{arn}/*"])
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_backups_bucket_expires_noncurrent_versions() -> None:
    rules = {
        r["id"]: r for r in bucket_setting(backups_graph(full=False), "bucketLifecycleConfiguration")["rules"]
    }
    expire = rules["expire-noncurrent-versions"]
    assert expire["status"] == "Enabled"
    assert expire["noncurrentVersionExpiration"] == {"noncurrentDays": 21}


def test_backups_minimal_vault_on_the_backup_key_daily_rule_only_no_copy_no_lock() -> None:
    graph = backups_graph(full=False)
    vault = graph.one(T_VAULT)
    assert vault.inputs["kmsKeyArn"] == BACKUP_KEY
    assert vault.protect is True
    (rule,) = graph.one("aws:backup/plan:Plan").inputs["rules"]
    assert rule["ruleName"] == "daily"
    assert rule["lifecycle"] == {"deleteAfter": 35}
    assert rule["targetVaultName"] == vault.outputs["name"]
    assert not rule.get("copyActions")
    assert graph.of_type(T_VAULT_LOCK) == []
    assert graph.of_type(T_KEY) == []


def test_backups_daily_and_weekly_rules_copied_to_the_second_region_vault() -> None:
    graph = backups_graph(full=True)
    copy_vault = graph.one(T_VAULT, "bk-copy-vault")
    rules = {r["ruleName"]: r for r in graph.one("aws:backup/plan:Plan").inputs["rules"]}
    assert {name: r["lifecycle"]["deleteAfter"] for name, r in rules.items()} == {"daily": 35, "weekly": 365}
    assert rules["weekly"]["schedule"] == "cron(0 5 ? * SUN *)"
    for name, rule in rules.items():
        (copy,) = rule["copyActions"]
        assert copy["destinationVaultArn"] == copy_vault.outputs["arn"]
        assert copy["lifecycle"]["deleteAfter"] == rule["lifecycle"]["deleteAfter"], name
    assert f":{COPY_REGION}:" in copy_vault.outputs["arn"]


def test_backups_copy_vault_and_its_key_live_in_the_second_region() -> None:
    graph = backups_graph(full=True)
    copy_vault = graph.one(T_VAULT, "bk-copy-vault")
    copy_key = graph.one(T_KEY, "bk-copy-keys-backup")
    assert graph.by_urn(COPY_PROVIDER_URN).inputs["region"] == COPY_REGION
    in_copy_region = {r.name for r in graph if r.provider == COPY_PROVIDER_URN}
    assert in_copy_region == {
        "bk-copy-keys-backup",
        "bk-copy-keys-backup-alias",
        "bk-copy-vault",
        "bk-copy-vault-lock",
    }
    assert copy_vault.inputs["kmsKeyArn"] == copy_key.outputs["arn"]
    assert graph.one(T_VAULT, "bk-vault").provider == PROVIDER_URN
    assert copy_key.inputs["enableKeyRotation"] is True
    via = {
        s["Condition"]["StringEquals"]["kms:ViaService"]
        for s in statements(copy_key.inputs["policy"])
        if "Condition" in s
    }
    assert via == {f"backup.{COPY_REGION}.amazonaws.com"}
    assert (copy_vault.protect, copy_key.protect) == (True, True)


def test_backups_vault_lock_on_both_vaults_only_when_asked() -> None:
    graph = backups_graph(full=True)
    locks = {lock.inputs["backupVaultName"]: lock.inputs for lock in graph.of_type(T_VAULT_LOCK)}
    assert set(locks) == {v.outputs["name"] for v in graph.of_type(T_VAULT)}
    assert len(locks) == 2
    for lock in locks.values():
        assert (lock["minRetentionDays"], lock["maxRetentionDays"]) == (7, 400)


@pytest.mark.parametrize("full", [False, True])
def test_backups_selection_covers_the_bucket_with_a_role_that_can_back_up_s3(full: bool) -> None:
    graph = backups_graph(full)
    selection = graph.one("aws:backup/selection:Selection")
    role = graph.one(T_ROLE)
    assert graph.one("aws:s3/bucket:Bucket").outputs["arn"] in selection.inputs["resources"]
    assert selection.inputs["iamRoleArn"] == role.outputs["arn"]
    attached = sorted(a.inputs["policyArn"].rsplit("/", 1)[1] for a in graph.of_type(T_ATTACHMENT))
    assert attached == sorted(
        [
            "AWSBackupServiceRolePolicyForBackup",
            "AWSBackupServiceRolePolicyForRestores",
            "AWSBackupServiceRolePolicyForS3Backup",
            "AWSBackupServiceRolePolicyForS3Restore",
        ]
    )
    assert {a.urn for a in graph.of_type(T_ATTACHMENT)} <= set(selection.depends_on)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"weekly_retention_days": 30},
            r"weekly_retention_days \(30\) must be at least daily_retention_days \(35\)",
        ),
        ({"vault_lock": VaultLock(min_retention_days=60)}, r"min_retention_days \(60\) must not exceed"),
        (
            {
                "weekly_retention_days": 365,
                "vault_lock": VaultLock(min_retention_days=7, max_retention_days=100),
            },
            r"max_retention_days \(100\) must cover every rule's retention",
        ),
        ({"vault_lock": VaultLock(min_retention_days=7), "force_destroy": True}, "contradicts vault_lock"),
        ({"copy_region": COPY_REGION}, "copy_region and copy_region_provider go together"),
        ({"daily_schedule": "every day"}, "daily_schedule must be an AWS cron expression"),
    ],
    ids=[
        "weekly<daily",
        "lock>retention",
        "lock-max<retention",
        "force-destroy-locked",
        "copy-no-provider",
        "cron",
    ],
)
def test_fails_backups_args(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        backups_args(**overrides)


# ---------------------------------------------------------------------------------------------------- budget

EMAILS = ("ops@example.com", "finops@example.com")


@cache
def budget_graph(anomaly_detection: bool) -> Graph:
    def build(opts: pulumi.ResourceOptions) -> None:
        Budget(
            "bud",
            BudgetArgs(
                context=CONTEXT,
                name="keel-test-monthly",
                monthly_limit_usd=1234.5,
                cost_tag_key="environment",
                cost_tag_value="test",
                actual_thresholds_pct=(50.0, 80.0, 100.0),
                forecast_thresholds_pct=(100.0,),
                emails=EMAILS,
                anomaly_detection=anomaly_detection,
                anomaly_threshold_usd=250,
                notifications_key_arn=NOTIFY_KEY,
                tags=TAGS,
            ),
            opts=opts,
        )

    return plan(build)


def test_budget_monthly_cost_limit_filtered_to_the_environment_tag() -> None:
    budget = budget_graph(anomaly_detection=False).one("aws:budgets/budget:Budget").inputs
    assert (budget["budgetType"], budget["timeUnit"]) == ("COST", "MONTHLY")
    assert (budget["limitAmount"], budget["limitUnit"]) == ("1234.50", "USD")
    assert budget["accountId"] == ACCOUNT
    assert budget["costFilters"] == [{"name": "TagKeyValue", "values": ["user:environment$test"]}]


def test_budget_one_notification_per_actual_and_forecast_threshold_to_the_topic() -> None:
    graph = budget_graph(anomaly_detection=False)
    topic = graph.one("aws:sns/topic:Topic")
    notifications = graph.one("aws:budgets/budget:Budget").inputs["notifications"]
    assert sorted((n["notificationType"], n["threshold"]) for n in notifications) == [
        ("ACTUAL", 50),
        ("ACTUAL", 80),
        ("ACTUAL", 100),
        ("FORECASTED", 100),
    ]
    for notification in notifications:
        assert notification["thresholdType"] == "PERCENTAGE"
        assert notification["comparisonOperator"] == "GREATER_THAN"
        assert notification["subscriberSnsTopicArns"] == [topic.outputs["arn"]]
        assert sorted(notification["subscriberEmailAddresses"]) == sorted(EMAILS)


def test_budget_topic_encrypted_and_open_only_to_budgets_and_cost_alerts() -> None:
    graph = budget_graph(anomaly_detection=False)
    topic = graph.one("aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"] == NOTIFY_KEY
    topic_policy = graph.one("aws:sns/topicPolicy:TopicPolicy")
    assert topic_policy.inputs["arn"] == topic.outputs["arn"]
    policy = statements(topic_policy.inputs["policy"])
    assert sorted(s["Principal"]["Service"] for s in policy) == [
        "budgets.amazonaws.com",
        "costalerts.amazonaws.com",
    ]
    for statement in policy:
        assert (statement["Effect"], statement["Action"]) == ("Allow", "SNS:Publish")
        assert statement["Resource"] == topic.outputs["arn"]
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    assert topic_policy.urn in graph.one("aws:budgets/budget:Budget").depends_on


def test_budget_emails_subscribe_to_the_topic() -> None:
    graph = budget_graph(anomaly_detection=False)
    topic_arn = graph.one("aws:sns/topic:Topic").outputs["arn"]
    subscriptions = graph.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert sorted(s.inputs["endpoint"] for s in subscriptions) == sorted(EMAILS)
    assert all(s.inputs["protocol"] == "email" and s.inputs["topic"] == topic_arn for s in subscriptions)


def test_budget_without_anomaly_detection_has_no_monitor() -> None:
    graph = budget_graph(anomaly_detection=False)
    assert [r.type for r in graph if r.type.startswith("aws:costexplorer/")] == []


def test_budget_anomaly_monitor_on_the_cost_tag_alerting_the_topic_above_the_threshold() -> None:
    graph = budget_graph(anomaly_detection=True)
    monitor = graph.one("aws:costexplorer/anomalyMonitor:AnomalyMonitor")
    subscription = graph.one("aws:costexplorer/anomalySubscription:AnomalySubscription")
    assert monitor.inputs["monitorType"] == "CUSTOM"
    assert json.loads(monitor.inputs["monitorSpecification"])["Tags"] == {
        "Key": "environment",
        "MatchOptions": None,
        "Values": ["test"],
    }
    assert subscription.inputs["monitorArnLists"] == [monitor.outputs["arn"]]
    assert subscription.inputs["frequency"] == "IMMEDIATE"
    assert subscription.inputs["subscribers"] == [
        {"type": "SNS", "address": graph.one("aws:sns/topic:Topic").outputs["arn"]}
    ]
    assert subscription.inputs["thresholdExpression"] == {
        "dimension": {
            "key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE",
            "matchOptions": ["GREATER_THAN_OR_EQUAL"],
            "values": ["250"],
        }
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"actual_thresholds_pct": (80.0, 80.0)}, "thresholds must not repeat"),
        ({"actual_thresholds_pct": (0.0,)}, r"\(bad: \[0.0\]\)"),
        ({"emails": ("not-an-address",)}, r"got invalid \['not-an-address'\]"),
        ({"cost_tag_key": "aws:createdBy"}, "must be a user-defined tag"),
    ],
)
def test_fails_budget_args(overrides: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "context": CONTEXT,
        "name": "keel-test-monthly",
        "monthly_limit_usd": 100,
        "cost_tag_key": "environment",
        "cost_tag_value": "test",
        "emails": EMAILS,
        "notifications_key_arn": NOTIFY_KEY,
        "tags": TAGS,
        **overrides,
    }
    with pytest.raises(ValidationError, match=message):
        BudgetArgs(**fields)


# ------------------------------------------------------------------------------------------ every component

ALL_GRAPHS: dict[str, Callable[[], Graph]] = {
    "network": lambda: network_graph("per-az"),
    "cluster": cluster_graph,
    "gpu-pool": gpu_graph,
    "node-group": system_graph,
    "keys": keys_graph,
    "secrets": secrets_graph,
    "backups": lambda: backups_graph(full=True),
    "budget": lambda: budget_graph(anomaly_detection=True),
}


@pytest.mark.parametrize("component", ALL_GRAPHS)
def test_component_children_are_parented_tagged_and_on_an_explicit_provider(component: str) -> None:
    graph = ALL_GRAPHS[component]()
    urns = {r.urn for r in graph}
    (root,) = [r for r in graph if r.type.startswith("keel:aws:") and r.parent not in urns]
    children = graph.descendants(root.urn)
    providers = {r.urn for r in graph if r.type == "pulumi:providers:aws"}
    custom = [r for r in graph if r.custom and not r.type.startswith("pulumi:providers:")]
    assert {r.urn for r in custom} <= {r.urn for r in children}, "a resource escaped its component"
    assert [r.name for r in custom if r.provider not in providers] == []
    untagged = [r.name for r in custom if "tags" in r.inputs and not TAGS.items() <= r.tags.items()]
    assert untagged == []
