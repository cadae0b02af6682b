"""Run one rule through its real CrossGuard policy object, with schema defaults applied like the engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs, StackValidationArgs

from keel.policy import resource_args
from policies.framework import RULES, Rule, to_policy


def rule(name: str) -> Rule:
    return next(r for r in RULES if r.name == name)


def effective_config(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Schema defaults, then overrides: what the engine hands the policy."""
    properties = rule(name).schema().properties
    defaults = {key: spec["default"] for key, spec in properties.items() if "default" in spec}
    return {**defaults, **(overrides or {})}


def run_resource_rule(name: str, args: ResourceValidationArgs) -> list[str]:
    """Messages the policy reports for one resource (config: schema defaults under the args' own config)."""
    config = effective_config(name, args.get_config())
    rebuilt = resource_args(
        args.resource_type,
        _plain(args.props),
        urn=args.urn,
        name=args.name,
        protect=args.opts.protect,
        config=config,
    )
    messages: list[str] = []
    to_policy(rule(name)).validate(rebuilt, lambda message, urn: messages.append(message))  # type: ignore[arg-type]
    return messages


def run_stack_rule(
    name: str, resources: Sequence[PolicyResource], config: Mapping[str, Any] | None = None
) -> list[tuple[str, str | None]]:
    """(message, urn) pairs the policy reports for a stack."""
    findings: list[tuple[str, str | None]] = []
    args = StackValidationArgs(list(resources), effective_config(name, config))
    to_policy(rule(name)).validate(args, lambda message, urn: findings.append((message, urn)))  # type: ignore[arg-type]
    return findings


def _plain(value: Any) -> Any:
    """Unwrap pulumi_policy's proxies back into plain data."""
    if isinstance(value, Mapping):
        return {key: _plain(value[key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(item) for item in value]
    return value
