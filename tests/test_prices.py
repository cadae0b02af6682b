"""The shipped price table: what the shipped environments and prod's allow-list use is priced in us-east-1, every
entry is sourced and dated, figures outside us-east-1 say where they come from, and prices rise with size."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.config import load_environment
from keel.cost import Price, PriceTable, load_prices
from keel.plan import ENVIRONMENTS_DIR
from keel.policy import load_policy_config, policy_config_file
from stacks.catalogue import GPU_INSTANCE_TYPES, gpu_instance

BASE_REGION = "us-east-1"
AWS_PAGES = "https://aws.amazon.com/"
#: Catalogued GPU types with no on-demand list price in any source read (see the top of keel/prices/aws.yaml).
NO_ON_DEMAND_PRICE = {"p5e.48xlarge"}
_SIZE = re.compile(r"(?:(?P<n>\d*)x)?large")


def _entries(table: PriceTable) -> Iterator[tuple[str, str, Price]]:
    """Every (region, key, price) in the table; instance keys are ``instances.<type>``."""
    for region, prices in table.regions.items():
        for key, value in prices.items():
            if key == "instances":
                for instance_type, price in value.items():
                    yield region, f"instances.{instance_type}", price
            else:
                yield region, key, value


def _lookup(table: PriceTable, region: str, key: str) -> Price | None:
    family, _, instance_type = key.partition(".")
    return table.instance(region, instance_type) if family == "instances" else table.price(region, key)


def _environment_instance_types(path: Path) -> tuple[str, set[str]]:
    """The region and the instance types an environment runs (system nodes, default applied, and GPU pools)."""
    _, spec = load_environment(path)
    types = set(spec.cluster.system_nodes.instance_types)
    for pool in spec.gpu_pools:
        types.update(pool.instance_types)
    return spec.aws.region, types


def _size(instance_type: str) -> tuple[int, ...] | None:
    """What an instance type offers: (GPUs, vCPUs, GiB) from the catalogue, else its size in ``large`` units."""
    entry = gpu_instance(instance_type)
    if entry is not None:
        return entry.gpus, entry.vcpus, entry.memory_gib
    match = _SIZE.fullmatch(instance_type.partition(".")[2])
    if match is None:
        return None  # metal, medium and other sizes without a comparable unit
    return (1,) if match["n"] is None else (2 * int(match["n"] or 1),)


def _size_violations(table: PriceTable) -> tuple[list[str], int]:
    """Pairs in one family and region where a type that offers no less costs no more; and the pairs compared."""
    violations: list[str] = []
    compared = 0
    for region, prices in table.regions.items():
        instances = prices.get("instances", {})
        for small, large in itertools.permutations(instances, 2):
            a, b = _size(small), _size(large)
            same_family = small.partition(".")[0] == large.partition(".")[0]
            if not same_family or a is None or b is None or len(a) != len(b):
                continue
            if a != b and all(x <= y for x, y in zip(a, b, strict=True)):
                compared += 1
                if not instances[small].price < instances[large].price:
                    violations.append(
                        f"{region}: {small} ({instances[small].price}) is not cheaper than "
                        f"{large} ({instances[large].price})"
                    )
    return violations, compared


def _provenance_problems(table: PriceTable) -> list[str]:
    """Figures outside the base region that do not say where they come from, or carry-overs that are not copies."""
    problems: list[str] = []
    for region, key, price in _entries(table):
        if region == BASE_REGION:
            continue
        note = (price.note or "").lower()
        carried = "carried over" in note
        if carried:
            base = _lookup(table, BASE_REGION, key)
            if base is None or base.price != price.price:
                shown = base.price if base else "no entry"
                problems.append(f"{region}.{key}: says carried over but {BASE_REGION} has {shown}")
        elif key.startswith("instances.") and region not in note:
            problems.append(
                f"{region}.{key}: note neither names {region} nor says 'Carried over from {BASE_REGION}'"
            )
    return problems


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return load_prices()


def test_shipped_environments_instance_types_are_priced(prices: PriceTable) -> None:
    files = sorted(ENVIRONMENTS_DIR.glob("Pulumi.*.yaml"))
    assert files, f"no stack files in {ENVIRONMENTS_DIR}"
    missing: dict[str, list[str]] = {}
    for path in files:
        region, types = _environment_instance_types(path)
        for where in sorted({BASE_REGION, region}):
            unpriced = sorted(t for t in types if prices.instance(where, t) is None)
            if unpriced:
                missing[f"{path.name} ({where})"] = unpriced
    assert missing == {}


def test_prod_gpu_allow_list_is_priced(prices: PriceTable) -> None:
    settings = load_policy_config(policy_config_file("prod", "prod"))
    allowed = settings["gpu-instance-allowlist"].config["allowedInstanceTypes"]
    assert allowed, "prod's gpu-instance-allowlist is empty"
    assert sorted(t for t in allowed if prices.instance(BASE_REGION, t) is None) == []


def test_catalogued_gpu_types_are_priced_unless_they_have_no_on_demand_price(prices: PriceTable) -> None:
    unpriced = {t for t in GPU_INSTANCE_TYPES if prices.instance(BASE_REGION, t) is None}
    assert unpriced == NO_ON_DEMAND_PRICE


def test_every_price_is_sourced_and_dated(prices: PriceTable) -> None:
    entries = list(_entries(prices))
    assert len(entries) > len(GPU_INSTANCE_TYPES)
    for region, key, price in entries:
        assert price.source.startswith("https://"), (region, key, price.source)
        assert isinstance(price.as_of, dt.date), (region, key, price.as_of)
        # A figure read from anywhere but AWS's own pricing pages says what it was read from.
        if not price.source.startswith(AWS_PAGES):
            assert price.note, (region, key, price.source)


def test_figures_outside_us_east_1_say_where_they_come_from(prices: PriceTable) -> None:
    assert set(prices.regions) - {BASE_REGION}, "the table has no region to check besides us-east-1"
    assert _provenance_problems(prices) == []


def test_provenance_check_catches_a_bare_copy_and_an_edited_carry_over(tmp_path: Path) -> None:
    override = tmp_path / "prices.yaml"
    override.write_text(
        "regions:\n"
        "  us-west-2:\n"
        "    kms_key_monthly: {price: 2.0, unit: key-month, source: 'https://aws.amazon.com/kms/pricing/',"
        " as_of: '2026-11-27', note: Carried over from us-east-1.}\n"
        "    instances:\n"
        "      g6.xlarge: {price: 0.8048, unit: hour, source: 'https://aws.amazon.com/ec2/pricing/on-demand/',"
        " as_of: '2026-11-27'}\n"
    )
    problems = _provenance_problems(load_prices(override))
    assert any(p.startswith("us-west-2.kms_key_monthly: says carried over") for p in problems), problems
    assert any(p.startswith("us-west-2.instances.g6.xlarge: note neither") for p in problems), problems


def test_prices_rise_with_size_within_a_family(prices: PriceTable) -> None:
    violations, compared = _size_violations(prices)
    assert compared > len(GPU_INSTANCE_TYPES)
    assert violations == []


def test_size_check_catches_a_typo(tmp_path: Path) -> None:
    override = tmp_path / "prices.yaml"
    # A dropped digit: g6.8xlarge at a tenth of its price, below the smaller g6.4xlarge.
    override.write_text(
        "regions:\n"
        "  us-east-1:\n"
        "    instances:\n"
        "      g6.8xlarge: {price: 0.20144, unit: hour, source: 'https://aws.amazon.com/ec2/pricing/on-demand/',"
        " as_of: '2026-11-27'}\n"
    )
    violations, _ = _size_violations(load_prices(override))
    assert "us-east-1: g6.4xlarge (1.3232) is not cheaper than g6.8xlarge (0.20144)" in violations
