"""`keel diff`: the review of a change (keel.diff.compare), bases from git revisions and saved plans, the CLI."""

from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from keel.cli import app
from keel.diff import KIND, changed_paths, compare
from keel.plan import Plan, environment_file
from keel.replacements import replacement_paths, stateful_reason
from keel.worktree import (
    PROJECT_ROOT,
    BasePlanError,
    RevisionError,
    RevisionPlan,
    plan_revision,
    resolve_revision,
    revision_plan,
)
from stacks import aws_platform

runner = CliRunner()

BUCKET = "aws:s3/bucket:Bucket"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
STACK_URN = "urn:pulumi:dev::keel::pulumi:pulumi:Stack::keel-dev"


# ------------------------------------------------------------------------------- hand-built plan documents


def resource(
    name: str,
    type_: str = NODE_GROUP,
    inputs: dict[str, Any] | None = None,
    *,
    parent: dict[str, Any] | None = None,
    protect: bool = False,
    retain: bool = False,
    ignore: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A resource as `keel plan --format json` prints it (URN built the way Pulumi builds it)."""
    parent_types = parent["urn"].split("::")[2] + "$" if parent else ""
    return {
        "urn": f"urn:pulumi:dev::keel::{parent_types}{type_}::{name}",
        "type": type_,
        "name": name,
        "parent": parent["urn"] if parent else STACK_URN,
        "provider": None,
        "custom": not type_.startswith("keel:"),
        "inputs": inputs or {},
        "protect": protect,
        "retainOnDelete": retain,
        "ignoreChanges": list(ignore),
    }


def plan(*resources: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A plan document holding these resources, and optional cost/policies sections."""
    return {
        "environment": "dev",
        "source": "environments/Pulumi.dev.yaml",
        "resources": list(resources),
        "warnings": [],
        **sections,
    }


def review(base: dict[str, Any] | None, head: dict[str, Any]) -> dict[str, Any]:
    return compare(base, head, base_label="base", head_label="head")


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in result["resources"]}


# ---------------------------------------------------------------------------------------- compare: resources


def test_created_updated_deleted_unchanged_in_head_then_base_order() -> None:
    kept = resource("kept", inputs={"x": 1})
    base = plan(resource("gone-a"), resource("changed", inputs={"x": 1}), kept, resource("gone-b"))
    head = plan(resource("new"), kept, resource("changed", inputs={"x": 2}))
    result = review(base, head)
    assert result["counts"] == {"create": 1, "update": 1, "replace": 0, "delete": 2, "unchanged": 1}
    assert [(r["name"], r["action"]) for r in result["resources"]] == [
        ("new", "create"),
        ("changed", "update"),
        ("gone-a", "delete"),
        ("gone-b", "delete"),
    ]
    assert by_name(result)["changed"]["changes"] == [
        {"path": "x", "before": 1, "after": 2, "replaces": False}
    ]
    assert by_name(result)["new"]["changes"] == [] == by_name(result)["gone-a"]["changes"]
    assert (result["kind"], result["environment"]) == (KIND, "dev")
    assert result["base"] == {"label": "base", "source": "environments/Pulumi.dev.yaml"}


def test_nested_paths_tags_and_lists() -> None:
    before = {
        "scalingConfig": {"minSize": 0.0, "maxSize": 2.0},
        "tags": {"team": "a", "gone": "x"},
        "taints": [{"key": "nvidia.com/gpu", "value": "true"}],
        "instanceTypes": ["g6.2xlarge", "g6.4xlarge"],
        "rules": [{"port": 80}],
        "flag": True,
    }
    after = {
        "scalingConfig": {"minSize": 0, "maxSize": 4.0},  # 0 == 0.0: a saved plan may hold either
        "tags": {"team": "b"},
        "taints": [{"key": "nvidia.com/gpu", "value": "false"}],
        "instanceTypes": ["g6.4xlarge", "g6.2xlarge"],
        "rules": [{"port": 80}, {"port": 443}],
        "flag": 1,  # not the same JSON value as true
    }
    assert list(changed_paths(before, after)) == [
        ("flag", True, 1),
        ("instanceTypes", ["g6.2xlarge", "g6.4xlarge"], ["g6.4xlarge", "g6.2xlarge"]),
        ("rules", [{"port": 80}], [{"port": 80}, {"port": 443}]),
        ("scalingConfig.maxSize", 2.0, 4.0),
        ("tags.gone", "x", None),
        ("tags.team", "a", "b"),
        ("taints[0].value", "true", "false"),
    ]
    assert list(changed_paths({"a": None, "b": [1]}, {"b": [1]})) == []  # null and missing are the same


def test_a_replacing_change_replaces_a_stateful_bucket_loudly() -> None:
    assert stateful_reason(BUCKET) is not None
    base = plan(resource("artifacts", BUCKET, {"bucket": "keel-dev-a", "tags": {"team": "x"}}))
    head = plan(resource("artifacts", BUCKET, {"bucket": "keel-dev-b", "tags": {"team": "y"}}))
    [entry] = review(base, head)["resources"]
    assert entry["action"] == "replace"
    assert entry["changes"] == [
        {"path": "bucket", "before": "keel-dev-a", "after": "keel-dev-b", "replaces": True},
        {"path": "tags.team", "before": "x", "after": "y", "replaces": False},
    ]
    assert entry["stateful"] == stateful_reason(BUCKET)
    assert entry["risk"] == f"replaces a stateful resource: {str(stateful_reason(BUCKET)).rstrip('.')}"
    # A tag alone is an in-place update, and an update of an unprotected resource is no risk.
    head_tag_only = plan(resource("artifacts", BUCKET, {"bucket": "keel-dev-a", "tags": {"team": "y"}}))
    [entry] = review(base, head_tag_only)["resources"]
    assert (entry["action"], entry["risk"]) == ("update", None)


def test_options_are_changes_that_never_replace() -> None:
    base = plan(resource("key", "aws:kms/key:Key", protect=True, retain=True, ignore=("tags",)))
    head = plan(resource("key", "aws:kms/key:Key", protect=False, retain=False, ignore=()))
    [entry] = review(base, head)["resources"]
    assert entry["action"] == "update"
    assert entry["changes"] == [
        {"path": "(protect)", "before": True, "after": False, "replaces": False},
        {"path": "(retainOnDelete)", "before": True, "after": False, "replaces": False},
        {"path": "(ignoreChanges)", "before": ["tags"], "after": [], "replaces": False},
    ]
    assert entry["protected"] is False
    assert "lifts protect" in entry["risk"]
    assert "no longer retained on delete" in entry["risk"]


def test_updating_or_replacing_a_protected_resource_is_a_risk() -> None:
    base = plan(
        resource("vpc", "aws:ec2/vpc:Vpc", {"tags": {"a": "1"}, "enableDnsSupport": True}, protect=True)
    )
    head = plan(
        resource("vpc", "aws:ec2/vpc:Vpc", {"tags": {"a": "2"}, "enableDnsSupport": False}, protect=True)
    )
    [entry] = review(base, head)["resources"]
    assert (entry["action"], entry["protected"], entry["risk"]) == (
        "update",
        True,
        "updates a protected resource",
    )
    # Retagging changes nothing a protected resource holds or does: not worth a reviewer's attention.
    retagged = plan(
        resource("vpc", "aws:ec2/vpc:Vpc", {"tags": {"a": "2"}, "enableDnsSupport": True}, protect=True)
    )
    [entry] = review(base, retagged)["resources"]
    assert (entry["action"], entry["protected"], entry["risk"]) == ("update", True, None)
    base = plan(resource("artifacts", BUCKET, {"bucket": "a"}, protect=True))
    head = plan(resource("artifacts", BUCKET, {"bucket": "b"}, protect=True))
    [entry] = review(base, head)["resources"]
    assert entry["action"] == "replace"
    assert "replaces a protected resource: pulumi up fails until protect is lifted" in entry["risk"]


def test_deleting_stateful_or_protected_resources_is_a_risk() -> None:
    base = plan(
        resource("artifacts", BUCKET, {"bucket": "a"}),
        resource("logs-key", "aws:kms/key:Key", protect=True, retain=True),
        resource("route", "aws:ec2/route:Route"),
    )
    entries = by_name(review(base, plan()))
    assert (
        entries["artifacts"]["risk"]
        == f"deletes a stateful resource: {str(stateful_reason(BUCKET)).rstrip('.')}"
    )
    key_risk = entries["logs-key"]["risk"]
    assert "removes a stateful resource from the stack: retainOnDelete leaves it in the cloud" in key_risk
    assert "deletes a protected resource" in key_risk
    assert entries["logs-key"]["protected"] is True  # the base's protect, for a deletion
    assert entries["route"]["risk"] is None
    assert stateful_reason("aws:ec2/route:Route") is None


def test_component_is_the_top_level_keel_component() -> None:
    backups = resource("backups", "keel:aws:Backups")
    bucket = resource("backups-bucket", BUCKET, {"bucket": "a"}, parent=backups)
    nested = resource("cluster-system", "keel:aws:NodeGroup", parent=resource("cluster", "keel:aws:Cluster"))
    group = resource("cluster-system-ng", NODE_GROUP, parent=nested)
    provider = resource("aws", "pulumi:providers:aws")
    result = review(
        None, plan(backups, bucket, resource("cluster", "keel:aws:Cluster"), nested, group, provider)
    )
    assert {r["name"]: r["component"] for r in result["resources"]} == {
        "backups": "backups",
        "backups-bucket": "backups",
        "cluster": "cluster",
        "cluster-system": "cluster",
        "cluster-system-ng": "cluster",
        "aws": "(stack)",
    }


def test_stack_root_and_paths_outside_inputs_are_not_compared() -> None:
    stack = resource("keel-dev", "pulumi:pulumi:Stack")
    group = resource("ng", inputs={"scalingConfig": {"maxSize": 2.0}})
    base = plan(stack, group, source="/one/checkout/environments/Pulumi.dev.yaml")
    head = plan(stack, dict(group, provider="urn:elsewhere"), source="/other/environments/Pulumi.dev.yaml")
    result = review(base, head)
    assert result["counts"] == {"create": 0, "update": 0, "replace": 0, "delete": 0, "unchanged": 1}
    assert result["resources"] == []
    assert review(None, plan(stack))["counts"]["create"] == 0


# --------------------------------------------------------------------------------- compare: cost, policies


def cost(idle: dict[str, float], peak: dict[str, float], **extra: Any) -> dict[str, Any]:
    """A cost section as `Plan.to_json()` writes it (only what a review reads, plus a path that must not count)."""
    return {
        "currency": "USD",
        "prices_as_of": extra.pop("prices_as_of", "2026-11-27"),
        "region": "us-east-1",
        "idle": {"total": round(sum(idle.values()), 2), "by_component": idle},
        "peak": {"total": round(sum(peak.values()), 2), "by_component": peak},
        "budget": {"monthly_limit": 3000.0},
        "unpriced": extra.pop("unpriced", []),
        "assumptions": ["nat_gb_per_month = 50", "us-east-1.spot is an estimate: ESTIMATE. 40%"],
        "price_table": [extra.pop("price_table", "/work/main/keel/prices/aws.yaml")],
    }


def test_cost_before_after_delta_and_components() -> None:
    base = plan(cost=cost({"cluster": 200.0, "gpu-l4-spot": 0.0}, {"cluster": 300.0, "gpu-l4-spot": 600.0}))
    head = plan(
        cost=cost(
            {"cluster": 200.0, "gpu-l4-spot": 0.0, "model": 0.0},
            {"cluster": 300.0, "gpu-l4-spot": 2800.5},
            price_table="/elsewhere/aws.yaml",
            prices_as_of="2026-12-01",
            unpriced=[{"type": "aws:x/y:Z", "resources": ["a", "b"], "reason": "no price rule"}],
        )
    )
    result = review(base, head)["cost"]
    assert result["before"] == {"idle": 200.0, "peak": 900.0}
    assert result["after"] == {"idle": 200.0, "peak": 3100.5}
    assert result["delta"] == {"idle": 0.0, "peak": 2200.5}
    assert (result["budget"], result["over_budget"], result["prices_as_of"]) == (3000.0, True, "2026-12-01")
    assert result["components"] == [
        {
            "component": "gpu-l4-spot",
            "before": {"idle": 0.0, "peak": 600.0},
            "after": {"idle": 0.0, "peak": 2800.5},
        },
        {
            "component": "cluster",
            "before": {"idle": 200.0, "peak": 300.0},
            "after": {"idle": 200.0, "peak": 300.0},
        },
        {"component": "model", "before": {"idle": 0.0, "peak": 0.0}, "after": {"idle": 0.0, "peak": 0.0}},
    ]
    assert result["notes"] == [
        "list prices as of 2026-12-01 (us-east-1); spot is an estimate",
        "the base was priced with list prices as of 2026-11-27: part of the delta may be price changes",
        "unpriced: aws:x/y:Z (2): no price rule",
        "assumed: nat_gb_per_month = 50",
    ]


def test_cost_without_a_base_section_or_a_head_section() -> None:
    head = plan(cost=cost({"cluster": 200.0}, {"cluster": 300.0}))
    result = review(plan(), head)["cost"]
    assert (result["before"], result["delta"]) == (None, None)
    assert result["components"] == [
        {"component": "cluster", "before": None, "after": {"idle": 200.0, "peak": 300.0}}
    ]
    # An environment new at the base cost nothing before: its whole cost is the change.
    new = review(None, head)["cost"]
    assert (new["before"], new["delta"]) == ({"idle": 0.0, "peak": 0.0}, {"idle": 200.0, "peak": 300.0})
    assert new["components"][0]["before"] == {"idle": 0.0, "peak": 0.0}
    # A plain plan compares with nothing at all: there is no before.
    plain = compare(None, head, base_label=None, head_label="working tree")["cost"]
    assert (plain["before"], plain["delta"]) == (None, None)
    assert review(head, plan())["cost"] is None


def test_cost_says_when_the_estimate_is_incomplete() -> None:
    complete = plan(cost=cost({"cluster": 1.0}, {"cluster": 1.0}))
    incomplete = plan(
        cost={
            **cost({"cluster": 1.0}, {"cluster": 1.0}),
            "unpriced": [{"type": "aws:x/y:Z", "resources": ["a", "b"], "reason": "no price rule"}],
        }
    )
    assert (
        review(complete, complete)["cost"]["complete"],
        review(complete, complete)["cost"]["unpriced"],
    ) == (
        True,
        0,
    )
    assert (
        review(complete, incomplete)["cost"]["complete"],
        review(complete, incomplete)["cost"]["unpriced"],
    ) == (
        False,
        2,
    )


def test_a_replacement_carries_over_to_resources_that_take_its_id() -> None:
    vpc = "urn:pulumi:dev::keel::aws:ec2/vpc:Vpc::vpc"
    subnet = "urn:pulumi:dev::keel::aws:ec2/subnet:Subnet::subnet"

    def network(cidr: str) -> dict[str, Any]:
        # In URN order, as plans list them: every dependent comes before what it depends on.
        return plan(
            {
                **resource("nat", "aws:ec2/natGateway:NatGateway", {"subnetId": "subnet-1"}),
                "propertyDependencies": {"subnetId": [subnet]},
            },
            {
                **resource("route-table", "aws:ec2/routeTable:RouteTable", {"vpcId": "vpc-1", "tags": {}}),
                "propertyDependencies": {"vpcId": [vpc]},
            },
            {
                **resource("subnet", "aws:ec2/subnet:Subnet", {"vpcId": "vpc-1", "cidrBlock": "10.0.0.0/24"}),
                "references": ["subnet-1"],
                "propertyDependencies": {"vpcId": [vpc]},
            },
            {**resource("vpc", "aws:ec2/vpc:Vpc", {"cidrBlock": cidr}), "references": ["vpc-1"]},
        )

    entries = by_name(review(network("10.0.0.0/16"), network("10.9.0.0/16")))
    # The stand-in ids do not change, but the real ones will: the subnet, and then its NAT gateway, are replaced.
    assert {name: e["action"] for name, e in entries.items()} == {
        "nat": "replace",
        "route-table": "replace",
        "subnet": "replace",
        "vpc": "replace",
    }
    assert entries["subnet"]["changes"] == [
        {"path": "vpcId", "before": "vpc-1", "after": None, "known_after": ["vpc"], "replaces": True}
    ]
    assert entries["nat"]["changes"][0]["known_after"] == ["subnet"]


def test_only_the_places_holding_a_replaced_resources_id_change() -> None:
    role = "urn:pulumi:dev::keel::aws:iam/role:Role::model-irsa"
    arn = "arn:aws:iam::111111111111:role/model-irsa-1"

    def stack(path: str) -> dict[str, Any]:
        account = {
            "metadata": {
                "name": "model",
                "namespace": "model",
                "annotations": {"eks.amazonaws.com/role-arn": arn},
            }
        }
        return plan(
            {**resource("model-irsa", "aws:iam/role:Role", {"path": path}), "references": [arn]},
            {
                **resource("model-sa", "kubernetes:core/v1:ServiceAccount", account),
                "propertyDependencies": {"metadata": [role]},
            },
        )

    entries = by_name(review(stack("/"), stack("/keel/")))
    assert entries["model-irsa"]["action"] == "replace"
    # Only the annotation holds the role's ARN: the account is updated in place, not replaced.
    assert entries["model-sa"]["action"] == "update"
    assert entries["model-sa"]["changes"] == [
        {
            "path": "metadata.annotations.eks.amazonaws.com/role-arn",
            "before": arn,
            "after": None,
            "known_after": ["model-irsa"],
            "replaces": False,
        }
    ]


def test_each_place_names_the_replaced_resource_whose_id_it_holds_and_nothing_else_counts() -> None:
    a = "urn:pulumi:dev::keel::aws:ec2/subnet:Subnet::private-a"
    b = "urn:pulumi:dev::keel::aws:ec2/subnet:Subnet::private-b"
    vault = "urn:pulumi:dev::keel::aws:backup/vault:Vault::vault"
    vault_arn = "arn:aws:backup:us-east-1:111111111111:backup-vault:keel-dev-vault"

    def stack(cidr: str) -> dict[str, Any]:
        return plan(
            {
                **resource(
                    "endpoint", "aws:ec2/vpcEndpoint:VpcEndpoint", {"subnetIds": ["subnet-a", "subnet-b"]}
                ),
                "propertyDependencies": {"subnetIds": [a, b]},
            },
            {
                # Took the vault as a dependency, but holds only the copy vault's ARN, which merely starts alike.
                **resource(
                    "plan",
                    "aws:backup/plan:Plan",
                    {"rules": [{"copyActions": [{"destinationVaultArn": f"{vault_arn}-us-west-2"}]}]},
                ),
                "propertyDependencies": {"rules": [vault]},
            },
            {
                **resource("private-a", "aws:ec2/subnet:Subnet", {"cidrBlock": cidr}),
                "references": ["subnet-a"],
            },
            {
                **resource("private-b", "aws:ec2/subnet:Subnet", {"cidrBlock": cidr}),
                "references": ["subnet-b"],
            },
            {**resource("vault", "aws:backup/vault:Vault", {"name": cidr}), "references": [vault_arn]},
        )

    entries = by_name(review(stack("10.0.0.0/24"), stack("10.0.1.0/24")))
    assert [(c["path"], c["known_after"]) for c in entries["endpoint"]["changes"]] == [
        ("subnetIds[0]", ["private-a"]),
        ("subnetIds[1]", ["private-b"]),
    ]
    assert "plan" not in entries


def test_an_input_from_a_replaced_resource_that_updates_in_place_is_an_update() -> None:
    key = "urn:pulumi:dev::keel::aws:kms/key:Key::key"

    def stack(spec: str) -> dict[str, Any]:
        return plan(
            {
                **resource("logs", "aws:cloudwatch/logGroup:LogGroup", {"kmsKeyId": "arn:key"}),
                "propertyDependencies": {"kmsKeyId": [key]},
            },
            {
                **resource("key", "aws:kms/key:Key", {"customerMasterKeySpec": spec}),
                "references": ["arn:key"],
            },
        )

    entries = by_name(review(stack("SYMMETRIC_DEFAULT"), stack("RSA_2048")))
    assert entries["key"]["action"] == "replace"
    assert entries["logs"]["action"] == "update"
    assert entries["logs"]["changes"][0]["replaces"] is False


def test_a_finding_whose_figure_changes_is_the_same_finding() -> None:
    was = plan(
        policies={"violations": [finding("peak-spend-within-budget", message="peak $27,306 over $20,000")]}
    )
    now = plan(
        policies={"violations": [finding("peak-spend-within-budget", message="peak $31,000 over $20,000")]}
    )
    result = review(was, now)["policies"]
    assert (result["added"], result["resolved"]) == ([], [])
    assert [f["message"] for f in result["remaining"]] == ["peak $31,000 over $20,000"]
    two = plan(
        policies={
            "violations": [
                finding("peak-spend-within-budget", message="peak $31,000 over $20,000"),
                finding("peak-spend-within-budget", message="another"),
            ]
        }
    )
    result = review(was, two)["policies"]
    assert ([f["message"] for f in result["added"]], result["resolved"]) == (["another"], [])


def finding(
    policy: str, level: str = "mandatory", urn: str | None = "urn:a", message: str = "bad"
) -> dict[str, Any]:
    return {"policy": policy, "level": level, "urn": urn, "message": message}


def test_violations_added_remaining_resolved() -> None:
    base = plan(
        policies={
            "config": "policies/config/dev.json",
            "violations": [finding("kept"), finding("fixed"), finding("raised", "advisory")],
            "exemptions": [],
            "undecided": [],
            "remediation": {"kept": "old advice", "fixed": "fix it"},
        }
    )
    exemption = dict(finding("exempt", "advisory"), reason="a documented reason")
    head = plan(
        policies={
            "config": "policies/config/dev.json",
            # a rule whose level changes is a different finding: the advisory one is resolved, the mandatory added
            "violations": [
                finding("raised"),
                finding("kept"),
                finding("new", "advisory", None, "stack-wide"),
            ],
            "exemptions": [exemption],
            "undecided": [finding("unknown", "advisory")],
            "remediation": {"kept": "new advice", "raised": "raise it"},
        }
    )
    result = review(base, head)["policies"]
    assert result["added"] == [finding("raised"), finding("new", "advisory", None, "stack-wide")]
    assert result["remaining"] == [finding("kept")]
    assert result["resolved"] == [finding("fixed"), finding("raised", "advisory")]
    assert result["exemptions"] == [{**exemption, "new": True}]  # the base had none
    assert result["undecided"] == [finding("unknown", "advisory")]
    assert result["remediation"] == {"fixed": "fix it", "kept": "new advice", "raised": "raise it"}
    assert result["config"] == "policies/config/dev.json"
    assert review(base, plan())["policies"] is None


def test_a_new_exemption_is_not_a_resolved_violation() -> None:
    violation = finding("gpu-instance-allowlist", urn="urn:pool")
    exempted = {**violation, "reason": "approved by the capacity board, ticket 42"}
    base = plan(policies={"violations": [violation], "exemptions": []})
    head = plan(policies={"violations": [], "exemptions": [exempted]})
    result = review(base, head)["policies"]
    assert result["resolved"] == []
    assert result["exemptions"] == [{**exempted, "new": True}]
    # The same exemption in both is not new.
    assert review(head, head)["policies"]["exemptions"] == [{**exempted, "new": False}]


def test_an_exemption_that_now_covers_another_finding_is_new() -> None:
    def exempted(message: str) -> dict[str, Any]:
        return {
            **finding("gpu-instance-allowlist", urn="urn:pool", message=message),
            "reason": "benchmarking, ticket 7",
        }

    base = plan(policies={"violations": [], "exemptions": [exempted("g6.8xlarge is not allowed")]})
    head = plan(policies={"violations": [], "exemptions": [exempted("g6e.16xlarge is not allowed")]})
    assert [e["new"] for e in review(base, head)["policies"]["exemptions"]] == [True]


def test_digits_in_names_are_not_figures() -> None:
    was = plan(
        policies={"violations": [finding("gpu-instance-allowlist", message="uses g6.8xlarge (8 GPUs)")]}
    )
    now = plan(
        policies={"violations": [finding("gpu-instance-allowlist", message="uses g6.16xlarge (16 GPUs)")]}
    )
    result = review(was, now)["policies"]
    assert ([f["message"] for f in result["added"]], [f["message"] for f in result["resolved"]]) == (
        ["uses g6.16xlarge (16 GPUs)"],
        ["uses g6.8xlarge (8 GPUs)"],
    )


def test_findings_that_differ_in_more_than_figures_are_different_findings() -> None:
    was = plan(
        policies={"violations": [finding("k8s-no-privileged", message="container vllm is privileged")]}
    )
    now = plan(
        policies={"violations": [finding("k8s-no-privileged", message="container log-shipper is privileged")]}
    )
    result = review(was, now)["policies"]
    assert [f["message"] for f in result["added"]] == ["container log-shipper is privileged"]
    assert [f["message"] for f in result["resolved"]] == ["container vllm is privileged"]
    assert result["remaining"] == []


def test_plain_plan_is_a_review_against_nothing() -> None:
    group = resource("ng")
    head = plan(
        group,
        resource("artifacts", BUCKET, {"bucket": "a"}),
        policies={"config": "c.json", "violations": [finding("x")], "exemptions": [], "undecided": []},
        warnings=["a warning"],
    )
    result = compare(None, head, base_label=None, head_label="working tree")
    assert result["base"] is None
    assert result["head"] == {"label": "working tree", "source": "environments/Pulumi.dev.yaml"}
    assert result["counts"] == {"create": 2, "update": 0, "replace": 0, "delete": 0, "unchanged": 0}
    assert all(r["action"] == "create" and r["risk"] is None for r in result["resources"])
    assert (result["policies"]["added"], result["policies"]["resolved"]) == ([finding("x")], [])
    assert result["warnings"] == ["a warning"]
    # An environment a git revision does not have yet: nothing exists, but the base is named.
    named = compare(
        None, head, base_label="HEAD~1 (abc1234): no dev environment yet", head_label="working tree"
    )
    assert named["base"] == {"label": "HEAD~1 (abc1234): no dev environment yet", "source": None}
    assert named["counts"] == result["counts"]


# ----------------------------------------------------------------------------------------- saved plans


@pytest.fixture(scope="module")
def dev_plan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`keel plan dev --format json` of the working tree, saved."""
    result = runner.invoke(app, ["plan", "dev", "--format", "json"])
    assert result.exit_code == 0, result.output
    path = tmp_path_factory.mktemp("saved") / "dev.json"
    path.write_text(result.stdout)
    return path


def test_base_plan_round_trips_to_no_changes(dev_plan_file: Path) -> None:
    result = runner.invoke(app, ["diff", "dev", "--base-plan", str(dev_plan_file), "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    saved = json.loads(dev_plan_file.read_text())
    assert document["resources"] == []
    assert document["counts"]["unchanged"] == len(saved["resources"]) > 100
    assert document["cost"]["delta"] == {"idle": 0.0, "peak": 0.0}
    assert document["base"]["label"] == f"saved plan {dev_plan_file}"
    assert document["head"]["label"] == "working tree"


def test_markdown_and_text_come_from_the_report(dev_plan_file: Path) -> None:
    markdown = runner.invoke(app, ["diff", "dev", "--base-plan", str(dev_plan_file), "--format", "markdown"])
    assert markdown.exit_code == 0, markdown.output
    assert markdown.stdout.startswith("<!-- keel-review:dev -->\n")
    text = runner.invoke(app, ["diff", "dev", "--base-plan", str(dev_plan_file)])
    assert text.exit_code == 0, text.output
    assert "dev" in text.stdout
    assert "<!--" not in text.stdout


def test_mandatory_violations_in_the_head_exit_1_with_the_review(dev_plan_file: Path, tmp_path: Path) -> None:
    # dev's own settings, except that dev's l4 pool (2 GPUs at most) meets a mandatory cap of 1.
    settings = json.loads((PROJECT_ROOT / "policies" / "config" / "dev.json").read_text())
    settings["gpu-count-cap"] = {"enforcementLevel": "mandatory", "maxGpus": 1}
    config = tmp_path / "strict.json"
    config.write_text(json.dumps(settings))
    result = runner.invoke(
        app,
        ["diff", "dev", "--base-plan", str(dev_plan_file), "--policy-config", str(config), "-f", "json"],
    )
    assert result.exit_code == 1, result.output
    policies = json.loads(result.stdout)["policies"]
    assert [(f["policy"], f["level"]) for f in policies["added"]] == [("gpu-count-cap", "mandatory")]
    assert policies["config"].endswith("strict.json")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read the saved plan"),
        ("{not json", "not JSON"),
        ("[1, 2]", "not a keel plan (it needs environment and resources)"),
        ('{"environment": "dev", "resources": [{"urn": 1}]}', "resources[0] must be an object with urn"),
        ('{"environment": "prod", "resources": []}', "this is a plan of prod, not dev"),
        ('{"environment": "dev", "resources": [], "cost": {"idle": 1}}', "cost must have idle and peak"),
    ],
)
def test_bad_base_plan_exits_2_naming_the_file(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "base.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["diff", "dev", "--base-plan", str(path)])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    assert fragment in result.output
    assert isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["diff", "dev"], "exactly one of --base REF or --base-plan FILE"),
        (["diff", "dev", "--base", "HEAD", "--base-plan", "x.json"], "exactly one of"),
        (["diff", "qa", "--base", "HEAD"], "no environment qa"),
        (["diff", "dev", "--base", "no-such-ref-anywhere"], "--base no-such-ref-anywhere: no such commit"),
    ],
)
def test_diff_usage_errors_exit_2(args: list[str], fragment: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output


def test_not_a_git_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RevisionError, match=r"is not a git repository.*--base-plan"):
        resolve_revision("HEAD", tmp_path)


# ------------------------------------------------------------------------- a fixture repository with history

NEW_MODEL = "qwen2-5-7b-canary"
OLD_BUCKET_CODE = 'return f"{spec.name_prefix}-artifacts-{spec.aws.account_id}"'
NEW_BUCKET_CODE = 'return f"{spec.name_prefix}-models-{spec.aws.account_id}"'


def git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-c", "user.name=keel-test", "-c", "user.email=keel-test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def worktrees(repo: Path) -> list[str]:
    return [
        line
        for line in git(repo, "worktree", "list", "--porcelain").splitlines()
        if line.startswith("worktree ")
    ]


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project in a new repository: commit 1 as the project is; commit 2 adds a dev model,
    raises the l4 pool's maxSize from 2 to 4 and renames the artifact bucket in code; a branch `broken` whose
    dev stack file names an unknown tier. The working tree is left at commit 2, clean."""
    repo = tmp_path_factory.mktemp("history")
    listed = git(PROJECT_ROOT, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():  # listed but deleted in the working tree: not part of the project now
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "the project as it is")

    dev = repo / "environments" / "Pulumi.dev.yaml"
    document = yaml.safe_load(dev.read_text())
    config = document["config"]
    [pool] = config["keel:gpuPools"]
    assert (pool["name"], pool["maxSize"]) == ("l4", 2)
    # Two models at 2 replicas each need 4 one-GPU nodes of the pool at peak.
    pool["maxSize"] = 4
    [model] = config["keel:models"]
    config["keel:models"].append(dict(model, name=NEW_MODEL))
    dev.write_text(yaml.safe_dump(document, sort_keys=False))
    code = repo / "stacks" / "aws_platform.py"
    assert OLD_BUCKET_CODE in code.read_text()
    code.write_text(code.read_text().replace(OLD_BUCKET_CODE, NEW_BUCKET_CODE))
    git(repo, "commit", "--quiet", "--all", "-m", "a second model, a larger l4 pool, a renamed bucket")

    git(repo, "switch", "--quiet", "-c", "broken", "HEAD~1")
    dev.write_text(dev.read_text().replace("keel:tier: dev", "keel:tier: qa"))
    git(repo, "commit", "--quiet", "--all", "-m", "an invalid stack file")
    git(repo, "switch", "--quiet", "main")
    return repo


def test_review_of_a_commit_against_its_parent(history: Path) -> None:
    """The issue's acceptance test: a config change and a code change, each reviewed as what pulumi up would do."""
    completed = subprocess.run(
        [sys.executable, "-m", "keel.cli", "diff", "dev", "--base", "HEAD~1", "--format", "json"],
        cwd=history,
        env={**os.environ, "PYTHONPATH": str(history)},  # the head is the fixture's code too
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["base"]["label"] == f"HEAD~1 ({git(history, 'rev-parse', '--short', 'HEAD~1')})"
    assert result["head"]["label"] == "working tree"
    entries = by_name(result)

    # (a) The new model: its InferenceService and the objects docs/models.md lists for a hub model in dev
    # (scale to zero, so an InterceptorRoute; no AWS role; the hub token through an ExternalSecret).
    created = [r for r in result["resources"] if r["action"] == "create"]
    assert {r["component"] for r in created} == {f"model-{NEW_MODEL}"}
    assert Counter(r["type"] for r in created) == Counter(
        {
            "keel:k8s:InferenceService": 1,
            "kubernetes:core/v1:Namespace": 1,
            "kubernetes:core/v1:ServiceAccount": 1,
            "kubernetes:external-secrets.io/v1:ExternalSecret": 1,
            "kubernetes:apps/v1:Deployment": 1,
            "kubernetes:core/v1:Service": 1,
            "kubernetes:keda.sh/v1alpha1:ScaledObject": 1,
            "kubernetes:http.keda.sh/v1beta1:InterceptorRoute": 1,
            "kubernetes:networking.k8s.io/v1:NetworkPolicy": 3,
            "kubernetes:monitoring.coreos.com/v1:PodMonitor": 1,
        }
    )

    # (b) The pool's only node group (dev pools are spot) scales further, in place.
    assert entries["gpu-l4-spot-ng"]["action"] == "update"
    assert entries["gpu-l4-spot-ng"]["changes"] == [
        {"path": "scalingConfig.maxSize", "before": 2.0, "after": 4.0, "replaces": False}
    ]

    # (c) The bucket's name comes from code: the bucket is replaced, and what names it follows.
    old, new = "keel-dev-artifacts-111111111111", "keel-dev-models-111111111111"
    bucket = entries["backups-bucket"]
    assert bucket["action"] == "replace"
    assert {c["path"]: (c["before"], c["after"], c["replaces"]) for c in bucket["changes"]} == {
        "bucket": (old, new, True),
        "tags.Name": (old, new, False),
    }
    assert bucket["risk"] is not None
    assert bucket["risk"].startswith("replaces a stateful resource")
    # The bucket's own configuration resources address it by name; the backup selection and the bucket
    # policy by ARN (the policy's document is one JSON string, so it changes as a whole).
    named_by_bucket = {
        "backups-bucket-lifecycle",
        "backups-bucket-ownership",
        "backups-bucket-public-access",
        "backups-bucket-encryption",
        "backups-bucket-versioning",
    }
    for name in named_by_bucket:
        entry = entries[name]
        expected = "replace" if replacement_paths(entry["type"], ["bucket"]) else "update"
        assert (entry["action"], [c["path"] for c in entry["changes"]]) == (expected, ["bucket"]), name
    policy = entries["backups-bucket-policy"]
    assert [c["path"] for c in policy["changes"]] == ["bucket", "policy"]
    assert old in policy["changes"][1]["before"]
    assert new in policy["changes"][1]["after"]
    selection = entries["backups-selection"]
    assert selection["changes"] == [
        {
            "path": "resources",
            "before": [f"arn:aws:s3:::{old}"],
            "after": [f"arn:aws:s3:::{new}"],
            "replaces": bool(replacement_paths(selection["type"], ["resources"])),
        }
    ]

    changed = {r["name"] for r in result["resources"] if r["action"] != "create"}
    assert changed == {
        "gpu-l4-spot-ng",
        "backups-bucket",
        "backups-bucket-policy",
        "backups-selection",
        *named_by_bucket,
    }
    assert result["counts"]["create"] == len(created)
    assert result["counts"]["delete"] == 0

    # Cost: two more nodes at peak, each with its gp3 root volume. Dev pools buy spot, and peak prices a node
    # group on its most expensive instance type (keel/cost.py, stated in the notes). The new model scales to
    # zero in dev (minReplicas 0) and the pool's minSize is unchanged, so idle does not move.
    assert any("maxSize on its most expensive instance type" in note for note in result["cost"]["notes"])
    table = yaml.safe_load((history / "keel" / "prices" / "aws.yaml").read_text())
    prices = table["regions"]["us-east-1"]
    [pool] = yaml.safe_load(environment_file("dev", history / "environments").read_text())["config"][
        "keel:gpuPools"
    ]
    on_demand = max(prices["instances"][t]["price"] for t in pool["instanceTypes"])
    hourly = on_demand * prices["spot"]["price"]
    added_nodes = 4 - 2
    expected_peak = added_nodes * (
        hourly * table["hours_per_month"] + pool["rootVolumeGib"] * prices["ebs_gp3_gb_month"]["price"]
    )
    assert result["cost"]["delta"]["peak"] == pytest.approx(expected_peak, abs=0.011)
    assert result["cost"]["delta"]["idle"] == 0.0
    assert result["policies"]["added"] == result["policies"]["resolved"] == []
    assert worktrees(history) == [f"worktree {history.resolve()}"]


def test_the_base_revision_plans_with_its_own_code(history: Path) -> None:
    """The running code (the installed project) names the bucket `-artifacts-`; commit 2's code `-models-`."""
    assert OLD_BUCKET_CODE in inspect.getsource(aws_platform.artifact_bucket_name)
    label, base = plan_revision("dev", "HEAD", root=history)
    assert label == f"HEAD ({git(history, 'rev-parse', '--short', 'HEAD')})"
    assert base is not None
    [bucket] = [r for r in base["resources"] if r["type"] == BUCKET]
    assert bucket["inputs"]["bucket"] == "keel-dev-models-111111111111"
    assert worktrees(history) == [f"worktree {history.resolve()}"]


def test_a_price_file_the_change_adds_prices_the_base_too(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KEEL_PRICES is relative to the project; the revision does not have the file, the working tree does.
    added = history / "acme-prices.yaml"
    added.write_text(
        "regions:\n  us-east-1:\n    instances:\n      g6.4xlarge: {price: 2.0, unit: hour,"
        " source: 'https://wiki.acme.example/rates', as_of: '2026-12-01'}\n"
    )
    monkeypatch.setenv("KEEL_PRICES", added.name)
    try:
        _, base = plan_revision("dev", "HEAD~1", root=history)
    finally:
        added.unlink()
    assert base is not None
    assert base["cost"]["price_table"][-1] == str(added)


def test_an_environment_new_at_head_has_nothing_as_its_base(history: Path) -> None:
    label, base = plan_revision("sandbox", "HEAD~1", root=history)
    assert base is None
    assert label == f"HEAD~1 ({git(history, 'rev-parse', '--short', 'HEAD~1')}): no sandbox environment yet"


def test_a_failing_base_names_the_revision_and_shows_its_stderr(history: Path) -> None:
    with pytest.raises(BasePlanError) as raised:
        plan_revision("dev", "broken", root=history)
    message = str(raised.value)
    assert (
        f"planning dev at broken ({git(history, 'rev-parse', '--short', 'broken')}) failed (exit 2)"
        in message
    )
    assert "keel:tier = 'qa'" in message  # the base's own error, from its stderr
    assert worktrees(history) == [f"worktree {history.resolve()}"]


def ctrl_c() -> None:
    raise KeyboardInterrupt


def sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)  # a cancelled CI job
    time.sleep(10)  # interrupted by the signal's handler


@pytest.mark.parametrize("interrupt", [ctrl_c, sigterm])
def test_the_worktree_goes_away_when_interrupted(history: Path, interrupt: Callable[[], None]) -> None:
    seen: list[RevisionPlan] = []
    trees: list[str] = []
    handler = signal.getsignal(signal.SIGTERM)

    def interrupted() -> None:
        with revision_plan("dev", "HEAD", root=history) as pending:
            seen.append(pending)
            trees.extend(worktrees(history))
            interrupt()

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    [pending] = seen
    assert pending.process is not None
    assert pending.process.poll() is not None  # the base's plan process was stopped
    [_, tree] = trees
    assert worktrees(history) == [f"worktree {history.resolve()}"]
    assert not Path(tree.removeprefix("worktree ")).parent.exists()
    assert signal.getsignal(signal.SIGTERM) == handler  # SIGTERM is only an interrupt while the base plans


def test_an_unknown_ref_in_the_fixture_is_a_revision_error(history: Path) -> None:
    with pytest.raises(RevisionError, match="--base v9: no such commit"):
        resolve_revision("v9", history)


def test_a_replaced_node_group_carries_over_to_the_tags_on_its_auto_scaling_group(
    plans: dict[str, Plan],
) -> None:
    """On the real prod plan: the autoscaler's ASG tags refer to the group's generated Auto Scaling group."""
    head = plans["prod"].to_json()
    base = copy.deepcopy(head)
    group = next(r for r in base["resources"] if r["name"] == "gpu-l4-spot-ng")
    group["inputs"]["instanceTypes"] = ["g6.2xlarge"]  # instanceTypes force a new node group
    entries = by_name(review(base, head))
    assert entries["gpu-l4-spot-ng"]["action"] == "replace"
    tags = {name: e for name, e in entries.items() if e["type"] == "aws:autoscaling/tag:Tag"}
    assert tags, "the group's ASG tags must follow it"
    assert {e["action"] for e in tags.values()} == {"replace"}
    assert all(name.startswith("gpu-l4-spot") for name in tags)
    assert {c["known_after"][0] for e in tags.values() for c in e["changes"]} == {"gpu-l4-spot-ng"}
    # Nothing else holds the group's references.
    assert set(entries) == {"gpu-l4-spot-ng", *tags}
