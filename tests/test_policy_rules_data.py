"""Data rules: compliant, non-compliant, missing-property and config-override cases, and an unknown value.

Bucket rules are stack rules: a bucket's configuration resources are linked to it through their ``bucket``
property dependency, exactly as the engine records it (``keel.policy.link``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import PolicyProviderResource, PolicyResource, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from keel.policy import link, policy_resource, resource_args
from policies.framework import to_policy
from tests.policy_helpers import effective_config, rule, run_resource_rule, run_stack_rule

BUCKET = "aws:s3/bucket:Bucket"
KEY_ARN = "arn:aws:kms:us-east-1:111111111111:key/abc"
BUCKET_URN = f"urn:pulumi:test::keel::{BUCKET}::artifacts"
TLS_STATEMENT = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::artifacts", "arn:aws:s3:::artifacts/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
ALL_BLOCKED: dict[str, Any] = dict.fromkeys(
    ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True
)


def _config(kind: str, props: dict[str, Any], bucket: PolicyResource, name: str = "") -> PolicyResource:
    type_name = kind[0].lower() + kind[1:]
    resource = policy_resource(
        f"aws:s3/{type_name}:{kind}",
        {"bucket": "artifacts-123", **props},
        name=name or f"artifacts-{type_name}",
    )
    return link(resource, "bucket", bucket)


def _bucket_stack(
    *,
    versioning: str | None = "Enabled",
    sse: dict[str, Any] | None = None,
    public_access: dict[str, Any] | None = None,
    policy: Any = None,
    bucket_props: dict[str, Any] | None = None,
) -> list[PolicyResource]:
    """A bucket and whichever configuration resources are asked for (``None`` leaves one out)."""
    bucket = policy_resource(BUCKET, {"bucket": "artifacts-123", **(bucket_props or {})}, name="artifacts")
    resources = [bucket]
    if versioning is not None:
        resources.append(
            _config("BucketVersioning", {"versioningConfiguration": {"status": versioning}}, bucket)
        )
    if sse is not None:
        rules = [{"applyServerSideEncryptionByDefault": sse, "bucketKeyEnabled": True}]
        resources.append(_config("BucketServerSideEncryptionConfiguration", {"rules": rules}, bucket))
    if public_access is not None:
        resources.append(_config("BucketPublicAccessBlock", public_access, bucket))
    if policy is not None:
        resources.append(_config("BucketPolicy", {"policy": policy}, bucket))
    return resources


def _exempt_bucket() -> dict[str, Any]:
    return {"exemptions": [{"resource": "artifacts", "reason": "public website bucket, reviewed SEC-4"}]}


# ---------------------------------------------------------------------------------- bucket-versioning-enabled


def test_versioned_bucket_is_compliant() -> None:
    assert run_stack_rule("bucket-versioning-enabled", _bucket_stack()) == []


def test_suspended_versioning_is_violation() -> None:
    assert run_stack_rule("bucket-versioning-enabled", _bucket_stack(versioning="Suspended")) == [
        ("bucket artifacts has versioning Suspended, not Enabled", BUCKET_URN)
    ]


def test_missing_versioning_is_violation_and_inline_versioning_counts() -> None:
    assert run_stack_rule("bucket-versioning-enabled", _bucket_stack(versioning=None)) == [
        ("bucket artifacts has no BucketVersioning with status Enabled", BUCKET_URN)
    ]
    inline = _bucket_stack(versioning=None, bucket_props={"versioning": {"enabled": True}})
    assert run_stack_rule("bucket-versioning-enabled", inline) == []


def test_versioning_of_another_bucket_does_not_count() -> None:
    resources = _bucket_stack()
    other = policy_resource(BUCKET, {"bucket": "logs-123"}, name="logs")
    assert run_stack_rule("bucket-versioning-enabled", [*resources, other]) == [
        ("bucket logs has no BucketVersioning with status Enabled", other.urn)
    ]


def test_unversioned_bucket_exempted_through_config() -> None:
    assert run_stack_rule("bucket-versioning-enabled", _bucket_stack(versioning=None), _exempt_bucket()) == []


def test_unknown_versioning_status_is_raised_not_passed() -> None:
    bucket = policy_resource(BUCKET, {}, name="artifacts")
    versioning = _config("BucketVersioning", {"versioningConfiguration": {"status": UNKNOWN}}, bucket)
    args = StackValidationArgs([bucket, versioning], effective_config("bucket-versioning-enabled"))
    with pytest.raises(UnknownValueError):
        to_policy(rule("bucket-versioning-enabled")).validate(args, lambda message, urn: None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- bucket-kms-encrypted

KMS = {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY_ARN}
KMS_MESSAGE = (
    "bucket artifacts is not encrypted by default with a named KMS key "
    "(sseAlgorithm aws:kms and kmsMasterKeyId)"
)


def test_kms_encrypted_bucket_is_compliant() -> None:
    assert run_stack_rule("bucket-kms-encrypted", _bucket_stack(sse=KMS)) == []
    dsse = _bucket_stack(sse={**KMS, "sseAlgorithm": "aws:kms:dsse"})
    assert run_stack_rule("bucket-kms-encrypted", dsse) == []


def test_s3_managed_or_keyless_encryption_is_violation() -> None:
    assert run_stack_rule("bucket-kms-encrypted", _bucket_stack(sse={"sseAlgorithm": "AES256"})) == [
        (KMS_MESSAGE, BUCKET_URN)
    ]
    assert run_stack_rule("bucket-kms-encrypted", _bucket_stack(sse={"sseAlgorithm": "aws:kms"})) == [
        (KMS_MESSAGE, BUCKET_URN)
    ]


def test_missing_encryption_configuration_is_violation() -> None:
    assert run_stack_rule("bucket-kms-encrypted", _bucket_stack()) == [(KMS_MESSAGE, BUCKET_URN)]
    inline = _bucket_stack(
        bucket_props={
            "serverSideEncryptionConfiguration": {"rule": {"applyServerSideEncryptionByDefault": KMS}}
        }
    )
    assert run_stack_rule("bucket-kms-encrypted", inline) == []


def test_unencrypted_bucket_exempted_through_config() -> None:
    assert run_stack_rule("bucket-kms-encrypted", _bucket_stack(), _exempt_bucket()) == []


# ------------------------------------------------------------------------------- bucket-public-access-blocked


def test_fully_blocked_bucket_is_compliant() -> None:
    assert run_stack_rule("bucket-public-access-blocked", _bucket_stack(public_access=ALL_BLOCKED)) == []


def test_partly_blocked_bucket_is_violation() -> None:
    resources = _bucket_stack(
        public_access={**ALL_BLOCKED, "blockPublicPolicy": False, "restrictPublicBuckets": False}
    )
    assert run_stack_rule("bucket-public-access-blocked", resources) == [
        (
            "bucket artifacts does not block public access: blockPublicPolicy, restrictPublicBuckets not true",
            BUCKET_URN,
        )
    ]


def test_missing_public_access_block_is_violation_unless_the_account_blocks() -> None:
    assert run_stack_rule("bucket-public-access-blocked", _bucket_stack()) == [
        ("bucket artifacts has no BucketPublicAccessBlock", BUCKET_URN)
    ]
    account = policy_resource(
        "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock", ALL_BLOCKED, name="account"
    )
    assert run_stack_rule("bucket-public-access-blocked", [*_bucket_stack(), account]) == []


def test_public_bucket_exempted_through_config() -> None:
    assert run_stack_rule("bucket-public-access-blocked", _bucket_stack(), _exempt_bucket()) == []


# -------------------------------------------------------------------------------------------- bucket-tls-only

NO_TLS_MESSAGE = (
    "bucket artifacts: no policy statement denies s3:* to everyone when aws:SecureTransport is false"
)


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_tls_only_policy_is_compliant() -> None:
    assert run_stack_rule("bucket-tls-only", _bucket_stack(policy=_policy(TLS_STATEMENT))) == []
    variant = {
        **TLS_STATEMENT,
        "Principal": {"AWS": "*"},
        "Condition": {"BoolIfExists": {"aws:securetransport": False}},
    }
    assert run_stack_rule("bucket-tls-only", _bucket_stack(policy=_policy(variant))) == []


def test_policy_without_tls_deny_is_violation() -> None:
    allow = {**TLS_STATEMENT, "Effect": "Allow"}
    narrow = {**TLS_STATEMENT, "Action": "s3:GetObject"}
    one_role = {**TLS_STATEMENT, "Principal": {"AWS": "arn:aws:iam::111111111111:role/app"}}
    for statement in (allow, narrow, one_role):
        assert run_stack_rule("bucket-tls-only", _bucket_stack(policy=_policy(statement))) == [
            (NO_TLS_MESSAGE, BUCKET_URN)
        ]


def test_unparsable_policy_is_violation() -> None:
    findings = run_stack_rule("bucket-tls-only", _bucket_stack(policy="{not json"))
    assert len(findings) == 1
    assert findings[0][0].startswith(
        "bucket artifacts: BucketPolicy artifacts-bucketPolicy is not valid JSON"
    )


def test_missing_bucket_policy_is_violation() -> None:
    assert run_stack_rule("bucket-tls-only", _bucket_stack()) == [
        ("bucket artifacts has no bucket policy denying requests without TLS", BUCKET_URN)
    ]


def test_missing_tls_policy_exempted_through_config() -> None:
    assert run_stack_rule("bucket-tls-only", _bucket_stack(), _exempt_bucket()) == []


# ----------------------------------------------------------------------------------------- kms-rotation-enabled

KEY = "aws:kms/key:Key"


def test_rotating_key_is_compliant() -> None:
    args = resource_args(KEY, {"enableKeyRotation": True, "customerMasterKeySpec": "SYMMETRIC_DEFAULT"})
    assert run_resource_rule("kms-rotation-enabled", args) == []


def test_key_without_rotation_is_violation() -> None:
    args = resource_args(KEY, {"enableKeyRotation": False}, name="data")
    assert run_resource_rule("kms-rotation-enabled", args) == [
        "KMS key data does not rotate its key material (enableKeyRotation is not true)"
    ]


def test_missing_rotation_is_violation_but_asymmetric_keys_cannot_rotate() -> None:
    assert run_resource_rule("kms-rotation-enabled", resource_args(KEY, {}, name="data")) == [
        "KMS key data does not rotate its key material (enableKeyRotation is not true)"
    ]
    signing = resource_args(KEY, {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"})
    assert run_resource_rule("kms-rotation-enabled", signing) == []


def test_non_rotating_key_exempted_through_config() -> None:
    args = resource_args(
        KEY,
        {"enableKeyRotation": False},
        name="imported",
        config={"exemptions": [{"resource": "imported", "reason": "imported key material, rotated by hand"}]},
    )
    assert run_resource_rule("kms-rotation-enabled", args) == []


# ------------------------------------------------------------------------------------ kms-no-wildcard-principal

ROOT_ADMIN = {
    "Sid": "Admin",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
    "Action": "kms:*",
    "Resource": "*",
}


def test_named_principals_and_wildcard_deny_are_compliant() -> None:
    deny_all = {"Sid": "DenyOutside", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*"}
    args = resource_args(KEY, {"policy": _policy(ROOT_ADMIN, deny_all)})
    assert run_resource_rule("kms-no-wildcard-principal", args) == []


def test_wildcard_allow_is_violation() -> None:
    open_to_all = {
        "Sid": "Everyone",
        "Effect": "Allow",
        "Principal": {"AWS": ["*"]},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }
    star = {"Effect": "Allow", "Principal": "*", "Action": "kms:Encrypt", "Resource": "*"}
    not_principal = {
        "Sid": "AllBut",
        "Effect": "Allow",
        "NotPrincipal": {"AWS": "arn:aws:iam::1:root"},
        "Action": "kms:*",
    }
    args = resource_args(KEY, {"policy": _policy(ROOT_ADMIN, open_to_all, star, not_principal)}, name="data")
    assert run_resource_rule("kms-no-wildcard-principal", args) == [
        "KMS key data: Everyone allows Principal '*'",
        "KMS key data: statement 2 allows Principal '*'",
        "KMS key data: AllBut allows everyone except NotPrincipal",
    ]


def test_missing_policy_is_compliant_and_unparsable_policy_is_violation() -> None:
    # Without a policy, KMS applies its default key policy: the account only.
    assert run_resource_rule("kms-no-wildcard-principal", resource_args(KEY, {})) == []
    messages = run_resource_rule(
        "kms-no-wildcard-principal", resource_args(KEY, {"policy": "[1, 2"}, name="data")
    )
    assert len(messages) == 1
    assert messages[0].startswith("KMS key data: key policy is not valid JSON")
    standalone = resource_args(
        "aws:kms/keyPolicy:KeyPolicy", {"policy": json.dumps(["not", "a", "document"])}, name="kp"
    )
    assert run_resource_rule("kms-no-wildcard-principal", standalone) == [
        "KMS key kp: key policy is not a JSON object"
    ]


def test_wildcard_principal_exempted_through_config() -> None:
    args = resource_args(
        KEY,
        {"policy": _policy({"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt"})},
        name="shared",
        config={
            "exemptions": [{"resource": "shared", "reason": "org-wide key, guarded by aws:PrincipalOrgID"}]
        },
    )
    assert run_resource_rule("kms-no-wildcard-principal", args) == []


# ---------------------------------------------------------------------------------------- backups-cover-stateful

PLAN = "aws:backup/plan:Plan"
SELECTION = "aws:backup/selection:Selection"
VAULT = "aws:backup/vault:Vault"
LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
EAST_VAULT = "arn:aws:backup:us-east-1:111111111111:backup-vault:keel-vault"
WEST_VAULT = "arn:aws:backup:us-west-2:111111111111:backup-vault:keel-vault-us-west-2"


def _plan_rule(days: float | None = 35.0, copy_to: str | None = None, name: str = "daily") -> dict[str, Any]:
    rule_props: dict[str, Any] = {
        "ruleName": name,
        "targetVaultName": "keel-vault",
        "schedule": "cron(0 5 ? * * *)",
    }
    if days is not None:
        rule_props["lifecycle"] = {"deleteAfter": days}
    if copy_to is not None:
        rule_props["copyActions"] = [{"destinationVaultArn": copy_to, "lifecycle": {"deleteAfter": days}}]
    return rule_props


def _backups(*rules: dict[str, Any], covered: bool = True) -> list[PolicyResource]:
    bucket = policy_resource(
        BUCKET, {"bucket": "artifacts-123", "arn": "arn:aws:s3:::artifacts-123"}, name="artifacts"
    )
    plan = policy_resource(PLAN, {"name": "keel-plan", "rules": list(rules or [_plan_rule()])}, name="plan")
    selection = policy_resource(
        SELECTION,
        {"planId": "keel-plan", "resources": ["arn:aws:s3:::artifacts-123"] if covered else []},
        name="sel",
    )
    link(selection, "planId", plan)
    if covered:
        link(selection, "resources", bucket)
    return [bucket, plan, selection]


def test_bucket_in_a_plan_with_enough_retention_is_compliant() -> None:
    assert (
        run_stack_rule("backups-cover-stateful", _backups(_plan_rule(35.0), _plan_rule(365.0, name="weekly")))
        == []
    )


def test_short_retention_and_uncovered_bucket_are_violations() -> None:
    resources = _backups(_plan_rule(3.0), covered=False)
    assert run_stack_rule("backups-cover-stateful", resources) == [
        ("backup plan plan rule daily keeps recovery points 3 days, fewer than 7", resources[1].urn),
        (f"artifacts ({BUCKET}) is in no backup selection", BUCKET_URN),
    ]


def test_missing_plan_is_violation_and_missing_lifecycle_keeps_forever() -> None:
    bucket = policy_resource(BUCKET, {}, name="artifacts")
    assert run_stack_rule("backups-cover-stateful", [bucket]) == [
        ("the stack has no AWS Backup plan", None),
        (f"artifacts ({BUCKET}) is in no backup selection", BUCKET_URN),
    ]
    assert run_stack_rule("backups-cover-stateful", _backups(_plan_rule(None))) == []


def test_wildcard_selection_covers_every_bucket() -> None:
    resources = _backups(covered=False)
    wildcard = policy_resource(
        SELECTION, {"planId": "keel-plan", "resources": ["arn:aws:s3:::*"]}, name="all-s3"
    )
    assert run_stack_rule("backups-cover-stateful", [*resources, wildcard]) == []


def test_backup_settings_change_the_verdict() -> None:
    resources = _backups(_plan_rule(35.0))
    assert run_stack_rule("backups-cover-stateful", resources, {"minRetentionDays": 90}) == [
        ("backup plan plan rule daily keeps recovery points 35 days, fewer than 90", resources[1].urn)
    ]
    table = policy_resource("aws:dynamodb/table:Table", {"name": "sessions"}, name="sessions")
    covered_types = {"coveredTypes": [BUCKET, "aws:dynamodb/*"]}
    assert run_stack_rule("backups-cover-stateful", [*resources, table], covered_types) == [
        ("sessions (aws:dynamodb/table:Table) is in no backup selection", table.urn)
    ]


def test_uncovered_bucket_exempted_through_config() -> None:
    assert run_stack_rule("backups-cover-stateful", _backups(covered=False), _exempt_bucket()) == []


# ------------------------------------------------------------------------------- backup-vault-locked-and-copied

STRICT = {"requireVaultLock": True, "requireCrossRegionCopy": True}


def _provider(region: str | None) -> PolicyProviderResource:
    props = {"region": region} if region else {}
    return PolicyProviderResource(
        "pulumi:providers:aws", props, "urn:pulumi:test::keel::pulumi:providers:aws::aws", "aws"
    )


def _vaulted(
    *rules: dict[str, Any], locked: bool = True, region: str | None = "us-east-1"
) -> list[PolicyResource]:
    vault = policy_resource(VAULT, {"name": "keel-vault", "arn": EAST_VAULT}, name="vault")
    plan = policy_resource(PLAN, {"name": "keel-plan", "rules": list(rules)}, name="plan")
    plan.provider = _provider(region)
    resources = [vault, plan]
    if locked:
        resources.append(
            link(
                policy_resource(LOCK, {"backupVaultName": "keel-vault"}, name="lock"),
                "backupVaultName",
                vault,
            )
        )
    return resources


def test_locked_and_copied_elsewhere_is_compliant() -> None:
    resources = _vaulted(_plan_rule(copy_to=WEST_VAULT), _plan_rule(copy_to=WEST_VAULT, name="weekly"))
    assert run_stack_rule("backup-vault-locked-and-copied", resources, STRICT) == []


def test_unlocked_vault_and_same_region_copy_are_violations() -> None:
    resources = _vaulted(_plan_rule(copy_to=EAST_VAULT), locked=False)
    assert run_stack_rule("backup-vault-locked-and-copied", resources, STRICT) == [
        ("backup vault vault has no vault lock", resources[0].urn),
        ("backup plan plan rule daily copies to no vault outside us-east-1", resources[1].urn),
    ]


def test_missing_copy_actions_and_region_fallbacks() -> None:
    plan_urn = f"urn:pulumi:test::keel::{PLAN}::plan"
    assert run_stack_rule("backup-vault-locked-and-copied", _vaulted(_plan_rule()), STRICT) == [
        ("backup plan plan rule daily copies to no vault outside us-east-1", plan_urn)
    ]
    # Without the provider's region, the plan's region is read from its target vault's ARN.
    resources = _vaulted(_plan_rule(copy_to=EAST_VAULT), region=None)
    assert run_stack_rule("backup-vault-locked-and-copied", resources, STRICT) == [
        ("backup plan plan rule daily copies to no vault outside us-east-1", plan_urn)
    ]
    # ... or from the provider resource registered in the stack (what the offline plan passes).
    registered = policy_resource(
        "pulumi:providers:aws", {"region": "us-west-2"}, urn=_provider(None).urn, name="aws"
    )
    resources = _vaulted(_plan_rule(copy_to=WEST_VAULT), region=None)
    assert run_stack_rule("backup-vault-locked-and-copied", [*resources, registered], STRICT) == [
        ("backup plan plan rule daily copies to no vault outside us-west-2", plan_urn)
    ]
    # Nothing to read a region from.
    orphan = policy_resource(PLAN, {"name": "p", "rules": [_plan_rule(copy_to=WEST_VAULT)]}, name="orphan")
    assert run_stack_rule("backup-vault-locked-and-copied", [orphan], STRICT) == [
        ("backup plan orphan: its region cannot be determined to check copies", orphan.urn)
    ]


def test_requirements_are_off_by_default_and_each_setting_stands_alone() -> None:
    resources = _vaulted(_plan_rule(), locked=False)
    assert run_stack_rule("backup-vault-locked-and-copied", resources) == []
    assert run_stack_rule("backup-vault-locked-and-copied", resources, {"requireVaultLock": True}) == [
        ("backup vault vault has no vault lock", resources[0].urn)
    ]
    assert run_stack_rule("backup-vault-locked-and-copied", resources, {"requireCrossRegionCopy": True}) == [
        ("backup plan plan rule daily copies to no vault outside us-east-1", resources[1].urn)
    ]


# ------------------------------------------------------------------------------ log-groups-encrypted-with-retention

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def test_encrypted_log_group_with_retention_is_compliant() -> None:
    args = resource_args(LOG_GROUP, {"kmsKeyId": KEY_ARN, "retentionInDays": 90.0})
    assert run_resource_rule("log-groups-encrypted-with-retention", args) == []


def test_unencrypted_short_lived_log_group_is_violation() -> None:
    args = resource_args(LOG_GROUP, {"retentionInDays": 7.0}, name="flow")
    assert run_resource_rule("log-groups-encrypted-with-retention", args) == [
        "log group flow is not encrypted with a KMS key (kmsKeyId)",
        "log group flow keeps events 7 days, fewer than 30",
    ]


def test_missing_retention_never_expires_and_is_violation() -> None:
    expected = ["log group flow never expires its events (retentionInDays unset or 0)"]
    assert (
        run_resource_rule(
            "log-groups-encrypted-with-retention",
            resource_args(LOG_GROUP, {"kmsKeyId": KEY_ARN}, name="flow"),
        )
        == expected
    )
    zero = resource_args(LOG_GROUP, {"kmsKeyId": KEY_ARN, "retentionInDays": 0.0}, name="flow")
    assert run_resource_rule("log-groups-encrypted-with-retention", zero) == expected


def test_min_retention_setting_changes_the_verdict() -> None:
    args = resource_args(
        LOG_GROUP,
        {"kmsKeyId": KEY_ARN, "retentionInDays": 90.0},
        name="audit",
        config={"minRetentionDays": 365},
    )
    assert run_resource_rule("log-groups-encrypted-with-retention", args) == [
        "log group audit keeps events 90 days, fewer than 365"
    ]


# --------------------------------------------------------------------------------- stateful-resources-protected


def test_protected_stateful_resource_is_compliant() -> None:
    args = resource_args(KEY, {}, protect=True, config={"requireProtect": True})
    assert run_resource_rule("stateful-resources-protected", args) == []


def test_unprotected_stateful_resource_is_violation_when_required() -> None:
    args = resource_args(BUCKET, {}, name="artifacts", config={"requireProtect": True})
    assert run_resource_rule("stateful-resources-protected", args) == [
        f"artifacts ({BUCKET}) holds state but is not protected (opts.protect)"
    ]


def test_not_required_by_default_and_stateless_types_are_ignored() -> None:
    assert run_resource_rule("stateful-resources-protected", resource_args(BUCKET, {})) == []
    route = resource_args("aws:ec2/route:Route", {}, config={"requireProtect": True})
    assert run_resource_rule("stateful-resources-protected", route) == []


def test_stateful_types_setting_changes_the_verdict() -> None:
    config = {"requireProtect": True, "statefulTypes": ["aws:rds/*"]}
    database = resource_args("aws:rds/instance:Instance", {}, name="db", config=config)
    assert run_resource_rule("stateful-resources-protected", database) == [
        "db (aws:rds/instance:Instance) holds state but is not protected (opts.protect)"
    ]
    assert run_resource_rule("stateful-resources-protected", resource_args(BUCKET, {}, config=config)) == []
