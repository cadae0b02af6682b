"""The shipped environments (dev, staging, prod) planned whole: tier differences, guards, tags, stability.

The ``plans`` fixture (``conftest.py``) plans each environment once per session with the engine behind
``keel plan``. Expectations here are the tier table of the README ("Environments and tiers") read off the graph.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections import defaultdict
from functools import cache
from typing import Any

import pytest
from pulumi.runtime.rpc import get_resource_module

from keel.engine import SECRET_MASK, Graph, PlannedResource
from keel.plan import Plan, environment_file, plan_environment, secret_free
from stacks.spec import REQUIRED_TAG_KEYS
from tests.conftest import plan_with_secret

ENVS = ("dev", "staging", "prod")

#: Resources that hold data or guard it: protected in staging and prod, also retained in prod.
STATEFUL_TYPES = frozenset(
    {
        "aws:kms/key:Key",
        "aws:secretsmanager/secret:Secret",
        "aws:s3/bucket:Bucket",
        "aws:backup/vault:Vault",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:eks/cluster:Cluster",
    }
)
#: Settings that share their data resource's guard (deleting them would open or unversion the bucket, or
#: unlock a vault); protected with it, never on their own.
GUARDED_WITH_DATA = frozenset(
    {
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:backup/vaultLockConfiguration:VaultLockConfiguration",
    }
)

#: Resources per type token in (dev, staging, prod). A change here is a change to what `pulumi up` creates:
#: update the table deliberately, in the same commit as the change.
EXPECTED_COUNTS: dict[str, tuple[int, int, int]] = {
    "aws:autoscaling/tag:Tag": (5, 9, 17),
    "aws:backup/plan:Plan": (1, 1, 1),
    "aws:backup/selection:Selection": (1, 1, 1),
    "aws:backup/vault:Vault": (1, 1, 2),
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": (0, 0, 2),
    "aws:budgets/budget:Budget": (1, 1, 1),
    "aws:cloudwatch/logGroup:LogGroup": (2, 2, 2),
    "aws:costexplorer/anomalyMonitor:AnomalyMonitor": (0, 0, 1),
    "aws:costexplorer/anomalySubscription:AnomalySubscription": (0, 0, 1),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": (1, 1, 1),
    "aws:ec2/eip:Eip": (1, 1, 3),
    "aws:ec2/flowLog:FlowLog": (1, 1, 1),
    "aws:ec2/internetGateway:InternetGateway": (1, 1, 1),
    "aws:ec2/launchTemplate:LaunchTemplate": (2, 3, 5),
    "aws:ec2/natGateway:NatGateway": (1, 1, 3),
    "aws:ec2/route:Route": (3, 4, 4),
    "aws:ec2/routeTable:RouteTable": (3, 4, 4),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (3, 4, 6),
    "aws:ec2/securityGroup:SecurityGroup": (1, 1, 1),
    "aws:ec2/subnet:Subnet": (3, 4, 6),
    "aws:ec2/vpc:Vpc": (1, 1, 1),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (7, 7, 7),
    "aws:eks/accessEntry:AccessEntry": (1, 1, 2),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": (1, 1, 2),
    "aws:eks/addon:Addon": (5, 5, 5),
    "aws:eks/cluster:Cluster": (1, 1, 1),
    "aws:eks/nodeGroup:NodeGroup": (2, 3, 5),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": (1, 1, 1),
    "aws:iam/role:Role": (9, 10, 14),
    "aws:iam/rolePolicy:RolePolicy": (5, 5, 7),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (11, 13, 17),
    "aws:kms/alias:Alias": (7, 7, 8),
    "aws:kms/key:Key": (7, 7, 8),
    "aws:s3/bucket:Bucket": (1, 1, 1),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (1, 1, 1),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (1, 1, 1),
    "aws:s3/bucketPolicy:BucketPolicy": (1, 1, 1),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (1, 1, 1),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (1, 1, 1),
    "aws:s3/bucketVersioning:BucketVersioning": (1, 1, 1),
    "aws:secretsmanager/secret:Secret": (1, 1, 1),
    "aws:sns/topic:Topic": (1, 1, 1),
    "aws:sns/topicPolicy:TopicPolicy": (1, 1, 1),
    "aws:sns/topicSubscription:TopicSubscription": (1, 1, 2),
    "keel:aws:Backups": (1, 1, 1),
    "keel:aws:Budget": (1, 1, 1),
    "keel:aws:Cluster": (1, 1, 1),
    "keel:aws:EncryptionKeys": (1, 1, 2),  # prod: the backup copy region has its own key
    "keel:aws:GpuNodePool": (1, 2, 4),
    "keel:aws:Network": (1, 1, 1),
    "keel:aws:NodeGroup": (1, 1, 1),
    "keel:aws:Secrets": (1, 1, 1),
    "keel:k8s:ClusterAddons": (1, 1, 1),
    "keel:k8s:InferenceService": (1, 1, 2),
    "kubernetes:apps/v1:Deployment": (1, 1, 2),
    "kubernetes:core/v1:Namespace": (7, 7, 8),
    "kubernetes:core/v1:Service": (1, 1, 2),
    "kubernetes:core/v1:ServiceAccount": (2, 2, 3),
    "kubernetes:external-secrets.io/v1:ClusterSecretStore": (1, 1, 1),
    "kubernetes:external-secrets.io/v1:ExternalSecret": (1, 1, 0),
    "kubernetes:helm.sh/v3:Release": (7, 7, 7),
    "kubernetes:http.keda.sh/v1beta1:InterceptorRoute": (1, 0, 0),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": (1, 1, 2),
    "kubernetes:monitoring.coreos.com/v1:PodMonitor": (1, 1, 2),
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": (3, 3, 6),
    "kubernetes:policy/v1:PodDisruptionBudget": (0, 0, 2),
    "kubernetes:storage.k8s.io/v1:StorageClass": (1, 1, 1),
    "pulumi:providers:aws": (1, 1, 2),
    "pulumi:providers:kubernetes": (1, 1, 1),
}


def gpu_node_groups(graph: Graph) -> dict[str, list[dict[str, Any]]]:
    """GPU managed node groups' inputs, grouped by their ``keel.dev/gpu-pool`` label."""
    pools: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group in graph.of_type("aws:eks/nodeGroup:NodeGroup"):
        if group.inputs["amiType"] == "AL2023_x86_64_NVIDIA":
            pools[group.inputs["labels"]["keel.dev/gpu-pool"]].append(dict(group.inputs))
    return dict(pools)


def private_subnets(graph: Graph) -> list[PlannedResource]:
    return [s for s in graph.of_type("aws:ec2/subnet:Subnet") if "kubernetes.io/role/internal-elb" in s.tags]


@cache
def accepts_tags(type_token: str) -> bool:
    """Whether a resource type takes ``tags``, read from the pulumi_aws class registered for the token."""
    package, module, _ = type_token.split(":")
    registered = get_resource_module(package, module, "")
    assert registered is not None, f"pulumi_aws registers no module for {type_token}"
    info = registered.mod_info  # type: ignore[attr-defined]  # pulumi_aws._utilities.Module
    resource_class = getattr(importlib.import_module(info["fqn"]), info["classes"][type_token])
    return "tags" in inspect.signature(resource_class._internal_init).parameters


# ---------------------------------------------------------------------------------------------- tier table


@pytest.mark.parametrize(("env", "nat_gateways", "zones"), [("dev", 1, 2), ("staging", 1, 3), ("prod", 3, 3)])
def test_nat_gateways_and_zones_per_tier(
    plans: dict[str, Plan], env: str, nat_gateways: int, zones: int
) -> None:
    graph = plans[env].graph
    assert len(graph.of_type("aws:ec2/natGateway:NatGateway")) == nat_gateways
    subnets = private_subnets(graph)
    assert len(subnets) == zones
    assert len({s.inputs["availabilityZone"] for s in subnets}) == zones


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_usage_priced_resources_carry_the_spec_volume_for_the_cost_model(
    plans: dict[str, Plan], env: str
) -> None:
    graph, usage = plans[env].graph, plans[env].spec.usage
    assumed = {
        r.name: float(r.tags["keel:cost-assumed-gb"]) for r in graph if "keel:cost-assumed-gb" in r.tags
    }
    nats = graph.of_type("aws:ec2/natGateway:NatGateway")
    # The NAT volume is the environment's total, split evenly between its gateways.
    assert {assumed[n.name] for n in nats} == {usage.nat_gb_per_month / len(nats)}
    assert assumed["network-flow-logs"] == usage.flow_log_gb_per_month
    assert assumed["cluster-control-plane-logs"] == usage.control_plane_log_gb_per_month
    assert assumed["backups-bucket"] == usage.artifact_bucket_gb
    vaults = [r.name for r in graph.of_type("aws:backup/vault:Vault")]
    assert {assumed[v] for v in vaults} == {usage.backup_vault_gb}
    assert len(assumed) == len(nats) + 3 + len(vaults)


def test_dev_gpu_pools_are_spot_only_and_scale_to_zero(plans: dict[str, Plan]) -> None:
    pools = gpu_node_groups(plans["dev"].graph)
    assert pools
    for pool, groups in pools.items():
        assert [g["capacityType"] for g in groups] == ["SPOT"], pool
        assert all(g["scalingConfig"]["minSize"] == 0 for g in groups), pool


def test_staging_gpu_pools_are_spot_with_on_demand_fallback_from_zero(plans: dict[str, Plan]) -> None:
    pools = gpu_node_groups(plans["staging"].graph)
    assert pools
    for pool, groups in pools.items():
        assert sorted(g["capacityType"] for g in groups) == ["ON_DEMAND", "SPOT"], pool
        assert all(g["scalingConfig"]["minSize"] == 0 for g in groups), pool


def test_prod_gpu_pools_have_an_on_demand_floor_and_spot_burst(plans: dict[str, Plan]) -> None:
    spec_pools = {pool.name: pool for pool in plans["prod"].spec.gpu_pools}
    pools = gpu_node_groups(plans["prod"].graph)
    assert set(pools) == set(spec_pools)
    for pool, groups in pools.items():
        by_capacity = {g["capacityType"]: g["scalingConfig"] for g in groups}
        assert sorted(by_capacity) == ["ON_DEMAND", "SPOT"], pool
        floor, burst = by_capacity["ON_DEMAND"], by_capacity["SPOT"]
        assert floor["minSize"] >= 1, pool
        assert floor["minSize"] == floor["maxSize"] == spec_pools[pool].min_size, pool
        assert burst["minSize"] == 0, pool
        assert floor["maxSize"] + burst["maxSize"] == spec_pools[pool].max_size, pool


def test_dev_api_endpoint_is_public_only_to_the_allowlisted_cidrs(plans: dict[str, Plan]) -> None:
    allowed = [str(cidr) for cidr in plans["dev"].spec.cluster.public_access_cidrs]
    assert allowed
    assert "0.0.0.0/0" not in allowed
    vpc = plans["dev"].graph.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == allowed


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_api_endpoint_is_private_only(plans: dict[str, Plan], env: str) -> None:
    vpc = plans[env].graph.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert not vpc.get("publicAccessCidrs")


# ---------------------------------------------------------------------------------------------------- guards


def test_dev_protects_and_retains_nothing(plans: dict[str, Plan]) -> None:
    graph = plans["dev"].graph
    assert [r.name for r in graph if r.protect or r.retain_on_delete] == []


@pytest.mark.parametrize(("env", "retained"), [("staging", False), ("prod", True)])
def test_stateful_resources_protected_and_retained_only_in_prod(
    plans: dict[str, Plan], env: str, retained: bool
) -> None:
    graph = plans[env].graph
    stateful = [r for r in graph if r.type in STATEFUL_TYPES]
    assert {r.type for r in stateful} == STATEFUL_TYPES
    assert [r.name for r in stateful if not r.protect] == []
    assert [r.name for r in stateful if r.retain_on_delete != retained] == []
    # Nothing stateless is guarded: a protected NAT gateway or node group would only block changes.
    assert {r.type for r in graph if r.protect} <= STATEFUL_TYPES | GUARDED_WITH_DATA
    retainable = STATEFUL_TYPES | GUARDED_WITH_DATA | {"aws:secretsmanager/secretVersion:SecretVersion"}
    assert {r.type for r in graph if r.retain_on_delete} <= (retainable if retained else set())


# ------------------------------------------------------------------------------------- prod-only protection


@pytest.mark.parametrize("env", ENVS)
def test_cost_anomaly_detection_only_in_prod(plans: dict[str, Plan], env: str) -> None:
    graph = plans[env].graph
    monitors = graph.of_type("aws:costexplorer/anomalyMonitor:AnomalyMonitor")
    subscriptions = graph.of_type("aws:costexplorer/anomalySubscription:AnomalySubscription")
    assert (len(monitors), len(subscriptions)) == ((1, 1) if env == "prod" else (0, 0))
    if env == "prod":
        threshold = subscriptions[0].inputs["thresholdExpression"]["dimension"]["values"]
        assert threshold == [f"{plans[env].spec.budget.anomaly_threshold_usd:g}"]


@pytest.mark.parametrize("env", ENVS)
def test_backup_copy_to_us_west_2_and_vault_locks_only_in_prod(plans: dict[str, Plan], env: str) -> None:
    graph = plans[env].graph
    vaults = {v.name: v for v in graph.of_type("aws:backup/vault:Vault")}
    locks = graph.of_type("aws:backup/vaultLockConfiguration:VaultLockConfiguration")
    if env != "prod":
        assert set(vaults) == {"backups-vault"}
        assert locks == []
        return
    assert set(vaults) == {"backups-vault", "backups-copy-vault"}
    copy_provider = graph.by_urn(str(vaults["backups-copy-vault"].provider))
    assert copy_provider.inputs["region"] == "us-west-2"
    assert graph.by_urn(str(vaults["backups-vault"].provider)).inputs["region"] == "us-east-1"
    assert {lock.inputs["backupVaultName"] for lock in locks} == {v.outputs["name"] for v in vaults.values()}


@pytest.mark.parametrize(
    ("env", "rules"),
    [("dev", {"daily": 7}), ("staging", {"daily": 35}), ("prod", {"daily": 35, "weekly": 365})],
)
def test_backup_rules_and_retention_per_tier(plans: dict[str, Plan], env: str, rules: dict[str, int]) -> None:
    graph = plans[env].graph
    planned = graph.one("aws:backup/plan:Plan").inputs["rules"]
    assert {r["ruleName"]: r["lifecycle"]["deleteAfter"] for r in planned} == rules
    copy_vaults = [
        v.outputs["arn"] for v in graph.of_type("aws:backup/vault:Vault") if v.name == "backups-copy-vault"
    ]
    for rule in planned:
        assert [c["destinationVaultArn"] for c in rule.get("copyActions") or []] == copy_vaults


# ------------------------------------------------------------------------------------------ every resource


@pytest.mark.parametrize("env", ENVS)
def test_every_taggable_resource_carries_the_required_tags(plans: dict[str, Plan], env: str) -> None:
    graph = plans[env].graph
    expected = {key: plans[env].spec.merged_tags[key] for key in REQUIRED_TAG_KEYS}
    assert expected["environment"] == env
    assert expected["managed-by"] == "keel"
    custom = [r for r in graph if r.custom and r.type.startswith("aws:")]
    taggable = [r for r in custom if accepts_tags(r.type)]
    assert len(taggable) > len(custom) / 2, "the taggability check found too few taggable types"
    missing = {
        r.name: sorted(set(expected) - set(r.tags))
        for r in taggable
        if not expected.items() <= r.tags.items()
    }
    assert missing == {}


def test_taggability_check_tells_tagged_from_untaggable_types() -> None:
    assert accepts_tags("aws:ec2/vpc:Vpc")
    assert accepts_tags("aws:eks/nodeGroup:NodeGroup")
    assert not accepts_tags("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not accepts_tags("aws:autoscaling/tag:Tag")


@pytest.mark.parametrize("env", ENVS)
def test_every_resource_uses_an_explicit_provider_pinned_to_the_account(
    plans: dict[str, Plan], env: str
) -> None:
    graph = plans[env].graph
    spec = plans[env].spec
    providers = {p.urn: p for p in graph.of_type("pulumi:providers:aws")}
    assert [urn for urn in providers if urn.rsplit("::", 1)[1].startswith("default")] == []
    for provider in providers.values():
        assert json.loads(provider.inputs["allowedAccountIds"]) == [spec.aws.account_id]
        assert json.loads(provider.inputs["defaultTags"])["tags"] == spec.merged_tags
    aws_resources = [r for r in graph if r.custom and r.type.startswith("aws:")]
    assert [r.name for r in aws_resources if r.provider not in providers] == []
    # Everything in the cluster goes through the one provider built from the cluster's own kubeconfig.
    (kubernetes,) = graph.of_type("pulumi:providers:kubernetes")
    in_cluster = [r for r in graph if r.custom and r.type.startswith("kubernetes:")]
    assert in_cluster
    assert [r.name for r in in_cluster if r.provider != kubernetes.urn] == []


@pytest.mark.parametrize("env", ENVS)
def test_plan_holds_no_secret_and_masks_the_kubeconfig(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env].to_json()
    assert secret_free(plan)
    assert plan["outputs"]["kubeconfig"] == SECRET_MASK


def test_configured_secret_value_reaches_secrets_manager_masked_and_nowhere_else() -> None:
    sentinel = "hf_SENTINEL_do_not_print_0123456789"
    plan = plan_with_secret("dev", sentinel)
    version = plan.graph.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.inputs["secretString"] == SECRET_MASK
    assert plan.warnings == ()
    assert sentinel not in json.dumps(plan.to_json(), default=str)
    assert sentinel not in repr(plan.graph)
    assert secret_free(plan.to_json())


# ----------------------------------------------------------------------------------------------- stability


@pytest.mark.parametrize("env", ENVS)
def test_resource_counts_by_type(plans: dict[str, Plan], env: str) -> None:
    column = ENVS.index(env)
    expected = {t: counts[column] for t, counts in EXPECTED_COUNTS.items() if counts[column]}
    assert dict(sorted(plans[env].graph.counts_by_type().items())) == expected


def test_planning_is_deterministic(plans: dict[str, Plan]) -> None:
    again = plan_environment(environment_file("prod"))
    assert json.dumps(again.to_json(), sort_keys=True) == json.dumps(plans["prod"].to_json(), sort_keys=True)


def test_prod_vaults_locked_in_compliance_mode_with_grace_period(plans: dict[str, Plan]) -> None:
    locks = plans["prod"].graph.of_type("aws:backup/vaultLockConfiguration:VaultLockConfiguration")
    assert len(locks) == 2
    for lock in locks:
        assert lock.inputs["changeableForDays"] == 3  # compliance mode, undoable for three days
        assert lock.inputs["minRetentionDays"] == 7
        assert "maxRetentionDays" not in lock.inputs  # a compliance maximum could never be raised again


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_persistent_volumes_are_encrypted_with_the_volumes_key_the_ebs_csi_driver_may_use(
    plans: dict[str, Plan], env: str
) -> None:
    graph = plans[env].graph
    key_arn = graph.one("aws:kms/key:Key", "keys-volumes").outputs["arn"]
    storage_class = graph.one("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage_class.inputs["parameters"]["kmsKeyId"] == key_arn
    # The driver's IRSA role may use that key, through EC2 only, and grant it only to AWS resources.
    (inline,) = [
        p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.startswith("cluster-ebs-csi")
    ]
    statements = {s["Sid"]: s for s in json.loads(inline.inputs["policy"])["Statement"]}
    use, grant = statements["UseVolumeKeyThroughEc2"], statements["GrantVolumeKeyToEc2"]
    assert use["Resource"] == grant["Resource"] == key_arn
    assert use["Condition"] == {
        "StringEquals": {"kms:ViaService": f"ec2.{plans[env].spec.aws.region}.amazonaws.com"}
    }
    assert "kms:CreateGrant" not in use["Action"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
