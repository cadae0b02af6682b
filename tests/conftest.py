"""Shared fixtures: the shipped environments planned once per session with the same engine as `keel plan`."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from keel.config import read_stack_file, spec_from_file
from keel.plan import ENVIRONMENTS_DIR, Plan, environment_file, plan_environment, plan_stack_file
from stacks.spec import CONFIG_NAMESPACE

SHIPPED = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    """Each shipped environment, planned offline (the same call `keel plan ENV` makes)."""
    return {env: plan_environment(environment_file(env)) for env in SHIPPED}


def shipped_config(env: str) -> dict[str, Any]:
    """A deep copy of a shipped stack file, to mutate in a test."""
    return copy.deepcopy(yaml.safe_load(environment_file(env).read_text()))


def plan_with_secret(env: str, value: str) -> Plan:
    """The shipped environment planned with ``value`` set, as a secret, for its first secret's config key (what
    ``pulumi config set --secret`` would do): for tests that the value never reaches any output."""
    stack_file = read_stack_file(environment_file(env))
    config_key = f"{CONFIG_NAMESPACE}:{spec_from_file(stack_file).secrets[0].config_key}"
    with_secret = dataclasses.replace(
        stack_file,
        values={**stack_file.values, config_key: value},
        secret_keys=stack_file.secret_keys | {config_key},
    )
    return plan_stack_file(with_secret, spec_from_file(with_secret))


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
