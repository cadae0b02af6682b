"""Compute rules: hardened node templates, and GPU pools of known types, bounded in size and kept for GPU work.

GPU node groups are read through ``NODE_GROUPS``, keyed by type token (EKS managed node groups today), so a GKE
node pool joins by adding its reader. GPU counts per instance type come from ``stacks.catalogue`` (pure data).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from policies.framework import Resource, items, of_type, prop, resource_rule, stack_rule, truthy
from stacks.catalogue import GPU_INSTANCE_TYPES

GPU_TAINT_KEY = "nvidia.com/gpu"
#: EC2 GPU families (g4dn, g5, g6e, gr6, p4d, p5, ...), including ones the catalogue does not list.
_AWS_GPU_FAMILY = re.compile(r"^(g|gr|p)\d")


def _effect(value: Any) -> str:
    """Taint effects compared across spellings: NO_SCHEDULE (EKS, GKE) and NoSchedule (Kubernetes)."""
    return str(value).replace("_", "").upper()


# ------------------------------------------------------------------------------------------ node groups


@dataclass(frozen=True)
class NodeGroupReader:
    """How to read one cloud's node-group resource."""

    instance_types: Callable[[Resource], list[str]]
    gpu_image: Callable[[Resource], bool]
    """Whether the group boots an accelerated (GPU driver) image."""
    is_gpu_type: Callable[[str], bool]
    max_size: Callable[[Resource], int | None]
    taints: Callable[[Resource], list[tuple[str, str]]]
    """(key, effect) pairs."""


def _aws_taints(resource: Resource) -> list[tuple[str, str]]:
    return [
        (str(t.get("key")), _effect(t.get("effect")))
        for t in items(prop(resource, "taints"))
        if isinstance(t, Mapping)
    ]


def _aws_max_size(resource: Resource) -> int | None:
    value = prop(resource, "scalingConfig.maxSize")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


NODE_GROUPS: dict[str, NodeGroupReader] = {
    "aws:eks/nodeGroup:NodeGroup": NodeGroupReader(
        instance_types=lambda r: [str(t) for t in items(prop(r, "instanceTypes"))],
        # AL2023_x86_64_NVIDIA, BOTTLEROCKET_*_NVIDIA, and the older AL2_x86_64_GPU.
        gpu_image=lambda r: any(s in str(prop(r, "amiType", "")).upper() for s in ("NVIDIA", "GPU")),
        is_gpu_type=lambda t: t in GPU_INSTANCE_TYPES or bool(_AWS_GPU_FAMILY.match(t)),
        max_size=_aws_max_size,
        taints=_aws_taints,
    )
}


def is_gpu_group(resource: Resource) -> bool:
    """Whether a node group runs GPU nodes (accelerated image, or any GPU instance type)."""
    reader = NODE_GROUPS.get(resource.resource_type)
    if reader is None:
        return False
    return reader.gpu_image(resource) or any(reader.is_gpu_type(t) for t in reader.instance_types(resource))


def gpus_per_instance(instance_type: str) -> int | None:
    entry = GPU_INSTANCE_TYPES.get(instance_type)
    return entry.gpus if entry is not None else None


# ------------------------------------------------------------------------------------- launch templates


@resource_rule(
    name="imdsv2-required",
    description="Launch templates require IMDSv2 session tokens for the instance metadata service.",
    domain="compute",
    category="security",
    severity="high",
    remediation=(
        "Set metadataOptions.httpTokens to 'required' (and httpPutResponseHopLimit to 1 so pods cannot reach "
        "the node's credentials); the NodeGroup component does."
    ),
    types=["aws:ec2/launchTemplate:LaunchTemplate"],
)
def imdsv2_required(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    tokens = prop(resource, "metadataOptions.httpTokens")
    if tokens != "required":
        shown = "not set" if tokens is None else repr(tokens)
        yield f"launch template {resource.name} allows IMDSv1 (metadataOptions.httpTokens {shown})"


@resource_rule(
    name="root-volume-encrypted",
    description="Every EBS volume a launch template defines, the root volume included, is encrypted.",
    domain="compute",
    category="security",
    severity="high",
    remediation=(
        "Declare the root device in blockDeviceMappings with ebs.encrypted 'true' (and a kmsKeyId for a "
        "customer key); without a mapping the root volume's encryption is left to the AMI."
    ),
    types=["aws:ec2/launchTemplate:LaunchTemplate"],
)
def root_volume_encrypted(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    mappings = [m for m in items(prop(resource, "blockDeviceMappings")) if isinstance(m, Mapping)]
    volumes = [m for m in mappings if isinstance(m.get("ebs"), Mapping)]
    if not volumes:
        yield (
            f"launch template {resource.name} declares no EBS volume, so the root volume's encryption is "
            "left to the AMI"
        )
    for mapping in volumes:
        if not truthy(mapping["ebs"].get("encrypted")):
            device = mapping.get("deviceName") or "a volume"
            yield f"launch template {resource.name} leaves {device} unencrypted"


# ------------------------------------------------------------------------------------------- GPU pools


@resource_rule(
    name="gpu-instance-allowlist",
    description="GPU node groups use only approved GPU instance types.",
    domain="compute",
    category="security",
    severity="high",
    remediation=(
        "Use instance types from allowedInstanceTypes (by default the types in stacks/catalogue.py); to "
        "approve a new type, add it to the catalogue or to the environment's policy config."
    ),
    types=list(NODE_GROUPS),
    settings={
        "allowedInstanceTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": sorted(GPU_INSTANCE_TYPES),
            "description": "GPU instance types a GPU node group may use.",
        }
    },
)
def gpu_instance_allowlist(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    if not is_gpu_group(resource):
        return
    allowed = {str(t) for t in config.get("allowedInstanceTypes") or []}
    types = NODE_GROUPS[resource.resource_type].instance_types(resource)
    if not types:
        yield f"GPU node group {resource.name} names no instance types, so they cannot be checked"
        return
    outside = [t for t in types if t not in allowed]
    if outside:
        yield f"GPU node group {resource.name} uses instance types outside the allow-list: {', '.join(outside)}"


@stack_rule(
    name="gpu-count-cap",
    description="All GPU node groups together can never scale beyond the stack's GPU cap.",
    domain="compute",
    category="cost",
    severity="high",
    remediation=(
        "Lower maxSize of the GPU pools (or use instance types with fewer GPUs) until the total fits; raise "
        "maxGpus in the environment's policy config only with the capacity and budget owner's approval."
    ),
    settings={
        "maxGpus": {
            "type": "integer",
            "minimum": 0,
            "default": 64,
            "description": "Most GPUs all GPU node groups may reach together at maxSize.",
        }
    },
)
def gpu_count_cap(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[tuple[str, str | None]]:
    cap = int(config.get("maxGpus", 64))
    total = 0
    breakdown: list[str] = []
    for group in of_type(resources, *NODE_GROUPS):
        if not is_gpu_group(group):
            continue
        reader = NODE_GROUPS[group.resource_type]
        types = reader.instance_types(group)
        unknown = [t for t in types if gpus_per_instance(t) is None]
        if unknown or not types:
            listed = ", ".join(unknown) or "none named"
            yield (
                f"GPU node group {group.name}: GPUs per instance unknown for instance types {listed}; "
                "the GPU cap cannot be checked",
                group.urn,
            )
        max_size = reader.max_size(group)
        if max_size is None:
            yield f"GPU node group {group.name} has no maxSize; the GPU cap cannot be checked", group.urn
            continue
        per_instance = max((gpus_per_instance(t) or 0 for t in types), default=0)
        total += max_size * per_instance
        breakdown.append(f"{group.name} {max_size} x {per_instance} = {max_size * per_instance}")
    if total > cap:
        yield f"GPU node groups can reach {total} GPUs, above the cap of {cap}: {'; '.join(breakdown)}", None


@resource_rule(
    name="gpu-pool-tainted",
    description="GPU node groups carry the nvidia.com/gpu NoSchedule taint so only GPU workloads land there.",
    domain="compute",
    category="security",
    severity="medium",
    remediation=(
        "Add the taint key nvidia.com/gpu, value 'true', effect NO_SCHEDULE to the node group (the GpuNodePool "
        "component does), and tolerate it in GPU workloads and the NVIDIA device plugin."
    ),
    types=list(NODE_GROUPS),
)
def gpu_pool_tainted(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    if not is_gpu_group(resource):
        return
    taints = NODE_GROUPS[resource.resource_type].taints(resource)
    if (GPU_TAINT_KEY, "NOSCHEDULE") not in taints:
        yield f"GPU node group {resource.name} lacks the taint {GPU_TAINT_KEY}:NoSchedule"
