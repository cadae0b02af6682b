"""Small builders for IAM, KMS and resource policy JSON, shared by the AWS components.

Policies are plain dicts serialised with ``pulumi.Output.json_dumps`` (which resolves Outputs nested anywhere
in them), never ``aws.iam.get_policy_document``: that is an invoke, a provider round trip on every preview.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

from components.base import AwsContext, StrInput

#: One IAM policy statement. Values may be ``pulumi.Output``; serialise the document with :func:`document`.
PolicyStatement = dict[str, Any]

POLICY_VERSION = "2012-10-17"


def document(statements: Sequence[PolicyStatement]) -> pulumi.Output[str]:
    """A policy document (``Version`` + ``Statement``) as JSON, resolving any Outputs in the statements."""
    return pulumi.Output.json_dumps({"Version": POLICY_VERSION, "Statement": list(statements)})


def static_document(statements: Sequence[PolicyStatement]) -> str:
    """A policy document as JSON for statements that hold no Outputs (key policies, trust policies)."""
    return json.dumps({"Version": POLICY_VERSION, "Statement": list(statements)}, sort_keys=False)


def service_endpoint(context: AwsContext, service: str) -> str:
    """A service's regional endpoint, the value of ``kms:ViaService``, e.g. ``s3.eu-west-1.amazonaws.com``."""
    return f"{service}.{context.region}.{context.dns_suffix}"


def assume_role_policy(
    service_principal: str, *, conditions: Mapping[str, Mapping[str, str | list[str]]] | None = None
) -> str:
    """A trust policy letting one AWS service principal (e.g. ``backup.amazonaws.com``) assume the role.

    ``conditions`` is an IAM condition block, e.g. ``{"StringEquals": {"aws:SourceAccount": "123..."}}``.
    """
    statement: PolicyStatement = {
        "Sid": "AllowServiceAssumeRole",
        "Effect": "Allow",
        "Principal": {"Service": service_principal},
        "Action": "sts:AssumeRole",
    }
    if conditions:
        statement["Condition"] = {test: dict(values) for test, values in conditions.items()}
    return static_document([statement])


def aws_managed_policy_arn(context: AwsContext, name: str) -> str:
    """The ARN of an AWS-managed IAM policy in the context's partition, e.g. ``AmazonEKSClusterPolicy``.

    ``name`` includes any path, e.g. ``service-role/AmazonEBSCSIDriverPolicy``.
    """
    return f"arn:{context.partition}:iam::aws:policy/{name}"


def ebs_volume_key_statements(context: AwsContext, key_arn: StrInput) -> list[PolicyStatement]:
    """What a principal needs to create and attach EBS volumes encrypted with a customer-managed key (the EBS
    encryption requirements in the EBS user guide): use of the key only through EC2 in this region, and grants
    only for AWS resources (EC2 holds the key through a grant while a volume is attached)."""
    return [
        {
            "Sid": "UseVolumeKeyThroughEc2",
            "Effect": "Allow",
            "Action": [
                "kms:Decrypt",
                "kms:DescribeKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncrypt*",
            ],
            "Resource": key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": service_endpoint(context, "ec2")}},
        },
        {
            "Sid": "GrantVolumeKeyToEc2",
            "Effect": "Allow",
            "Action": "kms:CreateGrant",
            "Resource": key_arn,
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    ]


def kms_decrypt_via_service(
    context: AwsContext, key_arn: StrInput, service: str, sid: str
) -> PolicyStatement:
    """``kms:Decrypt`` on one key, only for calls through ``service`` (e.g. ``s3``) in this region."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": service_endpoint(context, service)}},
    }
