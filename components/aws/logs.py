"""The one way Keel creates a CloudWatch log group (control-plane logs, VPC flow logs)."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components.base import Stateful, StrInput, child_options, named_tags


def encrypted_log_group(
    parent: pulumi.Resource,
    resource_name: str,
    *,
    log_group_name: str,
    retention_days: int,
    key_arn: StrInput,
    tags: Mapping[str, str],
    tag_name: str,
    assumed_gb_per_month: float | None,
    stateful: Stateful,
) -> aws.cloudwatch.LogGroup:
    """A log group encrypted with ``key_arn`` (whose key policy must allow ``logs.<region>.amazonaws.com``), kept
    ``retention_days``, named ``tag_name`` in the console, tagged with the GB a month the cost model assumes it
    ingests (``None``: untagged, unpriced) and guarded by ``stateful``: logs are audit data."""
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=log_group_name,
        retention_in_days=retention_days,
        kms_key_id=key_arn,
        tags=named_tags(tags, tag_name, assumed_gb=assumed_gb_per_month),
        opts=child_options(parent, stateful=stateful),
    )
