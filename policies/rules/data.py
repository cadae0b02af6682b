"""Data rules: buckets versioned, KMS-encrypted, private and TLS-only; keys rotated and never open to everyone;
backups that cover every bucket, kept long enough, locked and copied away; logs encrypted and expiring;
stateful resources protected from deletion.

An S3 bucket's configuration lives in separate resources (``BucketVersioning``, ``BucketPolicy``, ...) whose
``bucket`` input comes from the bucket: stack rules follow that property dependency, never names, so the
verdicts hold during a preview when the bucket's name is not yet known. Bucket checks are keyed by type token
(``BUCKET_CHECKS``), so a GCS bucket joins by adding its own readers.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from policies.framework import depends_on, items, of_type, prop, resource_rule, stack_rule, truthy

Finding = tuple[str, str | None]

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
VERSIONING = "aws:s3/bucketVersioning*:BucketVersioning*"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration*:BucketServerSideEncryptionConfiguration*"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ACCOUNT_PUBLIC_ACCESS_BLOCK = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})

BACKUP_PLAN = "aws:backup/plan:Plan"
BACKUP_SELECTION = "aws:backup/selection:Selection"
BACKUP_VAULT = "aws:backup/vault:Vault"
VAULT_LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
KMS_KEY_TYPES = ("aws:kms/key:Key", "aws:kms/keyPolicy:KeyPolicy", "aws:kms/replicaKey:ReplicaKey")


def one_or_many(value: Any) -> list[Any]:
    """IAM's "a value or a list of values" as a list."""
    if value is None:
        return []
    return items(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


def arn_region(arn: Any) -> str | None:
    """The region field of an ARN (``arn:aws:backup:us-west-2:...``), if it has one."""
    parts = str(arn).split(":") if isinstance(arn, str) else []
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


# ------------------------------------------------------------------------------------ policy documents


class PolicyDocumentError(ValueError):
    """A policy property that is not a JSON policy document."""


def policy_statements(value: Any) -> list[Mapping[str, Any]]:
    """The statements of an IAM-style policy given as a JSON string (or already as an object)."""
    document = value
    if isinstance(value, str):
        try:
            document = json.loads(value)
        except json.JSONDecodeError as error:
            raise PolicyDocumentError(f"not valid JSON ({error.msg})") from None
    if not isinstance(document, Mapping):
        raise PolicyDocumentError("not a JSON object")
    statements = one_or_many(document.get("Statement"))
    if not all(isinstance(s, Mapping) for s in statements):
        raise PolicyDocumentError("a statement is not an object")
    return statements


def everyone(principal: Any) -> bool:
    """Whether a Principal is anyone at all: ``"*"`` or ``{"AWS": "*"}``."""
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in one_or_many(principal.get("AWS"))


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny" or not everyone(statement.get("Principal")):
        return False
    if not any(a in ("*", "s3:*") for a in one_or_many(statement.get("Action"))):
        return False
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return False
    for operator, block in condition.items():
        if operator not in ("Bool", "BoolIfExists") or not isinstance(block, Mapping):
            continue
        for key, value in block.items():
            # Condition keys are case-insensitive; values may be "false", false or ["false"].
            if key.lower() == "aws:securetransport" and any(
                str(v).lower() == "false" for v in one_or_many(value)
            ):
                return True
    return False


# ---------------------------------------------------------------------------------------- bucket checks


def configs_of(
    bucket: PolicyResource, resources: Sequence[PolicyResource], pattern: str
) -> list[PolicyResource]:
    """The configuration resources of ``pattern`` whose ``bucket`` input comes from ``bucket``."""
    return [r for r in of_type(resources, pattern) if depends_on(r, bucket, "bucket")]


BucketCheck = Callable[[PolicyResource, Sequence[PolicyResource]], str | None]
"""(bucket, all resources) -> what is wrong with the bucket, or ``None``."""


def _aws_versioning(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> str | None:
    linked = configs_of(bucket, resources, VERSIONING)
    statuses = [prop(v, "versioningConfiguration.status") for v in linked]
    if "Enabled" in statuses:
        return None
    # Without a BucketVersioning resource, the deprecated inline block is the only other place it can be.
    if not linked and truthy(prop(bucket, "versioning.enabled")):
        return None
    if linked:
        return f"bucket {bucket.name} has versioning {', '.join(str(s) for s in statuses)}, not Enabled"
    return f"bucket {bucket.name} has no BucketVersioning with status Enabled"


def _kms_default(rule: Any) -> bool:
    default = rule.get("applyServerSideEncryptionByDefault") if isinstance(rule, Mapping) else None
    return (
        isinstance(default, Mapping)
        and default.get("sseAlgorithm") in KMS_ALGORITHMS
        and bool(default.get("kmsMasterKeyId"))
    )


def _aws_kms_encryption(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> str | None:
    linked = configs_of(bucket, resources, ENCRYPTION)
    if any(_kms_default(rule) for c in linked for rule in items(prop(c, "rules"))):
        return None
    if not linked:
        inline = prop(bucket, "serverSideEncryptionConfiguration")
        rules = one_or_many(inline.get("rule")) if isinstance(inline, Mapping) else []
        if any(_kms_default(rule) for rule in rules):
            return None
    return (
        f"bucket {bucket.name} is not encrypted by default with a named KMS key "
        "(sseAlgorithm aws:kms and kmsMasterKeyId)"
    )


def _aws_public_access(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> str | None:
    def open_flags(block: PolicyResource) -> list[str]:
        return [f for f in PUBLIC_ACCESS_FLAGS if not truthy(prop(block, f))]

    # An account-wide block with all four flags covers every bucket.
    if any(not open_flags(a) for a in of_type(resources, ACCOUNT_PUBLIC_ACCESS_BLOCK)):
        return None
    linked = configs_of(bucket, resources, PUBLIC_ACCESS_BLOCK)
    if not linked:
        return f"bucket {bucket.name} has no BucketPublicAccessBlock"
    gaps = [open_flags(block) for block in linked]
    if any(not gap for gap in gaps):
        return None
    return f"bucket {bucket.name} does not block public access: {', '.join(gaps[0])} not true"


def _aws_tls_only(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> str | None:
    documents = [
        (f"BucketPolicy {p.name}", prop(p, "policy")) for p in configs_of(bucket, resources, BUCKET_POLICY)
    ]
    if not documents and prop(bucket, "policy") is not None:
        documents = [("inline policy", prop(bucket, "policy"))]
    if not documents:
        return f"bucket {bucket.name} has no bucket policy denying requests without TLS"
    for label, document in documents:
        try:
            statements = policy_statements(document)
        except PolicyDocumentError as error:
            return f"bucket {bucket.name}: {label} is {error}"
        if any(_denies_insecure_transport(s) for s in statements):
            return None
    return (
        f"bucket {bucket.name}: no policy statement denies s3:* to everyone when aws:SecureTransport is false"
    )


@dataclass(frozen=True)
class BucketChecks:
    """One cloud's bucket readers."""

    versioning: BucketCheck
    kms_encryption: BucketCheck
    public_access: BucketCheck
    tls_only: BucketCheck


_AWS_BUCKET = BucketChecks(_aws_versioning, _aws_kms_encryption, _aws_public_access, _aws_tls_only)
BUCKET_CHECKS: dict[str, BucketChecks] = dict.fromkeys(BUCKETS, _AWS_BUCKET)


def _each_bucket(
    resources: Sequence[PolicyResource], aspect: Callable[[BucketChecks], BucketCheck]
) -> Iterable[Finding]:
    for bucket in of_type(resources, *BUCKET_CHECKS):
        problem = aspect(BUCKET_CHECKS[bucket.resource_type])(bucket, resources)
        if problem is not None:
            yield problem, bucket.urn


@stack_rule(
    name="bucket-versioning-enabled",
    description="Every bucket keeps object versions, so an overwrite or delete can be undone.",
    domain="data",
    category="security",
    severity="medium",
    remediation="Add an aws.s3.BucketVersioning for the bucket with versioningConfiguration.status 'Enabled'.",
)
def bucket_versioning_enabled(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[Finding]:
    yield from _each_bucket(resources, lambda c: c.versioning)


@stack_rule(
    name="bucket-kms-encrypted",
    description="Every bucket encrypts objects by default with a customer-managed KMS key.",
    domain="data",
    category="security",
    severity="high",
    remediation=(
        "Add an aws.s3.BucketServerSideEncryptionConfiguration for the bucket with sseAlgorithm 'aws:kms' and "
        "kmsMasterKeyId set to the EncryptionKeys 'data' key (bucketKeyEnabled true keeps KMS costs down)."
    ),
)
def bucket_kms_encrypted(resources: Sequence[PolicyResource], config: Mapping[str, Any]) -> Iterable[Finding]:
    yield from _each_bucket(resources, lambda c: c.kms_encryption)


@stack_rule(
    name="bucket-public-access-blocked",
    description="Every bucket blocks public ACLs and public policies.",
    domain="data",
    category="security",
    severity="critical",
    remediation=(
        "Add an aws.s3.BucketPublicAccessBlock for the bucket with blockPublicAcls, blockPublicPolicy, "
        "ignorePublicAcls and restrictPublicBuckets all true."
    ),
)
def bucket_public_access_blocked(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[Finding]:
    yield from _each_bucket(resources, lambda c: c.public_access)


@stack_rule(
    name="bucket-tls-only",
    description="Every bucket's policy denies requests that do not use TLS.",
    domain="data",
    category="security",
    severity="high",
    remediation=(
        "Add an aws.s3.BucketPolicy with a statement: Effect Deny, Principal '*', Action 's3:*', the bucket "
        "and its objects as Resource, Condition Bool aws:SecureTransport 'false'."
    ),
)
def bucket_tls_only(resources: Sequence[PolicyResource], config: Mapping[str, Any]) -> Iterable[Finding]:
    yield from _each_bucket(resources, lambda c: c.tls_only)


# ------------------------------------------------------------------------------------------------- keys


@resource_rule(
    name="kms-rotation-enabled",
    description="Symmetric KMS keys rotate their key material automatically.",
    domain="data",
    category="security",
    severity="medium",
    remediation="Set enableKeyRotation to true on the key (the EncryptionKeys component does, every 365 days).",
    types=["aws:kms/key:Key"],
)
def kms_rotation_enabled(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    spec = prop(resource, "customerMasterKeySpec") or prop(resource, "keySpec") or "SYMMETRIC_DEFAULT"
    usage = prop(resource, "keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return  # KMS cannot rotate asymmetric or HMAC keys.
    if not truthy(prop(resource, "enableKeyRotation")):
        yield f"KMS key {resource.name} does not rotate its key material (enableKeyRotation is not true)"


@resource_rule(
    name="kms-no-wildcard-principal",
    description="No KMS key policy allows everyone (Principal '*').",
    domain="data",
    category="security",
    severity="critical",
    remediation=(
        "Name the principals in Allow statements (the account root, specific roles); keep Principal '*' only "
        "in Deny statements."
    ),
    types=list(KMS_KEY_TYPES),
)
def kms_no_wildcard_principal(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    document = prop(resource, "policy")
    if document is None:
        return  # KMS's default key policy trusts the account only.
    try:
        statements = policy_statements(document)
    except PolicyDocumentError as error:
        yield f"KMS key {resource.name}: key policy is {error}"
        return
    for index, statement in enumerate(statements):
        if statement.get("Effect") != "Allow":
            continue
        label = statement.get("Sid") or f"statement {index}"
        if everyone(statement.get("Principal")):
            yield f"KMS key {resource.name}: {label} allows Principal '*'"
        elif statement.get("NotPrincipal") is not None:
            yield f"KMS key {resource.name}: {label} allows everyone except NotPrincipal"


# ---------------------------------------------------------------------------------------------- backups


@stack_rule(
    name="backups-cover-stateful",
    description="A backup plan keeps recovery points long enough and covers every bucket.",
    domain="data",
    category="availability",
    severity="high",
    remediation=(
        "Create an aws.backup.Plan whose rules keep recovery points at least minRetentionDays "
        "(lifecycle.deleteAfter), and list every bucket's ARN in an aws.backup.Selection's resources (the "
        "Backups component does)."
    ),
    settings={
        "minRetentionDays": {
            "type": "integer",
            "minimum": 1,
            "default": 7,
            "description": "Fewest days a backup rule may keep recovery points.",
        },
        "coveredTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(BUCKETS),
            "description": "Type tokens (fnmatch patterns) of resources a backup selection must cover.",
        },
    },
)
def backups_cover_stateful(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[Finding]:
    plans = of_type(resources, BACKUP_PLAN)
    if not plans:
        yield "the stack has no AWS Backup plan", None
    minimum = int(config.get("minRetentionDays", 7))
    for plan in plans:
        for rule in items(prop(plan, "rules")):
            if not isinstance(rule, Mapping):
                continue
            lifecycle = rule.get("lifecycle")
            days = lifecycle.get("deleteAfter") if isinstance(lifecycle, Mapping) else None
            # No deleteAfter keeps recovery points forever.
            if days is not None and days < minimum:
                yield (
                    f"backup plan {plan.name} rule {rule.get('ruleName')} keeps recovery points {int(days)} days, "
                    f"fewer than {minimum}",
                    plan.urn,
                )
    selections = of_type(resources, BACKUP_SELECTION)
    patterns = [str(p) for p in config.get("coveredTypes") or []]
    for resource in of_type(resources, *patterns):
        if any(depends_on(s, resource, "resources") for s in selections):
            continue
        if any(r in ("*", "arn:aws:s3:::*") for s in selections for r in items(prop(s, "resources"))):
            continue
        yield f"{resource.name} ({resource.resource_type}) is in no backup selection", resource.urn


def _vault_region(vault_name: Any, vaults: Sequence[PolicyResource]) -> str | None:
    for vault in vaults:
        if vault_name is not None and prop(vault, "name") == vault_name:
            return arn_region(prop(vault, "arn"))
    return None


def _plan_region(plan: PolicyResource, resources: Sequence[PolicyResource]) -> str | None:
    """The plan's region: its provider's, else its target vault's (from the ARN), else its own ARN's."""
    provider = plan.provider
    if provider is not None:
        region = provider.props.get("region") if isinstance(provider.props, Mapping) else None
        if not region:
            registered = [r for r in resources if r.urn == provider.urn]
            region = prop(registered[0], "region") if registered else None
        if isinstance(region, str) and region:
            return region
    vaults = of_type(resources, BACKUP_VAULT)
    for rule in items(prop(plan, "rules")):
        region = _vault_region(rule.get("targetVaultName") if isinstance(rule, Mapping) else None, vaults)
        if region:
            return region
    return arn_region(prop(plan, "arn"))


@stack_rule(
    name="backup-vault-locked-and-copied",
    description="Where required, backup vaults are locked and every backup rule copies to another region.",
    domain="data",
    category="availability",
    severity="high",
    remediation=(
        "Set keel:backups.vaultLock (an aws.backup.VaultLockConfiguration per vault) and keel:backups.copyRegion "
        "(a copyAction to a vault in another region on every plan rule)."
    ),
    settings={
        "requireVaultLock": {
            "type": "boolean",
            "default": False,
            "description": "Every backup vault must have a vault lock (WORM: recovery points cannot be deleted).",
        },
        "requireCrossRegionCopy": {
            "type": "boolean",
            "default": False,
            "description": "Every backup plan rule must copy recovery points to a vault in another region.",
        },
    },
)
def backup_vault_locked_and_copied(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[Finding]:
    if config.get("requireVaultLock"):
        locks = of_type(resources, VAULT_LOCK)
        for vault in of_type(resources, BACKUP_VAULT):
            if not any(depends_on(lock, vault) for lock in locks):
                yield f"backup vault {vault.name} has no vault lock", vault.urn
    if config.get("requireCrossRegionCopy"):
        for plan in of_type(resources, BACKUP_PLAN):
            region = _plan_region(plan, resources)
            if region is None:
                yield f"backup plan {plan.name}: its region cannot be determined to check copies", plan.urn
                continue
            for rule in items(prop(plan, "rules")):
                if not isinstance(rule, Mapping):
                    continue
                destinations = [
                    arn_region(c.get("destinationVaultArn"))
                    for c in items(rule.get("copyActions"))
                    if isinstance(c, Mapping)
                ]
                if not any(d is not None and d != region for d in destinations):
                    yield (
                        f"backup plan {plan.name} rule {rule.get('ruleName')} copies to no vault outside {region}",
                        plan.urn,
                    )


# ------------------------------------------------------------------------------------- logs and deletion


@resource_rule(
    name="log-groups-encrypted-with-retention",
    description="Log groups are encrypted with a KMS key and expire after a bounded retention of enough days.",
    domain="data",
    category="security",
    severity="medium",
    remediation=(
        "Set kmsKeyId to the EncryptionKeys 'logs' key and retentionInDays to at least minRetentionDays "
        "(never 0 or unset: such logs are kept forever)."
    ),
    types=["aws:cloudwatch/logGroup:LogGroup"],
    settings={
        "minRetentionDays": {
            "type": "integer",
            "minimum": 1,
            "default": 30,
            "description": "Fewest days a log group may keep its events.",
        }
    },
)
def log_groups_encrypted_with_retention(
    resource: ResourceValidationArgs, config: Mapping[str, Any]
) -> Iterable[str]:
    if not prop(resource, "kmsKeyId"):
        yield f"log group {resource.name} is not encrypted with a KMS key (kmsKeyId)"
    minimum = int(config.get("minRetentionDays", 30))
    days = prop(resource, "retentionInDays")
    if not days:
        yield f"log group {resource.name} never expires its events (retentionInDays unset or 0)"
    elif days < minimum:
        yield f"log group {resource.name} keeps events {int(days)} days, fewer than {minimum}"


@resource_rule(
    name="stateful-resources-protected",
    description="Where required, resources that hold state cannot be deleted by a Pulumi operation.",
    domain="data",
    category="availability",
    severity="high",
    remediation=(
        "Create the resource with pulumi.ResourceOptions(protect=True) (Keel's stateful option does in "
        "staging and prod); unprotect it deliberately with `pulumi state unprotect` before a planned removal."
    ),
    settings={
        "requireProtect": {
            "type": "boolean",
            "default": False,
            "description": "Require opts.protect on every resource of statefulTypes.",
        },
        "statefulTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": [
                "aws:kms/key:Key",
                "aws:s3/bucket:Bucket",
                "aws:backup/vault:Vault",
                "aws:secretsmanager/secret:Secret",
                "aws:cloudwatch/logGroup:LogGroup",
                "aws:eks/cluster:Cluster",
            ],
            "description": "Type tokens (fnmatch patterns) of resources whose deletion loses data.",
        },
    },
)
def stateful_resources_protected(
    resource: ResourceValidationArgs, config: Mapping[str, Any]
) -> Iterable[str]:
    if not config.get("requireProtect"):
        return
    patterns = [str(p) for p in config.get("statefulTypes") or []]
    if any(fnmatch.fnmatchcase(resource.resource_type, p) for p in patterns) and not resource.opts.protect:
        yield f"{resource.name} ({resource.resource_type}) holds state but is not protected (opts.protect)"
