"""Writes every Kubernetes object of a plan as YAML (``keel plan ENV --manifests DIR``).

Reviewers and other tools (kubeconform, kubernetes-validate, policy engines) read what Keel would apply:
one file per object, ``<kind>-<namespace>-<name>.yaml``; Helm releases as their values file, headed by the
chart, version and repository that render it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keel.engine import Graph, PlannedResource

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
_TOKEN = re.compile(r"^kubernetes:(?P<group>[^/:]+)/(?P<version>[^:]+):(?P<kind>\w+)$")


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object (or Helm values file) as it will be written."""

    filename: str
    document: Mapping[str, Any]
    urn: str
    helm_header: str | None = None

    def text(self) -> str:
        body = yaml.safe_dump(plain_numbers(self.document), sort_keys=False, default_flow_style=False)
        return (self.helm_header or "") + body


def plain_numbers(value: Any) -> Any:
    """Floats that are whole numbers back to ints (the engine carries every number as a float)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_numbers(item) for item in value]
    return value


def api_version(resource_type: str) -> tuple[str, str] | None:
    """``kubernetes:apps/v1:Deployment`` -> (``apps/v1``, ``Deployment``); core group objects are ``v1``."""
    match = _TOKEN.match(resource_type)
    if match is None:
        return None
    group, version, kind = match.group("group", "version", "kind")
    return (version if group == "core" else f"{group}/{version}"), kind


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", text.lower()).strip("-")


def _object(resource: PlannedResource) -> Manifest | None:
    parsed = api_version(resource.type)
    if parsed is None:
        return None
    version, kind = parsed
    document: dict[str, Any] = {"apiVersion": version, "kind": kind}
    document.update({k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")})
    metadata = resource.inputs.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    namespace = metadata.get("namespace") or "cluster"
    name = metadata.get("name") or resource.name
    return Manifest(f"{_slug(kind)}-{_slug(namespace)}-{_slug(name)}.yaml", document, resource.urn)


def _helm_values(resource: PlannedResource) -> Manifest:
    inputs = resource.inputs
    repository = (inputs.get("repositoryOpts") or {}).get("repo", "")
    header = (
        f"# Helm release {inputs.get('name', resource.name)} in namespace {inputs.get('namespace', '')}\n"
        f"# chart {inputs.get('chart')} version {inputs.get('version')} from {repository}\n"
    )
    name = f"helm-{_slug(str(inputs.get('namespace', 'default')))}-{_slug(str(inputs.get('name', resource.name)))}"
    return Manifest(f"{name}.values.yaml", inputs.get("values") or {}, resource.urn, helm_header=header)


def manifests(graph: Graph) -> Iterator[Manifest]:
    """Every Kubernetes object of a plan, and every Helm release's values."""
    for resource in graph:
        if not resource.custom or not resource.type.startswith("kubernetes:"):
            continue
        manifest = _helm_values(resource) if resource.type == HELM_RELEASE else _object(resource)
        if manifest is not None:
            yield manifest


def write_manifests(graph: Graph, directory: Path) -> list[Path]:
    """Write the plan's manifests into ``directory`` (created if needed); returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for manifest in manifests(graph):
        path = directory / manifest.filename
        if path in written:
            raise ValueError(f"two objects would both be written to {path.name}")
        path.write_text(manifest.text(), encoding="utf-8")
        written.append(path)
    return written
