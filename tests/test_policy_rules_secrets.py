"""Secrets rules: compliant, non-compliant, missing-property, config-override and unknown-value cases."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from keel.policy import resource_args
from policies.framework import to_policy
from tests.policy_helpers import effective_config, rule, run_resource_rule

SECRET = "aws:secretsmanager/secret:Secret"
KEY_ARN = "arn:aws:kms:us-east-1:333333333333:key/19b647d7-f8d1-361e-6268-14c3e1e9abe6"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"

# Credential-shaped strings, assembled so that no scanner mistakes this file for a leak.
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
HF_TOKEN = "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZ01234567"
SLACK_TOKEN = "xoxb-" + "123456789012-123456789012-AbCdEfGhIjKlMnOpQrStUvWx"
OPENAI_KEY = "sk-" + "proj-" + "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56"
PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"


# -------------------------------------------------------------------------------------- secretsmanager-cmk


def test_secret_with_customer_managed_key_is_compliant() -> None:
    args = resource_args(SECRET, {"name": "keel-prod/model-hub-token", "kmsKeyId": KEY_ARN})
    assert run_resource_rule("secretsmanager-cmk", args) == []


def test_secret_without_kms_key_is_a_violation() -> None:
    args = resource_args(SECRET, {"name": "keel-prod/model-hub-token"}, name="hub-token")
    assert run_resource_rule("secretsmanager-cmk", args) == [
        "secret hub-token sets no kmsKeyId: it is encrypted with the AWS-managed key"
    ]


def test_secret_naming_the_aws_managed_key_is_a_violation() -> None:
    args = resource_args(SECRET, {"kmsKeyId": "alias/aws/secretsmanager"}, name="hub-token")
    assert run_resource_rule("secretsmanager-cmk", args) == [
        "secret hub-token names the AWS-managed key alias/aws/secretsmanager"
    ]


def test_secret_without_key_can_be_exempted() -> None:
    exemption = {"resource": "hub-token", "reason": "shared with an account that cannot use our key"}
    args = resource_args(SECRET, {}, name="hub-token", config={"exemptions": [exemption]})
    assert run_resource_rule("secretsmanager-cmk", args) == []


def test_unknown_kms_key_makes_the_check_undecided() -> None:
    args = resource_args(SECRET, {"kmsKeyId": UNKNOWN}, config=effective_config("secretsmanager-cmk"))
    policy = to_policy(rule("secretsmanager-cmk"))
    assert isinstance(policy, ResourceValidationPolicy)
    with pytest.raises(UnknownValueError):
        policy.validate(args, lambda message, urn: None)


# -------------------------------------------------------------------------------------- no-secret-literals


def literals(resource_type: str, props: dict[str, Any], **config: Any) -> list[str]:
    return run_resource_rule(
        "no-secret-literals", resource_args(resource_type, props, name="r", config=config)
    )


def test_realistic_resources_hold_no_literals() -> None:
    assert (
        literals(SECRET, {"kmsKeyId": KEY_ARN, "description": "Read-only Hugging Face token", "tags": {}})
        == []
    )
    policy = '{"Statement": [{"Action": "secretsmanager:GetSecretValue", "Effect": "Allow"}]}'
    assert literals("aws:iam/rolePolicy:RolePolicy", {"policy": policy, "name": "sk-prod-node-group"}) == []
    assert literals("aws:ec2/vpc:Vpc", {}) == []  # nothing to scan


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"aws_access_key_id = {AWS_KEY_ID}", "AWS access key id"),
        (PEM, "private key"),
        (f"https://x-access-token:{GITHUB_TOKEN}", "GitHub token"),
        (HF_TOKEN, "Hugging Face token"),
        (SLACK_TOKEN, "Slack token"),
        (OPENAI_KEY, "API secret key (sk-)"),
        ("--db-url=host=db;password=hunter2", "password or secret assignment"),
        ("CLIENT_SECRET='s3cr3t-value'", "password or secret assignment"),
        ("postgres://app:hunter2@db.internal:5432/app", "credentials in a URL"),
    ],
)
def test_credentials_are_reported_by_path_never_by_value(text: str, kind: str) -> None:
    props = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "args": ["--x", text]}]}}}}
    messages = literals(DEPLOYMENT, props)
    assert f"r: literal {kind} in spec.template.spec.containers[0].args[1]" in messages
    assert not any(text in m or "hunter2" in m for m in messages)


@pytest.mark.parametrize(
    "text",
    [
        "[secret]",
        "password=${DB_PASSWORD}",
        "password=$(cat /run/secrets/db)",
        "password={{ .Values.password }}",
        "password=<set-me>",
        "postgres://app:${DB_PASSWORD}@db/app",
        "hf_transfer",
        "arn:aws:secretsmanager:us-east-1:333333333333:secret:keel-prod/model-hub-token",
    ],
)
def test_placeholders_masked_secrets_and_look_alikes_are_not_reported(text: str) -> None:
    assert literals("aws:ssm/parameter:Parameter", {"value": text, "type": "String"}) == []


def test_credentials_inside_base64_user_data_are_found() -> None:
    user_data = base64.b64encode(f"#!/bin/bash\nexport HF_TOKEN={HF_TOKEN}\n".encode()).decode()
    assert literals("aws:ec2/launchTemplate:LaunchTemplate", {"userData": user_data}) == [
        "r: literal Hugging Face token in userData"
    ]


def test_secret_stores_may_hold_credentials() -> None:
    assert literals("aws:secretsmanager/secretVersion:SecretVersion", {"secretString": HF_TOKEN}) == []
    assert literals("kubernetes:core/v1:Secret", {"stringData": {"token": HF_TOKEN}}) == []
    assert literals("aws:ssm/parameter:Parameter", {"type": "SecureString", "value": HF_TOKEN}) == []
    assert literals("aws:ssm/parameter:Parameter", {"type": "String", "value": HF_TOKEN}) == [
        "r: literal Hugging Face token in value"
    ]


def _deployment_env(*env: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "vllm", "image": "vllm/vllm-openai:v0.9.2", "env": list(env)}
    return {
        "metadata": {"namespace": "inference"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def test_secret_named_env_with_literal_value_is_a_violation() -> None:
    props = _deployment_env(
        {"name": "VLLM_API_KEY", "value": "local-dev-key"},
        {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
        {"name": "MAX_TOKENS", "value": "4096"},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hub", "key": "token"}}},
    )
    assert literals(DEPLOYMENT, props) == [
        "Deployment r: container vllm sets VLLM_API_KEY from a literal value "
        "(spec.template.spec.containers[0].env[0].value); use valueFrom.secretKeyRef"
    ]


def test_masked_or_empty_env_values_are_not_reported() -> None:
    props = _deployment_env({"name": "HF_TOKEN", "value": "[secret]"}, {"name": "DB_PASSWORD", "value": ""})
    assert literals(DEPLOYMENT, props) == []


def test_token_shaped_env_value_is_reported_once() -> None:
    messages = literals(DEPLOYMENT, _deployment_env({"name": "HF_TOKEN", "value": HF_TOKEN}))
    assert messages == ["r: literal Hugging Face token in spec.template.spec.containers[0].env[0].value"]


def test_env_of_init_containers_in_cronjobs_is_checked() -> None:
    init = {"name": "warm", "env": [{"name": "DB_PASSWORD", "value": "hunter2"}]}
    props = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"initContainers": [init]}}}}}}
    assert literals("kubernetes:batch/v1:CronJob", props) == [
        "CronJob r: container warm sets DB_PASSWORD from a literal value "
        "(spec.jobTemplate.spec.template.spec.initContainers[0].env[0].value); use valueFrom.secretKeyRef"
    ]


def test_ignore_paths_setting() -> None:
    props = {"tags": {"note": AWS_KEY_ID}, "description": HF_TOKEN}
    assert literals("aws:s3/bucket:Bucket", props, ignorePaths=["tags"]) == [
        "r: literal Hugging Face token in description"
    ]
    assert literals("aws:s3/bucket:Bucket", props, ignorePaths=["tags.*", "descr*"]) == []
    env = _deployment_env({"name": "VLLM_API_KEY", "value": "local-dev-key"})
    assert literals(DEPLOYMENT, env, ignorePaths=["spec.template.spec.containers[0].env"]) == []


def test_extra_patterns_setting() -> None:
    props = {"description": "license KEEL-LIC-0000-1111-2222"}
    assert literals("aws:s3/bucket:Bucket", props) == []
    assert literals("aws:s3/bucket:Bucket", props, extraPatterns=[r"KEEL-LIC(-\d{4}){3}"]) == [
        "r: literal match of extraPatterns[0] in description"
    ]
    assert literals("aws:s3/bucket:Bucket", props, extraPatterns=["("]) == [
        "extraPatterns[0] is not a valid regular expression: missing ), unterminated subpattern at position 0"
    ]


def test_secret_env_names_setting() -> None:
    props = _deployment_env({"name": "HF_AUTH", "value": "local-dev-key"})
    assert literals(DEPLOYMENT, props) == []
    assert literals(DEPLOYMENT, props, secretEnvNames="AUTH") != []


def test_literal_can_be_exempted() -> None:
    exemption = {"resource": "r", "reason": "AWS documentation example key, not a credential"}
    assert literals("aws:s3/bucket:Bucket", {"description": AWS_KEY_ID}, exemptions=[exemption]) == []


def test_unknown_values_are_computed_not_literal() -> None:
    props = {"description": UNKNOWN, "tags": {"owner": UNKNOWN, "note": AWS_KEY_ID}}
    args = resource_args(
        "aws:s3/bucket:Bucket", props, name="r", config=effective_config("no-secret-literals")
    )
    messages: list[str] = []
    policy = to_policy(rule("no-secret-literals"))
    assert isinstance(policy, ResourceValidationPolicy)
    policy.validate(args, lambda message, urn: messages.append(message))
    assert messages == ["r: literal AWS access key id in tags.note"]
