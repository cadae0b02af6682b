"""``keel plan``: run an environment's stack program offline and describe what ``pulumi up`` would create."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from keel.config import StackFile, load_environment
from keel.cost import CostReport, PriceTable, estimate_graph, load_prices
from keel.engine import Graph, PlannedResource, run_program
from keel.paths import PROJECT_ROOT, display_path
from keel.policy import PolicyReport, PolicySettings, evaluate, load_policy_config, policy_config_file
from stacks.program import run
from stacks.spec import EnvironmentSpec

PROJECT = "keel"
#: Where ``Pulumi.yaml`` says stack config lives (``stackConfigDir``).
ENVIRONMENTS_DIR = PROJECT_ROOT / "environments"


@dataclass(frozen=True)
class Plan:
    """What one environment's ``pulumi up`` would register, as planned offline from declared inputs."""

    spec: EnvironmentSpec
    source: Path
    graph: Graph
    warnings: tuple[str, ...] = field(default=())
    policies: PolicyReport | None = None
    """The policy pack's verdicts (``None`` when planned with ``check_policies=False``)."""
    cost: CostReport | None = None
    """Monthly cost at idle and at peak from the shipped price table (``None`` when not estimated)."""

    @property
    def environment(self) -> str:
        return self.spec.environment

    @property
    def resources(self) -> tuple[PlannedResource, ...]:
        return self.graph.resources

    def to_json(self) -> dict[str, Any]:
        """The machine-readable plan (``keel plan --format json``)."""
        return {
            "environment": self.spec.environment,
            "tier": self.spec.tier,
            "cloud": self.spec.cloud,
            "region": self.spec.aws.region,
            "source": display_path(self.source),
            "kind": "offline plan of declared inputs (Pulumi mock runtime); not a diff against the cloud",
            "resources": [
                {
                    "urn": r.urn,
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent,
                    "provider": r.provider,
                    "custom": r.custom,
                    "references": _references(r) if r.custom else [],
                    "inputs": r.inputs,
                    "protect": r.protect,
                    "retainOnDelete": r.retain_on_delete,
                    "ignoreChanges": list(r.ignore_changes),
                    # Sorted: the engine records dependencies in the order its futures resolve.
                    "propertyDependencies": {
                        k: sorted(set(v)) for k, v in sorted(r.property_dependencies.items())
                    },
                }
                for r in self.graph.resources
            ],
            "counts": dict(sorted(self.graph.counts_by_type().items())),
            "outputs": self.graph.outputs,
            "warnings": list(self.warnings),
            **({"policies": self.policies.to_json()} if self.policies is not None else {}),
            **({"cost": self.cost.to_json()} if self.cost is not None else {}),
        }


#: Computed outputs that identify nothing (tags echoed back, lifecycle states, platform versions).
_NOT_REFERENCES = frozenset({"tagsAll", "status", "platformVersion", "version", "createdAt", "createDate"})


def _references(resource: PlannedResource) -> list[str]:
    """What other resources can hold when they refer to this one: its id and the strings only the provider
    computes (ARN, generated names, the node group's Auto Scaling group...), the engine's stand-ins offline.
    ``keel diff`` uses them to tell which inputs of other resources a replacement of this one changes."""
    found: set[str] = {resource.id} if len(resource.id) >= 8 else set()

    def collect(value: Any) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)
        elif isinstance(value, str) and 8 <= len(value) <= 512:
            found.add(value)

    for key, value in resource.outputs.items():
        if key not in resource.inputs and key not in _NOT_REFERENCES:
            collect(value)
    return sorted(found)


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _collect_engine_warnings() -> Iterator[list[str]]:
    """``pulumi.warn`` under mocks goes to the root logger; collect it instead of printing it."""
    handler = _WarningCollector()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield handler.messages
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)


def environment_file(environment: str, environments_dir: Path = ENVIRONMENTS_DIR) -> Path:
    return environments_dir / f"Pulumi.{environment}.yaml"


def plan_stack_file(
    stack_file: StackFile,
    spec: EnvironmentSpec,
    policy_settings: PolicyConfig | None = None,
    prices: PriceTable | None = None,
) -> Plan:
    """Run the real stack program for an already validated stack file (and the policies, if given), and price
    it with ``prices`` (default: ``load_prices()``, the shipped table with ``KEEL_PRICES`` merged over it)."""
    prices = prices if prices is not None else load_prices()
    with _collect_engine_warnings() as messages:
        graph = run_program(
            run,
            project=PROJECT,
            stack=spec.environment,
            config=stack_file.engine_config(),
            secret_keys=sorted(stack_file.secret_keys),
        )
    report = (
        evaluate(graph, policy_settings.settings, display_path(policy_settings.path))
        if policy_settings
        else None
    )
    cost = estimate_graph(
        graph,
        region=spec.aws.region,
        budget=spec.budget.monthly_limit_usd,
        prices=prices,
    )
    return Plan(
        spec=spec,
        source=stack_file.path,
        graph=graph,
        warnings=tuple(dict.fromkeys(messages)),
        policies=report,
        cost=cost,
    )


@dataclass(frozen=True)
class PolicyConfig:
    """A loaded ``--policy-pack-config`` file."""

    path: Path
    settings: Mapping[str, PolicySettings]


def plan_environment(
    path: Path,
    *,
    policy_config: Path | None = None,
    check_policies: bool = True,
    prices: PriceTable | None = None,
) -> Plan:
    """Load, validate and plan one stack config file, then run the policy pack over the plan and price it.

    The policy config defaults to the environment's file in ``policies/config/`` (or its tier's); ``prices`` to
    ``load_prices()`` (the shipped table with ``KEEL_PRICES`` merged over it). Raises ``SpecError`` for bad
    stack config, ``PolicyConfigError`` for a bad policy config and ``CostConfigError`` for a bad price file,
    all before planning.
    """
    stack_file, spec = load_environment(path)
    loaded = None
    if check_policies:
        config_path = policy_config or policy_config_file(spec.environment, spec.tier)
        loaded = PolicyConfig(config_path, load_policy_config(config_path))
    return plan_stack_file(stack_file, spec, loaded, prices if prices is not None else load_prices())


def secret_free(value: Mapping[str, Any]) -> bool:
    """True if nothing in a JSON-able structure looks like an unmasked Pulumi secret (used by tests)."""
    text = repr(value)
    return pulumi.runtime.rpc._special_secret_sig not in text
