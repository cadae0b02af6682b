"""Composes an AWS environment from its spec: keys, network, cluster, GPU pools, secrets, backups, budget.

This is the only place that turns spec fields into component Args; components never see the spec.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pulumi
import pulumi_aws as aws

from components.aws.backups import Backups, BackupsArgs, VaultLock
from components.aws.budget import Budget, BudgetArgs
from components.aws.cluster import Cluster, ClusterArgs, SystemNodes
from components.aws.keys import EncryptionKeys, EncryptionKeysArgs
from components.aws.network import Network, NetworkArgs
from components.aws.node_group import GpuNodePool, GpuNodePoolArgs
from components.aws.secrets import Secrets, SecretsArgs, SecretSpec
from components.base import AwsContext, Stateful
from stacks import inference
from stacks.spec import EnvironmentSpec, GpuPoolSpec

T = TypeVar("T")


def aws_provider(spec: EnvironmentSpec, name: str = "aws", region: str | None = None) -> aws.Provider:
    """An explicit provider pinned to the environment's account, with its tags as default tags (a backstop:
    components tag every resource themselves, so tags show in previews and policies)."""
    return aws.Provider(
        name,
        region=region or spec.aws.region,
        allowed_account_ids=[spec.aws.account_id],
        profile=spec.aws.profile,
        default_tags=aws.ProviderDefaultTagsArgs(tags=spec.merged_tags),
    )


def stateful_policy(spec: EnvironmentSpec) -> Stateful:
    """Staging and prod protect data; prod also retains it if it leaves the program."""
    return Stateful(protect=spec.defaults.protect_stateful, retain_on_delete=spec.defaults.retain_stateful)


#: Days a compliance-mode lock can still be removed after it is applied (AWS minimum: 3).
VAULT_LOCK_GRACE_DAYS = 3


def resolved(value: T | None, key: str) -> T:
    """A setting the spec fills from tier defaults; ``None`` here would be a bug in ``stacks/spec.py``."""
    if value is None:
        raise AssertionError(f"keel:{key} was not resolved from the tier defaults")
    return value


def artifact_bucket_name(spec: EnvironmentSpec) -> str:
    """The environment's model and artifact bucket: ``keel-<env>-artifacts-<account id>``."""
    return f"{spec.name_prefix}-artifacts-{spec.aws.account_id}"


def vault_lock(spec: EnvironmentSpec, daily_retention_days: int) -> VaultLock:
    """The tier's vault lock: recovery points kept at least a week (or the daily retention, if shorter).

    No maximum retention: a compliance-mode maximum can never be raised again, which would freeze the
    retention policy forever.
    """
    compliance = spec.backups.vault_lock_mode == "compliance"
    return VaultLock(
        min_retention_days=min(daily_retention_days, 7),
        changeable_for_days=VAULT_LOCK_GRACE_DAYS if compliance else None,
    )


def _gpu_pools(
    *,
    spec: EnvironmentSpec,
    pool: GpuPoolSpec,
    context: AwsContext,
    cluster: Cluster,
    network: Network,
    opts: pulumi.ResourceOptions,
) -> list[GpuNodePool]:
    return [
        GpuNodePool(
            f"gpu-{pool.name}-{group.suffix}",
            GpuNodePoolArgs(
                context=context,
                pool_name=pool.name,
                cluster_name=cluster.cluster_name,
                kubernetes_version=spec.cluster.kubernetes_version,
                subnet_ids=list(network.private_subnet_ids),
                instance_types=list(pool.instance_types),
                capacity_type=group.capacity_type,
                min_size=group.min_size,
                max_size=group.max_size,
                desired_size=group.min_size,
                labels=dict(pool.labels),
                gpus_per_instance=pool.gpus_per_node,
                root_volume_gib=pool.root_volume_gib,
                tags=spec.merged_tags,
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[cluster])),
        )
        for group in pool.node_groups()
    ]


def build(spec: EnvironmentSpec, secret_values: dict[str, pulumi.Output[str] | None]) -> dict[str, Any]:
    """Create every resource of an AWS environment and return the stack outputs a user needs."""
    provider = aws_provider(spec)
    opts = pulumi.ResourceOptions(provider=provider)
    context = AwsContext(account_id=spec.aws.account_id, region=spec.aws.region)
    tags = spec.merged_tags
    stateful = stateful_policy(spec)
    prefix = spec.name_prefix

    keys = EncryptionKeys(
        "keys",
        EncryptionKeysArgs(
            context=context,
            name_prefix=prefix,
            deletion_window_days=spec.defaults.key_deletion_window_days,
            tags=tags,
            stateful=stateful,
        ),
        opts=opts,
    )
    network = Network(
        "network",
        NetworkArgs(
            context=context,
            cidr=str(spec.network.cidr),
            availability_zones=list(resolved(spec.network.availability_zones, "network.availabilityZones")),
            nat=resolved(spec.network.nat, "network.nat"),
            cluster_name=spec.cluster_name,
            flow_log_retention_days=resolved(
                spec.network.flow_log_retention_days, "network.flowLogRetentionDays"
            ),
            log_key_arn=keys.arn("logs"),
            assumed_nat_gb_per_month=spec.usage.nat_gb_per_month,
            assumed_flow_log_gb_per_month=spec.usage.flow_log_gb_per_month,
            tags=tags,
            stateful=stateful,
        ),
        opts=opts,
    )
    system = spec.cluster.system_nodes
    cluster = Cluster(
        "cluster",
        ClusterArgs(
            context=context,
            cluster_name=spec.cluster_name,
            kubernetes_version=spec.cluster.kubernetes_version,
            subnet_ids=list(network.private_subnet_ids),
            public_access_cidrs=[str(c) for c in spec.cluster.public_access_cidrs],
            secrets_key_arn=keys.arn("cluster"),
            log_key_arn=keys.arn("logs"),
            log_retention_days=resolved(spec.cluster.log_retention_days, "cluster.logRetentionDays"),
            assumed_log_gb_per_month=spec.usage.control_plane_log_gb_per_month,
            volume_key_arn=keys.arn("volumes"),
            admin_role_arns=list(spec.cluster.admin_role_arns),
            system_nodes=SystemNodes(
                instance_types=list(system.instance_types),
                min_size=system.min_size,
                max_size=system.max_size,
                desired_size=system.min_size,
            ),
            addon_versions=dict(spec.cluster.addon_versions),  # type: ignore[arg-type]  # names validated by the spec
            tags=tags,
            stateful=stateful,
        ),
        opts=opts,
    )
    pools = [
        group
        for pool in spec.gpu_pools
        for group in _gpu_pools(
            spec=spec, pool=pool, context=context, cluster=cluster, network=network, opts=opts
        )
    ]

    secrets = (
        Secrets(
            "secrets",
            SecretsArgs(
                context=context,
                name_prefix=prefix,
                key_arn=keys.arn("secrets"),
                secrets=tuple(
                    SecretSpec(
                        name=s.name,
                        description=s.description or f"{s.name} for {spec.environment}",
                        value=secret_values.get(s.name),
                    )
                    for s in spec.secrets
                ),
                recovery_window_days=spec.defaults.secret_recovery_days,
                tags=tags,
                stateful=stateful,
            ),
            opts=opts,
        )
        if spec.secrets
        else None
    )

    backups_spec = spec.backups
    copy_provider = (
        aws_provider(spec, "aws-backup-copy", backups_spec.copy_region) if backups_spec.copy_region else None
    )
    daily_days = resolved(backups_spec.daily_retention_days, "backups.dailyRetentionDays")
    backups = Backups(
        "backups",
        BackupsArgs(
            context=context,
            name_prefix=prefix,
            data_key_arn=keys.arn("data"),
            backup_key_arn=keys.arn("backup"),
            # A deterministic name (unique through the account id) so operators can mirror model weights to a
            # documented s3:// path, and model servers can be pointed at it without waiting for the cloud.
            bucket_name=artifact_bucket_name(spec),
            assumed_bucket_gb=spec.usage.artifact_bucket_gb,
            assumed_vault_gb=spec.usage.backup_vault_gb,
            noncurrent_version_days=backups_spec.noncurrent_version_days,
            daily_retention_days=daily_days,
            weekly_retention_days=backups_spec.weekly_retention_days,
            copy_region=backups_spec.copy_region,
            copy_region_provider=copy_provider,
            vault_lock=vault_lock(spec, daily_days) if backups_spec.vault_lock else None,
            force_destroy=spec.tier == "dev",
            tags=tags,
            stateful=stateful,
        ),
        opts=opts,
    )
    budget_spec = spec.budget
    budget = Budget(
        "budget",
        BudgetArgs(
            context=context,
            name=f"{prefix}-monthly",
            monthly_limit_usd=budget_spec.monthly_limit_usd,
            cost_tag_key="environment",
            cost_tag_value=spec.environment,
            actual_thresholds_pct=tuple(budget_spec.actual_thresholds_pct),
            forecast_thresholds_pct=tuple(budget_spec.forecast_thresholds_pct),
            emails=tuple(budget_spec.emails),
            anomaly_detection=bool(budget_spec.anomaly_detection),
            anomaly_threshold_usd=budget_spec.anomaly_threshold_usd,
            notifications_key_arn=keys.arn("notifications"),
            tags=tags,
        ),
        opts=opts,
    )

    outputs: dict[str, Any] = {}
    if spec.models:
        outputs |= inference.build(
            spec,
            context=context,
            aws_provider=provider,
            cluster=cluster,
            gpu_pools=pools,
            backups=backups,
            secrets=secrets,
            secrets_key_arn=keys.arn("secrets"),
            volume_key_arn=keys.arn("volumes"),
            bucket_name=artifact_bucket_name(spec),
        )
    outputs |= {
        "environment": spec.environment,
        "region": spec.aws.region,
        "vpcId": network.vpc_id,
        "privateSubnetIds": network.private_subnet_ids,
        "clusterName": cluster.cluster_name,
        "clusterEndpoint": cluster.endpoint,
        "oidcProviderArn": cluster.oidc_provider_arn,
        "kubeconfig": cluster.kubeconfig,
        "gpuNodeGroups": [pool.node_group_name for pool in pools],
        "artifactBucket": backups.bucket_name,
        "backupVault": backups.vault_name,
        "budgetName": budget.budget_name,
        "alertTopicArn": budget.topic_arn,
    }
    if secrets is not None:
        outputs["secretArns"] = secrets.arns
    return outputs
