"""The review renderings: the PR comment (snapshots, length limit, escaping, marker) and the terminal view.

The reviews here are built by hand in the shape ``keel.diff.compare`` returns, so these tests do not depend on
the diff. The Markdown snapshots live in ``tests/snapshots/``; after an intended change to the comment,
regenerate them with ``KEEL_UPDATE_SNAPSHOTS=1 .venv/bin/pytest -p no:xdist tests/test_report.py`` and review
the diff of the ``.md`` files before committing them.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console

import keel.report
from keel.report import (
    ADVISORY,
    DEFAULT_LIMIT,
    LABEL_WIDTH,
    MANDATORY,
    MIN_LIMIT,
    NEW_EXEMPTION,
    OVER_BUDGET,
    RESOLVED,
    RISK,
    SHORTENED,
    VALUE_WIDTH,
    render_review_markdown,
    render_review_text,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("KEEL_UPDATE_SNAPSHOTS") == "1"
PREFIX = "urn:pulumi:prod::keel::"
# What keel.replacements says replacing these types loses.
BUCKET_LOSES = "the stored objects and all their versions (the mirrored model weights)."
CLUSTER_LOSES = (
    "every Kubernetes object and workload in it, and its identity (API endpoint, CA, OIDC issuer)."
)
LONG_POLICY = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken",'
    '"ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"*"}]}'
)


def _resource(
    type_: str,
    name: str,
    component: str,
    action: str,
    changes: list[dict[str, Any]] | None = None,
    *,
    protected: bool = False,
    stateful: str | None = None,
    risk: str | None = None,
) -> dict[str, Any]:
    return {
        "urn": f"{PREFIX}keel:aws:Component${type_}::{name}",
        "type": type_,
        "name": name,
        "component": component,
        "action": action,
        "changes": changes or [],
        "protected": protected,
        "stateful": stateful,
        "risk": risk,
    }


def _change(
    path: str, before: Any, after: Any, *, replaces: bool = False, known_after: list[str] | None = None
) -> dict[str, Any]:
    change = {"path": path, "before": before, "after": after, "replaces": replaces}
    return change | ({"known_after": known_after} if known_after is not None else {})


def _finding(policy: str, level: str, name: str | None, message: str, **extra: Any) -> dict[str, Any]:
    return {
        "policy": policy,
        "level": level,
        "urn": f"{PREFIX}aws:x/y:Z::{name}" if name else None,
        "message": message,
        **extra,
    }


def prod_review() -> dict[str, Any]:
    """A prod pull request: a new GPU pool, a resized one, a replaced bucket (and its versioning, which takes the
    bucket's id), a cluster upgrade, a deletion, a new exemption."""
    return {
        "environment": "prod",
        "kind": "offline review of declared inputs (Pulumi mock runtime); not a diff against the cloud",
        "base": {"label": "HEAD~1 (3f2a9c1)", "source": "environments/Pulumi.prod.yaml"},
        "head": {"label": "working tree", "source": "environments/Pulumi.prod.yaml"},
        "counts": {"create": 3, "update": 4, "replace": 2, "delete": 1, "unchanged": 197},
        "resources": [
            _resource("keel:aws:GpuNodePool", "gpu-h100-od", "gpu-h100-od", "create"),
            _resource("aws:ec2/launchTemplate:LaunchTemplate", "gpu-h100-od-lt", "gpu-h100-od", "create"),
            _resource("aws:eks/nodeGroup:NodeGroup", "gpu-h100-od-ng", "gpu-h100-od", "create"),
            _resource(
                "aws:eks/nodeGroup:NodeGroup",
                "gpu-l4-spot-ng",
                "gpu-l4-spot",
                "update",
                [_change("scalingConfig.maxSize", 4.0, 6.0), _change("tags.team", "inference", "platform")],
            ),
            _resource(
                "aws:eks/cluster:Cluster",
                "cluster",
                "cluster",
                "update",
                [_change("version", "1.33", "1.34")],
                protected=True,
                stateful=CLUSTER_LOSES,
                risk="updates a protected resource",
            ),
            _resource(
                "aws:iam/rolePolicy:RolePolicy",
                "cluster-node-ecr",
                "cluster",
                "update",
                [_change("policy", LONG_POLICY, LONG_POLICY.replace('"*"', '"arn:aws:ecr:*"'))],
            ),
            _resource(
                "aws:s3/bucket:Bucket",
                "artifacts",
                "backups",
                "replace",
                [
                    _change("bucket", "keel-prod-artifacts", "keel-prod-artifacts-v2", replaces=True),
                    _change("tags.purpose", None, "model-weights"),
                ],
                protected=True,
                stateful=BUCKET_LOSES,
                risk=f"replaces a stateful resource: {BUCKET_LOSES.rstrip('.')}; replaces a protected resource: "
                "pulumi up fails until protect is lifted",
            ),
            _resource(
                "aws:s3/bucketVersioningV2:BucketVersioningV2",
                "artifacts-versioning",
                "backups",
                "replace",
                [_change("bucket", "keel-prod-artifacts", None, replaces=True, known_after=["artifacts"])],
            ),
            _resource(
                "aws:secretsmanager/secretVersion:SecretVersion",
                "model-hub-token-version",
                "secrets",
                "update",
                [_change("secretString", None, "[secret]")],
            ),
            _resource("kubernetes:policy/v1:PodDisruptionBudget", "llama-legacy-pdb", "models", "delete"),
        ],
        "cost": {
            "currency": "USD",
            "prices_as_of": "2026-11-27",
            "budget": 60000.0,
            "before": {"idle": 17725.86, "peak": 26195.82},
            "after": {"idle": 27500.26, "peak": 61250.02},
            "delta": {"idle": 9774.4, "peak": 35054.2},
            "over_budget": True,
            "complete": False,  # the capacity reservation below has no price
            "unpriced": 1,
            "components": [
                {"component": "gpu-h100-od", "before": None, "after": {"idle": 9774.4, "peak": 34219.2}},
                {
                    "component": "gpu-l40s-x4-od",
                    "before": {"idle": 15399.25, "peak": 15399.25},
                    "after": {"idle": 15399.25, "peak": 15399.25},
                },
                {
                    "component": "gpu-l4-spot",
                    "before": {"idle": 0.0, "peak": 1808.76},
                    "after": {"idle": 0.0, "peak": 2713.14},
                },
                {
                    "component": "cluster",
                    "before": {"idle": 997.21, "peak": 997.21},
                    "after": {"idle": 997.21, "peak": 997.21},
                },
                {"component": "models", "before": {"idle": 69.0, "peak": 69.0}, "after": None},
            ],
            "notes": [
                "list prices as of 2026-11-27 (us-east-1); spot is an estimate",
                "assumed: nat_gb_per_month = 300 (GB processed by all NAT gateways together)",
                "unpriced: aws:ec2/capacityReservation:CapacityReservation (1): no price in the table",
            ],
        },
        "policies": {
            "config": "policies/config/prod.json",
            "added": [
                _finding(
                    "gpu-instance-allowlist",
                    "mandatory",
                    "gpu-h100-od-ng",
                    "instance type p5.48xlarge is not allowed in prod (allowed: g6.2xlarge, g6.4xlarge, g6e.12xlarge)",
                )
            ],
            "remaining": [
                _finding(
                    "k8s-probes", "advisory", "llama-3-8b", "container vllm has no startupProbe (cold starts)"
                )
            ],
            "resolved": [
                _finding(
                    "bucket-tls-only", "mandatory", "artifacts-policy", "bucket policy allows plain HTTP"
                )
            ],
            "exemptions": [
                _finding(
                    "k8s-no-privileged",
                    "mandatory",
                    "dcgm-exporter",
                    "container dcgm-exporter runs privileged",
                    reason="DCGM needs the GPU device files to read health counters (SEC-142, until 2027-06)",
                ),
                _finding(
                    "nodegroup-imdsv2",
                    "mandatory",
                    "gpu-h100-od-lt",
                    "launch template allows IMDSv1",
                    reason="the vendor's GPU driver installer reads IMDSv1 (SEC-201)",
                    new=True,
                ),
            ],
            "undecided": [
                _finding(
                    "kms-no-wildcard-principal",
                    "mandatory",
                    "data-key",
                    "key policy is unknown at plan time",
                )
            ],
            "remediation": {
                "bucket-tls-only": "Add an aws.s3.BucketPolicy denying requests with aws:SecureTransport 'false'.",
                "gpu-instance-allowlist": "Use an instance type from the prod allow-list, or extend it.",
                "k8s-no-privileged": "Drop privileged: true; grant only the capabilities the container needs.",
                "k8s-probes": "Give every serving container readiness, liveness and startup probes.",
            },
        },
        "warnings": [
            "secret 'model-hub-token' has no value: Secrets Manager gets the secret without a version. "
            "Set it with `pulumi config set --secret keel:modelHubToken` or in Secrets Manager."
        ],
    }


def plan_review() -> dict[str, Any]:
    """A plain plan of a small dev environment: a review against nothing, so everything is created."""
    resources = [
        _resource("keel:aws:EncryptionKeys", "keys", "keys", "create"),
        _resource("aws:kms/key:Key", "keys-data", "keys", "create"),
        _resource("aws:kms/alias:Alias", "keys-data-alias", "keys", "create"),
        _resource("keel:aws:Network", "network", "network", "create"),
        _resource("aws:ec2/vpc:Vpc", "network-vpc", "network", "create"),
        _resource("pulumi:providers:aws", "aws-dev", "(stack)", "create"),
    ]
    return {
        "environment": "dev",
        "kind": "offline review of declared inputs (Pulumi mock runtime); not a diff against the cloud",
        "base": None,
        "head": {"label": "working tree", "source": "environments/Pulumi.dev.yaml"},
        "counts": {"create": 6, "update": 0, "replace": 0, "delete": 0, "unchanged": 0},
        "resources": resources,
        "cost": {
            "currency": "USD",
            "prices_as_of": "2026-11-27",
            "budget": 5000.0,
            "before": None,
            "after": {"idle": 85.2, "peak": 85.2},
            "delta": None,
            "over_budget": False,
            "complete": True,
            "unpriced": 0,
            "components": [
                {"component": "network", "before": None, "after": {"idle": 79.2, "peak": 79.2}},
                {"component": "keys", "before": None, "after": {"idle": 6.0, "peak": 6.0}},
            ],
            "notes": ["list prices as of 2026-11-27 (us-east-1); spot is an estimate"],
        },
        "policies": {
            "config": "policies/config/dev.json",
            "added": [
                _finding("vpc-flow-logs-enabled", "advisory", "network-vpc", "the VPC has no flow log")
            ],
            "remaining": [],
            "resolved": [],
            "exemptions": [],
            "undecided": [],
            "remediation": {"vpc-flow-logs-enabled": "Add an aws.ec2.FlowLog for the VPC."},
        },
        "warnings": [],
    }


def huge_review(resources: int = 5_000, violations: int = 2_000) -> dict[str, Any]:
    """Thousands of changed resources over 100 components, thousands of violations, every list long."""
    review = prod_review()
    review["resources"] = [
        _resource(
            "aws:ec2/route:Route",
            f"route-{i}",
            f"component-{i % 100}",
            ("create", "update", "replace")[i % 3],
            [] if i % 3 == 0 else [_change("destinationCidrBlock", f"10.0.{i % 250}.0/24", "10.1.0.0/16")],
            protected=i % 50 == 0,
            risk="replaces a protected resource" if i % 50 == 0 else None,
        )
        for i in range(resources)
    ]
    levels = ("mandatory", "advisory")
    review["policies"]["added"] = [
        _finding(f"rule-{i % 40}", levels[i % 2], f"route-{i}", f"violation number {i} of the route")
        for i in range(violations)
    ]
    review["policies"]["resolved"] = review["policies"]["added"][: violations // 4]
    review["policies"]["exemptions"] = [
        # Other findings than the resolved ones: a resolved violation that is now exempted is not resolved.
        {**f, "reason": "a long-standing exception"}
        for f in review["policies"]["added"][violations // 4 : violations // 2]
    ]
    review["cost"]["components"] = [
        {"component": f"component-{i}", "before": None, "after": {"idle": 1.0, "peak": 100.0 - i}}
        for i in range(100)
    ]
    review["counts"] = {"create": 1_667, "update": 1_667, "replace": 1_666, "delete": 0, "unchanged": 0}
    review["warnings"] = [f"warning {i}" for i in range(500)]
    return review


def _check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no snapshot {path}: run with KEEL_UPDATE_SNAPSHOTS=1 to create it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs from the snapshot: if the change is intended, regenerate with KEEL_UPDATE_SNAPSHOTS=1"
    )


def _tokens(text: str) -> list[Token]:
    """Every block and inline token of the comment as a GFM renderer (tables on) parses it."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    return [*tokens, *(child for token in tokens for child in token.children or [])]


def _table_rows(text: str) -> list[list[str]]:
    """Each table row of the comment, as the text of its cells."""
    rows: list[list[str]] = []
    in_cell = False
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        if token.type == "tr_open":
            rows.append([])
        elif token.type in {"th_open", "td_open", "th_close", "td_close"}:
            in_cell = token.type.endswith("open")
        elif token.type == "inline" and in_cell:
            rows[-1].append("".join(child.content for child in token.children or []))
    return rows


# ---------------------------------------------------------------------------------------------- snapshots


def test_prod_review_matches_snapshot() -> None:
    _check_snapshot("review_prod.md", render_review_markdown(prod_review()))


def test_plain_plan_review_matches_snapshot() -> None:
    _check_snapshot("review_plan.md", render_review_markdown(plan_review()))


# ------------------------------------------------------------------------------------------ comment content


def test_first_line_names_the_environment() -> None:
    assert render_review_markdown(prod_review()).splitlines()[0] == "<!-- keel-review:prod -->"
    assert render_review_markdown(plan_review()).splitlines()[0] == "<!-- keel-review:dev -->"


def test_an_environment_that_cannot_name_a_comment_is_refused() -> None:
    review = prod_review()
    review["environment"] = "prod -->"
    with pytest.raises(ValueError, match="'prod -->' cannot name a comment"):
        render_review_markdown(review)


def test_headline_counts_leave_out_zeros_and_say_no_changes() -> None:
    headline = render_review_markdown(plan_review()).splitlines()[3]
    assert headline.startswith("**6 to create**: `working tree` against nothing")
    review = plan_review()
    review["resources"] = []
    review["counts"] = {"create": 0, "update": 0, "replace": 0, "delete": 0, "unchanged": 6}
    assert "**no changes** (6 unchanged)" in render_review_markdown(review)


def test_markers_appear_only_for_what_they_mean() -> None:
    quiet = plan_review()
    quiet["policies"]["added"] = []
    text = render_review_markdown(quiet)
    for marker in (RISK, MANDATORY, ADVISORY, RESOLVED, NEW_EXEMPTION, OVER_BUDGET, SHORTENED):
        assert marker not in text
    loud = render_review_markdown(prod_review())
    for marker in (RISK, MANDATORY, ADVISORY, RESOLVED, NEW_EXEMPTION, OVER_BUDGET):
        assert marker in loud
    assert SHORTENED not in loud


def test_every_marker_is_documented_in_the_module_docstring() -> None:
    assert keel.report.__doc__ is not None
    documented = re.findall(r"^- ``(:[a-z_]+:)``", keel.report.__doc__, re.MULTILINE)
    assert sorted(documented) == sorted(
        (RISK, MANDATORY, ADVISORY, RESOLVED, NEW_EXEMPTION, OVER_BUDGET, SHORTENED)
    )


def test_attention_shows_the_replacing_property_and_why_it_matters() -> None:
    text = render_review_markdown(prod_review())
    attention = text.split("#### :warning: Needs attention", 1)[1].split("####", 1)[0]
    assert "**replace** `artifacts`" in attention
    assert (
        '`bucket`: `"keel-prod-artifacts"` → `"keel-prod-artifacts-v2"` **forces replacement**' in attention
    )
    # The bucket's risk already says what it holds; the protected cluster's update says it separately.
    assert attention.count("the stored objects and all their versions") == 1
    assert "why it matters: replacing or deleting it loses every Kubernetes object and workload" in attention
    assert "tags.purpose" not in attention  # only what forces the replacement
    assert "**update** `cluster`" in attention
    assert '`version`: `"1.33"` → `"1.34"`' in attention
    assert "gpu-l4-spot-ng" not in attention


def test_violations_are_marked_new_or_already_present_with_their_fix() -> None:
    rows = _table_rows(render_review_markdown(prod_review()))
    assert [
        "new",
        "gpu-instance-allowlist",
        "gpu-h100-od-ng",
        "instance type p5.48xlarge is not allowed in prod (allowed: g6.2xlarge, g6.4xlarge, g6e.12xlarge)",
        "Use an instance type from the prod allow-list, or extend it.",
    ] in rows
    assert next(r for r in rows if "k8s-probes" in r)[:3] == ["already present", "k8s-probes", "llama-3-8b"]


def test_secrets_stay_masked_and_long_values_are_shortened() -> None:
    text = render_review_markdown(prod_review())
    assert "`secretString`: (not set) → `[secret]`" in text
    policy_line = next(line for line in text.splitlines() if "`policy`:" in line)
    before, after = re.findall(r"`(…[^`]*)`", policy_line)
    assert max(len(before), len(after)) <= VALUE_WIDTH
    # Both sides are shortened around where they differ, so the difference shows.
    assert before.endswith('\\"Resource\\":\\"*\\"}]}"')
    assert after.endswith('\\"Resource\\":\\"arn:aws:ecr:*\\"}]}"')
    assert "`scalingConfig.maxSize`: `4` → `6`" in text  # whole floats shown as integers
    review = prod_review()
    review["resources"][3]["changes"][0]["after"] = [f"subnet-{i:04d}" for i in range(20)]
    line = next(line for line in render_review_markdown(review).splitlines() if "scalingConfig" in line)
    assert '`4` → `["subnet-0000","subnet-0001","subnet-0002"' in line
    (value,) = re.findall(r"`(\[[^`]*)`", line)
    assert len(value) == VALUE_WIDTH
    assert value.endswith("…")


def _line(text: str, needle: str) -> str:
    return next(line for line in text.splitlines() if needle in line)


def test_a_value_known_after_a_replacement_is_prose_not_a_value() -> None:
    text = render_review_markdown(prod_review())
    line = _line(text, "known after")
    assert line == (
        '  - `bucket`: `"keel-prod-artifacts"` → (known after artifacts is replaced) **forces replacement**'
    )
    shown = _inline(text, "known after")
    assert ("text", " → (known after artifacts is replaced) ") in shown  # prose, not a code span
    assert "null" not in text
    review = prod_review()
    (change,) = review["resources"][7]["changes"]
    change.update(known_after=["vpc", "subnet_a"], replaces=False)
    line = _line(render_review_markdown(review), "known after")
    assert line.endswith("→ (known after vpc and subnet\\_a are replaced)")  # escaped, as all prose
    assert "(known after vpc and subnet_a are replaced)" in _words(_terminal(review))
    change["known_after"] = ["vpc", "subnet-a", "subnet-b", "nat-a", "nat-b"]
    assert "(known after vpc, subnet-a, subnet-b and 2 more are replaced)" in render_review_markdown(review)
    # Without known_after a missing value is still "not set".
    del change["known_after"]
    assert '`bucket`: `"keel-prod-artifacts"` → (not set)\n' in render_review_markdown(review)


def test_a_value_known_after_a_replacement_shows_in_attention_and_stays_short() -> None:
    review = prod_review()
    bucket = review["resources"][6]
    bucket["changes"][0].update(before="x" * 500, after=None, known_after=["a" * 500, "network-vpc"])
    line = _line(render_review_markdown(review), "known after")
    assert line.startswith('  - `bucket`: `"xxx')
    assert (
        f"(known after {'a' * (VALUE_WIDTH // 2 - 1)}… and network-vpc are replaced) **forces replacement**"
        in line
    )
    assert len(line) < 3 * VALUE_WIDTH
    attention = render_review_markdown(review).split("Needs attention", 1)[1].split("####", 1)[0]
    assert "are replaced) **forces replacement**" in attention


def test_new_exemptions_are_marked_first_and_in_the_headline() -> None:
    text = render_review_markdown(prod_review())
    headline = text.split("> Offline review", 1)[0]
    assert (
        f"- {NEW_EXEMPTION} **1 new exemption**: a rule is silenced for a resource; read the reason\n"
        in headline
    )
    section = text.split(f"{NEW_EXEMPTION} **Exemptions: 2** (1 new)\n\n", 1)[1].split("\n\n", 1)[0]
    first, second = section.splitlines()
    assert first.startswith("- **new** `nodegroup-imdsv2` (mandatory) on `gpu-h100-od-lt`:")
    assert first.endswith("reason: the vendor's GPU driver installer reads IMDSv1 (SEC-201)")
    assert second.startswith("- `k8s-no-privileged` (mandatory)")
    review = prod_review()
    review["policies"]["exemptions"][0]["new"] = True
    assert f"{NEW_EXEMPTION} **2 new exemptions**: rules are silenced for resources; read the reasons" in (
        render_review_markdown(review)
    )
    # An exemption the base had too (no "new", or new false) is listed plainly, with no marker.
    for exemption in review["policies"]["exemptions"]:
        exemption["new"] = False
    text = render_review_markdown(review)
    assert NEW_EXEMPTION not in text
    assert "**new** `" not in text.split("**Exemptions: 2**", 1)[1]
    del review["policies"]["exemptions"][1]["new"]
    assert NEW_EXEMPTION not in render_review_markdown(review)


@pytest.mark.parametrize(
    ("before_complete", "after_complete", "change", "sentence"),
    [
        (
            True,
            False,
            "≥",
            "**1 resource is unpriced: the totals are lower bounds (≥).** The cost notes say which.",
        ),
        (
            False,
            True,
            "≤",
            "**The base's estimate had unpriced resources, so the base's totals are lower bounds (≥) and the "
            "changes upper bounds (≤).**\n",
        ),
        (
            False,
            False,
            "≈",
            "**1 resource is unpriced: the totals are lower bounds (≥); the base's estimate had unpriced "
            "resources too, so the base's totals are lower bounds as well and the changes approximate (≈).** "
            "The cost notes say which.",
        ),
    ],
)
def test_a_base_with_unpriced_resources_shows_its_totals_as_lower_bounds(
    before_complete: bool, after_complete: bool, change: str, sentence: str
) -> None:
    review = prod_review()
    review["cost"].update(before_complete=before_complete, complete=after_complete)
    text = render_review_markdown(review)
    before = "≥ " if not before_complete else ""
    after = "≥ " if not after_complete else ""
    assert [
        "peak",
        f"{before}26,196 USD",
        f"{after}61,250 USD",
        f"{change} +35,054 USD",
        "60,000 USD",
        f":moneybag: {after}102.1%",
    ] in _table_rows(text)
    assert sentence in _cost_section(text)
    terminal = _words(_terminal(review))
    assert f"│ {before}26,196 USD │ {after}61,250 USD │ {change} +35,054 USD │" in terminal
    assert sentence.split("**")[1].rstrip(".") in terminal


def test_a_base_estimate_marks_nothing_without_a_base_or_when_complete() -> None:
    review = prod_review()
    review["cost"].update(before_complete=True, complete=True)
    text = render_review_markdown(review)
    assert not {"≥", "≤", "≈"} & set(text)
    plan = plan_review()
    plan["cost"]["before_complete"] = False  # no base figures to qualify
    assert ["peak", "n/a", "85 USD", "n/a", "5,000 USD", "1.7%"] in _table_rows(render_review_markdown(plan))
    assert "base's" not in render_review_markdown(plan)


def test_cost_table_has_before_after_change_budget_and_share() -> None:
    review = prod_review()
    review["cost"].update(complete=True, unpriced=0)
    rows = _table_rows(render_review_markdown(review))
    assert ["idle", "17,726 USD", "27,500 USD", "+9,774 USD", "60,000 USD", "45.8%"] in rows
    assert ["peak", "26,196 USD", "61,250 USD", "+35,054 USD", "60,000 USD", ":moneybag: 102.1%"] in rows
    assert ["gpu-h100-od", "n/a", "9,774 USD", "n/a", "34,219 USD", "+34,219 USD"] in rows
    assert ["models", "69 USD", "n/a", "69 USD", "n/a", "-69 USD"] in rows
    plan_rows = _table_rows(render_review_markdown(plan_review()))
    assert ["peak", "n/a", "85 USD", "n/a", "5,000 USD", "1.7%"] in plan_rows


def _cost_section(text: str) -> str:
    return text.split("#### Monthly cost", 1)[1].split("<details>", 1)[0]


def test_an_incomplete_estimate_shows_lower_bounds() -> None:
    review = prod_review()
    review["cost"]["unpriced"] = 3
    text = render_review_markdown(review)
    rows = _table_rows(text)
    assert ["idle", "17,726 USD", "≥ 27,500 USD", "≥ +9,774 USD", "60,000 USD", "≥ 45.8%"] in rows
    assert [
        "peak",
        "26,196 USD",
        "≥ 61,250 USD",
        "≥ +35,054 USD",
        "60,000 USD",
        ":moneybag: ≥ 102.1%",
    ] in rows
    # Said in the cost section itself, not only in the collapsed notes, and in the headline.
    assert "**3 resources are unpriced: the totals are lower bounds (≥).**" in _cost_section(text)
    headline = text.split("> Offline review", 1)[0]
    assert (
        "- **cost estimate incomplete**: 3 resources are unpriced, so the totals are lower bounds" in headline
    )
    assert "over budget at peak**: at least 61,250 USD a month" in headline
    review["cost"]["unpriced"] = 1
    assert "**1 resource is unpriced: the totals are lower bounds (≥).**" in render_review_markdown(review)


def test_a_complete_estimate_has_no_lower_bounds() -> None:
    review = prod_review()
    del review["cost"]["complete"], review["cost"]["unpriced"]  # a review without them is complete
    texts = [render_review_markdown(review), render_review_markdown(plan_review())]
    for text in texts:
        assert "≥" not in text
        assert "lower bound" not in text
        assert "incomplete" not in text
    assert "over budget at peak**: 61,250 USD a month" in texts[0]


def test_a_new_environment_names_its_stack_file_once() -> None:
    review = prod_review()
    review["base"] = {"label": "HEAD~1 (3f2a9c1): no prod environment yet", "source": None}
    review["cost"].update(before={"idle": 0, "peak": 0}, delta=review["cost"]["after"])
    text = render_review_markdown(review)
    assert "None" not in text
    assert "Stack file `environments/Pulumi.prod.yaml` (new).\n" in text
    assert "`HEAD~1 (3f2a9c1): no prod environment yet` → `working tree`" in text
    assert ["idle", "0 USD", "≥ 27,500 USD", "≥ +27,500 USD", "60,000 USD", "≥ 45.8%"] in _table_rows(text)
    assert "None" not in _terminal(review)
    # An existing environment's stack file is not new, even when it moved.
    review = prod_review()
    review["base"]["source"] = "environments/old/Pulumi.prod.yaml"
    text = render_review_markdown(review)
    assert "Stack file `environments/old/Pulumi.prod.yaml` → `environments/Pulumi.prod.yaml`.\n" in text


def test_no_policies_and_no_cost_are_said_plainly() -> None:
    review = plan_review()
    review["policies"] = None
    review["cost"] = None
    text = render_review_markdown(review)
    assert "Not evaluated: the plan was made without the policy pack." in text
    assert "The plan has no cost estimate." in text


# ---------------------------------------------------------------------------------------------- escaping


def test_configured_text_cannot_break_the_comment() -> None:
    review = prod_review()
    hostile = "a | b \\| c <script>alert(1)</script> `tick` *bold* [link](http://x) &amp;\nnext line"
    review["policies"]["added"][0]["message"] = hostile
    review["policies"]["added"][0]["policy"] = "rule|with`pipe"
    review["policies"]["remediation"]["rule|with`pipe"] = "fix | it </details>"
    review["policies"]["exemptions"][0]["reason"] = hostile
    review["resources"][3]["changes"][0]["after"] = "x | y </details> <script>"
    review["resources"][0]["component"] = "</summary><script>"
    text = render_review_markdown(review)
    tokens = _tokens(text)
    raw_html = [t.content for t in tokens if t.type in {"html_inline", "html_block"}]
    assert not any("<script" in chunk for chunk in raw_html), raw_html
    assert not any(t.type in {"link_open", "strong_open"} and "bold" in t.content for t in tokens)
    assert sum(1 for t in tokens if t.type == "link_open") == 0
    row = next(r for r in _table_rows(text) if r and r[0] == "new")
    assert row == [
        "new",
        "rule|with`pipe",
        "gpu-h100-od-ng",
        # `tick` is a code span, which Markdown shows literally (the cell's text is its content).
        "a | b \\| c <script>alert(1)</script> tick *bold* [link](http://x) &amp; next line",
        "fix | it </details>",
    ]
    assert ("code_inline", "tick") in [(t.type, t.content) for t in tokens]
    # The only raw HTML is the comment's own: its marker and the collapsible sections.
    allowed = re.compile(
        r"^(<!-- keel-review:prod -->|<details><summary>[^<>]*(<code>[^<>]*</code>[^<>]*)?</summary>|</details>)$"
    )
    for chunk in raw_html:
        assert all(allowed.match(line) for line in chunk.strip().splitlines()), chunk


def _inline(text: str, needle: str) -> list[tuple[str, str]]:
    """(type, content) of the inline tokens of the first paragraph or cell holding ``needle``."""
    block = next(t for t in _tokens(text) if t.type == "inline" and needle in t.content)
    return [(child.type, child.content) for child in block.children or []]


def test_code_spans_in_configured_text_stay_code_spans() -> None:
    review = prod_review()
    review["policies"]["remediation"]["gpu-instance-allowlist"] = (
        "Run `keel cost ENV` to see the peak; `a | b` in `<script>` and ``x ` y``, never <b>bold</b>."
    )
    text = render_review_markdown(review)
    assert "\\`" not in text  # no visible backslash before a backtick anywhere
    fix = _inline(text, "keel cost ENV")
    assert ("code_inline", "keel cost ENV") in fix
    assert ("code_inline", "a | b") in fix  # escaped for the table, shown as written
    assert ("code_inline", "<script>") in fix
    assert ("code_inline", "x ` y") in fix
    assert not [t for t in _tokens(text) if t.type == "html_inline"]
    row = next(r for r in _table_rows(text) if r and r[0] == "new")
    assert len(row) == 5  # the pipe did not add a cell
    assert row[4] == "Run keel cost ENV to see the peak; a | b in <script> and x ` y, never <b>bold</b>."
    warning = _inline(text.split("#### Warnings", 1)[1], "model-hub-token")
    assert ("code_inline", "pulumi config set --secret keel:modelHubToken") in warning


@pytest.mark.parametrize(
    ("message", "shown", "spans"),
    [
        ("unbalanced `keel cost | ENV", "unbalanced `keel cost | ENV", []),
        ("three `one` `two", "three one `two", ["one"]),
        ("``double` only", "``double` only", []),
        ("a span `across\nlines` | then `code`", "a span `across lines` | then code", ["code"]),
    ],
)
def test_unbalanced_backticks_stay_literal(message: str, shown: str, spans: list[str]) -> None:
    review = prod_review()
    review["policies"]["added"][0]["message"] = message
    review["policies"]["remediation"]["gpu-instance-allowlist"] = message
    review["warnings"] = [message]
    text = render_review_markdown(review)
    row = next(r for r in _table_rows(text) if r and r[0] == "new")
    assert row[3:] == [shown, shown]
    (item,) = [t for t in _tokens(text.split("#### Warnings", 1)[1]) if t.type == "inline"]
    assert "".join(child.content for child in item.children or []) == shown
    # No code span swallowed a pipe, and the only spans are the message's balanced ones.
    assert not any(t.type == "code_inline" and "|" in t.content for t in _tokens(text))
    assert [child.content for child in item.children or [] if child.type == "code_inline"] == spans


# ---------------------------------------------------------------------------------------------- length


@pytest.mark.parametrize("limit", [MIN_LIMIT, 12_000, 30_000, DEFAULT_LIMIT])
def test_huge_review_fits_the_limit_and_keeps_the_summary(limit: int) -> None:
    review = huge_review()
    text = render_review_markdown(review, limit=limit)
    assert len(text) <= limit
    assert text.startswith("<!-- keel-review:prod -->\n### Keel review: `prod`\n")
    assert "**1,667 to create, 1,667 to change, 1,666 to replace**" in text
    assert f"{MANDATORY} **1,000 mandatory violations** (1,000 new)" in text
    assert f"{RISK} **100 changes to stateful or protected resources need attention**" in text
    assert "| peak | 26,196 USD | ≥ 61,250 USD | ≥ +35,054 USD | 60,000 USD | :moneybag: ≥ 102.1% |" in text
    assert f"{SHORTENED} **Shortened to fit a GitHub comment ({limit:,} characters).**" in text
    assert "`keel diff prod --base <ref>`" in text
    mandatory = text.split(f"{MANDATORY} **Mandatory violations: 1,000**", 1)[1].split(ADVISORY, 1)[0]
    assert "| **new** | `rule-0` | `route-0` | violation number 0 of the route |  |" in mandatory
    assert re.search(r"\*…[\d,]+ more not shown\.\*", mandatory)


def test_shortening_drops_detail_before_anything_else() -> None:
    review = prod_review()
    full = render_review_markdown(review)
    review["resources"] += [
        _resource("aws:ec2/route:Route", f"route-{i}", "routes", "update", [_change("x", i, i + 1)])
        for i in range(2_000)
    ]
    limit = len(full) + 2_000
    text = render_review_markdown(review, limit=limit)
    assert len(text) <= limit
    assert "the per-resource detail of 1 of 7 components (`routes`)" in text
    assert "<code>backups</code>" in text  # the smaller components keep their detail
    assert "not shown" not in text  # no list was cut
    assert "| `gpu-h100-od` |" in text  # nor the cost table


def test_a_comment_under_the_limit_is_not_shortened() -> None:
    text = render_review_markdown(prod_review())
    assert render_review_markdown(prod_review(), limit=len(text)) == text
    shorter = render_review_markdown(prod_review(), limit=len(text) - 1)
    assert len(shorter) < len(text)
    assert SHORTENED in shorter


def test_hostile_lengths_still_fit_the_smallest_limit() -> None:
    review = huge_review(resources=200, violations=50)
    review["environment"] = "e" * 63
    review["base"]["label"] = "b" * 10_000
    review["base"]["source"] = "t" * 10_000
    review["head"]["source"] = "s" * 10_000
    review["policies"]["config"] = "c" * 10_000
    review["cost"]["currency"] = "U" * 1_000
    review["cost"]["prices_as_of"] = "d" * 1_000
    review["policies"]["added"][0]["message"] = "m" * 100_000
    for resource in review["resources"]:
        resource["component"] = resource["component"] * 200
    text = render_review_markdown(review, limit=MIN_LIMIT)
    assert len(text) <= MIN_LIMIT
    assert text.startswith(f"<!-- keel-review:{'e' * 63} -->\n")
    assert f"`{'b' * (LABEL_WIDTH - 1)}…` → `working tree`" in text  # labels clipped, never dropped
    assert f"{MANDATORY} **25 mandatory violations** (25 new)" in text


def test_a_limit_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        render_review_markdown(prod_review(), limit=MIN_LIMIT - 1)


# ---------------------------------------------------------------------------------------------- terminal


def _terminal(review: dict[str, Any]) -> str:
    console = Console(record=True, width=120)
    render_review_text(review, console)
    return console.export_text()


def _words(text: str) -> str:
    """Text with its line wrapping undone (the facts tested are content, not layout)."""
    return " ".join(text.split())


def test_terminal_view_has_the_key_facts() -> None:
    text = _words(_terminal(prod_review()))
    for fact in (
        "Review prod: HEAD~1 (3f2a9c1) → working tree: 3 to create, 4 to change, 2 to replace, 1 to delete",
        "not a diff against deployed state",
        "Needs attention (2)",
        "replace artifacts",
        "replaces a stateful resource: the stored objects and all their versions",
        "why it matters: replacing or deleting it loses every Kubernetes object and workload in it",
        'bucket: "keel-prod-artifacts" → "keel-prod-artifacts-v2" (forces replacement)',
        "new gpu-instance-allowlist gpu-h100-od-ng",
        "already present k8s-probes llama-3-8b",
        "fix: Use an instance type from the prod allow-list",
        "resolved bucket-tls-only",
        "exempted k8s-no-privileged",
        "reason: DCGM needs the GPU device files",
        "1 new exemption: a rule is silenced for a resource; read the reason",
        "new exempted nodegroup-imdsv2 (mandatory) gpu-h100-od-lt: launch template allows IMDSv1",
        'bucket: "keel-prod-artifacts" → (known after artifacts is replaced) (forces replacement)',
        "undecided kms-no-wildcard-principal",
        "OVER BUDGET ≥ 102.1%",
        "+35,054 USD",
        "secretString: (not set) → [secret]",
        "delete llama-legacy-pdb",
        "warning: secret 'model-hub-token' has no value",
    ):
        assert fact in text, fact


def test_terminal_view_shows_lower_bounds_and_configured_text_as_written() -> None:
    review = prod_review()
    review["policies"]["remediation"]["gpu-instance-allowlist"] = "Run `keel cost ENV` | see [bold]x[/bold]"
    text = _words(_terminal(review))
    for fact in (
        "cost estimate incomplete: 1 resource is unpriced, so the totals are lower bounds",
        "over budget at peak: at least 61,250 USD a month",
        "│ ≥ 27,500 USD │ ≥ +9,774 USD │ 60,000 USD │ ≥ 45.8%",
        "OVER BUDGET ≥ 102.1%",
        "1 resource is unpriced: the totals are lower bounds (≥)",
        "fix: Run `keel cost ENV` | see [bold]x[/bold]",  # no Markdown escapes, no Rich markup
        "Set it with `pulumi config set --secret keel:modelHubToken` or in Secrets Manager.",
    ):
        assert fact in text, fact
    review["cost"].update(complete=True, unpriced=0)
    text = _terminal(review)
    assert "≥" not in text
    assert "lower bound" not in text


def test_terminal_view_groups_changes_by_component_in_a_tree() -> None:
    lines = _terminal(prod_review()).splitlines()
    start = lines.index("Changes by component")
    tree = lines[start:]
    component = next(i for i, line in enumerate(tree) if "backups" in line and "2 to replace" in line)
    assert "replace artifacts aws:s3/bucket:Bucket [protected]" in tree[component + 1]
    assert "bucket:" in tree[component + 2]
    assert tree[component + 2].index("bucket:") > tree[component + 1].index("replace")  # a child


def test_terminal_view_colours_by_action_and_level() -> None:
    console = Console(record=True, width=120, color_system="standard")
    render_review_text(prod_review(), console)
    styled = console.export_text(styles=True)
    red, green, yellow, cyan = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m"
    for colour, text in (
        (green, "create"),
        (yellow, "update"),
        (red, "replace"),
        (red, "delete"),
        (red, "gpu-instance-allowlist"),
        (yellow, "k8s-probes"),
        (cyan, "exempted"),
    ):
        assert f"{colour}{text}\x1b[0m" in styled, text
    assert "\x1b[1;36m new exemption\x1b[0m" in styled  # bold in the headline (Rich styles the count apart)


def test_terminal_view_is_never_shortened() -> None:
    text = _terminal(huge_review(resources=600, violations=300))
    assert "route-599" in text
    assert "violation number 299" in text
    assert "not shown" not in text


def test_rendering_does_not_change_the_review() -> None:
    review = prod_review()
    before = copy.deepcopy(review)
    render_review_markdown(review, limit=MIN_LIMIT)
    render_review_text(review, Console(record=True, width=120))
    assert review == before
