"""The environment spec: one validated, frozen description of an environment, built from its stack config.

Config (``environments/Pulumi.<env>.yaml``, keys ``keel:<field>``) is data; this module is the only place that
turns it into decisions. Tier defaults (``TIER_DEFAULTS``) fill what the config leaves out; tier rules
(``_tier_rules``) reject overrides that are unsafe for the tier. Every problem is reported with the file, the
key path, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components.k8s.inference_service import MANAGED_FLAGS
from stacks.catalogue import gpu_instance

Tier = Literal["dev", "staging", "prod"]
Capacity = Literal["spot", "on-demand", "spot-with-fallback", "on-demand-floor"]
NatMode = Literal["single", "per-az"]
WeightsSource = Literal["hub", "artifact-bucket"]

CONFIG_NAMESPACE = "keel"
ENGINE_NAMESPACE = "pulumi"

#: Retention values CloudWatch Logs accepts (days).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
#: EKS Kubernetes versions Keel is tested against (standard or extended support in November 2026).
SUPPORTED_KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34", "1.35")

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
Kebab = Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", max_length=32)]
AwsRegion = Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")]
AccountId = Annotated[str, Field(pattern=r"^\d{12}$")]
RoleArn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-zA-Z]{2,}$")]
Percent = Annotated[float, Field(gt=0, le=1000)]


class SpecModel(BaseModel):
    """Base for spec sections: immutable, camelCase keys in config, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


@dataclass(frozen=True)
class TierDefaults:
    """What each tier gets when its config is silent (README, "Environments and tiers")."""

    zone_count: int
    nat: NatMode
    log_retention_days: int
    capacity: Capacity
    daily_backup_retention_days: int
    weekly_backup_retention_days: int | None
    vault_lock: bool
    anomaly_detection: bool
    protect_stateful: bool
    retain_stateful: bool
    key_deletion_window_days: int
    secret_recovery_days: int
    min_replicas: int
    weights: WeightsSource
    usage: Mapping[str, float]
    """Assumed monthly volumes (``UsageSpec`` keys, camelCase) for the cost model."""


def _usage(nat: float, logs: float, artifacts: float, backups: float) -> dict[str, float]:
    return {
        "natGbPerMonth": nat,
        "flowLogGbPerMonth": logs,
        "controlPlaneLogGbPerMonth": logs,
        "artifactBucketGb": artifacts,
        "backupVaultGb": backups,
    }


TIER_DEFAULTS: dict[str, TierDefaults] = {
    "dev": TierDefaults(
        2, "single", 30, "spot", 7, None, False, False, False, False, 7, 7, 0, "hub", _usage(50, 2, 50, 50)
    ),
    "staging": TierDefaults(
        3,
        "single",
        90,
        "spot-with-fallback",
        35,
        None,
        False,
        False,
        True,
        False,
        30,
        30,
        1,
        "hub",
        _usage(100, 5, 100, 100),
    ),
    "prod": TierDefaults(
        3,
        "per-az",
        365,
        "on-demand-floor",
        35,
        365,
        True,
        True,
        True,
        True,
        30,
        30,
        2,
        "artifact-bucket",
        _usage(300, 20, 200, 400),
    ),
}


class AwsSettings(SpecModel):
    """Where the environment lives. One AWS account per environment is recommended."""

    region: AwsRegion
    """The AWS region for every resource, e.g. ``us-east-1``. Required."""
    account_id: AccountId
    """The account the stack may deploy to; the provider refuses any other (``allowedAccountIds``). Required."""
    profile: str | None = None
    """A named AWS CLI profile for credentials. Default: the standard credential chain."""


class NetworkSpec(SpecModel):
    """The environment's VPC."""

    cidr: ipaddress.IPv4Network
    """The VPC's address range, /16 to /20, not overlapping any other environment. Required."""
    availability_zones: list[Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")]] | None = None
    """Zone names; default: the region's first N zones (N = 2 in dev, 3 in staging and prod)."""
    nat: NatMode | None = None
    """``single`` NAT gateway or one ``per-az``. Default: single in dev and staging, per-az in prod."""
    flow_log_retention_days: int | None = None
    """VPC flow-log retention. Default: 30 (dev), 90 (staging), 365 (prod)."""

    @field_validator("cidr")
    @classmethod
    def _cidr_size(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 16 <= value.prefixlen <= 20:
            raise ValueError(
                f"the VPC range must be /16 to /20 to fit node and endpoint subnets, got /{value.prefixlen}"
            )
        if not value.is_private:
            raise ValueError("the VPC range must be private address space (RFC 1918)")
        return value


def _max_at_least_min(min_field: str, min_key: str) -> Any:
    """A bound check on a ``max*`` field, reported on that key so the message points at one place."""

    def check(cls: type, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get(min_field)
        if isinstance(minimum, int) and value < minimum:
            raise ValueError(f"must be at least {min_key} ({minimum})")
        return value

    return check


class SystemNodesSpec(SpecModel):
    """The small on-demand node group that runs cluster add-ons (never GPU work)."""

    instance_types: list[str] = Field(default_factory=lambda: ["m7i.large"], min_length=1)
    """Instance types. Default: ``[m7i.large]``."""
    min_size: int = Field(default=2, ge=1)
    """Minimum nodes. Default: 2 (add-ons survive one node's loss)."""
    max_size: int = Field(default=4, ge=1)
    """Maximum nodes. Default: 4."""

    _max_not_below_min = field_validator("max_size")(_max_at_least_min("min_size", "minSize"))


class ClusterSpec(SpecModel):
    """The EKS cluster."""

    kubernetes_version: Literal[SUPPORTED_KUBERNETES_VERSIONS] = "1.33"  # type: ignore[valid-type]
    """The Kubernetes minor version. Default: ``1.33``."""
    admin_role_arns: list[RoleArn] = Field(min_length=1)
    """IAM roles granted cluster-admin through EKS access entries; run Pulumi as one of them. Required."""
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(default_factory=list)
    """CIDRs allowed to reach the API endpoint publicly (dev only). Default: none, a private-only endpoint."""
    log_retention_days: int | None = None
    """Control-plane log retention. Default: 30 (dev), 90 (staging), 365 (prod)."""
    system_nodes: SystemNodesSpec = Field(default_factory=SystemNodesSpec)
    """The add-on node group. Default: see ``SystemNodesSpec``."""
    addon_versions: dict[str, str] = Field(default_factory=dict)
    """Pinned EKS add-on versions by add-on name. Default: AWS's default version for the cluster version."""

    @field_validator("public_access_cidrs")
    @classmethod
    def _no_open_endpoint(cls, value: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
        for cidr in value:
            if cidr.prefixlen < 16:
                raise ValueError(
                    f"{cidr} opens the API endpoint to too much of the internet; allow /16 or smaller"
                )
        return value

    @field_validator("addon_versions")
    @classmethod
    def _known_addons(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(EKS_ADDONS))
        if unknown:
            raise ValueError(f"unknown add-on {', '.join(unknown)}; allowed: {', '.join(EKS_ADDONS)}")
        return value


EKS_ADDONS = ("vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent", "aws-ebs-csi-driver")


class GpuPoolSpec(SpecModel):
    """A pool of GPU nodes; models are scheduled onto a pool by name."""

    name: Kebab
    """The pool's name, used in node labels (``keel.dev/gpu-pool``). Required."""
    instance_types: list[str] = Field(min_length=1)
    """GPU instance types (all with the same GPU count); several types widen spot capacity. Required."""
    min_size: int = Field(default=0, ge=0)
    """Nodes always running. Default: 0; prod requires at least 1 (an on-demand floor)."""
    max_size: int = Field(ge=1)
    """Most nodes per node group of the pool. With ``spot-with-fallback`` the spot and the on-demand fallback
    group may each reach it, so the hard ceiling (``max_gpus``, what budgets and GPU caps count) is twice that;
    with ``on-demand-floor`` it bounds the pool's total. Required."""
    capacity: Capacity | None = None
    """How nodes are bought: ``spot``, ``on-demand``, ``spot-with-fallback`` (spot first, on-demand when spot is
    short) or ``on-demand-floor`` (``minSize`` on-demand nodes, bursting on spot). Default: spot (dev),
    spot-with-fallback (staging), on-demand-floor (prod)."""
    root_volume_gib: int = Field(default=200, ge=50, le=16384)
    """Encrypted gp3 root volume per node, sized for model weights and images. Default: 200."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Extra node labels for workload placement (``keel.dev/gpu-pool`` and ``nvidia.com/gpu.present`` are set
    by Keel). Default: none."""

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(set(value) & {"keel.dev/gpu-pool", "nvidia.com/gpu.present"})
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is set by Keel; choose another label key")
        bad = [
            f"{k}={v}"
            for k, v in value.items()
            if not _LABEL_KEY.fullmatch(k) or not _LABEL_VALUE.fullmatch(v)
        ]
        if bad:
            raise ValueError(
                f"invalid Kubernetes label {', '.join(bad)}: keys [prefix/]name, values up to 63 "
                "alphanumerics, '-', '_' or '.'"
            )
        return value

    @field_validator("instance_types")
    @classmethod
    def _gpu_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if gpu_instance(t) is None]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} is not a GPU instance type Keel knows "
                "(GPU families g4dn, g5, g6, g6e, p4d, p4de, p5, p5e, p5en; see stacks/catalogue.py)"
            )
        counts = {t: gpu_instance(t).gpus for t in value}  # type: ignore[union-attr]
        if len(set(counts.values())) > 1:
            raise ValueError(f"all types in a pool must have the same GPU count, got {counts}")
        return value

    _max_not_below_min = field_validator("max_size")(_max_at_least_min("min_size", "minSize"))

    @property
    def gpus_per_node(self) -> int:
        """GPUs on each node of this pool."""
        entry = gpu_instance(self.instance_types[0])
        assert entry is not None  # guaranteed by validation
        return entry.gpus

    @property
    def max_gpus(self) -> int:
        """GPUs at peak: every node group of the pool at its maximum."""
        return sum(group.max_size for group in self.node_groups()) * self.gpus_per_node

    def node_groups(self) -> list[NodeGroupPlan]:
        """The managed node groups that realise this pool's capacity strategy."""
        capacity = self.capacity or "spot"
        if capacity == "spot":
            return [NodeGroupPlan("spot", "SPOT", self.min_size, self.max_size)]
        if capacity == "on-demand":
            return [NodeGroupPlan("od", "ON_DEMAND", self.min_size, self.max_size)]
        if capacity == "spot-with-fallback":
            # Two groups with the same labels: the autoscaler's priority expander tries spot first.
            return [
                NodeGroupPlan("spot", "SPOT", self.min_size, self.max_size),
                NodeGroupPlan("od", "ON_DEMAND", 0, self.max_size),
            ]
        groups = [NodeGroupPlan("od", "ON_DEMAND", self.min_size, self.min_size)]
        if self.max_size > self.min_size:
            groups.append(NodeGroupPlan("spot", "SPOT", 0, self.max_size - self.min_size))
        return groups


@dataclass(frozen=True)
class NodeGroupPlan:
    """One managed node group of a pool."""

    suffix: str
    capacity_type: Literal["SPOT", "ON_DEMAND"]
    min_size: int
    max_size: int


class SecretSpec(SpecModel):
    """A secret delivered to workloads; its value is set with ``pulumi config set --secret keel:<configKey>``."""

    name: Kebab
    """The secret's name in Secrets Manager, below the environment prefix. Required."""
    config_key: Annotated[str, Field(pattern=r"^[a-z][a-zA-Z0-9]*$")]
    """The stack config key holding the value (camelCase, in the ``keel`` namespace). Required."""
    description: str = ""
    """What the secret is for. Default: empty."""


class BackupSpec(SpecModel):
    """Backups of the environment's stateful resources (AWS Backup)."""

    daily_retention_days: int | None = Field(default=None, ge=1)
    """Daily recovery points kept this long. Default: 7 (dev), 35 (staging, prod)."""
    weekly_retention_days: int | None = Field(default=None, ge=1)
    """Weekly recovery points kept this long; none if unset. Default: 365 in prod, none elsewhere."""
    copy_region: AwsRegion | None = None
    """A second region that receives a copy of every recovery point. Required in prod."""
    vault_lock: bool | None = None
    """Lock the vaults so recovery points cannot be deleted early. Default: on in prod only."""
    vault_lock_mode: Literal["governance", "compliance"] | None = None
    """``compliance``: after a 3-day grace period nobody (not even the account root) can delete recovery points
    early or remove the lock; ``governance``: privileged principals can. Default: compliance in prod,
    governance elsewhere."""
    noncurrent_version_days: int = Field(default=30, ge=1)
    """Old object versions in the artifact bucket expire after this many days. Default: 30."""


#: An image reference pinned by version tag and digest: [registry/]repository:tag@sha256:<64 hex>.
PINNED_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._:/-]*:[\w][\w.-]*@sha256:[0-9a-f]{64}$")
#: Engine flags Keel sets from a model's own keys (extraArgs may not repeat them): the component's own list.
VLLM_OWNED_FLAGS = MANAGED_FLAGS


class ModelSpec(SpecModel):
    """A model served by vLLM on one GPU pool, autoscaled on its queue depth."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", max_length=40)]
    """The model's name in Keel: its namespace is ``model-<name>`` and its Service is ``<name>``; clients put the
    hub id (``model``) in their requests' ``"model"`` field. Required."""
    model: Annotated[str, Field(pattern=r"^[\w.-]+/[\w.-]+$")]
    """The Hugging Face model id, e.g. ``Qwen/Qwen2.5-7B-Instruct``. Required."""
    revision: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
    """The model repository commit (40 hex characters): a branch or tag could change under you. Required."""
    weights: WeightsSource | None = None
    """Where replicas load weights from: ``hub`` (downloaded at start with the hub token) or ``artifact-bucket``
    (``s3://<artifact bucket>/models/<model>/<revision>/``, synced into the pod's cache: no public hub at
    scale-up). Default: hub in dev and staging; artifact-bucket in prod, where it is required."""
    image: str
    """The vLLM OpenAI server image, pinned by tag and digest (``...:v0.11.0@sha256:...``). Required."""
    pool: str
    """The GPU pool (``keel:gpuPools[].name``) replicas run on. Required."""
    gpus_per_replica: int = Field(default=1, ge=1, le=8)
    """GPUs per replica, the tensor-parallel size. Default: 1."""
    max_model_len: int = Field(default=8192, ge=256, le=1_048_576)
    """Longest sequence (prompt plus output) served, in tokens. Default: 8192."""
    gpu_memory_utilization: float = Field(default=0.9, ge=0.5, le=0.98)
    """Share of each GPU's memory vLLM may use (weights plus KV cache). Default: 0.9."""
    min_replicas: int | None = Field(default=None, ge=0)
    """Replicas always running. Default: 0 in dev (scale to zero), 1 in staging, 2 in prod (at least 2 there)."""
    max_replicas: int = Field(ge=1)
    """Most replicas at peak. Required."""
    queue_depth_target: int = Field(default=5, ge=1)
    """Waiting requests per replica (``vllm:num_requests_waiting``) that trigger a scale-up. Default: 5."""
    extra_args: list[str] = Field(default_factory=list)
    """More vLLM engine flags, e.g. ``["--enable-prefix-caching"]``. Default: none."""
    cpu: float | None = Field(default=None, gt=0)
    """CPU cores requested per replica. Default: 3 per GPU."""
    memory_gib: int | None = Field(default=None, ge=1)
    """Memory requested per replica, GiB (vLLM stages weights through host memory). Default: 24 per GPU."""
    client_namespaces: list[Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")]] = Field(
        default_factory=list
    )
    """Namespaces whose pods may call the model directly (NetworkPolicy). Default: none; scale-to-zero models
    are called through the KEDA HTTP interceptor, which is always allowed."""

    @field_validator("image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if not PINNED_IMAGE.match(value):
            raise ValueError("the image must be pinned by tag and digest: <repository>:<tag>@sha256:<64 hex>")
        if ":latest@" in value:
            raise ValueError("the tag must name a version, not latest")
        return value

    @field_validator("extra_args")
    @classmethod
    def _no_owned_flags(cls, value: list[str]) -> list[str]:
        clash = sorted({arg.split("=", 1)[0] for arg in value} & VLLM_OWNED_FLAGS)
        if clash:
            raise ValueError(f"{', '.join(clash)} is set from the model's own keys; remove it from extraArgs")
        return value

    _max_not_below_min = field_validator("max_replicas")(_max_at_least_min("min_replicas", "minReplicas"))

    @property
    def cpu_request(self) -> float:
        """CPU cores per replica (the configured value or 3 per GPU)."""
        return self.cpu if self.cpu is not None else 3.0 * self.gpus_per_replica

    @property
    def memory_request_gib(self) -> int:
        """Memory per replica in GiB (the configured value or 24 per GPU)."""
        return self.memory_gib if self.memory_gib is not None else 24 * self.gpus_per_replica

    @property
    def artifact_prefix(self) -> str:
        """Where mirrored weights live in the artifact bucket."""
        return f"models/{self.model}/{self.revision}/"


MAX_BUDGET_NOTIFICATIONS = 10


class UsageSpec(SpecModel):
    """Volumes the cost model assumes for the resources AWS bills by use (GB), not by the hour.

    Each figure is stamped on its resource as the ``keel:cost-assumed-gb`` tag, so ``keel cost``, the plan's
    cost section and the ``peak-spend-within-budget`` policy (also under ``pulumi preview``) price the same
    number, and a reviewer sees a changed assumption in the diff. Defaults are per tier; replace them with
    figures from Cost Explorer once the environment has run for a month.
    """

    nat_gb_per_month: float = Field(ge=0, le=1_000_000)
    """GB processed per month by all NAT gateways together (split evenly between them). Default: dev 50,
    staging 100, prod 300."""
    flow_log_gb_per_month: float = Field(ge=0, le=1_000_000)
    """GB of VPC flow logs ingested into CloudWatch per month. Default: dev 2, staging 5, prod 20."""
    control_plane_log_gb_per_month: float = Field(ge=0, le=1_000_000)
    """GB of EKS control-plane logs ingested into CloudWatch per month. Default: dev 2, staging 5, prod 20."""
    artifact_bucket_gb: float = Field(ge=0, le=1_000_000)
    """GB held in the artifact bucket (mirrored model weights, all versions). Default: dev 50, staging 100,
    prod 200."""
    backup_vault_gb: float = Field(ge=0, le=1_000_000)
    """GB of recovery points held in each backup vault (the copy vault holds the same). Default: dev 50,
    staging 100, prod 400."""


class BudgetSpec(SpecModel):
    """The environment's monthly cost budget and alerts."""

    monthly_limit_usd: float = Field(gt=0)
    """The monthly budget in USD. Required."""
    actual_thresholds_pct: list[Percent] = Field(default_factory=lambda: [80.0, 100.0], min_length=1)
    """Alert when actual spend passes these percentages. Default: [80, 100]."""
    forecast_thresholds_pct: list[Percent] = Field(default_factory=lambda: [100.0], min_length=1)
    """Alert when forecast spend passes these percentages. Default: [100]."""
    emails: list[Email] = Field(min_length=1, max_length=10)
    """Who is alerted (AWS Budgets allows 10 e-mail subscribers per notification). Required."""
    anomaly_detection: bool | None = None
    """Cost Anomaly Detection monitor and alerts. Default: on in prod only."""
    anomaly_threshold_usd: float = Field(default=100.0, gt=0)
    """Alert on anomalies whose total impact reaches this many USD. Default: 100."""

    @field_validator("forecast_thresholds_pct")
    @classmethod
    def _notification_limit(cls, value: list[float], info: ValidationInfo) -> list[float]:
        actual = info.data.get("actual_thresholds_pct") or []
        if len(actual) + len(value) > MAX_BUDGET_NOTIFICATIONS:
            raise ValueError(
                f"{len(actual)} actual + {len(value)} forecast thresholds exceed the {MAX_BUDGET_NOTIFICATIONS} "
                "notifications AWS Budgets allows per budget"
            )
        return value


class TagsSpec(SpecModel):
    """Cost-allocation tags on every taggable resource."""

    owner: Annotated[str, Field(min_length=1, max_length=256)]
    """The owning team. Required."""
    cost_centre: Annotated[str, Field(min_length=1, max_length=256)]
    """The cost centre billed. Required."""
    extra: dict[str, str] = Field(default_factory=dict)
    """More tags. Keys must not shadow the required ones. Default: none."""

    @field_validator("extra")
    @classmethod
    def _no_shadowing(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(value) & set(REQUIRED_TAG_KEYS))
        if clash:
            raise ValueError(f"{', '.join(clash)} is set by Keel; choose another tag key")
        bad = [
            k for k in value if not re.fullmatch(r"[\w.:/=+\-@ ]{1,128}", k) or k.lower().startswith("aws:")
        ]
        if bad:
            raise ValueError(
                f"invalid tag key {', '.join(bad)}: 1-128 letters, digits, spaces or _.:/=+-@, no aws: prefix"
            )
        return value


REQUIRED_TAG_KEYS = ("environment", "owner", "cost-centre", "managed-by")


class EnvironmentSpec(SpecModel):
    """One environment, validated and with every tier default resolved. Built by ``parse_spec``."""

    environment: Annotated[str, Field(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", max_length=20)]
    """The environment (stack) name, at most 20 characters (it prefixes physical names such as the artifact
    bucket's, which S3 limits). Set from the stack name, not from config."""
    tier: Tier
    """``dev``, ``staging`` or ``prod``: decides defaults and what may be overridden. Required."""
    cloud: Literal["aws"] = "aws"
    """The cloud. Default: ``aws`` (GCP comes as its own piece of work)."""
    aws: AwsSettings
    """Account and region. Required."""
    tags: TagsSpec
    """Cost-allocation tags. Required."""
    network: NetworkSpec
    """The VPC. Required (at least its CIDR)."""
    cluster: ClusterSpec
    """The EKS cluster. Required (at least its admin roles)."""
    gpu_pools: list[GpuPoolSpec] = Field(min_length=1)
    """GPU node pools. Required (at least one)."""
    secrets: list[SecretSpec] = Field(default_factory=list)
    """Secrets for workloads. Default: none."""
    backups: BackupSpec = Field(default_factory=BackupSpec)
    """Backup policy. Default: the tier's."""
    budget: BudgetSpec
    """Monthly budget and alerts. Required."""
    usage: UsageSpec = Field(default_factory=lambda: UsageSpec.model_validate(TIER_DEFAULTS["dev"].usage))
    """Volumes the cost model assumes (NAT, logs, stored GB). Default: the tier's."""
    models: list[ModelSpec] = Field(default_factory=list)
    """Models served on the GPU pools. Default: none."""

    @model_validator(mode="before")
    @classmethod
    def _apply_tier_defaults(cls, data: Any) -> Any:
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("tier"), str)
            or data["tier"] not in TIER_DEFAULTS
        ):
            return data
        tier = TIER_DEFAULTS[data["tier"]]
        region = data.get("aws", {}).get("region") if isinstance(data.get("aws"), dict) else None
        data = dict(data)

        def fill(section: str, defaults: Mapping[str, Any]) -> None:
            value = data.get(section, {})
            if isinstance(value, dict):
                data[section] = {**{k: v for k, v in defaults.items() if v is not None}, **value}

        zones = (
            [f"{region}{letter}" for letter in "abcdef"[: tier.zone_count]]
            if isinstance(region, str)
            else None
        )
        fill(
            "network",
            {"availabilityZones": zones, "nat": tier.nat, "flowLogRetentionDays": tier.log_retention_days},
        )
        fill("cluster", {"logRetentionDays": tier.log_retention_days})
        fill(
            "backups",
            {
                "dailyRetentionDays": tier.daily_backup_retention_days,
                "weeklyRetentionDays": tier.weekly_backup_retention_days,
                "vaultLock": tier.vault_lock,
                "vaultLockMode": "compliance" if data.get("tier") == "prod" else "governance",
            },
        )
        fill("budget", {"anomalyDetection": tier.anomaly_detection})
        data.setdefault("usage", {})
        fill("usage", tier.usage)
        models = data.get("models")
        if isinstance(models, list):
            data["models"] = [
                {"minReplicas": tier.min_replicas, "weights": tier.weights, **m} if isinstance(m, dict) else m
                for m in models
            ]
        pools = data.get("gpuPools")
        if isinstance(pools, list):
            data["gpuPools"] = [{"capacity": tier.capacity, **p} if isinstance(p, dict) else p for p in pools]
        return data

    @property
    def defaults(self) -> TierDefaults:
        """The tier's defaults (for values that are not config, such as protection)."""
        return TIER_DEFAULTS[self.tier]

    @property
    def name_prefix(self) -> str:
        """Prefix of physical names: ``keel-<environment>``."""
        return f"keel-{self.environment}"

    @property
    def cluster_name(self) -> str:
        return self.name_prefix

    @property
    def merged_tags(self) -> dict[str, str]:
        """The one place tags are merged: required keys first, then the config's extras."""
        return {
            "environment": self.environment,
            "owner": self.tags.owner,
            "cost-centre": self.tags.cost_centre,
            "managed-by": "keel",
            **self.tags.extra,
        }

    @property
    def max_gpus(self) -> int:
        """GPUs in the environment with every pool at its maximum."""
        return sum(pool.max_gpus for pool in self.gpu_pools)


# --------------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, what was there, and what is allowed."""

    path: str
    message: str
    value: Any = None
    has_value: bool = True

    def render(self, source: str) -> str:
        shown = f" = {_show(self.value)}" if self.has_value else ""
        return f"{source}: {self.path}{shown}: {self.message}"


class SpecError(Exception):
    """A config that cannot become a spec. ``str()`` is the user-facing message, one line per problem."""

    def __init__(self, source: str, problems: Iterable[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(p.render(source) for p in self.problems))


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, ipaddress.IPv4Network) else str(value)
    return text if len(text) <= 120 else text[:117] + "..."


_FIELD_BY_KEY = {field.alias or name: name for name, field in EnvironmentSpec.model_fields.items()}
#: Top-level config keys a user may set (``environment`` comes from the stack name).
CONFIG_KEYS = tuple(sorted(key for key in _FIELD_BY_KEY if key != "environment"))


def _key_path(namespace_key: str, loc: tuple[int | str, ...]) -> str:
    path = f"{CONFIG_NAMESPACE}:{namespace_key}"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _pydantic_problems(error: ValidationError, raw: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = item["loc"]
        if not loc:
            problems.append(Problem(f"{CONFIG_NAMESPACE}:*", item["msg"], has_value=False))
            continue
        head, rest = str(loc[0]), tuple(loc[1:])
        message = str(item["msg"]).removeprefix("Value error, ")
        if head == "environment":
            problems.append(
                Problem(
                    "(stack name)",
                    f"{message}: stack names are kebab-case, at most 20 characters",
                    item["input"],
                )
            )
            continue
        if item["type"] == "missing":
            problems.append(Problem(_key_path(head, rest), "is required but missing", has_value=False))
        elif item["type"] == "extra_forbidden":
            problems.append(Problem(_key_path(head, rest), f"unknown key{_suggest(loc, raw)}", item["input"]))
        else:
            problems.append(Problem(_key_path(head, rest), message, item["input"]))
    return problems


def _suggest(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    """For an unknown key, the keys allowed at that level."""
    model: type[BaseModel] | None = EnvironmentSpec
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        annotation = field.annotation if field else None
        args = getattr(annotation, "__args__", ())
        candidates = [a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = candidates[0] if candidates else None
    if model is None:
        return ""
    allowed = sorted((f.alias or n) for n, f in model.model_fields.items() if n != "environment")
    return f"; allowed: {', '.join(allowed)}"


def _tier_rules(spec: EnvironmentSpec) -> list[Problem]:
    """Overrides the tier does not allow. Defaults never trip these; explicit config can."""
    problems: list[Problem] = []
    tier = spec.tier

    def reject(path: str, value: Any, message: str) -> None:
        problems.append(Problem(_key_path(*_split(path)), message, value))

    if tier != "dev" and spec.cluster.public_access_cidrs:
        reject(
            "cluster.publicAccessCidrs",
            [str(c) for c in spec.cluster.public_access_cidrs],
            f"{tier} requires a private-only API endpoint; allowed: an empty list (public access is dev-only)",
        )
    if tier == "prod":
        if spec.network.nat != "per-az":
            reject("network.nat", spec.network.nat, "prod requires one NAT gateway per zone; allowed: per-az")
        if len(spec.network.availability_zones or []) < 3:
            reject(
                "network.availabilityZones", spec.network.availability_zones, "prod requires at least 3 zones"
            )
        if spec.backups.copy_region is None:
            problems.append(
                Problem(
                    _key_path("backups", ("copyRegion",)),
                    "prod requires a second region for backup copies",
                    has_value=False,
                )
            )
        elif spec.backups.copy_region == spec.aws.region:
            reject("backups.copyRegion", spec.backups.copy_region, "must differ from aws.region")
        if not spec.backups.vault_lock:
            reject(
                "backups.vaultLock",
                spec.backups.vault_lock,
                "prod requires locked backup vaults; allowed: true",
            )
        if not spec.backups.weekly_retention_days or spec.backups.weekly_retention_days < 90:
            reject(
                "backups.weeklyRetentionDays",
                spec.backups.weekly_retention_days,
                "prod requires weekly recovery points kept at least 90 days",
            )
        if (spec.backups.daily_retention_days or 0) < 7:
            reject(
                "backups.dailyRetentionDays",
                spec.backups.daily_retention_days,
                "prod requires daily recovery points kept at least 7 days",
            )
        for index, pool in enumerate(spec.gpu_pools):
            if pool.capacity in ("spot", "spot-with-fallback"):
                reject(
                    f"gpuPools[{index}].capacity",
                    pool.capacity,
                    "prod requires an on-demand floor; allowed: on-demand, on-demand-floor",
                )
            if pool.min_size < 1:
                reject(
                    f"gpuPools[{index}].minSize",
                    pool.min_size,
                    "prod requires at least 1 on-demand node per pool",
                )
    weekly = spec.backups.weekly_retention_days
    if (
        weekly is not None
        and spec.backups.daily_retention_days
        and weekly < spec.backups.daily_retention_days
    ):
        reject("backups.weeklyRetentionDays", weekly, "must be at least dailyRetentionDays")
    for path, days in (
        ("network.flowLogRetentionDays", spec.network.flow_log_retention_days),
        ("cluster.logRetentionDays", spec.cluster.log_retention_days),
    ):
        if days not in LOG_RETENTION_DAYS:
            reject(path, days, f"CloudWatch accepts only {', '.join(map(str, LOG_RETENTION_DAYS))}")
        elif tier == "prod" and days < 365:
            reject(path, days, "prod keeps logs at least 365 days")
    zones = spec.network.availability_zones or []
    for index, zone in enumerate(zones):
        if not zone.startswith(spec.aws.region):
            reject(f"network.availabilityZones[{index}]", zone, f"must be a zone of region {spec.aws.region}")
    if len(set(zones)) != len(zones):
        reject("network.availabilityZones", zones, "zones must be distinct")
    problems += _model_rules(spec)
    names = [pool.name for pool in spec.gpu_pools]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reject("gpuPools", names, f"pool name {name!r} is used more than once")
    secret_names = [s.name for s in spec.secrets]
    config_keys = [s.config_key for s in spec.secrets]
    for label, values in (("name", secret_names), ("configKey", config_keys)):
        for dup in sorted({v for v in values if values.count(v) > 1}):
            reject("secrets", values, f"secret {label} {dup!r} is used more than once")
    for index, key in enumerate(config_keys):
        if key in _FIELD_BY_KEY:
            reject(f"secrets[{index}].configKey", key, "clashes with a Keel config key; choose another name")
    return problems


def _model_rules(spec: EnvironmentSpec) -> list[Problem]:
    """Each model fits its pool, and the tier's floor and weight source."""
    problems: list[Problem] = []
    pools = {pool.name: pool for pool in spec.gpu_pools}
    demand: dict[str, int] = {}
    for index, model in enumerate(spec.models):
        path = ("models", (index,))

        def reject(key: str, value: Any, message: str, path: tuple[str, tuple[int, ...]] = path) -> None:
            problems.append(Problem(_key_path(path[0], (*path[1], key)), message, value))

        pool = pools.get(model.pool)
        if pool is None:
            reject("pool", model.pool, f"no such GPU pool; allowed: {', '.join(sorted(pools))}")
            continue
        if model.gpus_per_replica > pool.gpus_per_node:
            reject(
                "gpusPerReplica",
                model.gpus_per_replica,
                f"pool {pool.name!r} has {pool.gpus_per_node} GPU(s) per node; a replica cannot span nodes",
            )
            continue
        # Pool types are validated against the catalogue, so every lookup succeeds.
        entries = [entry for t in pool.instance_types if (entry := gpu_instance(t)) is not None]
        smallest = min(entries, key=lambda entry: (entry.vcpus, entry.memory_gib))
        # What a node keeps for itself and its daemons (kubelet reservations, CNI, device plugin, exporters).
        usable_cpu, usable_memory = smallest.vcpus - 1, smallest.memory_gib * 0.85 - 1
        if model.cpu_request > usable_cpu or model.memory_request_gib > usable_memory:
            reject(
                "memoryGib" if model.memory_request_gib > usable_memory else "cpu",
                {"cpu": model.cpu_request, "memoryGib": model.memory_request_gib},
                f"a replica does not fit pool {pool.name!r}'s smallest type ({smallest.vcpus} vCPU, "
                f"{smallest.memory_gib} GiB: about {usable_cpu} vCPU and {usable_memory:.0f} GiB usable); "
                "choose larger instance types or smaller requests",
            )
            continue
        replicas_per_node = pool.gpus_per_node // model.gpus_per_replica
        demand[pool.name] = demand.get(pool.name, 0) + -(-model.max_replicas // replicas_per_node)
        if spec.tier == "prod" and (model.min_replicas or 0) < 2:
            reject("minReplicas", model.min_replicas, "prod serves every model from at least 2 replicas")
        if spec.tier == "prod" and model.weights != "artifact-bucket":
            reject(
                "weights",
                model.weights,
                "prod loads weights from the artifact bucket, never a public hub at scale-up",
            )
    for pool_name, nodes in demand.items():
        pool = pools[pool_name]
        if nodes > pool.max_size:
            users = [m.name for m in spec.models if m.pool == pool_name]
            problems.append(
                Problem(
                    _key_path("models", ()),
                    f"models {', '.join(users)} need {nodes} nodes of pool {pool_name!r} at "
                    f"maxReplicas, more than its maxSize ({pool.max_size})",
                    [m.max_replicas for m in spec.models if m.pool == pool_name],
                )
            )
    names = [m.name for m in spec.models]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            Problem(_key_path("models", ()), f"model name {name!r} is used more than once", names)
        )
    return problems


def _split(path: str) -> tuple[str, tuple[int | str, ...]]:
    head, _, rest = path.partition(".")
    parts: list[int | str] = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", rest):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    if "[" in head:
        head, _, index = head.partition("[")
        parts.insert(0, int(index.rstrip("]")))
    return head, tuple(parts)


def parse_spec(
    values: Mapping[str, Any],
    *,
    environment: str,
    source: str,
    secret_keys: Iterable[str] = (),
) -> EnvironmentSpec:
    """Validate stack config into an ``EnvironmentSpec``.

    ``values`` maps fully qualified config keys (``keel:tier``) to decoded values (objects as dicts);
    ``secret_keys`` lists the keys that hold secrets. ``source`` names the file in messages.
    Raises ``SpecError`` listing every problem found.
    """
    problems: list[Problem] = []
    raw: dict[str, Any] = {}
    secrets = set(secret_keys)
    declared_secret_keys: set[str] = set()
    declared = values.get(f"{CONFIG_NAMESPACE}:secrets")
    if isinstance(declared, list):
        declared_secret_keys = {
            str(s["configKey"])
            for s in declared
            if isinstance(s, dict) and isinstance(s.get("configKey"), str)
        }
    for key, value in values.items():
        namespace, _, name = key.partition(":")
        if namespace == ENGINE_NAMESPACE:
            continue
        if namespace != CONFIG_NAMESPACE or not name:
            problems.append(
                Problem(
                    key,
                    "unknown config namespace; Keel reads only keel:<key> "
                    "(the AWS provider is configured from keel:aws)",
                    value if key not in secrets else "[secret]",
                )
            )
        elif name in declared_secret_keys and name not in _FIELD_BY_KEY:
            if key not in secrets:
                problems.append(
                    Problem(
                        key,
                        f"holds a secret in plain text; set it with `pulumi config set --secret {key}`",
                        has_value=False,
                    )
                )
        elif name not in CONFIG_KEYS or name == "environment":
            close = [k for k in CONFIG_KEYS if _similar(k, name)]
            hint = f"; did you mean {CONFIG_NAMESPACE}:{close[0]}?" if close else ""
            problems.append(Problem(key, f"unknown key{hint} Allowed: {', '.join(CONFIG_KEYS)}", value))
        else:
            raw[name] = value
    if problems:
        raise SpecError(source, problems)
    try:
        spec = EnvironmentSpec.model_validate({**raw, "environment": environment})
    except ValidationError as error:
        raise SpecError(source, _pydantic_problems(error, raw)) from None
    problems = _tier_rules(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def _similar(a: str, b: str) -> bool:
    """Cheap typo detection for did-you-mean hints."""
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio() >= 0.75


def overlapping_networks(specs: Mapping[str, ipaddress.IPv4Network]) -> list[tuple[str, str]]:
    """Pairs of environments whose VPC ranges overlap (environments must be routable to each other's never)."""
    names = sorted(specs)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if specs[a].overlaps(specs[b])]
