"""The model/artifact S3 bucket and the AWS Backup vault, plan and selection that protect it."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws
from pydantic import Field, model_validator

from components.aws.iam import role_with_policies
from components.aws.keys import EncryptionKeys, EncryptionKeysArgs
from components.aws.policy_documents import (
    PolicyStatement,
    assume_role_policy,
    aws_managed_policy_arn,
    document,
    kms_decrypt_via_service,
)
from components.base import (
    AwsContext,
    ComponentArgs,
    Stateful,
    StrInput,
    child_options,
    named_tags,
)

_CRON = re.compile(r"^cron\(\S+ \S+ \S+ \S+ \S+ \S+\)$")

#: AWS managed policies for the AWS Backup service role: generic backup/restore plus the S3-specific pair,
#: which the generic ones do not cover. Note the S3 ones live at the root path, not under ``service-role/``.
BACKUP_MANAGED_POLICIES: dict[str, str] = {
    "backup": "service-role/AWSBackupServiceRolePolicyForBackup",
    "restore": "service-role/AWSBackupServiceRolePolicyForRestores",
    "s3-backup": "AWSBackupServiceRolePolicyForS3Backup",
    "s3-restore": "AWSBackupServiceRolePolicyForS3Restore",
}


class VaultLock(ComponentArgs):
    """AWS Backup Vault Lock settings, applied to the primary vault and to the copy vault.

    With ``changeable_for_days`` the lock is in *compliance* mode: after that grace period nobody, not even
    the account root or AWS, can shorten retention, delete recovery points early or remove the lock. Without
    it the lock is in *governance* mode: it enforces retention against ordinary users, but principals allowed
    ``backup:DeleteBackupVaultLockConfiguration`` can still remove it. Prod uses compliance mode.
    """

    min_retention_days: int = Field(ge=1)
    """Shortest retention a recovery point may have; must not exceed any rule's retention. Required."""
    max_retention_days: int | None = Field(default=None, ge=1)
    """Longest retention allowed; must cover every rule's retention. Default: ``None`` (no maximum)."""
    changeable_for_days: int | None = Field(default=None, ge=3)
    """Grace period (at least 3 days) before a compliance-mode lock becomes immutable. Default: ``None``
    (governance mode)."""


class BackupsArgs(ComponentArgs):
    """Inputs of :class:`Backups`."""

    context: AwsContext
    """Account, region and partition of the bucket and the primary vault. Required."""
    name_prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{0,29}$")
    """Environment prefix for physical names (vault, plan, selection, bucket prefix), e.g. ``keel-prod``.
    Required."""
    data_key_arn: StrInput
    """ARN of the KMS key (purpose ``data``) for bucket default encryption. Required."""
    backup_key_arn: StrInput
    """ARN of the KMS key (purpose ``backup``) for the primary vault. Required."""
    bucket_name: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    """Exact, globally unique bucket name. Default: ``None`` (``<name_prefix>-artifacts-<random suffix>``)."""
    assumed_bucket_gb: float | None = Field(default=None, ge=0)
    """GB the bucket holds (all versions), tagged on it for the cost model (``keel:cost-assumed-gb``).
    Default: ``None`` (untagged: the bucket's storage is unpriced)."""
    assumed_vault_gb: float | None = Field(default=None, ge=0)
    """GB of recovery points each vault holds, tagged on the vaults for the cost model. Default: ``None``."""
    noncurrent_version_days: int = Field(default=30, ge=1)
    """Days a replaced or deleted object version is kept before it expires. Default: 30."""
    abort_multipart_days: int = Field(default=7, ge=1)
    """Days after which incomplete multipart uploads are aborted (their parts cost storage). Default: 7."""
    force_destroy: bool = False
    """Let ``pulumi destroy`` empty the bucket and vaults first (dev only; refused with a vault lock).
    Default: ``False``."""
    daily_schedule: str = "cron(0 5 ? * * *)"
    """Schedule of the daily rule, an AWS Backup cron expression in UTC. Default: 05:00 UTC every day."""
    daily_retention_days: int = Field(default=7, ge=1)
    """Days a daily recovery point is kept (and its cross-region copy). Default: 7."""
    weekly_schedule: str = "cron(0 5 ? * SUN *)"
    """Schedule of the weekly rule (only with ``weekly_retention_days``). Default: 05:00 UTC on Sundays."""
    weekly_retention_days: int | None = Field(default=None, ge=1)
    """Days a weekly recovery point is kept, e.g. 365; at least ``daily_retention_days``. Default: ``None``
    (no weekly rule)."""
    copy_region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    """Second region receiving a copy of every recovery point, e.g. ``eu-central-1``. Default: ``None``
    (no copy)."""
    copy_region_provider: pulumi.ProviderResource | None = None
    """An explicit AWS provider for ``copy_region``; required exactly when ``copy_region`` is set. Default:
    ``None``."""
    vault_lock: VaultLock | None = None
    """Vault Lock for both vaults. Default: ``None`` (no lock)."""
    extra_resource_arns: tuple[StrInput, ...] = ()
    """ARNs of further resources to back up with the same plan (EBS volumes, EFS). The bucket is always
    included. Default: none."""
    tags: Mapping[str, str]
    """Environment tags applied to every taggable resource. Required."""
    stateful: Stateful
    """Protect/retain flags for the bucket (and its configuration), the vaults, their locks and the copy key.
    Required."""

    @model_validator(mode="after")
    def _consistent(self) -> BackupsArgs:
        for field in ("daily_schedule", "weekly_schedule"):
            value = getattr(self, field)
            if not _CRON.match(value):
                raise ValueError(
                    f"{field} must be an AWS cron expression like 'cron(0 5 ? * * *)', got {value!r}"
                )
        if self.weekly_retention_days is not None and self.weekly_retention_days < self.daily_retention_days:
            raise ValueError(
                f"weekly_retention_days ({self.weekly_retention_days}) must be at least "
                f"daily_retention_days ({self.daily_retention_days})"
            )
        if (self.copy_region is None) != (self.copy_region_provider is None):
            raise ValueError(
                "copy_region and copy_region_provider go together: set both for a cross-region copy or "
                "neither, "
                f"got copy_region={self.copy_region!r} and "
                f"copy_region_provider={'set' if self.copy_region_provider else None}"
            )
        if self.copy_region == self.context.region:
            raise ValueError(f"copy_region must differ from the primary region {self.context.region!r}")
        if self.bucket_name is None and len(self.bucket_prefix) > 37:
            raise ValueError(
                f"bucket prefix {self.bucket_prefix!r} exceeds S3's 37 characters; shorten name_prefix"
            )
        if self.vault_lock is not None:
            lock = self.vault_lock
            retentions = self.retentions
            if lock.min_retention_days > min(retentions.values()):
                raise ValueError(
                    f"vault_lock.min_retention_days ({lock.min_retention_days}) must not exceed any rule's "
                    f"retention {retentions}: AWS Backup would refuse those recovery points"
                )
            if lock.max_retention_days is not None and lock.max_retention_days < max(retentions.values()):
                raise ValueError(
                    f"vault_lock.max_retention_days ({lock.max_retention_days}) must cover every rule's "
                    f"retention {retentions}"
                )
            if lock.max_retention_days is not None and lock.max_retention_days < lock.min_retention_days:
                raise ValueError(
                    f"vault_lock.max_retention_days ({lock.max_retention_days}) must be at least "
                    f"min_retention_days ({lock.min_retention_days})"
                )
            if self.force_destroy:
                raise ValueError(
                    "force_destroy=True contradicts vault_lock: locked recovery points cannot be deleted"
                )
        return self

    @property
    def retentions(self) -> dict[str, int]:
        """Retention days per backup rule name."""
        rules = {"daily": self.daily_retention_days}
        if self.weekly_retention_days is not None:
            rules["weekly"] = self.weekly_retention_days
        return rules

    @property
    def bucket_prefix(self) -> str:
        """Prefix S3 completes to a unique bucket name when ``bucket_name`` is not given."""
        return f"{self.name_prefix}-artifacts-"


class Backups(pulumi.ComponentResource):
    """Versioned, KMS-encrypted, private, TLS-only artifact bucket, backed up by AWS Backup.

    AWS Backup keeps recovery points in a vault on the backup CMK, optionally copies them to a vault in a
    second region (with its own key, since KMS keys are regional) and optionally locks both vaults.
    """

    bucket_name: pulumi.Output[str]
    """Physical name of the artifact bucket."""
    bucket_arn: pulumi.Output[str]
    """ARN of the artifact bucket."""
    vault_name: pulumi.Output[str]
    """Name of the primary backup vault."""
    vault_arn: pulumi.Output[str]
    """ARN of the primary backup vault."""
    copy_vault_arn: pulumi.Output[str] | None
    """ARN of the copy vault in ``copy_region``, or ``None`` without a cross-region copy."""
    plan_id: pulumi.Output[str]
    """Id of the backup plan."""

    def __init__(self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("keel:aws:Backups", name, None, opts)
        self._context = args.context
        self._data_key_arn = args.data_key_arn
        bucket = self._bucket(name, args)
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn

        vault = aws.backup.Vault(
            f"{name}-vault",
            name=f"{args.name_prefix}-vault",
            kms_key_arn=args.backup_key_arn,
            force_destroy=args.force_destroy,
            tags=named_tags(args.tags, f"{args.name_prefix}-vault", assumed_gb=args.assumed_vault_gb),
            opts=child_options(self, stateful=args.stateful),
        )
        self.vault_name = vault.name
        self.vault_arn = vault.arn
        if args.vault_lock is not None:
            self._lock(f"{name}-vault-lock", vault, args.vault_lock, args.stateful, provider=None)

        copy_vault = self._copy_vault(name, args)
        self.copy_vault_arn = copy_vault.arn if copy_vault is not None else None

        plan = aws.backup.Plan(
            f"{name}-plan",
            name=f"{args.name_prefix}-plan",
            rules=[self._rule(rule, vault, copy_vault, args, days) for rule, days in args.retentions.items()],
            tags=named_tags(args.tags, f"{args.name_prefix}-plan"),
            opts=child_options(self),
        )
        self.plan_id = plan.id

        role, attachments = role_with_policies(
            self,
            f"{name}-role",
            description=f"{args.name_prefix}: AWS Backup service role for the artifact bucket and volumes",
            trust_policy=assume_role_policy("backup.amazonaws.com"),
            tags=named_tags(args.tags, f"{args.name_prefix}-backup"),
            policies={
                f"{name}-role-{suffix}": aws_managed_policy_arn(args.context, policy)
                for suffix, policy in BACKUP_MANAGED_POLICIES.items()
            },
        )
        aws.backup.Selection(
            f"{name}-selection",
            name=f"{args.name_prefix}-selection",
            plan_id=plan.id,
            iam_role_arn=role.arn,
            resources=[bucket.arn, *args.extra_resource_arns],
            # The first scheduled job would fail if the role had no permissions yet.
            opts=child_options(self, depends_on=list(attachments)),
        )

        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "vault_name": self.vault_name,
                "vault_arn": self.vault_arn,
                "copy_vault_arn": self.copy_vault_arn,
                "plan_id": self.plan_id,
            }
        )

    def read_policy_statements(self, prefix: str) -> list[PolicyStatement]:
        """IAM statements letting a role list and read objects under ``prefix`` (e.g. ``models/llama-3/``).

        ``prefix`` must end with ``/`` so that ``models/a/`` never also grants ``models/ab/``; it holds no
        wildcards. Decryption is allowed only through S3 in this region.
        """
        if not prefix.endswith("/") or prefix.startswith("/") or any(c in prefix for c in "*?"):
            raise ValueError(
                "prefix must be a folder path ending in '/', without a leading '/' or wildcards, "
                f"got {prefix!r}"
            )
        return [
            {
                "Sid": "ListModelPrefix",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": self.bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            {
                "Sid": "ReadModelObjects",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": self.bucket_arn.apply(lambda arn: f"{arn}/{prefix}*"),
            },
            kms_decrypt_via_service(self._context, self._data_key_arn, "s3", "DecryptModelObjects"),
        ]

    def _bucket(self, name: str, args: BackupsArgs) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            bucket_prefix=None if args.bucket_name else args.bucket_prefix,
            force_destroy=args.force_destroy,
            tags=named_tags(
                args.tags,
                args.bucket_name or f"{args.name_prefix}-artifacts",
                assumed_gb=args.assumed_bucket_gb,
            ),
            opts=child_options(self, stateful=args.stateful),
        )
        # The bucket's settings share its guard: deleting BucketVersioning suspends versioning, deleting the
        # public access block or the policy opens the bucket, so a retained bucket must keep them too.
        guard = args.stateful
        aws.s3.BucketOwnershipControls(
            f"{name}-bucket-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child_options(self, stateful=guard),
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-bucket-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child_options(self, stateful=guard),
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-bucket-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child_options(self, stateful=guard),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms",
                        kms_master_key_id=args.data_key_arn,
                    ),
                    # One data key per bucket instead of one KMS call per object: far fewer KMS requests.
                    bucket_key_enabled=True,
                )
            ],
            opts=child_options(self, stateful=guard),
        )
        aws.s3.BucketPolicy(
            f"{name}-bucket-policy",
            bucket=bucket.id,
            policy=document(
                [
                    {
                        # A Deny for every principal is the standard TLS-only guard; it grants nothing.
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket.arn, bucket.arn.apply(lambda arn: f"{arn}/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ]
            ),
            # S3 rejects concurrent policy and public-access-block writes on one bucket (OperationAborted).
            opts=child_options(self, stateful=guard, depends_on=[public_access]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_version_days,
                    ),
                ),
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="abort-incomplete-multipart-uploads",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=args.abort_multipart_days,
                    ),
                ),
            ],
            # Noncurrent-version rules only mean something once versioning is on.
            opts=child_options(self, stateful=guard, depends_on=[versioning]),
        )
        return bucket

    def _copy_vault(self, name: str, args: BackupsArgs) -> aws.backup.Vault | None:
        if args.copy_region is None or args.copy_region_provider is None:
            return None
        in_copy_region = pulumi.ResourceOptions(provider=args.copy_region_provider)
        # KMS keys are regional: the copy vault needs its own key, built like every other Keel key.
        copy_keys = EncryptionKeys(
            f"{name}-copy-keys",
            EncryptionKeysArgs(
                context=args.context.model_copy(update={"region": args.copy_region}),
                name_prefix=f"{args.name_prefix}-{args.copy_region}",
                purposes=("backup",),
                tags=args.tags,
                stateful=args.stateful,
            ),
            opts=pulumi.ResourceOptions.merge(child_options(self), in_copy_region),
        )
        vault = aws.backup.Vault(
            f"{name}-copy-vault",
            name=f"{args.name_prefix}-vault-{args.copy_region}",
            kms_key_arn=copy_keys.arn("backup"),
            force_destroy=args.force_destroy,
            tags=named_tags(
                args.tags, f"{args.name_prefix}-vault-{args.copy_region}", assumed_gb=args.assumed_vault_gb
            ),
            opts=pulumi.ResourceOptions.merge(child_options(self, stateful=args.stateful), in_copy_region),
        )
        if args.vault_lock is not None:
            self._lock(
                f"{name}-copy-vault-lock",
                vault,
                args.vault_lock,
                args.stateful,
                provider=args.copy_region_provider,
            )
        return vault

    def _lock(
        self,
        logical_name: str,
        vault: aws.backup.Vault,
        lock: VaultLock,
        stateful: Stateful,
        provider: pulumi.ProviderResource | None,
    ) -> None:
        aws.backup.VaultLockConfiguration(
            logical_name,
            backup_vault_name=vault.name,
            min_retention_days=lock.min_retention_days,
            max_retention_days=lock.max_retention_days,
            changeable_for_days=lock.changeable_for_days,
            opts=pulumi.ResourceOptions.merge(
                child_options(self, stateful=stateful), pulumi.ResourceOptions(provider=provider)
            ),
        )

    @staticmethod
    def _rule(
        rule: str,
        vault: aws.backup.Vault,
        copy_vault: aws.backup.Vault | None,
        args: BackupsArgs,
        days: int,
    ) -> aws.backup.PlanRuleArgs:
        copy_actions = (
            [
                aws.backup.PlanRuleCopyActionArgs(
                    destination_vault_arn=copy_vault.arn,
                    lifecycle=aws.backup.PlanRuleCopyActionLifecycleArgs(delete_after=days),
                )
            ]
            if copy_vault is not None
            else None
        )
        return aws.backup.PlanRuleArgs(
            rule_name=rule,
            target_vault_name=vault.name,
            schedule=args.daily_schedule if rule == "daily" else args.weekly_schedule,
            lifecycle=aws.backup.PlanRuleLifecycleArgs(delete_after=days),
            copy_actions=copy_actions,
        )
