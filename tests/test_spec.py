"""The environment spec: tier defaults, safe overrides, and one clear message for each kind of bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keel.config import load_environment
from stacks.spec import TIER_DEFAULTS, SpecError, parse_spec
from tests.conftest import SHIPPED, shipped_config

WriteEnv = Callable[..., Path]


def _error(path: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_environment(path)
    return str(caught.value)


def _mutated(env: str, mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    document = shipped_config(env)
    mutate(document["config"])
    return document


@pytest.mark.parametrize("env", SHIPPED)
def test_shipped_environments_validate(env: str) -> None:
    _, spec = load_environment(Path("environments") / f"Pulumi.{env}.yaml")
    assert spec.environment == env
    assert spec.tier == env


def test_tier_defaults_fill_what_config_leaves_out() -> None:
    specs = {env: load_environment(Path("environments") / f"Pulumi.{env}.yaml")[1] for env in SHIPPED}
    assert [len(specs[e].network.availability_zones or []) for e in SHIPPED] == [2, 3, 3]
    assert [specs[e].network.nat for e in SHIPPED] == ["single", "single", "per-az"]
    assert [specs[e].gpu_pools[0].capacity for e in SHIPPED] == [
        "spot",
        "spot-with-fallback",
        "on-demand-floor",
    ]
    assert [specs[e].backups.daily_retention_days for e in SHIPPED] == [7, 35, 35]
    assert specs["prod"].backups.weekly_retention_days == 365
    assert specs["prod"].backups.vault_lock is True
    assert specs["dev"].backups.vault_lock is False
    assert [specs[e].budget.anomaly_detection for e in SHIPPED] == [False, False, True]
    assert [specs[e].cluster.log_retention_days for e in SHIPPED] == [30, 90, 365]
    assert [specs[e].usage.nat_gb_per_month for e in SHIPPED] == [50, 100, 300]
    assert [specs[e].usage.backup_vault_gb for e in SHIPPED] == [50, 100, 400]
    assert TIER_DEFAULTS["prod"].retain_stateful
    assert not TIER_DEFAULTS["staging"].retain_stateful


def test_safe_override_is_honoured(write_env: WriteEnv) -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["keel:network"]["nat"] = "per-az"
        config["keel:gpuPools"][0]["capacity"] = "on-demand"

    _, spec = load_environment(write_env("dev", _mutated("dev", mutate)))
    assert spec.network.nat == "per-az"
    assert spec.gpu_pools[0].capacity == "on-demand"
    assert [g.capacity_type for g in spec.gpu_pools[0].node_groups()] == ["ON_DEMAND"]


def test_merged_tags_carry_required_keys() -> None:
    _, spec = load_environment(Path("environments/Pulumi.prod.yaml"))
    assert spec.merged_tags["environment"] == "prod"
    assert spec.merged_tags["managed-by"] == "keel"
    assert spec.merged_tags["cost-centre"] == "CC-4711"
    assert spec.merged_tags["data-classification"] == "confidential"


def test_prod_capacity_plan_is_on_demand_floor_with_spot_burst() -> None:
    _, spec = load_environment(Path("environments/Pulumi.prod.yaml"))
    groups = spec.gpu_pools[0].node_groups()
    assert [(g.capacity_type, g.min_size, g.max_size) for g in groups] == [
        ("ON_DEMAND", 2, 2),
        ("SPOT", 0, 6),
    ]
    # 8 x g6 (1 GPU) + 4 x g6e.12xlarge (4 GPUs)
    assert spec.max_gpus == 8 + 16


# ------------------------------------------------------------------------------------------- bad input


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        del node[leaf]

    return mutate


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node: Any = config
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if leaf.isdigit():
            node[int(leaf)] = value
        else:
            node[leaf] = value

    return mutate


BAD_INPUTS = [
    # (case id, environment, mutation, fragments the message must contain)
    (
        "misspelled top-level key",
        "dev",
        lambda c: c.update({"keel:netwrok": c.pop("keel:network")}),
        ["keel:netwrok", "unknown key", "did you mean keel:network"],
    ),
    (
        "unknown nested key",
        "dev",
        _set("keel:budget.monthlyLimit", 10),
        ["keel:budget.monthlyLimit", "unknown key", "monthlyLimitUsd"],
    ),
    (
        "unknown namespace",
        "dev",
        _set("aws:region", "eu-west-1"),
        ["aws:region", "'eu-west-1'", "unknown config namespace"],
    ),
    (
        "wrong type",
        "dev",
        _set("keel:gpuPools.0.maxSize", "lots"),
        ["keel:gpuPools[0].maxSize", "'lots'", "valid integer"],
    ),
    (
        "invalid cidr",
        "dev",
        _set("keel:network.cidr", "10.10.0.0/33"),
        ["keel:network.cidr", "'10.10.0.0/33'", "IPv4"],
    ),
    (
        "public cidr",
        "dev",
        _set("keel:network.cidr", "8.8.0.0/16"),
        ["keel:network.cidr", "private address space"],
    ),
    (
        "min above max",
        "staging",
        _set("keel:gpuPools.0.minSize", 9),
        ["keel:gpuPools[0].maxSize", "= 4", "at least minSize (9)"],
    ),
    ("unknown tier", "dev", _set("keel:tier", "qa"), ["keel:tier", "'qa'", "'dev', 'staging' or 'prod'"]),
    (
        "not a gpu type",
        "dev",
        _set("keel:gpuPools.0.instanceTypes", ["m7i.large"]),
        ["keel:gpuPools[0].instanceTypes", "m7i.large is not a GPU instance type"],
    ),
    (
        "mixed gpu counts",
        "dev",
        _set("keel:gpuPools.0.instanceTypes", ["g6.xlarge", "g6.12xlarge"]),
        ["keel:gpuPools[0].instanceTypes", "same GPU count"],
    ),
    ("missing required field", "dev", _drop("keel:budget"), ["keel:budget", "is required but missing"]),
    (
        "missing nested field",
        "prod",
        _drop("keel:cluster.adminRoleArns"),
        ["keel:cluster.adminRoleArns", "is required but missing"],
    ),
    (
        "bad email",
        "dev",
        _set("keel:budget.emails", ["not-an-email"]),
        ["keel:budget.emails[0]", "'not-an-email'"],
    ),
    (
        "bad account id",
        "dev",
        _set("keel:aws.accountId", "1234"),
        ["keel:aws.accountId", "'1234'", "pattern"],
    ),
    (
        "bad role arn",
        "dev",
        _set("keel:cluster.adminRoleArns", ["admin"]),
        ["keel:cluster.adminRoleArns[0]", "'admin'"],
    ),
    (
        "unsupported kubernetes",
        "dev",
        _set("keel:cluster.kubernetesVersion", "1.20"),
        ["keel:cluster.kubernetesVersion", "'1.20'", "1.33"],
    ),
    (
        "bad log retention",
        "dev",
        _set("keel:cluster.logRetentionDays", 31),
        ["keel:cluster.logRetentionDays", "= 31", "CloudWatch accepts only"],
    ),
    (
        "zone outside region",
        "dev",
        _set("keel:network.availabilityZones", ["us-west-2a", "us-west-2b"]),
        ["keel:network.availabilityZones[0]", "'us-west-2a'", "zone of region us-east-1"],
    ),
    (
        "duplicate pool names",
        "prod",
        _set("keel:gpuPools.1.name", "l4"),
        ["keel:gpuPools", "pool name 'l4' is used more than once"],
    ),
    (
        "shadowed required tag",
        "dev",
        _set("keel:tags.extra", {"environment": "x"}),
        ["keel:tags.extra", "environment is set by Keel"],
    ),
    (
        "secret in plain text",
        "dev",
        _set("keel:modelHubToken", "hf_plaintext"),
        ["keel:modelHubToken", "plain text", "pulumi config set --secret keel:modelHubToken"],
    ),
    (
        "secret config key clashes",
        "dev",
        _set("keel:secrets.0.configKey", "budget"),
        ["keel:secrets[0].configKey", "clashes with a Keel config key"],
    ),
    (
        "too many budget notifications",
        "dev",
        _set("keel:budget.forecastThresholdsPct", [10, 20, 30, 40, 50, 60, 70, 80, 90]),
        ["keel:budget.forecastThresholdsPct", "exceed the 10 notifications"],
    ),
    (
        "reserved pool label",
        "dev",
        _set("keel:gpuPools.0.labels", {"keel.dev/gpu-pool": "x"}),
        ["keel:gpuPools[0].labels", "keel.dev/gpu-pool is set by Keel"],
    ),
    (
        "invalid pool label",
        "dev",
        _set("keel:gpuPools.0.labels", {"team": "a b"}),
        ["keel:gpuPools[0].labels", "invalid Kubernetes label team=a b"],
    ),
    ("stack name markup survives", "dev", _set("keel:tier", "[bold]x"), ["keel:tier", "'[bold]x'"]),
    # Models.
    (
        "model on a missing pool",
        "dev",
        _set("keel:models.0.pool", "h100"),
        ["keel:models[0].pool", "'h100'", "no such GPU pool; allowed: l4"],
    ),
    (
        "model wider than a node",
        "dev",
        _set("keel:models.0.gpusPerReplica", 2),
        ["keel:models[0].gpusPerReplica", "= 2", "1 GPU(s) per node; a replica cannot span nodes"],
    ),
    (
        "models outgrow the pool",
        "dev",
        _set("keel:models.0.maxReplicas", 3),
        ["keel:models", "need 3 nodes of pool 'l4'", "maxSize (2)"],
    ),
    (
        "model min above max",
        "staging",
        _set("keel:models.0.minReplicas", 5),
        ["keel:models[0].maxReplicas", "at least minReplicas (5)"],
    ),
    (
        "unpinned model image",
        "dev",
        _set("keel:models.0.image", "vllm/vllm-openai:v0.11.0"),
        ["keel:models[0].image", "pinned by tag and digest"],
    ),
    (
        "latest model image",
        "dev",
        _set("keel:models.0.image", "vllm/vllm-openai:latest@sha256:" + "0" * 64),
        ["keel:models[0].image", "not latest"],
    ),
    (
        "model revision is a branch",
        "dev",
        _set("keel:models.0.revision", "main"),
        ["keel:models[0].revision", "'main'"],
    ),
    (
        "model flag set twice",
        "dev",
        _set("keel:models.0.extraArgs", ["--max-model-len=4096"]),
        ["keel:models[0].extraArgs", "--max-model-len is set from the model's own keys"],
    ),
    (
        "single replica in prod",
        "prod",
        _set("keel:models.0.minReplicas", 1),
        ["keel:models[0].minReplicas", "at least 2 replicas"],
    ),
    (
        "hub weights in prod",
        "prod",
        _set("keel:models.0.weights", "hub"),
        ["keel:models[0].weights", "artifact bucket"],
    ),
    # Unsafe overrides for the tier.
    (
        "public endpoint in prod",
        "prod",
        _set("keel:cluster.publicAccessCidrs", ["203.0.113.0/24"]),
        ["keel:cluster.publicAccessCidrs", "prod requires a private-only API endpoint"],
    ),
    (
        "public endpoint in staging",
        "staging",
        _set("keel:cluster.publicAccessCidrs", ["203.0.113.0/24"]),
        ["keel:cluster.publicAccessCidrs", "staging requires a private-only API endpoint"],
    ),
    (
        "endpoint open to the internet",
        "dev",
        _set("keel:cluster.publicAccessCidrs", ["0.0.0.0/0"]),
        ["keel:cluster.publicAccessCidrs", "too much of the internet"],
    ),
    (
        "zero backup retention",
        "prod",
        _set("keel:backups.dailyRetentionDays", 0),
        ["keel:backups.dailyRetentionDays", "= 0", "greater than or equal to 1"],
    ),
    (
        "short backup retention in prod",
        "prod",
        _set("keel:backups.dailyRetentionDays", 3),
        ["keel:backups.dailyRetentionDays", "= 3", "at least 7 days"],
    ),
    ("no budget in prod", "prod", _drop("keel:budget"), ["keel:budget", "is required but missing"]),
    (
        "vault unlocked in prod",
        "prod",
        _set("keel:backups.vaultLock", False),
        ["keel:backups.vaultLock", "prod requires locked backup vaults"],
    ),
    (
        "no copy region in prod",
        "prod",
        _drop("keel:backups.copyRegion"),
        ["keel:backups.copyRegion", "prod requires a second region"],
    ),
    (
        "spot only in prod",
        "prod",
        _set("keel:gpuPools.0.capacity", "spot"),
        ["keel:gpuPools[0].capacity", "'spot'", "prod requires an on-demand floor"],
    ),
    (
        "no gpu floor in prod",
        "prod",
        _set("keel:gpuPools.0.minSize", 0),
        ["keel:gpuPools[0].minSize", "= 0", "at least 1 on-demand node"],
    ),
    (
        "single nat in prod",
        "prod",
        _set("keel:network.nat", "single"),
        ["keel:network.nat", "'single'", "one NAT gateway per zone"],
    ),
    (
        "short log retention in prod",
        "prod",
        _set("keel:network.flowLogRetentionDays", 30),
        ["keel:network.flowLogRetentionDays", "= 30", "at least 365 days"],
    ),
    (
        "negative usage volume",
        "dev",
        lambda config: config.__setitem__("keel:usage", {"natGbPerMonth": -5}),
        ["keel:usage.natGbPerMonth", "-5", "greater than or equal to 0"],
    ),
    (
        "unknown usage volume",
        "dev",
        lambda config: config.__setitem__("keel:usage", {"egressGb": 5}),
        ["keel:usage.egressGb", "natGbPerMonth"],
    ),
]


@pytest.mark.parametrize(
    ("env", "mutate", "fragments"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_fails_on_bad_input(
    write_env: WriteEnv, env: str, mutate: Callable[[dict[str, Any]], None], fragments: list[str]
) -> None:
    path = write_env(env, _mutated(env, mutate))
    message = _error(path)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "Traceback" not in message


def test_fails_on_malformed_yaml(write_env: WriteEnv) -> None:
    path = write_env("dev", "config:\n  keel:tier: dev\n  keel:aws: [unclosed\n")
    message = _error(path)
    assert str(path) in message
    assert "line 4" in message
    assert "is not valid YAML" in message


@pytest.mark.parametrize("document", ["just a string\n", "config: [1, 2]\n", "settings: {}\n"])
def test_fails_on_wrong_file_shape(write_env: WriteEnv, document: str) -> None:
    message = _error(write_env("dev", document))
    assert "config" in message


def test_fails_on_overlapping_environment_cidrs(write_env: WriteEnv) -> None:
    document = _mutated("dev", _set("keel:network.cidr", "10.20.128.0/17"))
    path = write_env("dev", document, siblings=("staging", "prod"))
    message = _error(path)
    assert "keel:network.cidr = '10.20.128.0/17'" in message
    assert "overlaps 10.20.0.0/16 of environment 'staging'" in message


def test_all_problems_reported_at_once(write_env: WriteEnv) -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["keel:cluster"]["publicAccessCidrs"] = ["203.0.113.0/24"]
        config["keel:network"]["nat"] = "single"

    message = _error(write_env("prod", _mutated("prod", mutate)))
    assert len(message.splitlines()) == 2


def test_secure_values_are_secrets_never_kept(write_env: WriteEnv) -> None:
    document = shipped_config("dev")
    document["config"]["keel:modelHubToken"] = {"secure": "v1:AAABAJsecretciphertext"}
    stack_file, _ = load_environment(write_env("dev", document))
    assert "keel:modelHubToken" in stack_file.secret_keys
    assert "AAABAJ" not in repr(stack_file.values)


def test_parse_spec_is_independent_of_files() -> None:
    config = {
        f"keel:{k}": v
        for k, v in (
            (k.split(":", 1)[1], v)
            for k, v in shipped_config("staging")["config"].items()
            if k.startswith("keel:")
        )
    }
    spec = parse_spec(config, environment="staging-eu", source="inline")
    assert spec.environment == "staging-eu"
    assert spec.name_prefix == "keel-staging-eu"


def test_fails_when_a_replica_does_not_fit_the_pool_nodes(write_env: WriteEnv) -> None:
    def mutate(config: dict[str, Any]) -> None:
        config["keel:gpuPools"][0]["instanceTypes"] = ["g6.xlarge"]  # 4 vCPU, 16 GiB

    message = _error(write_env("dev", _mutated("dev", mutate)))
    assert "keel:models[0].memoryGib" in message
    assert "does not fit pool 'l4''s smallest type (4 vCPU, 16 GiB" in message
