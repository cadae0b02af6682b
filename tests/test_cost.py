"""The cost model: hand-checked figures for a small graph, unpriced types, idle <= peak, budgets, overrides."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.cost import CostConfigError, estimate_graph, load_prices
from keel.engine import Graph, PlannedResource
from keel.plan import environment_file, plan_environment
from keel.render import cost_lines
from tests.conftest import shipped_config

STACK = "urn:pulumi:t::keel::pulumi:pulumi:Stack::keel-t"


def _resource(
    type_: str,
    name: str,
    inputs: dict[str, Any] | None = None,
    *,
    parent: str | None = STACK,
    custom: bool = True,
    deps: dict[str, tuple[str, ...]] | None = None,
    provider: str | None = None,
) -> PlannedResource:
    return PlannedResource(
        urn=f"urn:pulumi:t::keel::{type_}::{name}",
        type=type_,
        name=name,
        parent=parent,
        provider=provider,
        custom=custom,
        inputs=inputs or {},
        protect=False,
        retain_on_delete=False,
        ignore_changes=(),
        depends_on=(),
        outputs={},
        property_dependencies=deps or {},
    )


def _fixture() -> Graph:
    pool = _resource("keel:aws:GpuNodePool", "gpu-l4-spot", custom=False)
    template = _resource(
        "aws:ec2/launchTemplate:LaunchTemplate",
        "gpu-l4-spot-lt",
        {"blockDeviceMappings": [{"ebs": {"volumeSize": 200.0, "volumeType": "gp3"}}]},
        parent=pool.urn,
    )
    spot_group = _resource(
        "aws:eks/nodeGroup:NodeGroup",
        "gpu-l4-spot-ng",
        {
            "capacityType": "SPOT",
            "instanceTypes": ["g6.2xlarge", "g6.4xlarge"],
            "scalingConfig": {"minSize": 0.0, "maxSize": 2.0, "desiredSize": 0.0},
        },
        parent=pool.urn,
        deps={"launchTemplate": (template.urn,)},
    )
    network = _resource("keel:aws:Network", "network", custom=False)
    return Graph(
        resources=(
            pool,
            template,
            spot_group,
            network,
            _resource(
                "aws:ec2/natGateway:NatGateway",
                "nat-a",
                {"tags": {"Name": "nat-a", "keel:cost-assumed-gb": "100"}},
                parent=network.urn,
            ),
            _resource(
                "aws:ec2/vpcEndpoint:VpcEndpoint",
                "sts",
                {"vpcEndpointType": "Interface", "subnetIds": ["subnet-a", "subnet-b"]},
                parent=network.urn,
            ),
            _resource(
                "aws:ec2/vpcEndpoint:VpcEndpoint", "s3", {"vpcEndpointType": "Gateway"}, parent=network.urn
            ),
            _resource("aws:kms/key:Key", "key"),
            _resource("aws:iam/role:Role", "role"),
            _resource("kubernetes:core/v1:Namespace", "ns"),
            _resource("aws:rds/instance:Instance", "db"),
        ),
        outputs={},
    )


def test_fixture_figures_checked_by_hand() -> None:
    prices = load_prices()
    report = estimate_graph(_fixture(), region="us-east-1", budget=1000.0, prices=prices)
    idle = {item.name: item.monthly for item in report.idle.by_resource}
    peak = {item.name: item.monthly for item in report.peak.by_resource}

    # Spot node group, spot estimate 0.40 of on-demand, 200 GB gp3 at 0.08:
    #   idle (minSize 0): 0
    #   peak (maxSize 2) on the priciest type, g6.4xlarge at 1.3232/h: 2 x 1.3232 x 0.40 x 730 = 772.7488;
    #   + 2 x 200 x 0.08 = 32  -> 804.7488
    assert idle["gpu-l4-spot-ng"] == pytest.approx(0.0)
    assert peak["gpu-l4-spot-ng"] == pytest.approx(804.7488)
    # NAT gateway: 0.045 x 730 = 32.85; its tag assumes 100 GB processed: 100 x 0.045 = 4.5 -> 37.35
    assert idle["nat-a"] == pytest.approx(37.35)
    # Interface endpoint in 2 AZs: 2 x 0.01 x 730 = 14.6; the gateway endpoint is free (0).
    assert idle["sts"] == pytest.approx(14.6)
    assert idle["s3"] == 0.0
    # KMS key: 1.00 a month.
    assert idle["key"] == pytest.approx(1.0)
    # Totals: idle 0 + 37.35 + 14.6 + 0 + 1 = 52.95; peak 804.7488 + 52.95 = 857.6988
    assert report.idle.total == pytest.approx(52.95)
    assert report.peak.total == pytest.approx(857.6988)
    # Per component: the node group belongs to its pool, the NAT and endpoints to the network, the key to none.
    assert report.peak.by_component == pytest.approx(
        {"gpu-l4-spot": 804.7488, "network": 51.95, "(stack)": 1.0}
    )
    assert report.prices_as_of == dt.date(2026, 11, 27)
    assert any("nat-a: 100 GB processed a month" in a for a in report.assumptions)
    assert any("spot is an estimate" in a for a in report.assumptions)


def test_unpriced_types_are_listed_never_zero_and_free_types_are_not() -> None:
    report = estimate_graph(_fixture(), region="us-east-1", prices=load_prices())
    assert [(u.type, u.resources) for u in report.unpriced] == [("aws:rds/instance:Instance", ("db",))]
    assert not report.complete
    assert "db" not in {item.name for item in report.idle.by_resource}
    assert report.free == {
        "aws:ec2/launchTemplate:LaunchTemplate": 1,
        "aws:iam/role:Role": 1,
        "kubernetes:core/v1:Namespace": 1,
    }
    assert report.to_json()["unpriced"][0]["type"] == "aws:rds/instance:Instance"


def test_a_region_without_prices_makes_resources_unpriced() -> None:
    report = estimate_graph(_fixture(), region="eu-west-1", prices=load_prices())
    # Totals over unpriced resources are lower bounds, and the table says so.
    assert [row for row in cost_lines(report) if row[0] == "total per month"] == [
        ("total per month", "≥ 0 USD", "≥ 0 USD")
    ]
    unpriced = sum(len(u.resources) for u in report.unpriced)
    assert (f"unpriced ({unpriced} resources: see the notes)", "not counted", "not counted") in cost_lines(
        report
    )
    reasons = {u.type: u.reason for u in report.unpriced}
    assert "aws:eks/nodeGroup:NodeGroup" in reasons
    assert "eu-west-1" in reasons["aws:eks/nodeGroup:NodeGroup"]
    assert report.idle.total == 0.0


def test_resources_are_priced_in_their_providers_region() -> None:
    provider = _resource("pulumi:providers:aws", "us-west-2", {"region": "us-west-2"})
    key = _resource("aws:kms/key:Key", "copy-key", provider=provider.urn)
    vault = _resource("aws:backup/vault:Vault", "copy-vault", provider=provider.urn)
    report = estimate_graph(Graph((provider, key, vault), {}), region="eu-west-1", prices=load_prices())
    # eu-west-1 has no prices, but both resources deploy through the us-west-2 provider.
    assert {item.name: item.monthly for item in report.idle.by_resource} == {"copy-key": 1.0}
    assert [(u.type, u.reason) for u in report.unpriced] == [
        ("aws:backup/vault:Vault", "usage-priced, and it has no keel:cost-assumed-gb tag: set keel:usage")
    ]


def test_usage_comes_from_the_environment_spec(write_env: Any) -> None:
    document = shipped_config("dev")
    document["config"]["keel:usage"] = {"natGbPerMonth": 1000, "artifactBucketGb": 0}
    plan = plan_environment(write_env("dev", document), check_policies=False)
    assert plan.cost is not None
    items = {item.name: item for item in plan.cost.idle.by_resource}
    # dev has one NAT gateway: 0.045 x 730 + 1000 GB x 0.045 = 77.85; the bucket holds nothing.
    assert items["network-nat-us-east-1a"].monthly == pytest.approx(77.85)
    assert items["backups-bucket"].monthly == 0.0
    # Unset keys keep the tier's defaults (dev: 2 GB of flow logs a month).
    assert "network-flow-logs: 2 GB ingested a month" in plan.cost.assumptions[0]


def test_budget_comparison() -> None:
    prices = load_prices()
    within = estimate_graph(_fixture(), region="us-east-1", budget=1000.0, prices=prices)
    assert within.peak_within_budget is True
    over = estimate_graph(_fixture(), region="us-east-1", budget=100.0, prices=prices)
    assert over.idle_within_budget is True  # 52.95 <= 100
    assert over.peak_within_budget is False  # 857.70 > 100
    budget = over.to_json()["budget"]
    assert budget["monthly_limit"] == 100.0
    assert budget["peak_share"] == pytest.approx(8.5770, abs=1e-4)
    assert estimate_graph(_fixture(), region="us-east-1", prices=prices).to_json()["budget"] is None


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_shipped_environments_idle_not_above_peak_and_fully_priced(environment: str) -> None:
    plan = plan_environment(environment_file(environment), check_policies=False)
    report = plan.cost
    assert report is not None
    data = report.to_json()
    assert set(data) >= {"currency", "prices_as_of", "idle", "peak", "budget", "unpriced", "assumptions"}
    assert data["unpriced"] == [], data["unpriced"]
    assert 0 < report.idle.total <= report.peak.total
    for component, idle_amount in report.idle.by_component.items():
        assert idle_amount <= report.peak.by_component[component] + 1e-9
    assert data["budget"]["monthly_limit"] == plan.spec.budget.monthly_limit_usd
    assert report.peak_within_budget, (report.peak.total, report.budget)


def test_override_merges_over_the_shipped_table(tmp_path: Path) -> None:
    override = tmp_path / "prices.yaml"
    override.write_text(
        "regions:\n"
        "  us-east-1:\n"
        "    spot: {price: 0.5, unit: fraction, source: 'https://aws.amazon.com/ec2/spot/pricing/',"
        " as_of: '2026-12-01', estimate: true}\n"
        "    instances:\n"
        "      g5.xlarge: {price: 1.006, unit: hour, source: 'https://aws.amazon.com/ec2/pricing/on-demand/',"
        " as_of: '2026-12-01'}\n"
    )
    prices = load_prices(override)
    spot = prices.price("us-east-1", "spot")
    assert spot is not None
    assert spot.price == 0.5
    assert prices.instance("us-east-1", "g5.xlarge") is not None
    g6 = prices.instance("us-east-1", "g6.2xlarge")  # shipped entries survive the merge
    assert g6 is not None
    assert g6.price == 0.9776
    report = estimate_graph(_fixture(), region="us-east-1", prices=prices)
    peak = {item.name: item.monthly for item in report.peak.by_resource}
    # 2 x 1.3232 x 0.5 x 730 = 965.936; + 32 gp3 = 997.936.
    assert peak["gpu-l4-spot-ng"] == pytest.approx(997.936)
    assert str(override) in report.price_sources


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "regions:\n  us-east-1:\n    kms_key_monthly: {price: -1, source: 'https://x', as_of: '2026-01-01'}\n",
            "regions.us-east-1.kms_key_monthly.price = -1: must be a number",
        ),
        (
            "regions:\n  us-east-1:\n    kms_key_monthly: {price: 2}\n",
            "regions.us-east-1.kms_key_monthly.source = None: must be the https:// URL",
        ),
        (
            "regions:\n  us-east-1:\n    kms_key_monthly: {price: 2, source: 'https://x', as_of: soon}\n",
            "regions.us-east-1.kms_key_monthly.as_of = 'soon': must be a date",
        ),
        (
            "regions:\n  us-east-1:\n    nat_hourly: 0.05\n",
            "regions.us-east-1.nat_hourly = 0.05: unknown price",
        ),
        (
            "usage:\n  nat_gb_per_month: 10\n",
            "usage = {'nat_gb_per_month': 10}: unknown key; allowed: currency, hours_per_month, regions",
        ),
        ("- a list\n", "(top level)"),
    ],
)
def test_bad_override_names_file_key_path_and_value(tmp_path: Path, text: str, expected: str) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text(text)
    with pytest.raises(CostConfigError) as error:
        load_prices(override)
    assert str(error.value).startswith(f"{override}: ")
    assert expected in str(error.value)


def test_shipped_prices_all_carry_source_and_date() -> None:
    prices = load_prices()
    for region in ("us-east-1", "us-west-2"):
        for instance_type in ("g6.2xlarge", "g6.4xlarge", "g6e.12xlarge", "m7i.large", "m7i.xlarge"):
            entry = prices.instance(region, instance_type)
            assert entry is not None
            assert entry.source.startswith("https://aws.amazon.com/")
        spot = prices.price(region, "spot")
        assert spot is not None
        assert spot.estimate


def test_cost_command_prints_idle_peak_budget_and_the_price_date() -> None:
    result = CliRunner().invoke(app, ["cost", "prod", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["idle"]["total"] <= report["peak"]["total"]
    assert report["budget"]["monthly_limit"] == 60000.0
    assert report["prices_as_of"]
    text = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["cost", "prod"])
    assert text.exit_code == 0, text.output
    assert "total per month" in text.stdout
    assert "monthly budget" in text.stdout
    assert "list prices as of 2026-11-27" in text.stdout
    # Per resource too, each with how its figure was computed.
    assert "By resource" in text.stdout
    assert "gpu-l40s-x4-od-ng" in text.stdout
    markdown = CliRunner().invoke(app, ["cost", "prod", "--format", "markdown"]).stdout
    row = next(line for line in markdown.splitlines() if line.startswith("| `gpu-l40s-x4-od-ng` |"))
    # 2 x g6e.12xlarge on-demand: 2 x 10.49264 x 730 + 2 x 500 GB x 0.08 = 15,399 USD at idle and at peak.
    assert row.startswith(
        "| `gpu-l40s-x4-od-ng` | gpu-l40s-x4-od | 15,399 USD | 15,399 USD | 2 x g6e.12xlarge on-demand"
    )


def test_cost_command_rejects_a_bad_price_file(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("regions: [not, a, mapping]\n")
    result = CliRunner().invoke(app, ["cost", "dev", "--prices", str(bad)])
    assert result.exit_code == 2, result.output
    assert str(bad) in result.output


def _gpu_workload(name: str, pool: str, gpus: int, min_replicas: float) -> tuple[PlannedResource, ...]:
    """A model server pinned to a GPU pool, scaled by KEDA from ``min_replicas``."""
    deployment = _resource(
        "kubernetes:apps/v1:Deployment",
        f"{name}-deployment",
        {
            "metadata": {"name": name, "namespace": name},
            "spec": {
                "template": {
                    "spec": {
                        "affinity": {
                            "nodeAffinity": {
                                "requiredDuringSchedulingIgnoredDuringExecution": {
                                    "nodeSelectorTerms": [
                                        {
                                            "matchExpressions": [
                                                {
                                                    "key": "keel.dev/gpu-pool",
                                                    "operator": "In",
                                                    "values": [pool],
                                                }
                                            ]
                                        }
                                    ]
                                }
                            }
                        },
                        "containers": [
                            {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
                        ],
                    }
                }
            },
        },
    )
    scaled = _resource(
        "kubernetes:keda.sh/v1alpha1:ScaledObject",
        f"{name}-scaled-object",
        {
            "metadata": {"name": name, "namespace": name},
            "spec": {"minReplicaCount": min_replicas, "scaleTargetRef": {"name": name}},
        },
    )
    return deployment, scaled


def _pool_group(
    name: str, pool: str, instance_type: str, capacity: str, *, min_size: float, max_size: float
) -> Any:
    return _resource(
        "aws:eks/nodeGroup:NodeGroup",
        name,
        {
            "capacityType": capacity,
            "instanceTypes": [instance_type],
            "labels": {"keel.dev/gpu-pool": pool},
            "scalingConfig": {"minSize": min_size, "maxSize": max_size},
        },
    )


def test_idle_counts_the_nodes_models_need_at_their_minimum_replicas() -> None:
    graph = Graph(
        (
            _pool_group("l4-od", "l4", "g6.2xlarge", "ON_DEMAND", min_size=1.0, max_size=1.0),
            _pool_group("l4-spot", "l4", "g6.2xlarge", "SPOT", min_size=0.0, max_size=4.0),
            _pool_group("x4-od", "x4", "g6e.12xlarge", "ON_DEMAND", min_size=0.0, max_size=2.0),
            *_gpu_workload("small", "l4", gpus=1, min_replicas=3.0),
            *_gpu_workload("tp1", "x4", gpus=1, min_replicas=5.0),  # 4 replicas share a 4-GPU node: 2 nodes
            *_gpu_workload("idle-ok", "l4", gpus=1, min_replicas=0.0),
        ),
        {},
    )
    report = estimate_graph(graph, region="us-east-1", prices=load_prices())
    idle = {item.name: item for item in report.idle.by_resource}
    # l4 needs 3 nodes and has a floor of 1 on-demand node: the autoscaler adds 2, on the spot group it prefers.
    # 2 x 0.9776 x 0.4 x 730 + 2 x 20 GB (EKS default disk) x 0.08 = 570.9184 + 3.2
    assert idle["l4-spot"].monthly == pytest.approx(574.1184)
    assert idle["l4-spot"].basis.endswith("(+2 for the minimum replicas of small 3)")  # idle-ok needs none
    assert idle["l4-od"].monthly == pytest.approx(0.9776 * 730 + 20 * 0.08)
    # x4: 5 one-GPU replicas on 4-GPU nodes need 2 nodes: 2 x 10.49264 x 730 + 2 x 20 x 0.08.
    assert idle["x4-od"].monthly == pytest.approx(2 * 10.49264 * 730 + 3.2)


def test_the_models_floor_never_exceeds_the_group_maximum() -> None:
    graph = Graph(
        (
            _pool_group("l4-spot", "l4", "g6.2xlarge", "SPOT", min_size=0.0, max_size=2.0),
            *_gpu_workload("big", "l4", gpus=1, min_replicas=9.0),
        ),
        {},
    )
    idle = estimate_graph(graph, region="us-east-1", prices=load_prices()).idle.by_resource
    assert idle[0].basis.startswith("2 x g6.2xlarge spot")


def test_keel_prices_names_a_price_file_every_plan_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    override = tmp_path / "prices.yaml"
    override.write_text(
        "regions:\n  us-east-1:\n    instances:\n      g6.4xlarge: {price: 2.0, unit: hour,"
        " source: 'https://aws.amazon.com/ec2/pricing/on-demand/', as_of: '2026-12-01'}\n"
    )
    monkeypatch.setenv("KEEL_PRICES", str(override))
    plan = plan_environment(environment_file("dev"), check_policies=False)
    assert plan.cost is not None
    peak = {item.name: item for item in plan.cost.peak.by_resource}
    # dev's l4 spot group peaks at 2 nodes of its priciest type, now 2.0 /h: 2 x 2.0 x 0.4 x 730 + 2 x 200 x 0.08.
    assert peak["gpu-l4-spot-ng"].monthly == pytest.approx(1168.0 + 32.0)
    assert str(override) in plan.cost.price_sources


def test_a_bad_keel_prices_file_stops_the_plan_before_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("regions: [us-east-1]\n")
    monkeypatch.setenv("KEEL_PRICES", str(bad))
    result = CliRunner().invoke(app, ["plan", "dev"])
    assert result.exit_code == 2, result.output
    assert f"{bad}: regions = ['us-east-1']: must map region names to their prices" in result.output
    assert "Traceback" not in result.output
