"""IAM resources shared by the AWS components: a role with its managed-policy attachments."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from components.base import StrInput, child_options


def role_with_policies(
    parent: pulumi.Resource,
    logical_name: str,
    *,
    description: str,
    trust_policy: StrInput,
    tags: Mapping[str, str],
    policies: Mapping[str, StrInput],
    inline_policy: StrInput | None = None,
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """An IAM role and one attachment per policy, all children of ``parent``.

    ``policies`` maps each attachment's logical name to the policy ARN. Logical names are state identity,
    so callers spell them out (renaming one would replace the attachment). ``inline_policy`` (a policy
    document, default none) becomes the role's own ``<logical_name>-inline`` policy, for grants scoped to one
    workload's resources.
    """
    role = aws.iam.Role(
        logical_name,
        description=description,
        assume_role_policy=trust_policy,
        tags=dict(tags),
        opts=child_options(parent),
    )
    attachments = [
        aws.iam.RolePolicyAttachment(
            attachment_name, role=role.name, policy_arn=policy_arn, opts=child_options(parent)
        )
        for attachment_name, policy_arn in policies.items()
    ]
    if inline_policy is not None:
        aws.iam.RolePolicy(
            f"{logical_name}-inline", role=role.id, policy=inline_policy, opts=child_options(parent)
        )
    return role, attachments
