"""The `keel` command: exit codes, output formats, clear errors and no leaked secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app
from tests.conftest import shipped_config

runner = CliRunner()


def test_plan_json_has_the_documented_shape() -> None:
    result = runner.invoke(app, ["plan", "prod", "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert {"environment", "cloud", "region", "resources", "outputs"} <= set(plan)
    assert (plan["environment"], plan["cloud"], plan["region"]) == ("prod", "aws", "us-east-1")
    first = plan["resources"][0]
    assert {"urn", "type", "name", "parent", "provider", "inputs", "protect"} <= set(first)
    assert plan["outputs"]["kubeconfig"] == "[secret]"
    assert plan["outputs"]["clusterName"] == "keel-prod"


def test_plan_text_shows_tree_counts_and_honesty_note() -> None:
    result = runner.invoke(app, ["plan", "dev"])
    assert result.exit_code == 0, result.output
    assert "Environment dev (tier dev" in result.stdout
    assert "not a diff against deployed state" in result.stdout
    assert "keel:aws:Cluster" in result.stdout
    assert "Resources by type" in result.stdout
    assert "httpTokens=required" in result.stdout


def test_plan_markdown_is_a_pr_comment() -> None:
    result = runner.invoke(app, ["plan", "staging", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    # The same comment as `keel diff`, reviewing a change from nothing: everything is created.
    assert result.stdout.startswith("<!-- keel-review:staging -->\n### Keel review: `staging`")
    assert "**152 to create**" in result.stdout
    assert "<details><summary><code>cluster</code>" in result.stdout
    assert "#### Monthly cost" in result.stdout


def test_plan_several_environments_in_one_process() -> None:
    result = runner.invoke(app, ["plan", "dev", "staging", "prod"])
    assert result.exit_code == 0, result.output
    for env in ("dev", "staging", "prod"):
        assert f"Environment {env} (tier {env}" in result.stdout
    # URNs carry each stack's own name: state was reset between runs.
    assert "urn:pulumi:dev" not in result.stdout


def test_plan_with_stack_config_file(write_env: Callable[..., Path]) -> None:
    path = write_env("sandbox", shipped_config("dev"))
    result = runner.invoke(app, ["plan", "--stack-config", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["environment"] == "sandbox"
    assert all(r["urn"].startswith("urn:pulumi:sandbox::keel::") for r in plan["resources"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["plan"], "name an environment to plan"),
        (["plan", "qa"], "no environment qa"),
        (["plan", "dev", "prod", "--format", "json"], "one environment at a time"),
        (["plan", "dev", "--format", "yaml"], "Invalid value"),
    ],
)
def test_usage_errors_exit_2(args: list[str], fragment: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert fragment in result.output


def test_bad_config_exits_2_with_one_clear_message(write_env: Callable[..., Path]) -> None:
    document = shipped_config("prod")
    document["config"]["keel:cluster"]["publicAccessCidrs"] = ["203.0.113.0/24"]
    path = write_env("prod", document)
    result = runner.invoke(app, ["plan", "--stack-config", str(path)])
    assert result.exit_code == 2
    assert "keel:cluster.publicAccessCidrs" in result.output
    assert "prod requires a private-only API endpoint" in result.output
    assert isinstance(result.exception, SystemExit)


def test_secret_values_never_printed(write_env: Callable[..., Path]) -> None:
    document = shipped_config("dev")
    document["config"]["keel:modelHubToken"] = {"secure": "v1:CIPHERTEXT-MUST-NOT-LEAK"}
    path = write_env("dev", document)
    for output_format in ("text", "json", "markdown"):
        result = runner.invoke(app, ["plan", "--stack-config", str(path), "--format", output_format])
        assert result.exit_code == 0, result.output
        assert "CIPHERTEXT" not in result.output
    plan = json.loads(runner.invoke(app, ["plan", "--stack-config", str(path), "-f", "json"]).stdout)
    versions = [r for r in plan["resources"] if r["type"] == "aws:secretsmanager/secretVersion:SecretVersion"]
    assert [v["inputs"]["secretString"] for v in versions] == ["[secret]"]


def test_real_entry_point_exit_code_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.dev.yaml"
    bad.write_text("config:\n  keel:tier: qa\n")
    keel = Path(sys.executable).parent / "keel"
    completed = subprocess.run(
        [str(keel), "plan", "--stack-config", str(bad)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr + completed.stdout
    assert "keel:tier = 'qa'" in completed.stderr
