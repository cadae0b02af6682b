"""Tagging rules: compliant, non-compliant, missing-property and config-override cases."""

from __future__ import annotations

from typing import Any

from keel.policy import resource_args
from policies.rules.tagging import accepts_tags
from tests.policy_helpers import run_resource_rule

VPC = "aws:ec2/vpc:Vpc"
TAGS = {
    "Name": "keel-prod",
    "environment": "prod",
    "owner": "ml-platform",
    "cost-centre": "CC-4711",
    "managed-by": "keel",
}


def tagged(resource_type: str, props: dict[str, Any], **config: Any) -> list[str]:
    return run_resource_rule(
        "required-cost-tags", resource_args(resource_type, props, name="r", config=config)
    )


def test_taggability_comes_from_the_sdk_registry() -> None:
    assert accepts_tags(VPC)
    assert accepts_tags("aws:eks/nodeGroup:NodeGroup")
    assert accepts_tags("aws:budgets/budget:Budget")
    assert not accepts_tags("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not accepts_tags("aws:autoscaling/tag:Tag")
    assert not accepts_tags("aws:ec2/noSuchThing:NoSuchThing")
    assert not accepts_tags("kubernetes:apps/v1:Deployment")


def test_fully_tagged_resource_is_compliant() -> None:
    assert tagged(VPC, {"cidrBlock": "10.0.0.0/16", "tags": TAGS}) == []


def test_missing_and_empty_tags_are_violations() -> None:
    tags = {**TAGS, "cost-centre": " "}
    del tags["owner"]
    assert tagged(VPC, {"tags": tags}) == [
        "r lacks required tags: owner",
        "r has empty required tags: cost-centre",
    ]


def test_resource_without_tags_property_lacks_them_all() -> None:
    assert tagged("aws:kms/key:Key", {"description": "secrets"}) == [
        "r lacks required tags: environment, owner, cost-centre, managed-by"
    ]


def test_untaggable_types_are_skipped() -> None:
    assert (
        tagged("aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"role": "r", "policyArn": "arn"}) == []
    )
    assert tagged("kubernetes:core/v1:Namespace", {"metadata": {"name": "inference"}}) == []


def test_provider_default_tags_in_tags_all_count() -> None:
    assert tagged(VPC, {"tags": {"Name": "keel-prod"}, "tagsAll": TAGS}) == []


def test_required_tags_setting() -> None:
    assert tagged(VPC, {"tags": TAGS}, requiredTags=[*TAGS, "data-classification"]) == [
        "r lacks required tags: data-classification"
    ]
    assert tagged(VPC, {"tags": {"team": "ml"}}, requiredTags=["team"]) == []


def test_untagged_resource_can_be_exempted() -> None:
    exemption = {"resource": "r", "reason": "imported legacy VPC, tagged by the account team"}
    assert tagged(VPC, {}, exemptions=[exemption]) == []
