"""Shared fixtures: the shipped environments planned once per session with the same engine as `keel plan`."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from keel.plan import ENVIRONMENTS_DIR, Plan, environment_file, plan_environment

SHIPPED = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    """Each shipped environment, planned offline (the same call `keel plan ENV` makes)."""
    return {env: plan_environment(environment_file(env)) for env in SHIPPED}


def shipped_config(env: str) -> dict[str, Any]:
    """A deep copy of a shipped stack file, to mutate in a test."""
    return copy.deepcopy(yaml.safe_load(environment_file(env).read_text()))


@pytest.fixture
def write_env(tmp_path: Path) -> Callable[..., Path]:
    """Write a stack file named Pulumi.<env>.yaml into a fresh environments dir (optionally with siblings)."""

    def write(env: str, document: dict[str, Any] | str, *, siblings: tuple[str, ...] = ()) -> Path:
        for sibling in siblings:
            (tmp_path / f"Pulumi.{sibling}.yaml").write_text(
                (ENVIRONMENTS_DIR / f"Pulumi.{sibling}.yaml").read_text()
            )
        path = tmp_path / f"Pulumi.{env}.yaml"
        path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
        return path

    return write
