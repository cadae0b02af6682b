"""Cluster rules: compliant, non-compliant, missing-property and config-override cases, and an unknown value."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy.proxy import UnknownValueError

from keel.policy import resource_args
from policies.framework import to_policy
from tests.policy_helpers import effective_config, rule, run_resource_rule

CLUSTER = "aws:eks/cluster:Cluster"


def _cluster(name: str = "eks", config: dict[str, Any] | None = None, **props: Any) -> Any:
    return resource_args(CLUSTER, props, name=name, config=config)


def _vpc(public: Any, cidrs: list[str] | None = None) -> dict[str, Any]:
    vpc: dict[str, Any] = {"endpointPrivateAccess": True, "subnetIds": ["subnet-1"]}
    if public is not None:
        vpc["endpointPublicAccess"] = public
    if cidrs is not None:
        vpc["publicAccessCidrs"] = cidrs
    return vpc


# ------------------------------------------------------------------------------------- eks-endpoint-private


def test_private_endpoint_is_compliant() -> None:
    assert run_resource_rule("eks-endpoint-private", _cluster(vpcConfig=_vpc(False))) == []


def test_public_endpoint_is_violation_by_default() -> None:
    args = _cluster(vpcConfig=_vpc(True, ["203.0.113.0/24"]))
    assert run_resource_rule("eks-endpoint-private", args) == [
        "cluster eks exposes its API endpoint publicly (to 203.0.113.0/24); public endpoints are not allowed here"
    ]


def test_missing_endpoint_settings_mean_public_to_the_world() -> None:
    # EKS defaults endpointPublicAccess to true and publicAccessCidrs to 0.0.0.0/0.
    assert run_resource_rule("eks-endpoint-private", _cluster()) == [
        "cluster eks exposes its API endpoint to the whole internet (0.0.0.0/0)"
    ]
    assert run_resource_rule("eks-endpoint-private", _cluster(vpcConfig=_vpc(True, []))) == [
        "cluster eks exposes its API endpoint to the whole internet (0.0.0.0/0)"
    ]


def test_allow_public_cidrs_accepts_named_networks_only() -> None:
    allow = {"allowPublicCidrs": True}
    named = _cluster(config=allow, vpcConfig=_vpc(True, ["203.0.113.0/24"]))
    assert run_resource_rule("eks-endpoint-private", named) == []
    world = _cluster(config=allow, vpcConfig=_vpc(True, ["203.0.113.0/24", "0.0.0.0/0"]))
    assert run_resource_rule("eks-endpoint-private", world) == [
        "cluster eks exposes its API endpoint to the whole internet (0.0.0.0/0)"
    ]
    unset = _cluster(config=allow, vpcConfig=_vpc(True))
    assert run_resource_rule("eks-endpoint-private", unset) == [
        "cluster eks exposes its API endpoint to the whole internet (0.0.0.0/0)"
    ]


def test_unknown_endpoint_setting_is_raised_not_passed() -> None:
    args = resource_args(
        CLUSTER,
        {"vpcConfig": {"endpointPublicAccess": UNKNOWN}},
        config=effective_config("eks-endpoint-private"),
    )
    with pytest.raises(UnknownValueError):
        to_policy(rule("eks-endpoint-private")).validate(args, lambda message, urn: None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ eks-secrets-encrypted

KEY = "arn:aws:kms:us-east-1:111111111111:key/abc"


def test_secrets_encrypted_with_key_is_compliant() -> None:
    args = _cluster(encryptionConfig={"provider": {"keyArn": KEY}, "resources": ["secrets"]})
    assert run_resource_rule("eks-secrets-encrypted", args) == []
    # Older providers carry a one-item list.
    legacy = _cluster(encryptionConfig=[{"provider": {"keyArn": KEY}, "resources": ["secrets"]}])
    assert run_resource_rule("eks-secrets-encrypted", legacy) == []


def test_key_without_secrets_is_violation() -> None:
    args = _cluster(encryptionConfig={"provider": {"keyArn": KEY}, "resources": []})
    assert run_resource_rule("eks-secrets-encrypted", args) == [
        "cluster eks has an encryption key but does not encrypt 'secrets' with it"
    ]


def test_missing_encryption_config_or_key_is_violation() -> None:
    expected = ["cluster eks names no KMS key for envelope encryption of secrets"]
    assert run_resource_rule("eks-secrets-encrypted", _cluster()) == expected
    assert (
        run_resource_rule("eks-secrets-encrypted", _cluster(encryptionConfig={"resources": ["secrets"]}))
        == expected
    )


def test_secrets_encryption_exempted_through_config() -> None:
    args = _cluster(
        name="sandbox",
        config={"exemptions": [{"resource": "sandbox", "reason": "throwaway sandbox, no secrets stored"}]},
    )
    assert run_resource_rule("eks-secrets-encrypted", args) == []


# ----------------------------------------------------------------------------------- eks-control-plane-logs


def test_required_log_types_enabled_is_compliant() -> None:
    args = _cluster(enabledClusterLogTypes=["api", "audit", "authenticator", "scheduler"])
    assert run_resource_rule("eks-control-plane-logs", args) == []


def test_missing_audit_log_is_violation() -> None:
    args = _cluster(enabledClusterLogTypes=["api", "scheduler"])
    assert run_resource_rule("eks-control-plane-logs", args) == [
        "cluster eks does not log audit, authenticator"
    ]


def test_no_log_types_is_violation() -> None:
    assert run_resource_rule("eks-control-plane-logs", _cluster()) == [
        "cluster eks does not log api, audit, authenticator"
    ]


def test_required_log_types_setting_changes_the_verdict() -> None:
    args = _cluster(config={"requiredLogTypes": ["audit"]}, enabledClusterLogTypes=["audit"])
    assert run_resource_rule("eks-control-plane-logs", args) == []
    stricter = _cluster(
        config={"requiredLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"]},
        enabledClusterLogTypes=["api", "audit", "authenticator"],
    )
    assert run_resource_rule("eks-control-plane-logs", stricter) == [
        "cluster eks does not log controllerManager, scheduler"
    ]


# ------------------------------------------------------------------------------------ eks-supported-version


def test_supported_version_is_compliant() -> None:
    assert run_resource_rule("eks-supported-version", _cluster(version="1.33")) == []


def test_retired_version_is_violation() -> None:
    assert run_resource_rule("eks-supported-version", _cluster(version="1.29")) == [
        "cluster eks runs Kubernetes 1.29; supported: 1.32, 1.33, 1.34, 1.35"
    ]


def test_unpinned_version_is_violation() -> None:
    assert run_resource_rule("eks-supported-version", _cluster()) == [
        "cluster eks pins no Kubernetes version (it would get whatever the default is)"
    ]


def test_supported_versions_setting_changes_the_verdict() -> None:
    config = {"supportedVersions": ["1.34", "1.35"]}
    assert run_resource_rule("eks-supported-version", _cluster(config=config, version="1.33")) == [
        "cluster eks runs Kubernetes 1.33; supported: 1.34, 1.35"
    ]
    assert (
        run_resource_rule(
            "eks-supported-version", _cluster(config={"supportedVersions": ["1.29"]}, version="1.29")
        )
        == []
    )
