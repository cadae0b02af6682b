"""The replacement and stateful-type table: matching rules, coverage of the shipped plans, sources, SDK inputs."""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import runpy
import sys
from pathlib import Path
from typing import Any

import pulumi_kubernetes
import pytest

from keel import replacements
from keel.plan import Plan
from keel.replacements import (
    NO_REPLACEMENT_INPUTS,
    REPLACEMENT_PROPERTIES,
    STATEFUL_TYPES,
    render_markdown,
    replacement_paths,
    stateful_reason,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "replacements.md"
TABLE_TYPES = sorted({*STATEFUL_TYPES, *REPLACEMENT_PROPERTIES, *NO_REPLACEMENT_INPUTS})
ENTRIES = [(type_, path) for type_, entries in REPLACEMENT_PROPERTIES.items() for path in entries]

# ------------------------------------------------------------------------------------------- matching


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> str:
    """A throwaway type with the entries the interface's examples use."""
    monkeypatch.setitem(
        REPLACEMENT_PROPERTIES,
        "test:index/thing:Thing",
        dict.fromkeys(["bucket", "blockDeviceMappings", "tags", "launchTemplate.id"], "https://example.com"),
    )
    return "test:index/thing:Thing"


@pytest.mark.parametrize(
    ("changed", "replaces"),
    [
        ("bucket", True),
        ("bucketPrefix", False),  # a sibling that shares a prefix is not under "bucket"
        ("bucket2", False),
        ("blockDeviceMappings[0].ebs.volumeSize", True),
        ("blockDeviceMappings[1]", True),
        ("blockDeviceMappingsExtra", False),
        ("tags.team", True),
        ("tagsAll.team", False),
        ("launchTemplate.id", True),
        ("launchTemplate.version", False),
        ("launchTemplate", True),  # a block added or removed whole changes the entry under it
        ("launchTemplate.idSuffix", False),
    ],
)
def test_a_changed_path_matches_an_entry_it_equals_or_lies_under_or_over(
    table: str, changed: str, replaces: bool
) -> None:
    assert replacement_paths(table, [changed]) == ([changed] if replaces else [])


def test_only_the_replacing_paths_come_back_in_the_order_given(table: str) -> None:
    changed = ["tags.team", "description", "bucket", "bucketPrefix", "blockDeviceMappings[0].ebs.encrypted"]
    assert replacement_paths(table, iter(changed)) == [
        "tags.team",
        "bucket",
        "blockDeviceMappings[0].ebs.encrypted",
    ]


def test_types_without_entries_never_replace() -> None:
    assert replacement_paths("keel:aws:Network", ["cidr"]) == []
    assert replacement_paths("pulumi:providers:aws", ["region"]) == []
    assert replacement_paths("aws:ec2/internetGateway:InternetGateway", ["vpcId", "tags.Name"]) == []


def test_the_shipped_table_flags_the_changes_reviewers_must_see() -> None:
    assert replacement_paths("aws:s3/bucket:Bucket", ["bucket", "forceDestroy", "tags.owner"]) == ["bucket"]
    assert replacement_paths(
        "aws:eks/nodeGroup:NodeGroup", ["instanceTypes[1]", "scalingConfig.maxSize", "launchTemplate.version"]
    ) == ["instanceTypes[1]"]
    assert replacement_paths(
        "kubernetes:apps/v1:Deployment",
        ["spec.selector.matchLabels.app", "spec.template.spec.containers[0].image"],
    ) == ["spec.selector.matchLabels.app"]
    assert replacement_paths("aws:backup/vault:Vault", ["kmsKeyArn"]) == ["kmsKeyArn"]


def test_stateful_reason() -> None:
    assert stateful_reason("aws:s3/bucket:Bucket") == STATEFUL_TYPES["aws:s3/bucket:Bucket"]
    assert stateful_reason("aws:eks/nodeGroup:NodeGroup") is None
    assert stateful_reason("keel:aws:Backups") is None


@pytest.mark.parametrize("type_", sorted(STATEFUL_TYPES))
def test_each_stateful_reason_is_one_short_sentence(type_: str) -> None:
    reason = STATEFUL_TYPES[type_]
    assert reason.endswith("."), reason
    assert ". " not in reason, reason
    assert len(reason) <= 150, reason
    # Rendered inside a Markdown table cell.
    assert "|" not in reason
    assert "\n" not in reason


# ------------------------------------------------------------------------------------------- coverage


def _planned_types(plans: dict[str, Plan]) -> set[str]:
    """Every AWS and Kubernetes type the shipped environments create (no components, providers or stack)."""
    return {
        r.type
        for plan in plans.values()
        for r in plan.resources
        if r.type.startswith(("aws:", "kubernetes:"))
    }


def test_every_table_type_is_created_by_a_shipped_environment(plans: dict[str, Plan]) -> None:
    dead = set(TABLE_TYPES) - _planned_types(plans)
    assert not dead, (
        f"no shipped environment creates these types; drop them from keel/replacements.py: {dead}"
    )


def test_every_type_the_stack_creates_is_in_the_table(plans: dict[str, Plan]) -> None:
    missing = _planned_types(plans) - {*REPLACEMENT_PROPERTIES, *NO_REPLACEMENT_INPUTS}
    assert not missing, f"review and add to keel/replacements.py: {sorted(missing)}"


def test_a_type_is_either_replaceable_by_some_input_or_listed_as_never() -> None:
    assert not set(REPLACEMENT_PROPERTIES) & set(NO_REPLACEMENT_INPUTS)
    assert all(REPLACEMENT_PROPERTIES.values())
    assert set(STATEFUL_TYPES) <= set(REPLACEMENT_PROPERTIES) | set(NO_REPLACEMENT_INPUTS)


_PINNED_GITHUB_FILE = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/blob/[0-9a-f]{40}/\S+$")


@pytest.mark.parametrize(
    "url",
    sorted(
        {url for entries in REPLACEMENT_PROPERTIES.values() for url in entries.values()}
        | {url for _, url in NO_REPLACEMENT_INPUTS.values()}
    ),
)
def test_every_source_is_an_https_link_pinned_to_a_commit(url: str) -> None:
    assert url.startswith("https://")
    assert _PINNED_GITHUB_FILE.match(url), url


# ------------------------------------------------------------------------------------------- SDK inputs

_ARGS_REF = re.compile(r"ForwardRef\('([\w.]+Args)'\)")


def _is_custom_resource(group: str) -> bool:
    """Kubernetes groups the SDK has no classes for (CRDs), unlike core, *.k8s.io and the Helm release."""
    return "." in group and not group.endswith(".k8s.io") and group != "helm.sh"


def _args_class(type_: str) -> type:
    """The SDK's input class for a type token, imported through the token's module."""
    package, module, name = type_.split(":")
    if package == "aws":
        resource = getattr(importlib.import_module(f"pulumi_aws.{module.split('/')[0]}"), name)
        assert f"'{type_}'" in inspect.getsource(resource), f"{resource} does not register {type_}"
    else:
        group, version = module.split("/")
        sdk_module = group.removesuffix(".k8s.io").replace("helm.sh", "helm")
        resource = getattr(importlib.import_module(f"pulumi_kubernetes.{sdk_module}.{version}"), name)
    defining = sys.modules[resource.__module__]
    for candidate in (f"{name}InitArgs", f"{name}Args"):
        if hasattr(defining, candidate):
            return getattr(defining, candidate)
    raise AssertionError(f"no Args class for {type_} in {defining.__name__}")


def _inputs(args: type) -> dict[str, Any]:
    """The class's inputs by engine name (the camelCase name its getters register), with their return types."""
    return {
        member.fget._pulumi_name: member.fget.__annotations__.get("return")
        for _, member in inspect.getmembers(args, lambda m: isinstance(m, property))
        if hasattr(member.fget, "_pulumi_name")
    }


def _nested_args(owner: type, annotation: Any) -> type | None:
    """The Args class an input's annotation refers to (``'_meta.v1.ObjectMetaArgs'``), if it is an object."""
    match = _ARGS_REF.search(str(annotation))
    if not match:
        return None
    first, *rest = match.group(1).split(".")
    return functools.reduce(getattr, rest, vars(sys.modules[owner.__module__])[first])


@pytest.mark.parametrize(("type_", "path"), ENTRIES, ids=[f"{t} {p}" for t, p in ENTRIES])
def test_every_path_is_an_input_of_its_type_in_the_installed_sdk(type_: str, path: str) -> None:
    group = type_.split(":")[1].split("/", maxsplit=1)[0]
    if type_.startswith("kubernetes:") and _is_custom_resource(group):
        # CRDs go through apiextensions.CustomResource: identity lives in the standard object metadata.
        assert "metadata" in inspect.signature(pulumi_kubernetes.apiextensions.CustomResource).parameters
        assert path.startswith("metadata.")
        args: type | None = pulumi_kubernetes.meta.v1.ObjectMetaArgs
        segments = path.split(".")[1:]
    else:
        args = _args_class(type_)
        segments = re.sub(r"\[\d+\]", "", path).split(".")
    for depth, segment in enumerate(segments):
        assert args is not None, f"{path}: {'.'.join(segments[:depth])} is not an object"
        inputs = _inputs(args)
        assert segment in inputs, f"{type_}: {segment!r} is not an input of {args.__name__}"
        args = _nested_args(args, inputs[segment])


# ------------------------------------------------------------------------------------------- the document


def test_docs_table_matches_the_module() -> None:
    match = re.search(r"<!-- replacements:start -->\n(.*?)\n<!-- replacements:end -->", DOC.read_text(), re.S)
    assert match, f"{DOC} lacks the replacements table markers"
    assert match.group(1) == render_markdown(), (
        "docs/replacements.md is stale: paste the output of `.venv/bin/python -m keel.replacements` "
        "between the markers"
    )


def test_the_rendered_table_has_one_row_per_type_with_its_sources() -> None:
    rows = render_markdown().splitlines()[2:]
    assert [row.split(" | ")[0].removeprefix("| ").strip("`") for row in rows] == TABLE_TYPES
    bucket = next(row for row in rows if row.startswith("| `aws:s3/bucket:Bucket`"))
    assert STATEFUL_TYPES["aws:s3/bucket:Bucket"] in bucket
    assert "`bucket`, `bucketPrefix`" in bucket
    assert "[terraform-provider-aws `bucket.go`](https://github.com/hashicorp/" in bucket
    deployment = next(row for row in rows if row.startswith("| `kubernetes:apps/v1:Deployment`"))
    assert "pulumi-kubernetes `diff.go` L207-L212" in deployment
    assert "pulumi-kubernetes `diff.go` L171-L176" in deployment


def test_module_entry_point_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    sys.modules.pop("keel.replacements", None)
    try:
        runpy.run_module("keel.replacements", run_name="__main__")
    finally:
        sys.modules["keel.replacements"] = replacements
    assert capsys.readouterr().out == render_markdown() + "\n"
