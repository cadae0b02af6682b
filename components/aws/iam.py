"""Small IAM helpers shared by the AWS components: trust policy documents and AWS-managed policy ARNs."""

from __future__ import annotations

import json
from collections.abc import Mapping

from components.base import AwsContext


def service_trust_policy(
    service_principal: str, *, conditions: Mapping[str, Mapping[str, str | list[str]]] | None = None
) -> str:
    """An assume-role policy letting one AWS service principal (e.g. ``ec2.amazonaws.com``) assume the role.

    ``conditions`` is an IAM condition block, e.g. ``{"StringEquals": {"aws:SourceAccount": "123..."}}``.
    """
    statement: dict[str, object] = {
        "Effect": "Allow",
        "Principal": {"Service": service_principal},
        "Action": "sts:AssumeRole",
    }
    if conditions:
        statement["Condition"] = {test: dict(values) for test, values in conditions.items()}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def aws_managed_policy_arn(context: AwsContext, name: str) -> str:
    """The ARN of an AWS-managed IAM policy in the context's partition, e.g. ``AmazonEKSClusterPolicy``.

    ``name`` includes any path, e.g. ``service-role/AmazonEBSCSIDriverPolicy``.
    """
    return f"arn:{context.partition}:iam::aws:policy/{name}"
