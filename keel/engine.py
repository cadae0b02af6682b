"""The offline engine: runs a Pulumi program under Pulumi's own mock runtime and records the resource graph.

This is the one engine behind ``keel plan`` and the test suite. It is honest about what it is: a record of the
inputs the program declares, with realistic fake outputs (``keel.fakes``) where the program reads computed
values. It is not a cloud diff: nothing here talks to a provider.

Resource inputs are recorded as the engine sees them (camelCase keys, numbers as floats). Secret values are
replaced by ``SECRET_MASK`` before anything is stored, so no output format can print them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks, rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from keel.fakes import DEFAULT_ACCOUNT, DEFAULT_REGION, FakeContext, fake_id, fake_outputs

SECRET_MASK = "[secret]"

#: Input properties whose keys are free-form data (tag keys, label keys, Helm values), not schema names.
FREE_FORM_KEYS = frozenset(
    {
        "tags",
        "tagsAll",
        "defaultTags",
        "labels",
        "annotations",
        "data",
        "stringData",
        "binaryData",
        "values",
        "nodeSelector",
        "matchLabels",
        "selector",
        "parameters",
        "limits",
        "requests",
        "capacity",
        "__inputs",
    }
)
_PYTHON_STYLE_KEY = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


class PlanError(Exception):
    """The program did something the real engine would reject or that Keel forbids (named in the message)."""


@dataclass(frozen=True)
class PlannedResource:
    """One resource as ``pulumi up`` would register it."""

    urn: str
    type: str
    name: str
    parent: str | None
    provider: str | None
    custom: bool
    inputs: Mapping[str, Any]
    protect: bool
    retain_on_delete: bool
    ignore_changes: tuple[str, ...]
    depends_on: tuple[str, ...]
    outputs: Mapping[str, Any] = field(repr=False, compare=False)
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    """For each input property, the URNs of the resources its value came from."""
    id: str = field(default="", compare=False)
    """The (fake) provider id of a custom resource; empty for components."""

    @property
    def tags(self) -> Mapping[str, str]:
        """The resource's ``tags`` input, empty if it has none."""
        tags = self.inputs.get("tags")
        return tags if isinstance(tags, Mapping) else {}


@dataclass(frozen=True)
class Graph:
    """Everything a program registered, in registration order, and its stack outputs."""

    resources: tuple[PlannedResource, ...]
    outputs: Mapping[str, Any]

    def __iter__(self) -> Iterator[PlannedResource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def of_type(self, type_: str) -> list[PlannedResource]:
        """All resources of one type token, e.g. ``aws:ec2/natGateway:NatGateway``."""
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> PlannedResource:
        """The single resource of a type (and logical name); an error if there are none or several."""
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {len(found)} among {names}")
        return found[0]

    def by_urn(self, urn: str) -> PlannedResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise LookupError(urn)

    def children(self, parent_urn: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.parent == parent_urn]

    def descendants(self, ancestor_urn: str) -> list[PlannedResource]:
        """Every resource below a component, however deep."""
        found: list[PlannedResource] = []
        frontier = [ancestor_urn]
        while frontier:
            children = [r for r in self.resources if r.parent in frontier]
            found.extend(children)
            frontier = [r.urn for r in children]
        return found

    def counts_by_type(self) -> Counter[str]:
        return Counter(r.type for r in self.resources)


def _mask_secrets(value: Any) -> tuple[Any, bool]:
    """Replace secret-wrapped values by ``SECRET_MASK``; report whether any were found.

    Keys come out sorted: protobuf maps carry no order, and a plan must be byte-for-byte reproducible.
    """
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET_MASK, True
        masked_any = False
        out: dict[str, Any] = {}
        for key, item in sorted(value.items()):
            out[key], masked = _mask_secrets(item)
            masked_any |= masked
        return out, masked_any
    if isinstance(value, list):
        items = [_mask_secrets(item) for item in value]
        return [item for item, _ in items], any(masked for _, masked in items)
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>", False
    return value, False


def _python_style_keys(value: Any, path: str = "") -> Iterator[str]:
    """Key paths that look like Python names inside nested inputs: a misspelled or untyped dict key."""
    if isinstance(value, dict):
        for key, item in value.items():
            key_path = f"{path}.{key}" if path else str(key)
            if _PYTHON_STYLE_KEY.match(str(key)):
                yield key_path
            if key not in FREE_FORM_KEYS:
                yield from _python_style_keys(item, key_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _python_style_keys(item, f"{path}[{index}]")


class RecordingMonitor(mocks.MockMonitor):
    """A mock resource monitor that records every registration with its parent, provider and options."""

    def __init__(self, mock: Mocks) -> None:
        super().__init__(mock)
        self.recorded: list[PlannedResource] = []
        self._provider_location: dict[str, tuple[str, str]] = {}

    def _location(self, type_: str, inputs: Mapping[str, Any], provider_ref: str) -> tuple[str, str]:
        if type_.startswith("pulumi:providers:"):
            # Provider inputs reach the engine JSON-encoded when they are not strings.
            accounts = inputs.get("allowedAccountIds") or "[]"
            accounts = json.loads(accounts) if isinstance(accounts, str) else accounts
            return str(inputs.get("region") or DEFAULT_REGION), str(
                accounts[0] if accounts else DEFAULT_ACCOUNT
            )
        provider_urn = provider_ref.rsplit("::", 1)[0] if provider_ref else ""
        return self._provider_location.get(provider_urn, (DEFAULT_REGION, DEFAULT_ACCOUNT))

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (the gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        if urn in self.resources:
            raise PlanError(f"duplicate resource URN {urn}: two resources share a type and logical name")
        _ensure_event_loop()
        raw_inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        inputs, _ = _mask_secrets(raw_inputs)
        suspicious = [] if not request.custom else list(_python_style_keys(inputs))
        if suspicious:
            raise PlanError(
                f"{request.type} {request.name!r}: input key path {', '.join(suspicious)} is not a provider "
                "property name (the engine expects camelCase; a misspelled or untyped dict key?)"
            )
        if request.custom and not request.provider and not request.type.startswith("pulumi:providers:"):
            raise PlanError(
                f"{request.type} {request.name!r} has no explicit provider; Keel disables default providers "
                "(pulumi:disable-default-providers), so pass one through opts or the parent component"
            )
        region, account = self._location(request.type, inputs, request.provider)
        # Fakes see the raw inputs so that the program gets secret inputs back still wrapped as secrets.
        ctx = FakeContext(
            urn=urn, type=request.type, name=request.name, inputs=raw_inputs, region=region, account=account
        )
        resource_id = fake_id(ctx) if request.custom else ""
        state = fake_outputs(ctx) if request.custom else {}
        if request.type.startswith("pulumi:providers:"):
            self._provider_location[urn] = (region, account)
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        self.recorded.append(
            PlannedResource(
                urn=urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                provider=(request.provider.rsplit("::", 1)[0] or None) if request.provider else None,
                custom=bool(request.custom),
                inputs=inputs,
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                ignore_changes=tuple(request.ignoreChanges),
                depends_on=tuple(request.dependencies),
                outputs=_mask_secrets(state)[0],
                property_dependencies={
                    key: tuple(deps.urns)
                    for key, deps in sorted(request.propertyDependencies.items())
                    if deps.urns
                },
                id=resource_id,
            )
        )
        obj = _sync_await(rpc.serialize_properties(state, {}))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=obj)


InvokeHandler = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


class Mocks(pulumi.runtime.Mocks):
    """Mocks that answer only the invokes Keel declares; anything else is an error naming the token."""

    def __init__(self, invokes: Mapping[str, InvokeHandler] | None = None) -> None:
        self.invokes = dict(invokes or {})

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        # Only reached through ReadResource (`Resource.get`): Keel reads no existing resources.
        raise PlanError(f"{args.typ} {args.name!r}: reading existing resources is not supported offline")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        handler = self.invokes.get(args.token)
        if handler is None:
            raise PlanError(
                f"unexpected invoke {args.token}: Keel's offline engine answers only {sorted(self.invokes) or 'none'}"
            )
        return dict(handler(args.token, args.args)), None


async def _resolve_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    resolved: dict[str, Any] = {}
    for key, value in outputs.items():
        output = pulumi.Output.from_input(value)
        is_secret = await output.is_secret()
        plain = await output.future()
        resolved[key] = SECRET_MASK if is_secret else _mask_secrets(plain)[0]
    return resolved


def _drop_orphaned_copies(error: BaseException) -> None:
    """After a failed run, futures of resources that depended on the failed one hold the same exception.

    asyncio would print each of them as "Future exception was never retrieved" when it collects them; the
    caller already gets the error, so collect them now with a handler that drops only those copies.
    """
    loop = _ensure_event_loop()
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("exception") is not error:
            (previous or asyncio.BaseEventLoop.default_exception_handler)(loop, context)  # type: ignore[arg-type]

    loop.set_exception_handler(handler)
    try:
        gc.collect()
    finally:
        loop.set_exception_handler(previous)


def run_program(
    program: Callable[[], Mapping[str, Any] | None],
    *,
    project: str = "keel",
    stack: str = "test",
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    invokes: Mapping[str, InvokeHandler] | None = None,
) -> Graph:
    """Run ``program`` under the mock runtime and return what it registered.

    ``config`` holds fully qualified keys (``keel:tier``) with string values, objects JSON-encoded, as the
    engine passes them. State is reset first, so several stacks can be planned in one process.
    The program returns its stack outputs (what ``stacks/__main__.py`` exports).
    """
    pulumi.runtime.settings.reset_options(project=project, stack=stack, preview=False)
    pulumi.runtime.set_all_config(dict(config or {}), list(secret_keys or []))
    mock = Mocks(invokes)
    monitor = RecordingMonitor(mock)
    pulumi.runtime.set_mocks(mock, project=project, stack=stack, preview=False, monitor=monitor)
    captured: dict[str, Any] = {}

    @pulumi.runtime.test
    def _run() -> pulumi.Output[None]:
        outputs = program() or {}

        async def resolve() -> None:
            captured.update(await _resolve_outputs(outputs))

        return pulumi.Output.from_input(resolve())  # type: ignore[arg-type]

    try:
        _run()
    except Exception as error:
        _drop_orphaned_copies(error)
        raise
    # Registration order depends on task scheduling; URN order is stable, which keeps plans diffable.
    return Graph(resources=tuple(sorted(monitor.recorded, key=lambda r: r.urn)), outputs=captured)
