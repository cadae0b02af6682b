"""The pack over the shipped environments, broken environments, and the README's rule table."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.plan import Plan
from keel.policy import POLICY_CONFIG_DIR, load_policy_config, rule_table
from keel.render import render_rule_table_markdown
from policies.framework import RULES
from tests.conftest import SHIPPED, shipped_config

runner = CliRunner()
README = Path(__file__).resolve().parent.parent / "README.md"


def test_at_least_35_rules_across_the_domains() -> None:
    assert len(RULES) >= 35
    assert {r.domain for r in RULES} == {
        "network",
        "cluster",
        "compute",
        "data",
        "secrets",
        "cost",
        "kubernetes",
        "tagging",
    }
    for rule in RULES:
        assert re.fullmatch(r"[a-zA-Z0-9_.-]{1,100}", rule.name)
        assert rule.name != "all"
        assert rule.description.endswith(".")
        assert len(rule.remediation) > 20


@pytest.mark.parametrize("env", SHIPPED)
def test_shipped_environments_have_no_mandatory_violations(plans: dict[str, Plan], env: str) -> None:
    report = plans[env].policies
    assert report is not None
    assert report.config_file == f"policies/config/{env}.json"
    assert report.mandatory == (), [(v.policy, v.urn, v.message) for v in report.mandatory]
    assert report.undecided == ()


def test_dev_advises_on_cost_and_availability_and_blocks_on_security() -> None:
    settings = load_policy_config(POLICY_CONFIG_DIR / "dev.json")
    for rule in RULES:
        expected = "mandatory" if rule.category == "security" else "advisory"
        assert settings[rule.name].level.value == expected, rule.name


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_staging_and_prod_block_on_everything(env: str) -> None:
    settings = load_policy_config(POLICY_CONFIG_DIR / f"{env}.json")
    assert sorted(name for name, s in settings.items() if s.level.value != "mandatory") == []


def test_prod_settings_are_stricter() -> None:
    prod = load_policy_config(POLICY_CONFIG_DIR / "prod.json")
    dev = load_policy_config(POLICY_CONFIG_DIR / "dev.json")
    assert prod["backup-vault-locked-and-copied"].config["requireVaultLock"] is True
    assert prod["backup-vault-locked-and-copied"].config["requireCrossRegionCopy"] is True
    assert prod["stateful-resources-protected"].config["requireProtect"] is True
    assert prod["k8s-image-pinned"].config["requireDigest"] is True
    assert prod["eks-endpoint-private"].config["allowPublicCidrs"] is False
    assert dev["eks-endpoint-private"].config["allowPublicCidrs"] is True


def test_readme_rule_table_matches_the_code() -> None:
    text = README.read_text()
    match = re.search(r"<!-- rules:start -->\n(.*?)\n<!-- rules:end -->", text, re.S)
    assert match, "README lacks the rules table markers"
    assert match.group(1) == render_rule_table_markdown(rule_table()), (
        "README rule table is stale: paste the output of `keel policies --format markdown` between the markers"
    )


def test_plan_json_carries_the_policies_section() -> None:
    result = runner.invoke(app, ["plan", "prod", "--format", "json"])
    assert result.exit_code == 0, result.output
    policies = json.loads(result.stdout)["policies"]
    assert set(policies) >= {"violations", "exemptions", "undecided"}
    assert [v for v in policies["violations"] if v["level"] == "mandatory"] == []


def test_policies_command_json() -> None:
    result = runner.invoke(app, ["policies", "--format", "json"])
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert {row["name"] for row in table} == {rule.name for rule in RULES}
    assert all(set(row["levels"]) == {"dev", "staging", "prod"} for row in table)


# ------------------------------------------------------------------------------- broken environments

Mutation = Callable[[dict[str, Any]], None]


def _set(section: str, key: str, value: Any) -> Mutation:
    return lambda config: config[f"keel:{section}"].__setitem__(key, value)


def _pool(index: int, key: str, value: Any) -> Mutation:
    return lambda config: config["keel:gpuPools"][index].__setitem__(key, value)


BROKEN = [
    # (case, environment, mutation, expected exit, the rule or key that must be named)
    (
        "public endpoint in prod",
        "prod",
        _set("cluster", "publicAccessCidrs", ["203.0.113.0/24"]),
        2,
        "keel:cluster.publicAccessCidrs",
    ),
    ("budget missing", "prod", lambda c: c.pop("keel:budget"), 2, "keel:budget"),
    ("backups unlocked in prod", "prod", _set("backups", "vaultLock", False), 2, "keel:backups.vaultLock"),
    (
        "backups not copied in prod",
        "prod",
        lambda c: c["keel:backups"].pop("copyRegion"),
        2,
        "keel:backups.copyRegion",
    ),
    ("gpu cap exceeded", "prod", _pool(0, "maxSize", 30), 1, "gpu-count-cap"),
    (
        "unpinned image",
        "prod",
        lambda c: c["keel:models"][0].__setitem__("image", "vllm/vllm-openai:latest"),
        2,
        "keel:models[0].image",
    ),
    (
        "gpu type outside the allow-list",
        "prod",
        _pool(1, "instanceTypes", ["p5.48xlarge"]),
        1,
        "gpu-instance-allowlist",
    ),
]


@pytest.mark.parametrize(
    ("env", "mutate", "exit_code", "named"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN]
)
def test_fails_on_broken_environment(
    write_env: Callable[..., Path], env: str, mutate: Mutation, exit_code: int, named: str
) -> None:
    document = shipped_config(env)
    mutate(document["config"])
    path = write_env(env, document)
    result = runner.invoke(
        app, ["plan", "--stack-config", str(path), "--policy-config", str(POLICY_CONFIG_DIR / f"{env}.json")]
    )
    assert result.exit_code == exit_code, result.output
    assert named in result.output


@pytest.mark.parametrize(("env", "level", "exit_code"), [("dev", "advisory", 0), ("prod", "mandatory", 1)])
def test_peak_spend_over_budget_follows_the_environment_config(
    write_env: Callable[..., Path], env: str, level: str, exit_code: int
) -> None:
    document = shipped_config(env)
    document["config"]["keel:budget"]["monthlyLimitUsd"] = 500
    path = write_env(env, document)
    result = runner.invoke(app, ["plan", "--stack-config", str(path), "-f", "json"])
    assert result.exit_code == exit_code, result.output
    plan = json.loads(result.stdout)
    violations = plan["policies"]["violations"]
    assert [(v["policy"], v["level"]) for v in violations] == [("peak-spend-within-budget", level)]
    # The policy states the same peak the plan's cost section computes.
    assert f"peak spend ${plan['cost']['peak']['total']:,.0f}/month" in violations[0]["message"]
