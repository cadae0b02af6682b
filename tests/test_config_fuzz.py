"""Property: no mutation of a valid config makes `keel plan` crash. It plans (exit 0) or explains (exit 2)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from keel.cli import app
from tests.conftest import SHIPPED, shipped_config

runner = CliRunner()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["10.0.0.0/8", "0.0.0.0/0", "g6.xlarge", "prod", "us-east-1", "", "1.33", "arn:aws:iam::1:role/x"]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    env = draw(st.sampled_from(SHIPPED))
    document = copy.deepcopy(shipped_config(env))
    config = document["config"]
    path = draw(st.sampled_from(_paths(config)))
    parent: Any = config
    for part in path[:-1]:
        parent = parent[part]
    action = draw(st.sampled_from(["replace", "delete", "add-sibling"]))
    if action == "replace":
        parent[path[-1]] = draw(values)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = draw(values)
    else:
        parent.append(draw(values))
    return env, document


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated_configs())
def test_mutated_config_never_crashes(tmp_path_factory: Any, case: tuple[str, dict[str, Any]]) -> None:
    env, document = case
    directory: Path = tmp_path_factory.mktemp("fuzz")
    path = directory / f"Pulumi.{env}.yaml"
    path.write_text(yaml.safe_dump(document))
    result = runner.invoke(app, ["plan", "--stack-config", str(path), "--format", "json"])
    assert isinstance(result.exception, SystemExit) or result.exception is None, result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert str(path) in result.output
        assert "Traceback" not in result.output
