"""Runs the policy pack offline over a planned graph, the way ``pulumi preview --policy-pack`` would.

The same CrossGuard policy objects the engine loads are called with the same argument objects the engine
builds (``ResourceValidationArgs`` / ``StackValidationArgs``, props deserialised by ``pulumi_policy`` and
wrapped in its unknown-checking proxy). Configuration follows the engine's order: each policy's schema
defaults, then the pack's initial config, then the ``--policy-pack-config`` file (``all`` first, then the
policy's own entry). A rule that touches a value unknown at plan time is reported as undecided, not passed.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from keel.engine import Graph, PlannedResource
from keel.paths import PROJECT_ROOT
from policies.framework import RULES, Rule, is_exempt, to_policy
from policies.pack import INITIAL_CONFIG

POLICY_CONFIG_DIR = PROJECT_ROOT / "policies" / "config"
LEVELS = {level.value: level for level in EnforcementLevel}


class PolicyConfigError(Exception):
    """A ``--policy-pack-config`` file the engine would reject (named file, key, value, what is allowed)."""


# ----------------------------------------------------------------------------------- engine argument objects


def _props(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(props))))


def _options(
    protect: bool, parent: str | None = None, ignore_changes: Sequence[str] = ()
) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect, list(ignore_changes), None, [], PolicyCustomTimeouts(0, 0, 0), [], parent
    )


def resource_args(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    urn: str | None = None,
    name: str = "subject",
    protect: bool = False,
    config: Mapping[str, Any] | None = None,
) -> ResourceValidationArgs:
    """The argument object the engine passes to a resource policy."""
    urn = urn or f"urn:pulumi:test::keel::{resource_type}::{name}"
    return ResourceValidationArgs(
        resource_type, _props(props), urn, name, _options(protect), None, dict(config or {})
    )


def policy_resource(
    resource_type: str,
    props: Mapping[str, Any],
    *,
    urn: str | None = None,
    name: str = "subject",
    protect: bool = False,
    provider: PolicyProviderResource | None = None,
) -> PolicyResource:
    """A resource as the engine passes it to a stack policy (dependencies filled by ``link``)."""
    urn = urn or f"urn:pulumi:test::keel::{resource_type}::{name}"
    return PolicyResource(resource_type, _props(props), urn, name, _options(protect), provider, None, [], {})


def policy_provider(region: str, *, name: str = "aws") -> PolicyProviderResource:
    """An explicit AWS provider as the engine passes it with a stack policy's resources."""
    urn = f"urn:pulumi:test::keel::pulumi:providers:aws::{name}"
    return PolicyProviderResource("pulumi:providers:aws", _props({"region": region}), urn, name)


def link(resource: PolicyResource, prop_name: str, *targets: PolicyResource) -> PolicyResource:
    """Record that ``resource``'s input ``prop_name`` came from ``targets`` (as the engine does)."""
    resource.property_dependencies.setdefault(prop_name, []).extend(targets)
    resource.dependencies.extend(t for t in targets if t not in resource.dependencies)
    return resource


def stack_resources(graph: Graph) -> list[PolicyResource]:
    """Every resource of a plan as the engine passes it to stack policies (outputs as props): custom resources
    with their providers, and also components and the stack itself, which have no provider."""
    planned = list(graph)
    providers = {
        r.urn: PolicyProviderResource(r.type, _props(r.inputs), r.urn, r.name)
        for r in planned
        if r.type.startswith("pulumi:providers:")
    }
    by_urn: dict[str, PolicyResource] = {}
    for r in planned:
        provider = providers.get(r.provider) if r.provider else None
        by_urn[r.urn] = PolicyResource(
            r.type,
            _props(r.outputs),
            r.urn,
            r.name,
            _options(r.protect, r.parent, r.ignore_changes),
            provider,
            None,
            [],
            {},
        )
    for r in planned:
        resource = by_urn[r.urn]
        resource.dependencies.extend(by_urn[u] for u in r.depends_on if u in by_urn)
        for key, urns in r.property_dependencies.items():
            resource.property_dependencies[key] = [by_urn[u] for u in urns if u in by_urn]
    return list(by_urn.values())


# ------------------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class PolicySettings:
    """One policy's effective level and settings for an environment."""

    level: EnforcementLevel
    config: Mapping[str, Any]


def _schema_defaults(rule: Rule) -> dict[str, Any]:
    properties = rule.schema().properties
    return {key: copy.deepcopy(spec["default"]) for key, spec in properties.items() if "default" in spec}


def _apply(
    entry: Any, level: EnforcementLevel, config: dict[str, Any], source: str, key: str
) -> EnforcementLevel:
    if isinstance(entry, str):
        if entry not in LEVELS:
            raise PolicyConfigError(f"{source}: {key} = {entry!r}: allowed levels: {', '.join(LEVELS)}")
        return LEVELS[entry]
    if isinstance(entry, Mapping):
        for name, value in entry.items():
            if name == "enforcementLevel":
                if value not in LEVELS:
                    raise PolicyConfigError(
                        f"{source}: {key}.enforcementLevel = {value!r}: allowed levels: {', '.join(LEVELS)}"
                    )
                level = LEVELS[value]
            else:
                config[name] = copy.deepcopy(value)
        return level
    raise PolicyConfigError(f"{source}: {key} = {entry!r}: allowed: a level string or an object")


def _check_settings(rule: Rule, config: Mapping[str, Any], source: str) -> None:
    properties = rule.schema().properties
    for key, value in config.items():
        if key not in properties:
            raise PolicyConfigError(
                f"{source}: {rule.name}.{key}: unknown setting; allowed: {', '.join(sorted(properties))}"
            )
        expected = properties[key].get("type")
        python_types = {
            "array": list,
            "object": dict,
            "string": str,
            "boolean": bool,
            "integer": int,
            "number": (int, float),
        }.get(str(expected))
        if python_types and not isinstance(value, python_types):  # type: ignore[arg-type]
            raise PolicyConfigError(f"{source}: {rule.name}.{key} = {value!r}: expected {expected}")
    for index, exemption in enumerate(config.get("exemptions") or []):
        if (
            not isinstance(exemption, Mapping)
            or len(str(exemption.get("reason", "")).strip()) < 10
            or not exemption.get("resource")
        ):
            raise PolicyConfigError(
                f"{source}: {rule.name}.exemptions[{index}] = {exemption!r}: an exemption names a resource "
                "(URN or logical name) and gives a reason of at least 10 characters"
            )


def load_policy_config(path: Path | None, rules: Sequence[Rule] = RULES) -> dict[str, PolicySettings]:
    """Effective settings per policy: schema defaults, then the pack's initial config, then the file."""
    file_config: Mapping[str, Any] = {}
    source = str(path) if path else "(no policy config)"
    if path is not None:
        try:
            file_config = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PolicyConfigError(f"{source}: does not exist") from None
        except json.JSONDecodeError as error:
            raise PolicyConfigError(f"{source}: line {error.lineno}: not valid JSON: {error.msg}") from None
        if not isinstance(file_config, Mapping):
            raise PolicyConfigError(f"{source}: must be a JSON object keyed by policy name or 'all'")
    names = {rule.name for rule in rules}
    unknown = sorted(set(file_config) - names - {"all"})
    if unknown:
        raise PolicyConfigError(f"{source}: {', '.join(unknown)}: unknown policy; see `keel policies`")
    settings: dict[str, PolicySettings] = {}
    for rule in rules:
        config = _schema_defaults(rule)
        level = rule.default_level
        for layer_source, layer in (("pack initial config", INITIAL_CONFIG), (source, file_config)):
            for key in ("all", rule.name):
                if key in layer:
                    level = _apply(layer[key], level, config if key == rule.name else {}, layer_source, key)
        _check_settings(rule, config, source)
        settings[rule.name] = PolicySettings(level=level, config=config)
    return settings


def policy_config_file(environment: str, tier: str, directory: Path = POLICY_CONFIG_DIR) -> Path:
    """The environment's own file if it has one, else its tier's (``policies/config/<tier>.json``)."""
    own = directory / f"{environment}.json"
    return own if own.is_file() else directory / f"{tier}.json"


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Finding:
    """A violation, an exemption or an undecided check."""

    policy: str
    level: str
    urn: str | None
    message: str
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {"policy": self.policy, "level": self.level, "urn": self.urn, "message": self.message}
        if self.reason is not None:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class PolicyReport:
    """What the pack says about one plan."""

    config_file: str
    violations: tuple[Finding, ...] = ()
    exemptions: tuple[Finding, ...] = ()
    undecided: tuple[Finding, ...] = ()
    remediation: Mapping[str, str] = field(default_factory=dict)

    @property
    def mandatory(self) -> tuple[Finding, ...]:
        return tuple(v for v in self.violations if v.level == EnforcementLevel.MANDATORY.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config_file,
            "violations": [v.to_json() for v in self.violations],
            "exemptions": [e.to_json() for e in self.exemptions],
            "undecided": [u.to_json() for u in self.undecided],
            "remediation": {
                name: self.remediation[name]
                for name in sorted({f.policy for f in (*self.violations, *self.exemptions)})
                if name in self.remediation
            },
        }


def _collect(
    rule: Rule,
    level: str,
    exemptions: Iterable[Mapping[str, Any]],
    names: Mapping[str, str],
    out: dict[str, list[Finding]],
) -> Any:
    def report(message: str, urn: str | None, default_urn: str | None = None) -> None:
        target = urn or default_urn
        exemption = is_exempt(target, names.get(target or ""), exemptions)
        if exemption is not None:
            out["exemptions"].append(Finding(rule.name, level, target, message, str(exemption.get("reason"))))
        else:
            out["violations"].append(Finding(rule.name, level, target, message))

    return report


def evaluate(graph: Graph, settings: Mapping[str, PolicySettings], config_file: str) -> PolicyReport:
    """Run every enabled policy over a planned graph."""
    out: dict[str, list[Finding]] = {"violations": [], "exemptions": [], "undecided": []}
    names = {r.urn: r.name for r in graph}
    custom: list[PlannedResource] = [r for r in graph if r.custom]
    # Deserialise each resource once; only the config differs between policies.
    props = {r.urn: _props(r.inputs) for r in custom}
    options = {r.urn: _options(r.protect, r.parent, r.ignore_changes) for r in custom}
    stack: list[PolicyResource] | None = None
    for rule in RULES:
        effective = settings[rule.name]
        if effective.level == EnforcementLevel.DISABLED:
            continue
        level = (
            EnforcementLevel.MANDATORY if effective.level == EnforcementLevel.REMEDIATE else effective.level
        ).value
        exemptions = effective.config.get("exemptions") or []
        # Exemptions are applied here so that they can be reported; the policy itself sees none.
        config = {**effective.config, "exemptions": []}
        policy = to_policy(rule)
        report = _collect(rule, level, exemptions, names, out)
        if isinstance(policy, ResourceValidationPolicy):
            for resource in custom:
                if not rule.applies_to(resource.type):
                    continue
                args = ResourceValidationArgs(
                    resource.type,
                    props[resource.urn],
                    resource.urn,
                    resource.name,
                    options[resource.urn],
                    None,
                    config,
                )
                try:
                    policy.validate(args, functools.partial(report, default_urn=resource.urn))
                except UnknownValueError as error:
                    out["undecided"].append(Finding(rule.name, level, resource.urn, error.message))
        else:
            stack = stack if stack is not None else stack_resources(graph)
            try:
                policy.validate(StackValidationArgs(stack, config), report)
            except UnknownValueError as error:
                out["undecided"].append(Finding(rule.name, level, None, error.message))
    return PolicyReport(
        config_file=config_file,
        violations=tuple(out["violations"]),
        exemptions=tuple(out["exemptions"]),
        undecided=tuple(out["undecided"]),
        remediation={rule.name: rule.remediation for rule in RULES},
    )


def rule_table(directory: Path = POLICY_CONFIG_DIR) -> list[dict[str, Any]]:
    """Every rule with its metadata and its level in each shipped policy config (``keel policies``)."""
    environments = sorted(path.stem for path in directory.glob("*.json"))
    levels = {env: load_policy_config(directory / f"{env}.json") for env in environments}
    return [
        {
            "name": rule.name,
            "domain": rule.domain,
            "category": rule.category,
            "severity": rule.severity,
            "scope": rule.scope,
            "description": rule.description,
            "remediation": rule.remediation,
            "levels": {env: levels[env][rule.name].level.value for env in environments},
        }
        for rule in sorted(RULES, key=lambda r: (r.domain, r.name))
    ]
