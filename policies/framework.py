"""How a Keel rule is written, and how it becomes a CrossGuard policy.

A rule is a plain function over the engine's own argument objects, registered with ``@resource_rule`` or
``@stack_rule``. Rules never import Keel's stacks or components: they see resource types and properties only,
exactly as ``pulumi preview`` passes them (camelCase keys, numbers as floats). The same rule objects run
inside the real engine (``policies/__main__.py``) and offline inside ``keel plan`` (``keel/policy.py``).

Every rule's settings gain an ``exemptions`` list: ``{"resource": <URN or logical name>, "reason": <why>}``.
A rule skips an exempted resource only with a written reason; offline reports list every exemption used.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, Unpack

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from keel.engine import Graph, PlannedResource

Domain = Literal["network", "cluster", "compute", "data", "secrets", "cost", "kubernetes", "tagging"]
Category = Literal["security", "cost", "availability"]
SeverityName = Literal["low", "medium", "high", "critical"]

#: The settings every rule accepts, whatever its own.
EXEMPTIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "default": [],
    "description": "Resources this rule skips, each with the reason (reviewed like code).",
    "items": {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "minLength": 1},
            "reason": {"type": "string", "minLength": 10},
        },
        "required": ["resource", "reason"],
        "additionalProperties": False,
    },
}


class Resource(Protocol):
    """What a rule may read of a resource: both ``ResourceValidationArgs`` and ``PolicyResource`` fit."""

    resource_type: str
    props: Mapping[str, Any]
    urn: str
    name: str


ResourceCheck = Callable[[ResourceValidationArgs, Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[PolicyResource], Mapping[str, Any]], Iterable[tuple[str, str | None]]]


@dataclass(frozen=True)
class Rule:
    """One guardrail: metadata, settings (JSON-schema properties with defaults) and the check itself."""

    name: str
    description: str
    domain: Domain
    category: Category
    severity: SeverityName
    remediation: str
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    resource_types: tuple[str, ...] = ()
    """Type tokens (``fnmatch`` patterns) a resource rule applies to; empty for all types."""
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None

    @property
    def scope(self) -> Literal["resource", "stack"]:
        return "resource" if self.resource_check is not None else "stack"

    @property
    def default_level(self) -> EnforcementLevel:
        """Without a config file: security rules block, cost and availability rules advise."""
        return EnforcementLevel.MANDATORY if self.category == "security" else EnforcementLevel.ADVISORY

    def schema(self) -> PolicyConfigSchema:
        properties = {key: dict(spec) for key, spec in self.settings.items()}
        return PolicyConfigSchema(properties={**properties, "exemptions": EXEMPTIONS_SCHEMA})

    def applies_to(self, resource_type: str) -> bool:
        return not self.resource_types or any(
            fnmatch.fnmatchcase(resource_type, p) for p in self.resource_types
        )


RULES: list[Rule] = []
"""Every registered rule, in registration order (``policies/rules/__init__.py`` imports the domains)."""


def _register(rule: Rule) -> Rule:
    if any(existing.name == rule.name for existing in RULES):
        raise ValueError(f"rule {rule.name!r} is registered twice")
    RULES.append(rule)
    return rule


class RuleMetadata(TypedDict):
    """What every rule declares about itself (shown by ``keel policies`` and in every report)."""

    name: str
    description: str
    domain: Domain
    category: Category
    severity: SeverityName
    remediation: str


def resource_rule(
    *,
    types: Sequence[str] = (),
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    **metadata: Unpack[RuleMetadata],
) -> Callable[[ResourceCheck], ResourceCheck]:
    """Register ``check(resource, config) -> messages`` as a rule over single resources of ``types``."""

    def register(check: ResourceCheck) -> ResourceCheck:
        _register(
            Rule(**metadata, settings=dict(settings or {}), resource_types=tuple(types), resource_check=check)
        )
        return check

    return register


def stack_rule(
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    **metadata: Unpack[RuleMetadata],
) -> Callable[[StackCheck], StackCheck]:
    """Register ``check(resources, config) -> (message, urn or None)`` as a rule over the whole stack."""

    def register(check: StackCheck) -> StackCheck:
        _register(Rule(**metadata, settings=dict(settings or {}), stack_check=check))
        return check

    return register


def is_exempt(
    urn: str | None, name: str | None, exemptions: Iterable[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The exemption covering a resource (matched by full URN or logical name), if any."""
    for exemption in exemptions:
        target = exemption.get("resource")
        if target and target in (urn, name):
            return exemption
    return None


def _names(resources: Sequence[PolicyResource]) -> dict[str, str]:
    return {r.urn: r.name for r in resources}


def to_policy(rule: Rule) -> ResourceValidationPolicy | StackValidationPolicy:
    """The CrossGuard policy for a rule; exempted resources are skipped, everything else is reported."""
    common: dict[str, Any] = {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": rule.default_level,
        "config_schema": rule.schema(),
        "severity": Severity(rule.severity),
        "remediation_steps": rule.remediation,
        "tags": [rule.domain, rule.category],
    }
    if rule.resource_check is not None:
        check = rule.resource_check

        def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
            if not rule.applies_to(args.resource_type):
                return
            config = args.get_config() or {}
            if is_exempt(args.urn, args.name, config.get("exemptions") or []):
                return
            for message in check(args, config):
                report(message, None)

        return ResourceValidationPolicy(validate=validate_resource, **common)

    stack_check = rule.stack_check
    assert stack_check is not None

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        config = args.get_config() or {}
        names = _names(args.resources)
        exemptions = config.get("exemptions") or []
        for message, urn in stack_check(args.resources, config):
            if urn is None or not is_exempt(urn, names.get(urn), exemptions):
                report(message, urn)

    return StackValidationPolicy(validate=validate_stack, **common)


# --------------------------------------------------------------------------------- helpers for rule authors


def prop(resource: Resource, path: str, default: Any = None) -> Any:
    """A nested property by dotted path (``metadataOptions.httpTokens``; ``[0]`` for list items)."""
    value: Any = resource.props
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            index = int(part[1:-1])
            listed = items(value)
            value = listed[index] if len(listed) > index else None
        else:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return default
    return value


def items(value: Any) -> list[Any]:
    """A list property as a list (``[]`` when absent or not a list; a string is not a list)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def as_map(value: Any) -> Mapping[str, Any]:
    """A map property (a props proxy or a dict), or an empty mapping when absent or not a map."""
    return value if isinstance(value, Mapping) else {}


def of_type(resources: Sequence[PolicyResource], *patterns: str) -> list[PolicyResource]:
    """The resources whose type matches any ``fnmatch`` pattern."""
    return [r for r in resources if any(fnmatch.fnmatchcase(r.resource_type, p) for p in patterns)]


def depends_on(resource: PolicyResource, target: PolicyResource, prop_name: str | None = None) -> bool:
    """Whether ``resource`` takes an input from ``target`` (through ``prop_name`` if given)."""
    if prop_name is not None:
        return any(d.urn == target.urn for d in resource.property_dependencies.get(prop_name, []))
    return any(d.urn == target.urn for d in resource.dependencies) or any(
        d.urn == target.urn for deps in resource.property_dependencies.values() for d in deps
    )


def known(value: Any) -> Any:
    """A plain copy of a property value with every value unknown at preview replaced by ``None``.

    For code that walks whole property trees (the cost model) rather than reading one property: the engine's
    proxies raise ``UnknownValueError`` on any unknown value, which would make such a walk undecidable.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            try:
                out[str(key)] = known(value[key])
            except UnknownValueError:
                out[str(key)] = None
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        listed: list[Any] = []
        for index in range(len(value)):
            try:
                listed.append(known(value[index]))
            except UnknownValueError:
                listed.append(None)
        return listed
    return value


def planned_graph(resources: Sequence[PolicyResource]) -> Graph:
    """The stack's resources as the offline engine's ``Graph`` (with their providers), for shared models such
    as ``keel.cost`` that read graphs. Unknown values become ``None``.

    The engine passes stack policies every resource, components and the stack included; only custom
    resources have a provider, so a resource without one (other than a provider itself) is a component.
    """
    planned: dict[str, PlannedResource] = {}
    for resource in resources:
        provider = resource.provider
        if provider is not None and provider.urn not in planned:
            planned[provider.urn] = _planned(
                provider.urn, provider.resource_type, provider.name, provider.props
            )
        planned[resource.urn] = _planned(
            resource.urn,
            resource.resource_type,
            resource.name,
            resource.props,
            parent=resource.opts.parent,
            provider=provider.urn if provider is not None else None,
            custom=provider is not None or resource.resource_type.startswith("pulumi:providers:"),
            protect=resource.opts.protect,
            property_dependencies={
                key: tuple(d.urn for d in deps) for key, deps in resource.property_dependencies.items()
            },
        )
    return Graph(tuple(planned.values()), {})


def _planned(
    urn: str,
    type_: str,
    name: str,
    props: Mapping[str, Any],
    *,
    parent: str | None = None,
    provider: str | None = None,
    custom: bool = True,
    protect: bool = False,
    property_dependencies: Mapping[str, tuple[str, ...]] | None = None,
) -> PlannedResource:
    values = known(props)
    return PlannedResource(
        urn=urn,
        type=type_,
        name=name,
        parent=parent,
        provider=provider,
        custom=custom,
        inputs=values,
        protect=protect,
        retain_on_delete=False,
        ignore_changes=(),
        depends_on=(),
        outputs=values,
        property_dependencies=property_dependencies or {},
    )


def truthy(value: Any) -> bool:
    """Booleans as the providers carry them: ``True`` or the string ``"true"`` (EBS ``encrypted``)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")
