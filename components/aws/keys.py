"""Customer-managed KMS keys, one per purpose, with rotation, an alias and a least-privilege key policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import pulumi
import pulumi_aws as aws
from pydantic import Field, field_validator

from components.aws.policy_documents import PolicyStatement, service_endpoint, static_document
from components.base import AwsContext, ComponentArgs, Stateful, child_options, named_tags

KeyPurpose = Literal["logs", "cluster", "data", "backup", "secrets", "notifications", "volumes"]
"""What a key encrypts; one key per purpose, so access to one kind of data never implies another."""

ALL_PURPOSES: tuple[KeyPurpose, ...] = get_args(KeyPurpose)

#: The service that uses each key on behalf of IAM principals of the account (the ``kms:ViaService`` prefix).
_VIA_SERVICE: dict[KeyPurpose, str] = {
    "logs": "logs",
    "cluster": "eks",
    "data": "s3",
    "backup": "backup",
    "secrets": "secretsmanager",
    "notifications": "sns",
    "volumes": "ec2",
}

_DESCRIPTIONS: dict[KeyPurpose, str] = {
    "logs": "CloudWatch Logs log groups (VPC flow logs, EKS control-plane logs)",
    "cluster": "EKS envelope encryption of Kubernetes secrets",
    "data": "S3 model and artifact bucket",
    "backup": "AWS Backup vault",
    "secrets": "Secrets Manager secrets",
    "notifications": "SNS topic for AWS Budgets and Cost Anomaly Detection alerts",
    "volumes": "EBS volumes of Kubernetes persistent volume claims (EBS CSI driver)",
}

# Explicit actions instead of the usual "kms:*" or "kms:Create*": the admin statement must not also allow
# kms:Decrypt or kms:CreateGrant (which would hand out usage) outside the conditioned usage statements below.
_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
]

_USAGE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"]
_GRANT_ACTIONS = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]


def key_policy(context: AwsContext, purpose: KeyPurpose) -> str:
    """The key policy JSON for a key of ``purpose`` in ``context``'s account and region.

    The account root principal (which delegates to IAM policies in this account, never to other accounts) may
    administer the key; IAM principals may use it only through the purpose's service in this region; AWS
    services that use the key as themselves (CloudWatch Logs, AWS Budgets, Cost Anomaly Detection) get their
    own statements pinned to this account. Public so that a component creating a key in another region (the
    backup copy vault) builds the same policy with a copy of the context.
    """
    root = {"AWS": context.account_root_arn}
    via = service_endpoint(context, _VIA_SERVICE[purpose])
    statements: list[PolicyStatement] = [
        {
            "Sid": "KeyAdministration",
            "Effect": "Allow",
            "Principal": root,
            "Action": _ADMIN_ACTIONS,
            "Resource": "*",
        },
        {
            "Sid": "KeyUsageViaService",
            "Effect": "Allow",
            "Principal": root,
            "Action": _USAGE_ACTIONS,
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": via, "kms:CallerAccount": context.account_id}},
        },
        {
            # Services such as EKS, AWS Backup and Secrets Manager hold the key through grants they create.
            "Sid": "GrantsForAwsResourcesViaService",
            "Effect": "Allow",
            "Principal": root,
            "Action": _GRANT_ACTIONS,
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:ViaService": via, "kms:CallerAccount": context.account_id},
                "Bool": {"kms:GrantIsForAWSResource": "true"},
            },
        },
    ]
    if purpose == "logs":
        statements.append(
            {
                # CloudWatch Logs calls KMS as its own regional principal; the encryption context names the
                # log group, so this pins the key to log groups of this account and region.
                "Sid": "CloudWatchLogsServiceUse",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{context.region}.{context.dns_suffix}"},
                "Action": [
                    "kms:Decrypt*",
                    "kms:Describe*",
                    "kms:Encrypt*",
                    "kms:GenerateDataKey*",
                    "kms:ReEncrypt*",
                ],
                "Resource": "*",
                "Condition": {
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": context.arn("logs", "*")},
                },
            }
        )
    if purpose == "notifications":
        statements.append(
            {
                # Budgets and Cost Anomaly Detection publish to the encrypted topic as themselves, so SNS asks
                # KMS for a data key on their behalf; without this their alerts are dropped silently.
                "Sid": "CostAlertServicesPublishToEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": ["budgets.amazonaws.com", "costalerts.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": context.account_id}},
            }
        )
    return static_document(statements)


class EncryptionKeysArgs(ComponentArgs):
    """Inputs of :class:`EncryptionKeys`."""

    context: AwsContext
    """Account, region and partition the keys belong to. Required."""
    name_prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    """Environment prefix for alias names, e.g. ``keel-prod`` gives ``alias/keel-prod-data``. Required."""
    purposes: tuple[KeyPurpose, ...] = ALL_PURPOSES
    """Which keys to create, one per purpose. Default: all six purposes."""
    deletion_window_days: int = Field(default=30, ge=7, le=30)
    """Days a key waits in ``PendingDeletion`` before KMS deletes it (7-30). Default: 30."""
    rotation_period_days: int = Field(default=365, ge=90, le=2560)
    """Days between automatic rotations of the key material (90-2560). Default: 365."""
    tags: Mapping[str, str]
    """Environment tags applied to every key. Required."""
    stateful: Stateful
    """Protect/retain flags: deleting a key makes everything encrypted with it unreadable. Required."""

    @field_validator("purposes")
    @classmethod
    def _purposes_unique_and_present(cls, value: tuple[KeyPurpose, ...]) -> tuple[KeyPurpose, ...]:
        if not value:
            raise ValueError(f"purposes must name at least one of {list(ALL_PURPOSES)}, got an empty list")
        duplicates = sorted({p for p in value if value.count(p) > 1})
        if duplicates:
            raise ValueError(
                f"purposes must not repeat a purpose, got {list(value)} (repeated: {duplicates})"
            )
        return value


class EncryptionKeys(pulumi.ComponentResource):
    """One customer-managed, rotating KMS key per purpose, each with an alias ``alias/<prefix>-<purpose>``."""

    arns: dict[str, pulumi.Output[str]]
    """Key ARN per purpose, for the purposes created."""

    def __init__(
        self, name: str, args: EncryptionKeysArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keel:aws:EncryptionKeys", name, None, opts)
        self._name = name
        self.arns = {}
        for purpose in args.purposes:
            alias = f"{args.name_prefix}-{purpose}"
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"{args.name_prefix}: {_DESCRIPTIONS[purpose]}",
                key_usage="ENCRYPT_DECRYPT",
                customer_master_key_spec="SYMMETRIC_DEFAULT",
                enable_key_rotation=True,
                rotation_period_in_days=args.rotation_period_days,
                deletion_window_in_days=args.deletion_window_days,
                policy=key_policy(args.context, purpose),
                tags=named_tags(args.tags, alias),
                opts=child_options(self, stateful=args.stateful),
            )
            aws.kms.Alias(
                f"{name}-{purpose}-alias",
                name=f"alias/{alias}",
                target_key_id=key.key_id,
                opts=child_options(self),
            )
            self.arns[purpose] = key.arn
        self.register_outputs({"arns": self.arns})

    def arn(self, purpose: KeyPurpose) -> pulumi.Output[str]:
        """The ARN of the key for ``purpose``; a ``KeyError`` naming the created purposes if it was not."""
        try:
            return self.arns[purpose]
        except KeyError:
            raise KeyError(
                f"EncryptionKeys {self._name!r} has no key for purpose {purpose!r}; "
                f"created: {sorted(self.arns)} (add it to EncryptionKeysArgs.purposes)"
            ) from None
