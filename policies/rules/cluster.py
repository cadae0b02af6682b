"""Cluster rules: a private control plane that encrypts secrets, keeps audit logs and runs a supported version.

Each rule reads the cluster through a small reader keyed by type token (``aws:eks/cluster:Cluster`` today), so
a GKE or AKS cluster joins by adding its reader; the verdicts themselves are cloud-neutral.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import ResourceValidationArgs

from policies.framework import Resource, items, prop, resource_rule, truthy

WORLD = frozenset({"0.0.0.0/0", "::/0"})


# ------------------------------------------------------------------------------------------------ readers


@dataclass(frozen=True)
class Endpoint:
    """How the cluster's API server is reachable from outside its network."""

    public: bool
    cidrs: tuple[str, ...]
    """Sources allowed to reach the public endpoint (meaningful only when ``public``)."""


def _aws_endpoint(resource: Resource) -> Endpoint:
    public = prop(resource, "vpcConfig.endpointPublicAccess")
    # EKS defaults endpointPublicAccess to true, and an empty publicAccessCidrs to 0.0.0.0/0.
    if public is not None and not truthy(public):
        return Endpoint(public=False, cidrs=())
    cidrs = tuple(str(c) for c in items(prop(resource, "vpcConfig.publicAccessCidrs")))
    return Endpoint(public=True, cidrs=cidrs or ("0.0.0.0/0",))


def _aws_secrets_encryption(resource: Resource) -> tuple[set[str], str | None]:
    """The resource kinds encrypted with a customer key, and that key (``None`` if none is named)."""
    config = prop(resource, "encryptionConfig")
    # pulumi-aws 7 carries one object; earlier versions a one-item list.
    blocks = [config] if isinstance(config, Mapping) else items(config)
    kinds: set[str] = set()
    key: str | None = None
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        provider = block.get("provider")
        block_key = provider.get("keyArn") if isinstance(provider, Mapping) else None
        if block_key:
            kinds.update(str(k) for k in items(block.get("resources")))
            key = str(block_key)
    return kinds, key


def _aws_log_types(resource: Resource) -> set[str]:
    return {str(t) for t in items(prop(resource, "enabledClusterLogTypes"))}


def _aws_version(resource: Resource) -> str | None:
    version = prop(resource, "version")
    return str(version) if version not in (None, "") else None


ENDPOINT: dict[str, Callable[[Resource], Endpoint]] = {"aws:eks/cluster:Cluster": _aws_endpoint}
SECRETS_ENCRYPTION: dict[str, Callable[[Resource], tuple[set[str], str | None]]] = {
    "aws:eks/cluster:Cluster": _aws_secrets_encryption
}
LOG_TYPES: dict[str, Callable[[Resource], set[str]]] = {"aws:eks/cluster:Cluster": _aws_log_types}
VERSION: dict[str, Callable[[Resource], str | None]] = {"aws:eks/cluster:Cluster": _aws_version}


# ------------------------------------------------------------------------------------------------- rules


@resource_rule(
    name="eks-endpoint-private",
    description="The Kubernetes API endpoint is private, or public only to named networks where allowed.",
    domain="cluster",
    category="security",
    severity="critical",
    remediation=(
        "Set vpcConfig.endpointPublicAccess to false (keel:cluster.publicAccessCidrs empty) and reach the API "
        "through the VPC; where a public endpoint is accepted (dev), set allowPublicCidrs in the policy config "
        "and list specific publicAccessCidrs, never 0.0.0.0/0."
    ),
    types=list(ENDPOINT),
    settings={
        "allowPublicCidrs": {
            "type": "boolean",
            "default": False,
            "description": "Accept a public endpoint restricted to specific CIDRs (never 0.0.0.0/0 or ::/0).",
        }
    },
)
def eks_endpoint_private(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    endpoint = ENDPOINT[resource.resource_type](resource)
    if not endpoint.public:
        return
    world = [c for c in endpoint.cidrs if c in WORLD]
    if world:
        yield f"cluster {resource.name} exposes its API endpoint to the whole internet ({', '.join(world)})"
    elif not config.get("allowPublicCidrs"):
        yield (
            f"cluster {resource.name} exposes its API endpoint publicly (to {', '.join(endpoint.cidrs)}); "
            "public endpoints are not allowed here"
        )


@resource_rule(
    name="eks-secrets-encrypted",
    description="Kubernetes secrets are envelope-encrypted with a customer-managed KMS key.",
    domain="cluster",
    category="security",
    severity="high",
    remediation=(
        "Set encryptionConfig with resources ['secrets'] and provider.keyArn set to a customer-managed KMS key "
        "(the Cluster component takes the EncryptionKeys 'cluster' key)."
    ),
    types=list(SECRETS_ENCRYPTION),
)
def eks_secrets_encrypted(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    kinds, key = SECRETS_ENCRYPTION[resource.resource_type](resource)
    if key is None:
        yield f"cluster {resource.name} names no KMS key for envelope encryption of secrets"
    elif "secrets" not in kinds:
        yield f"cluster {resource.name} has an encryption key but does not encrypt 'secrets' with it"


@resource_rule(
    name="eks-control-plane-logs",
    description="The control plane sends at least the API, audit and authenticator logs to CloudWatch.",
    domain="cluster",
    category="security",
    severity="medium",
    remediation="Add the missing types to the cluster's enabledClusterLogTypes (api, audit, authenticator).",
    types=list(LOG_TYPES),
    settings={
        "requiredLogTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["api", "audit", "authenticator"],
            "description": "Control-plane log types that must be enabled.",
        }
    },
)
def eks_control_plane_logs(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    enabled = LOG_TYPES[resource.resource_type](resource)
    missing = [str(t) for t in config.get("requiredLogTypes") or [] if str(t) not in enabled]
    if missing:
        yield f"cluster {resource.name} does not log {', '.join(missing)}"


@resource_rule(
    name="eks-supported-version",
    description="The cluster pins a Kubernetes version that is still in standard support.",
    domain="cluster",
    category="security",
    severity="medium",
    remediation=(
        "Set keel:cluster.version to one of the supported versions (upgrade one minor version at a time); "
        "update supportedVersions in the policy config when EKS releases or retires a version."
    ),
    types=list(VERSION),
    settings={
        "supportedVersions": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["1.32", "1.33", "1.34", "1.35"],
            "description": "Kubernetes minor versions in standard support.",
        }
    },
)
def eks_supported_version(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    version = VERSION[resource.resource_type](resource)
    supported = [str(v) for v in config.get("supportedVersions") or []]
    if version is None:
        yield f"cluster {resource.name} pins no Kubernetes version (it would get whatever the default is)"
    elif version not in supported:
        yield f"cluster {resource.name} runs Kubernetes {version}; supported: {', '.join(supported)}"
