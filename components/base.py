"""What every Keel component shares: the Args base model, stateful-resource options and tag helpers.

Components never read config or the stack name; everything they need arrives in their Args.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
from pydantic import BaseModel, ConfigDict, Field

#: A string that may only be known after deployment (an id, an ARN).
StrInput = str | pulumi.Output[str]


class ComponentArgs(BaseModel):
    """Base for every component's Args: immutable, and an unknown field is an error, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


class Stateful(ComponentArgs):
    """How resources that hold data are guarded against deletion.

    Staging and prod protect them (``pulumi destroy`` refuses); prod also retains them when they leave the
    program, so a refactor never deletes data in the cloud.
    """

    protect: bool = False
    """Refuse to delete or replace the resource. Default: ``False``."""
    retain_on_delete: bool = False
    """Keep the cloud resource when it is removed from the program. Default: ``False``."""


class AwsContext(ComponentArgs):
    """Where an AWS component deploys, given explicitly so that no component needs a provider round trip."""

    account_id: str = Field(pattern=r"^\d{12}$")
    """The 12-digit AWS account id (from the environment spec). Required."""
    region: str
    """The AWS region, e.g. ``us-east-1``. Required."""
    partition: str = "aws"
    """The ARN partition. Default: ``"aws"``."""
    dns_suffix: str = "amazonaws.com"
    """The service DNS suffix, used in VPC endpoint service names. Default: ``"amazonaws.com"``."""

    @property
    def account_root_arn(self) -> str:
        """The account's root principal, the usual owner principal in key and resource policies."""
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        """An ARN in this account and region, e.g. ``arn("logs", "log-group:/aws/eks/x/*")``."""
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account_id if account else ''}:{resource}"
        )


def child_options(
    parent: pulumi.Resource,
    *,
    stateful: Stateful | None = None,
    depends_on: list[pulumi.Resource] | None = None,
    ignore_changes: list[str] | None = None,
    delete_before_replace: bool | None = None,
) -> pulumi.ResourceOptions:
    """Options for a component's child: parented to the component (providers flow from it), plus guards.

    ``stateful`` marks a resource that holds data, applying its protect/retain flags.
    """
    return pulumi.ResourceOptions(
        parent=parent,
        protect=stateful.protect if stateful else None,
        retain_on_delete=stateful.retain_on_delete if stateful else None,
        depends_on=depends_on,
        ignore_changes=ignore_changes,
        delete_before_replace=delete_before_replace,
    )


#: Tag on each resource AWS bills by volume: the GB the cost model assumes for it (processed per month for NAT
#: gateways, ingested per month for log groups, held for buckets and backup vaults). Keeping the assumption on
#: the resource lets ``keel cost`` and the budget policy under ``pulumi preview`` price the same figure.
ASSUMED_GB_TAG = "keel:cost-assumed-gb"


def named_tags(
    tags: Mapping[str, str],
    name: str,
    extra: Mapping[str, str] | None = None,
    *,
    assumed_gb: float | None = None,
) -> dict[str, str]:
    """The environment's tags plus ``Name`` (what the AWS console shows), any resource-specific ``extra`` tags
    and, for a resource AWS bills by volume, ``ASSUMED_GB_TAG`` with ``assumed_gb`` (``None``: no tag, so the
    cost model lists it as unpriced)."""
    usage = {} if assumed_gb is None else {ASSUMED_GB_TAG: f"{assumed_gb:g}"}
    return {**tags, "Name": name, **(extra or {}), **usage}
