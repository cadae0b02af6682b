"""The cost model: monthly list-price cost of a plan at idle and at peak, from a price table shipped as data.

``estimate_graph(graph, ...)``, which every plan calls, prices every custom resource in the graph with
``keel/prices/aws.yaml`` (optionally overridden by a user file of the same shape). Node groups cost an instance
type's hourly price (spot groups at the recorded spot estimate) times nodes times ``hours_per_month``, plus
their gp3 root volumes. **Idle** counts every node group at its ``minSize`` on its first instance type (the one
EKS launches first for on-demand capacity), plus the nodes models need at their minimum replicas; **peak**
counts it at its ``maxSize`` on its most expensive type (the autoscaler may pick any type in the list).
Usage-based items (NAT and log GB, stored GB) take their volume from the resource's own ``keel:cost-assumed-gb``
tag, which the components set from the environment's ``keel:usage``; the estimate lists every volume it
assumed. A resource type with no price, or a usage-based resource without that tag, is listed as unpriced,
never counted as zero; types free by nature are listed in ``FREE_TYPES``/``FREE_PREFIXES``.

The pricing reads only the resource graph, so the plan, ``keel cost`` and the ``peak-spend-within-budget``
policy (offline and under ``pulumi preview``) compute the same figures.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.aws.node_group import GPU_POOL_LABEL
from components.base import ASSUMED_GB_TAG
from keel.engine import Graph, PlannedResource
from keel.paths import PROJECT_ROOT, display_path
from stacks.catalogue import gpu_instance

PRICES_FILE = Path(__file__).resolve().parent / "prices" / "aws.yaml"

#: Resource types that cost nothing themselves (their cost, if any, is counted on another resource).
FREE_TYPES: dict[str, str] = {
    "aws:autoscaling/tag:Tag": "a tag",
    "aws:backup/plan:Plan": "storage is priced on the vault",
    "aws:backup/selection:Selection": "storage is priced on the vault",
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": "configuration",
    "aws:costexplorer/anomalyMonitor:AnomalyMonitor": "Cost Anomaly Detection has no charge",
    "aws:costexplorer/anomalySubscription:AnomalySubscription": "Cost Anomaly Detection has no charge",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "security groups are free",
    "aws:ec2/flowLog:FlowLog": "ingestion is priced on its log group",
    "aws:ec2/internetGateway:InternetGateway": "no hourly charge",
    "aws:ec2/launchTemplate:LaunchTemplate": "its volumes are priced on the node group",
    "aws:ec2/route:Route": "routing is free",
    "aws:ec2/routeTable:RouteTable": "routing is free",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "routing is free",
    "aws:ec2/securityGroup:SecurityGroup": "security groups are free",
    "aws:ec2/subnet:Subnet": "subnets are free",
    "aws:ec2/vpc:Vpc": "VPCs are free",
    "aws:eks/accessEntry:AccessEntry": "configuration",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "configuration",
    "aws:eks/addon:Addon": "add-ons run on the node groups",
    "aws:kms/alias:Alias": "aliases are free",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "configuration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "configuration",
    "aws:s3/bucketPolicy:BucketPolicy": "configuration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "configuration",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": "configuration",
    "aws:s3/bucketVersioning:BucketVersioning": "configuration (versions count in bucket_stored_gb)",
    "aws:sns/topic:Topic": "negligible at alert volumes",
    "aws:sns/topicPolicy:TopicPolicy": "configuration",
    "aws:sns/topicSubscription:TopicSubscription": "negligible at alert volumes",
}
#: Type prefixes free by nature: IAM, Kubernetes objects and Helm releases (they run on priced nodes), providers.
FREE_PREFIXES: dict[str, str] = {
    "aws:iam/": "IAM is free",
    "kubernetes:": "Kubernetes objects run on the priced node groups",
    "pulumi:providers:": "a provider",
}

_PRICE_KEYS = (
    "spot",
    "eks_cluster",
    "nat_gateway_hourly",
    "nat_gateway_per_gb",
    "public_ipv4_hourly",
    "interface_endpoint_az_hourly",
    "kms_key_monthly",
    "secret_monthly",
    "ebs_gp3_gb_month",
    "s3_standard_gb_month",
    "backup_warm_gb_month",
    "logs_ingestion_per_gb",
    "logs_storage_gb_month",
    "budget_monthly",
)
_DEFAULT_ROOT_GIB = 20  # EKS managed node groups' default disk when no launch template sets one


class CostConfigError(Exception):
    """A price table or override file that cannot be used: names the file, the key path and the value."""


@dataclass(frozen=True)
class Price:
    price: float
    unit: str
    source: str
    as_of: dt.date
    note: str | None = None
    estimate: bool = False


@dataclass(frozen=True)
class PriceTable:
    """A validated price table (shipped, or shipped with overrides merged over it)."""

    currency: str
    hours_per_month: float
    regions: Mapping[str, Mapping[str, Any]]
    """region -> {"instances": {type: Price}, <price key>: Price}"""
    sources: tuple[str, ...]
    """The files this table was read from, shipped first."""

    def price(self, region: str, key: str) -> Price | None:
        entry = self.regions.get(region, {}).get(key)
        return entry if isinstance(entry, Price) else None

    def instance(self, region: str, instance_type: str) -> Price | None:
        return self.regions.get(region, {}).get("instances", {}).get(instance_type)


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """``extra`` over ``base``; a price entry (a mapping with ``price``) in ``extra`` replaces the old one whole."""
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        replaces_price = isinstance(value, Mapping) and "price" in value
        if isinstance(old, dict) and isinstance(value, Mapping) and not replaces_price:
            out[key] = _deep_merge(old, value, f"{path}.{key}" if path else str(key))
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        # libyaml's safe loader when PyYAML has it (its wheels do): the table is read on every plan.
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as error:
        raise CostConfigError(f"{path}: cannot read: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise CostConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(str(path), "(top level)", data, "must be a mapping")
    return data


def _fail(source: str, path: str, value: Any, message: str) -> CostConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 120 else shown[:117] + "..."
    return CostConfigError(f"{source}: {path} = {shown}: {message}")


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _parse_price(source: str, path: str, raw: Any) -> Price:
    if not isinstance(raw, Mapping):
        raise _fail(source, path, raw, "a price must be a mapping with price, unit, source and as_of")
    unknown = sorted(set(raw) - {"price", "unit", "source", "as_of", "note", "estimate"})
    if unknown:
        raise _fail(
            source,
            f"{path}.{unknown[0]}",
            raw[unknown[0]],
            "unknown key; allowed: price, unit, source, as_of, note, estimate",
        )
    amount = _number(raw.get("price"))
    if amount is None or amount < 0:
        raise _fail(source, f"{path}.price", raw.get("price"), "must be a number of at least 0")
    link = raw.get("source")
    if not isinstance(link, str) or not link.startswith("https://"):
        raise _fail(source, f"{path}.source", link, "must be the https:// URL of the pricing page")
    as_of = _as_date(raw.get("as_of"))
    if as_of is None:
        raise _fail(source, f"{path}.as_of", raw.get("as_of"), "must be a date, YYYY-MM-DD")
    unit = raw.get("unit", "")
    note = raw.get("note")
    if not isinstance(unit, str) or (note is not None and not isinstance(note, str)):
        raise _fail(source, path, raw, "unit and note must be text")
    return Price(amount, unit, link, as_of, note, bool(raw.get("estimate", False)))


def _parse_table(data: Mapping[str, Any], source: str, files: tuple[str, ...]) -> PriceTable:
    currency = data.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise _fail(source, "currency", currency, "must be an ISO 4217 code such as USD")
    hours = _number(data.get("hours_per_month"))
    if hours is None or not 672 <= hours <= 744:
        raise _fail(
            source, "hours_per_month", data.get("hours_per_month"), "must be a number from 672 to 744"
        )
    raw_regions = data.get("regions")
    if not isinstance(raw_regions, Mapping) or not raw_regions:
        raise _fail(source, "regions", raw_regions, "must map region names to their prices")
    regions: dict[str, dict[str, Any]] = {}
    for region, raw in raw_regions.items():
        path = f"regions.{region}"
        if not isinstance(raw, Mapping):
            raise _fail(source, path, raw, "must be a mapping of prices")
        parsed: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "instances":
                if not isinstance(value, Mapping):
                    raise _fail(source, f"{path}.instances", value, "must map instance types to prices")
                parsed["instances"] = {
                    str(t): _parse_price(source, f"{path}.instances.{t}", p) for t, p in value.items()
                }
            elif key in _PRICE_KEYS:
                parsed[key] = _parse_price(source, f"{path}.{key}", value)
            else:
                raise _fail(
                    source,
                    f"{path}.{key}",
                    value,
                    f"unknown price; allowed: instances, {', '.join(_PRICE_KEYS)}",
                )
        spot = parsed.get("spot")
        if isinstance(spot, Price) and not 0 < spot.price <= 1:
            raise _fail(
                source, f"{path}.spot.price", spot.price, "is a fraction of on-demand, above 0 up to 1"
            )
        regions[str(region)] = parsed
    unknown = sorted(set(data) - {"currency", "hours_per_month", "regions"})
    if unknown:
        raise _fail(
            source,
            unknown[0],
            data[unknown[0]],
            "unknown key; allowed: currency, hours_per_month, regions (usage volumes belong in the "
            "environment's keel:usage)",
        )
    return PriceTable(currency, hours, regions, files)


#: Environment variable naming a price file (absolute, or relative to the project root) merged over the shipped
#: table wherever Keel prices a plan: ``keel plan``, ``keel diff``, ``keel cost`` (unless ``--prices`` is given)
#: and the budget policy under ``pulumi preview``, so that all of them agree.
PRICES_ENV = "KEEL_PRICES"


def load_prices(overrides: Path | None = None, shipped: Path = PRICES_FILE) -> PriceTable:
    """The shipped price table with a user file merged over it: ``overrides``, else the file ``KEEL_PRICES``
    names, else none.

    Raises ``CostConfigError`` naming the file, the key path and the value for anything it cannot use.
    """
    if overrides is None and os.environ.get(PRICES_ENV):
        # Relative to the project, not the working directory: the policy pack runs from policies/.
        overrides = PROJECT_ROOT / os.environ[PRICES_ENV]
    base = _read_yaml(shipped)
    files = (display_path(shipped),)
    if overrides is None:
        return _parse_table(base, str(shipped), files)
    _parse_table(base, str(shipped), files)  # the shipped table alone must be sound
    extra = _read_yaml(overrides)
    # Check the override's own price entries first, so errors name the user's file.
    _check_override(extra, str(overrides))
    merged = _deep_merge(base, extra)
    return _parse_table(merged, str(overrides), (*files, display_path(overrides)))


def _check_override(extra: Mapping[str, Any], source: str) -> None:
    regions = extra.get("regions", {})
    if not isinstance(regions, Mapping):
        raise _fail(source, "regions", regions, "must map region names to their prices")
    for region, raw in regions.items():
        if not isinstance(raw, Mapping):
            raise _fail(source, f"regions.{region}", raw, "must be a mapping of prices")
        for key, value in raw.items():
            path = f"regions.{region}.{key}"
            if key == "instances" and isinstance(value, Mapping):
                for t, p in value.items():
                    _parse_price(source, f"{path}.{t}", p)
            elif key in _PRICE_KEYS:
                _parse_price(source, path, value)
            elif key != "instances":
                raise _fail(
                    source, path, value, f"unknown price; allowed: instances, {', '.join(_PRICE_KEYS)}"
                )


@dataclass(frozen=True)
class LineItem:
    """One resource's monthly cost in one scenario."""

    urn: str
    name: str
    type: str
    component: str
    monthly: float
    basis: str
    """How the figure was computed, e.g. ``2 x g6.2xlarge on-demand x 730 h + 2 x 200 GB gp3``."""


@dataclass(frozen=True)
class Scenario:
    total: float
    by_component: Mapping[str, float]
    by_resource: tuple[LineItem, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "total": round(self.total, 2),
            "by_component": {k: round(v, 2) for k, v in self.by_component.items()},
            "by_resource": [
                {
                    "name": item.name,
                    "type": item.type,
                    "component": item.component,
                    "monthly": round(item.monthly, 2),
                    "basis": item.basis,
                    "urn": item.urn,
                }
                for item in self.by_resource
            ],
        }


@dataclass(frozen=True)
class Unpriced:
    """Resources of one type the table cannot price, for one reason."""

    type: str
    resources: tuple[str, ...]
    """Their logical names."""
    reason: str
    urns: tuple[str, ...] = ()
    """Their URNs, in the same order."""


@dataclass(frozen=True)
class CostReport:
    """What an environment costs per month at list price, at idle and at peak, beside its budget."""

    currency: str
    prices_as_of: dt.date
    region: str
    idle: Scenario
    peak: Scenario
    budget: float | None
    unpriced: tuple[Unpriced, ...]
    assumptions: tuple[str, ...]
    free: Mapping[str, int] = field(default_factory=dict)
    """Free-by-nature resource types in the plan, with their counts."""
    price_sources: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """False when some resource has no price: the totals are then lower bounds."""
        return not self.unpriced

    @property
    def peak_within_budget(self) -> bool | None:
        return None if self.budget is None else self.peak.total <= self.budget

    @property
    def idle_within_budget(self) -> bool | None:
        return None if self.budget is None else self.idle.total <= self.budget

    def to_json(self) -> dict[str, Any]:
        budget: dict[str, Any] | None = None
        if self.budget is not None:
            budget = {
                "monthly_limit": round(self.budget, 2),
                "idle_share": round(self.idle.total / self.budget, 4),
                "peak_share": round(self.peak.total / self.budget, 4),
                "idle_within_budget": self.idle_within_budget,
                "peak_within_budget": self.peak_within_budget,
            }
        return {
            "currency": self.currency,
            "prices_as_of": self.prices_as_of.isoformat(),
            "region": self.region,
            "idle": self.idle.to_json(),
            "peak": self.peak.to_json(),
            "budget": budget,
            "complete": self.complete,
            "unpriced": [
                {"type": u.type, "resources": list(u.resources), "reason": u.reason} for u in self.unpriced
            ],
            "free": dict(self.free),
            "assumptions": list(self.assumptions),
            "price_table": list(self.price_sources),
        }


class _NoPriceError(Exception):
    """A priced type whose price is missing from the table (reported as unpriced with this reason)."""


def component_of(resource: PlannedResource, by_urn: Mapping[str, PlannedResource]) -> str:
    """The name of the top-level ``keel:*`` component above a resource (``(stack)`` if none); what the cost
    model and ``keel diff`` group resources by."""
    top: PlannedResource | None = None
    parent = resource.parent
    while parent is not None and parent in by_urn:
        node = by_urn[parent]
        if node.type.startswith("keel:"):
            top = node
        parent = node.parent
    return top.name if top is not None else "(stack)"


def _free_reason(type_: str) -> str | None:
    if type_ in FREE_TYPES:
        return FREE_TYPES[type_]
    return next((reason for prefix, reason in FREE_PREFIXES.items() if type_.startswith(prefix)), None)


class _Pricer:
    def __init__(self, graph: Graph, table: PriceTable, region: str) -> None:
        self.graph = graph
        self.table = table
        self.region = region
        self.hours = table.hours_per_month
        self.providers = {r.urn: r for r in graph.resources if r.type.startswith("pulumi:providers:")}
        self.model_floor = _model_floor(graph)
        self.used: dict[str, Price] = {}
        self.assumed: list[str] = []
        """Every usage volume taken from a resource's ``keel:cost-assumed-gb`` tag, for the assumptions."""

    def _use(self, label: str, found: Price | None, missing: str) -> Price:
        """Record a price the estimate used (its date and estimate flag go into the report), or fail as unpriced."""
        if found is None:
            raise _NoPriceError(f"{missing} in the price table")
        self.used[label] = found
        return found

    def price(self, key: str, region: str | None = None) -> Price:
        region = region or self.region
        return self._use(f"{region}.{key}", self.table.price(region, key), f"no {key} price for {region}")

    def instance(self, instance_type: str, region: str | None = None) -> Price:
        region = region or self.region
        return self._use(
            f"{region}.instances.{instance_type}",
            self.table.instance(region, instance_type),
            f"no on-demand price for {instance_type} in {region}",
        )

    def region_of(self, resource: PlannedResource) -> str:
        """The region of the resource's provider (e.g. the backup copy region), else the environment's."""
        provider = self.providers.get(resource.provider or "")
        region = provider.inputs.get("region") if provider is not None else None
        return region if isinstance(region, str) and region else self.region

    def assumed_gb(self, resource: PlannedResource, meaning: str) -> float:
        """The volume a resource's ``keel:cost-assumed-gb`` tag states (``meaning`` says what it measures)."""
        raw = resource.tags.get(ASSUMED_GB_TAG)
        try:
            gb = float(raw) if raw is not None else None
        except ValueError:
            gb = None
        if raw is None:
            raise _NoPriceError(f"usage-priced, and it has no {ASSUMED_GB_TAG} tag: set keel:usage")
        if gb is None or gb < 0:
            raise _NoPriceError(f"usage-priced, and its {ASSUMED_GB_TAG} tag {raw!r} is not a number of GB")
        self.assumed.append(f"{resource.name}: {gb:g} GB {meaning}")
        return gb

    def pricers(self) -> dict[str, Callable[[PlannedResource], tuple[tuple[float, str], tuple[float, str]]]]:
        return {
            "aws:eks/nodeGroup:NodeGroup": self.node_group,
            "aws:eks/cluster:Cluster": self.flat("eks_cluster", "cluster", hourly=True),
            "aws:ec2/natGateway:NatGateway": self.nat_gateway,
            "aws:ec2/eip:Eip": self.flat("public_ipv4_hourly", "public IPv4 address", hourly=True),
            "aws:ec2/vpcEndpoint:VpcEndpoint": self.vpc_endpoint,
            "aws:kms/key:Key": self.flat("kms_key_monthly", "key", hourly=False),
            "aws:secretsmanager/secret:Secret": self.flat("secret_monthly", "secret", hourly=False),
            "aws:budgets/budget:Budget": self.flat("budget_monthly", "budget", hourly=False),
            "aws:s3/bucket:Bucket": self.bucket,
            "aws:backup/vault:Vault": self.vault,
            "aws:cloudwatch/logGroup:LogGroup": self.log_group,
        }

    @staticmethod
    def _same(amount: float, basis: str) -> tuple[tuple[float, str], tuple[float, str]]:
        return (amount, basis), (amount, basis)

    def flat(self, key: str, what: str, *, hourly: bool) -> Callable[[PlannedResource], Any]:
        """A price for the resource just existing, per hour (``hourly``) or per month, idle and peak alike."""

        def priced(resource: PlannedResource) -> tuple[tuple[float, str], tuple[float, str]]:
            p = self.price(key, self.region_of(resource))
            if hourly:
                return self._same(p.price * self.hours, f"1 {what} x {p.price} /h x {self.hours:g} h")
            return self._same(p.price, f"1 {what} x {p.price} /month")

        return priced

    def root_volume_gib(self, resource: PlannedResource) -> float:
        template_urns = set(resource.property_dependencies.get("launchTemplate", ()))
        template_id = (resource.inputs.get("launchTemplate") or {}).get("id")
        for candidate in self.graph.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
            linked = candidate.urn in template_urns or (
                template_id is not None and candidate.outputs.get("id") == template_id
            )
            if linked:
                for mapping in candidate.inputs.get("blockDeviceMappings") or []:
                    size = _number((mapping.get("ebs") or {}).get("volumeSize"))
                    if size is not None:
                        return size
        disk = _number(resource.inputs.get("diskSize"))
        return disk if disk is not None else float(_DEFAULT_ROOT_GIB)

    def node_group(self, resource: PlannedResource) -> tuple[tuple[float, str], tuple[float, str]]:
        types = [str(t) for t in resource.inputs.get("instanceTypes") or []]
        if not types:
            raise _NoPriceError("node group names no instance type")
        region = self.region_of(resource)
        prices = {t: self.instance(t, region) for t in types}
        priciest = max(types, key=lambda t: prices[t].price)
        spot = self.price("spot", region) if resource.inputs.get("capacityType") == "SPOT" else None
        gp3 = self.price("ebs_gp3_gb_month", region)
        root = self.root_volume_gib(resource)
        scaling = resource.inputs.get("scalingConfig") or {}
        if any(_number(scaling.get(bound)) is None for bound in ("minSize", "maxSize")):
            raise _NoPriceError("its scalingConfig minSize and maxSize must be known numbers to price it")

        def at(nodes: float, instance_type: str) -> tuple[float, str]:
            hourly = prices[instance_type].price
            label = f"{instance_type} on-demand"
            if spot is not None:
                label = f"{instance_type} spot (estimate: {spot.price:g} x {hourly} /h)"
                hourly *= spot.price
            amount = hourly * nodes * self.hours + root * gp3.price * nodes
            return amount, f"{nodes:g} x {label} x {self.hours:g} h + {nodes:g} x {root:g} GB gp3"

        idle_nodes = _number(scaling.get("minSize")) or 0.0
        idle = at(idle_nodes, types[0])
        extra, why = self.model_floor.get(resource.urn, (0, ""))
        if extra:
            idle = at(idle_nodes + extra, types[0])
            idle = (idle[0], f"{idle[1]} ({why})")
        return idle, at(_number(scaling.get("maxSize")) or 0.0, priciest)

    def nat_gateway(self, resource: PlannedResource) -> tuple[tuple[float, str], tuple[float, str]]:
        region = self.region_of(resource)
        hourly = self.price("nat_gateway_hourly", region)
        per_gb = self.price("nat_gateway_per_gb", region)
        gb = self.assumed_gb(resource, "processed a month")
        amount = hourly.price * self.hours + gb * per_gb.price
        return self._same(amount, f"{hourly.price} /h x {self.hours:g} h + {gb:g} GB x {per_gb.price} /GB")

    def vpc_endpoint(self, resource: PlannedResource) -> tuple[tuple[float, str], tuple[float, str]]:
        if resource.inputs.get("vpcEndpointType", "Gateway") != "Interface":
            return self._same(0.0, "gateway endpoint: no charge")
        p = self.price("interface_endpoint_az_hourly", self.region_of(resource))
        subnets = resource.inputs.get("subnetIds")
        if not isinstance(subnets, list) or not subnets:
            raise _NoPriceError("an interface endpoint is priced per subnet, and its subnetIds are not known")
        zones = len(subnets)
        return self._same(p.price * zones * self.hours, f"{zones} AZ x {p.price} /h x {self.hours:g} h")

    def bucket(self, resource: PlannedResource) -> tuple[tuple[float, str], tuple[float, str]]:
        p = self.price("s3_standard_gb_month", self.region_of(resource))
        gb = self.assumed_gb(resource, "stored")
        return self._same(gb * p.price, f"{gb:g} GB x {p.price} /GB-month")

    def vault(self, resource: PlannedResource) -> tuple[tuple[float, str], tuple[float, str]]:
        region = self.region_of(resource)
        p = self.price("backup_warm_gb_month", region)
        gb = self.assumed_gb(resource, "of recovery points stored")
        return self._same(gb * p.price, f"{gb:g} GB x {p.price} /GB-month ({region})")

    def log_group(self, resource: PlannedResource) -> tuple[tuple[float, str], tuple[float, str]]:
        region = self.region_of(resource)
        ingest = self.price("logs_ingestion_per_gb", region)
        store = self.price("logs_storage_gb_month", region)
        gb = self.assumed_gb(resource, "ingested a month")
        days = _number(resource.inputs.get("retentionInDays")) or 3653.0  # never-expire: ten years
        retained = gb * days / 30.4
        amount = gb * ingest.price + retained * store.price
        return self._same(
            amount,
            f"{gb:g} GB x {ingest.price} /GB ingested + {retained:.0f} GB retained ({days:g} d) x "
            f"{store.price} /GB-month",
        )


def _pool_of(deployment: PlannedResource) -> str | None:
    """The GPU pool a Deployment's required node affinity (or node selector) pins it to."""
    pod = ((deployment.inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
    selected = (pod.get("nodeSelector") or {}).get(GPU_POOL_LABEL)
    if isinstance(selected, str):
        return selected
    required = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expression in term.get("matchExpressions") or []:
            values = expression.get("values") or []
            if expression.get("key") == GPU_POOL_LABEL and expression.get("operator") == "In" and values:
                return str(values[0])
    return None


def _gpus_per_replica(deployment: PlannedResource) -> float:
    """GPUs one replica takes: the sum of its containers' ``nvidia.com/gpu`` limits (a count, "1" or 1)."""
    pod = ((deployment.inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
    total = 0.0
    for container in pod.get("containers") or []:
        limit = ((container.get("resources") or {}).get("limits") or {}).get("nvidia.com/gpu", 0)
        try:
            total += float(limit)
        except (TypeError, ValueError):
            continue  # not a count: the device plugin would refuse it too
    return total


def _model_floor(graph: Graph) -> dict[str, tuple[int, str]]:
    """Node group URN -> (nodes beyond its minSize, why) that GPU workloads' minimum replicas need at idle.

    A model at ``minReplicas`` (its KEDA ScaledObject's ``minReplicaCount``, else the Deployment's replicas)
    needs GPU nodes of its pool even when the pool's ``minSize`` is lower: the cluster autoscaler adds them.
    They are counted on the group the autoscaler prefers (the pool's spot group, else its first group), at
    whole replicas per node, up to that group's ``maxSize``.
    """
    minimum: dict[tuple[str, str], float] = {}
    for scaled in graph.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject"):
        spec = scaled.inputs.get("spec") or {}
        namespace = (scaled.inputs.get("metadata") or {}).get("namespace") or "default"
        target = (spec.get("scaleTargetRef") or {}).get("name")
        if isinstance(target, str):
            minimum[(namespace, target)] = _number(spec.get("minReplicaCount")) or 0.0
    needs: dict[str, list[tuple[str, float, float]]] = {}
    for deployment in graph.of_type("kubernetes:apps/v1:Deployment"):
        metadata = deployment.inputs.get("metadata") or {}
        key = (metadata.get("namespace") or "default", str(metadata.get("name")))
        replicas = minimum.get(key, _number((deployment.inputs.get("spec") or {}).get("replicas")) or 1.0)
        pool, gpus = _pool_of(deployment), _gpus_per_replica(deployment)
        if pool and gpus and replicas:
            needs.setdefault(pool, []).append((key[1], replicas, gpus))
    floor: dict[str, tuple[int, str]] = {}
    for pool, workloads in needs.items():
        groups = [
            g
            for g in graph.of_type("aws:eks/nodeGroup:NodeGroup")
            if (g.inputs.get("labels") or {}).get(GPU_POOL_LABEL) == pool and g.inputs.get("instanceTypes")
        ]
        instance = gpu_instance(str(groups[0].inputs["instanceTypes"][0])) if groups else None
        if instance is None:
            continue
        nodes = sum(
            math.ceil(replicas / max(instance.gpus // int(gpus), 1)) for _, replicas, gpus in workloads
        )
        scaling = [g.inputs.get("scalingConfig") or {} for g in groups]
        extra = nodes - sum(_number(c.get("minSize")) or 0.0 for c in scaling)
        target = next((g for g in groups if g.inputs.get("capacityType") == "SPOT"), groups[0])
        target_scaling = target.inputs.get("scalingConfig") or {}
        room = (_number(target_scaling.get("maxSize")) or 0.0) - (
            _number(target_scaling.get("minSize")) or 0.0
        )
        extra = int(min(extra, room))
        if extra > 0:
            names = ", ".join(f"{name} {replicas:g}" for name, replicas, _ in workloads)
            floor[target.urn] = (extra, f"+{extra} for the minimum replicas of {names}")
    return floor


def estimate_graph(
    graph: Graph,
    *,
    region: str,
    budget: float | None = None,
    prices: PriceTable | None = None,
) -> CostReport:
    """Monthly list-price cost of a resource graph at idle and at peak, beside ``budget`` (see the module
    docstring). ``prices`` defaults to ``load_prices()``."""
    table = prices or load_prices()
    pricer = _Pricer(graph, table, region)
    pricers = pricer.pricers()
    by_urn = {r.urn: r for r in graph.resources}
    idle: list[LineItem] = []
    peak: list[LineItem] = []
    unpriced: dict[tuple[str, str], list[PlannedResource]] = {}
    free: dict[str, int] = {}
    for resource in graph.resources:
        if not resource.custom:
            continue  # components group resources; they cost nothing themselves
        price_fn = pricers.get(resource.type)
        if price_fn is None:
            if _free_reason(resource.type) is not None:
                free[resource.type] = free.get(resource.type, 0) + 1
            else:
                unpriced.setdefault((resource.type, "no price rule for this resource type"), []).append(
                    resource
                )
            continue
        try:
            (idle_amount, idle_basis), (peak_amount, peak_basis) = price_fn(resource)
        except _NoPriceError as missing:
            unpriced.setdefault((resource.type, str(missing)), []).append(resource)
            continue
        component = component_of(resource, by_urn)
        idle.append(LineItem(resource.urn, resource.name, resource.type, component, idle_amount, idle_basis))
        peak.append(LineItem(resource.urn, resource.name, resource.type, component, peak_amount, peak_basis))

    used = pricer.used
    as_of = min(
        (p.as_of for p in used.values()),
        default=min(
            (p.as_of for r in table.regions.values() for p in _all_prices(r)), default=dt.date.today()
        ),
    )
    assumptions = (
        [f"volumes from the {ASSUMED_GB_TAG} tags (set from keel:usage): {'; '.join(pricer.assumed)}"]
        if pricer.assumed
        else []
    )
    assumptions += [
        f"{key} is an estimate: {p.note or p.price}" for key, p in sorted(used.items()) if p.estimate
    ]
    assumptions.append(
        f"list prices in {table.currency}, {table.hours_per_month:g} h a month; no Savings Plans, Reserved "
        "Instances, taxes, data transfer or per-request charges"
    )
    assumptions.append(
        "idle: every node group at minSize on its first instance type, plus the nodes models need at their "
        "minimum replicas; peak: every node group at maxSize on its most expensive instance type"
    )
    return CostReport(
        currency=table.currency,
        prices_as_of=as_of,
        region=region,
        idle=_scenario(idle),
        peak=_scenario(peak),
        budget=budget,
        unpriced=tuple(
            Unpriced(type_, tuple(r.name for r in found), reason, tuple(r.urn for r in found))
            for (type_, reason), found in sorted(unpriced.items())
        ),
        assumptions=tuple(assumptions),
        free=dict(sorted(free.items())),
        price_sources=table.sources,
    )


def _all_prices(region: Mapping[str, Any]) -> list[Price]:
    found = [p for p in region.values() if isinstance(p, Price)]
    return found + list(region.get("instances", {}).values())


def _scenario(items: list[LineItem]) -> Scenario:
    by_component: dict[str, float] = {}
    for item in items:
        by_component[item.component] = by_component.get(item.component, 0.0) + item.monthly
    return Scenario(
        total=sum(item.monthly for item in items),
        by_component=dict(sorted(by_component.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_resource=tuple(items),
    )
