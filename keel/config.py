"""Loads stack config files (``environments/Pulumi.<env>.yaml``) into validated specs, with clear errors.

Errors name the file, the key path, the value and what is allowed; ``keel`` turns them into exit status 2.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacks.spec import (
    CONFIG_NAMESPACE,
    EnvironmentSpec,
    Problem,
    SpecError,
    overlapping_networks,
    parse_spec,
)

SECRET_PLACEHOLDER = "[secret]"
#: Top-level keys of a stack file besides ``config`` that the Pulumi CLI writes.
_STACK_FILE_KEYS = {"config", "encryptionsalt", "secretsprovider", "encryptedkey", "environment"}


@dataclass(frozen=True)
class StackFile:
    """A parsed stack config file: decoded values and which keys are secret (their values never kept)."""

    path: Path
    environment: str
    values: Mapping[str, Any]
    secret_keys: frozenset[str]

    def engine_config(self) -> dict[str, str]:
        """Config as the engine passes it to a program: strings, objects JSON-encoded, secrets masked."""
        return {
            key: value if isinstance(value, str) else json.dumps(value) for key, value in self.values.items()
        }


def environment_name(path: Path) -> str:
    """``Pulumi.prod.yaml`` -> ``prod``; any other file name -> its stem."""
    name = path.name
    for suffix in (".yaml", ".yml"):
        if name.startswith("Pulumi.") and name.endswith(suffix):
            return name[len("Pulumi.") : -len(suffix)]
    return path.stem


def read_stack_file(path: Path) -> StackFile:
    """Parse a stack file; a missing file, malformed YAML or a wrong shape raises ``SpecError``."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(source, [Problem("(file)", "does not exist", has_value=False)]) from None
    except OSError as error:
        raise SpecError(
            source, [Problem("(file)", f"cannot be read: {error.strerror}", has_value=False)]
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(error, "problem", None) or str(error)
        raise SpecError(source, [Problem(where, f"is not valid YAML: {reason}", has_value=False)]) from None
    if not isinstance(document, dict) or not isinstance(document.get("config"), dict):
        raise SpecError(
            source,
            [
                Problem(
                    "config",
                    "a stack file must be a mapping with a `config:` mapping",
                    document if not isinstance(document, dict) else document.get("config"),
                )
            ],
        )
    unknown = sorted(set(document) - _STACK_FILE_KEYS)
    if unknown:
        raise SpecError(
            source,
            [
                Problem(
                    k, "unknown top-level key; Keel's settings go under `config:` as keel:<key>", document[k]
                )
                for k in unknown
            ],
        )
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    for raw_key, value in document["config"].items():
        key = str(raw_key)
        is_secret = isinstance(value, dict) and set(value) == {"secure"}
        if is_secret:
            secrets.add(key)
        values[key] = SECRET_PLACEHOLDER if is_secret else value
    return StackFile(
        path=path, environment=environment_name(path), values=values, secret_keys=frozenset(secrets)
    )


def spec_from_file(stack_file: StackFile) -> EnvironmentSpec:
    """Validate a stack file into a spec (``SpecError`` on any problem)."""
    return parse_spec(
        stack_file.values,
        environment=stack_file.environment,
        source=str(stack_file.path),
        secret_keys=stack_file.secret_keys,
    )


def check_isolation(stack_file: StackFile, spec: EnvironmentSpec) -> None:
    """Environments in the same directory must not share address space (they may be peered one day)."""
    networks = {spec.environment: spec.network.cidr}
    sources = {spec.environment: stack_file.path}
    for sibling in sorted(stack_file.path.parent.glob("Pulumi.*.yaml")):
        name = environment_name(sibling)
        if name in networks or sibling.resolve() == stack_file.path.resolve():
            continue
        try:
            raw = yaml.safe_load(sibling.read_text(encoding="utf-8")) or {}
            cidr = raw["config"][f"{CONFIG_NAMESPACE}:network"]["cidr"]
            networks[name] = ipaddress.IPv4Network(cidr)
            sources[name] = sibling
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
            continue  # a broken sibling is reported when it is planned itself
    problems = [
        Problem(
            f"{CONFIG_NAMESPACE}:network.cidr",
            f"overlaps {networks[other]} of environment {other!r} ({sources[other]}); "
            "environments must not share address space",
            str(spec.network.cidr),
        )
        for pair in overlapping_networks(networks)
        if spec.environment in pair
        for other in pair
        if other != spec.environment
    ]
    if problems:
        raise SpecError(str(stack_file.path), problems)


def load_environment(path: Path) -> tuple[StackFile, EnvironmentSpec]:
    """Read, validate and isolation-check one environment's stack file."""
    stack_file = read_stack_file(path)
    spec = spec_from_file(stack_file)
    check_isolation(stack_file, spec)
    return stack_file, spec
