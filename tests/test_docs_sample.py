"""docs/sample-review.md is the real comment `keel diff` writes for a documented change, kept exact by this test.

The change (the one docs/reviewing.md walks through): prod gains a canary copy of its 7B model, its L4 pool's
``maxSize`` goes from 8 to 10 to make room for it, and its L40S pool's from 4 to 8. The last one breaks the prod
GPU cap, so the comment shows a new mandatory violation with its fix next to the cost delta.

The base is a saved plan of the shipped prod environment (``--base-plan``), so the comment does not depend on
commit ids. After a deliberate change to the report, regenerate the sample with
``KEEL_UPDATE_SNAPSHOTS=1 .venv/bin/pytest -p no:xdist tests/test_docs_sample.py``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from keel.cli import EXIT_VIOLATIONS, app
from tests.conftest import shipped_config

SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "sample-review.md"
runner = CliRunner()


def canary_change(config: dict[str, Any]) -> None:
    """The pull request the sample reviews (see the module docstring)."""
    pools = {pool["name"]: pool for pool in config["keel:gpuPools"]}
    pools["l4"]["maxSize"] = 10
    pools["l40s-x4"]["maxSize"] = 8
    models = config["keel:models"]
    canary = copy.deepcopy(next(m for m in models if m["name"] == "qwen2-5-7b"))
    canary.update(name="qwen2-5-7b-canary", maxReplicas=2)
    models.insert(1, canary)


def test_sample_comment_is_what_keel_diff_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # paths in the comment are shown relative to the working directory
    saved = runner.invoke(app, ["plan", "prod", "--format", "json"])
    assert saved.exit_code == 0, saved.output
    Path("prod-before.json").write_text(saved.stdout)
    document = shipped_config("prod")
    canary_change(document["config"])
    Path("environments").mkdir()
    Path("environments/Pulumi.prod.yaml").write_text(yaml.safe_dump(document, sort_keys=False))

    result = runner.invoke(
        app,
        [
            "diff",
            "prod",
            "--base-plan",
            "prod-before.json",
            "--environments-dir",
            "environments",
            "--format",
            "markdown",
        ],
    )
    assert result.exit_code == EXIT_VIOLATIONS, result.output  # the GPU cap blocks it, as the guide explains
    if os.environ.get("KEEL_UPDATE_SNAPSHOTS"):
        SAMPLE.write_text(result.stdout)
    assert result.stdout == SAMPLE.read_text(), "regenerate with KEEL_UPDATE_SNAPSHOTS=1 (module docstring)"


def test_sample_shows_what_the_guide_says_it_shows() -> None:
    sample = SAMPLE.read_text()
    assert sample.startswith("<!-- keel-review:prod -->\n")
    assert "**13 to create, 2 to change**" in sample
    assert "| **new** | `gpu-count-cap` |" in sample
    assert "`scalingConfig.maxSize`: `2` → `6`" in sample  # the L40S spot burst group: 8 - 2 on-demand
    # Peak delta, from keel/prices/aws.yaml: 4 more g6e.12xlarge spot nodes (500 GB root) and 2 more g6.4xlarge
    # spot nodes (200 GB root), spot at 0.4 x on-demand, gp3 at 0.08 per GB-month, 730 hours.
    delta = 4 * (10.49264 * 0.4 * 730 + 500 * 0.08) + 2 * (1.3232 * 0.4 * 730 + 200 * 0.08)
    assert f"+{delta:,.0f} USD" in sample
    # Idle: the canary's 2 minimum replicas need 2 more L4 nodes, which the autoscaler adds as spot.
    assert f"+{2 * (0.9776 * 0.4 * 730 + 200 * 0.08):,.0f} USD" in sample
