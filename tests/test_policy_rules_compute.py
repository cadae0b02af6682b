"""Compute rules: compliant, non-compliant, missing-property and config-override cases."""

from __future__ import annotations

from typing import Any

from keel.policy import policy_resource, resource_args
from tests.policy_helpers import run_resource_rule, run_stack_rule

LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}


def _template(name: str = "lt", config: dict[str, Any] | None = None, **props: Any) -> Any:
    return resource_args(LAUNCH_TEMPLATE, props, name=name, config=config)


def _ebs(encrypted: Any, device: str = "/dev/xvda") -> dict[str, Any]:
    ebs: dict[str, Any] = {"volumeSize": 200.0, "volumeType": "gp3"}
    if encrypted is not None:
        ebs["encrypted"] = encrypted
    return {"deviceName": device, "ebs": ebs}


def _group_props(
    instance_types: list[str] | None,
    ami: str | None = "AL2023_x86_64_NVIDIA",
    max_size: float | None = 4.0,
    taints: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    props: dict[str, Any] = {"clusterName": "keel", "taints": taints if taints is not None else [GPU_TAINT]}
    if ami is not None:
        props["amiType"] = ami
    if instance_types is not None:
        props["instanceTypes"] = instance_types
    if max_size is not None:
        props["scalingConfig"] = {"minSize": 0.0, "desiredSize": 0.0, "maxSize": max_size}
    return props


def _group(name: str = "gpu", config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return resource_args(NODE_GROUP, _group_props(**kwargs), name=name, config=config)


# ----------------------------------------------------------------------------------------- imdsv2-required


def test_imdsv2_required_is_compliant() -> None:
    args = _template(
        metadataOptions={"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1.0}
    )
    assert run_resource_rule("imdsv2-required", args) == []


def test_imdsv1_allowed_is_violation() -> None:
    args = _template(metadataOptions={"httpTokens": "optional"})
    assert run_resource_rule("imdsv2-required", args) == [
        "launch template lt allows IMDSv1 (metadataOptions.httpTokens 'optional')"
    ]


def test_missing_metadata_options_is_violation() -> None:
    expected = ["launch template lt allows IMDSv1 (metadataOptions.httpTokens not set)"]
    assert run_resource_rule("imdsv2-required", _template()) == expected
    assert (
        run_resource_rule("imdsv2-required", _template(metadataOptions={"httpEndpoint": "enabled"}))
        == expected
    )


def test_imdsv1_exempted_through_config() -> None:
    args = _template(
        name="legacy-lt",
        config={"exemptions": [{"resource": "legacy-lt", "reason": "vendor AMI needs IMDSv1 until 2027"}]},
        metadataOptions={"httpTokens": "optional"},
    )
    assert run_resource_rule("imdsv2-required", args) == []


# ------------------------------------------------------------------------------------ root-volume-encrypted


def test_encrypted_volumes_are_compliant() -> None:
    # The provider carries ebs.encrypted as the string "true".
    args = _template(blockDeviceMappings=[_ebs("true"), _ebs(True, "/dev/xvdb")])
    assert run_resource_rule("root-volume-encrypted", args) == []


def test_unencrypted_volume_is_violation() -> None:
    args = _template(blockDeviceMappings=[_ebs("true"), _ebs("false", "/dev/xvdb")])
    assert run_resource_rule("root-volume-encrypted", args) == [
        "launch template lt leaves /dev/xvdb unencrypted"
    ]


def test_missing_encryption_or_mappings_is_violation() -> None:
    assert run_resource_rule("root-volume-encrypted", _template(blockDeviceMappings=[_ebs(None)])) == [
        "launch template lt leaves /dev/xvda unencrypted"
    ]
    assert run_resource_rule("root-volume-encrypted", _template()) == [
        "launch template lt declares no EBS volume, so the root volume's encryption is left to the AMI"
    ]


def test_unencrypted_volume_exempted_through_config() -> None:
    args = _template(
        name="scratch-lt",
        config={
            "exemptions": [{"resource": "scratch-lt", "reason": "benchmark scratch nodes, no data kept"}]
        },
        blockDeviceMappings=[_ebs("false")],
    )
    assert run_resource_rule("root-volume-encrypted", args) == []


# ----------------------------------------------------------------------------------- gpu-instance-allowlist


def test_catalogue_gpu_types_are_allowed() -> None:
    assert (
        run_resource_rule("gpu-instance-allowlist", _group(instance_types=["g6.xlarge", "g6e.12xlarge"]))
        == []
    )


def test_gpu_type_outside_the_catalogue_is_violation() -> None:
    args = _group(instance_types=["g6.xlarge", "p3.16xlarge"])
    assert run_resource_rule("gpu-instance-allowlist", args) == [
        "GPU node group gpu uses instance types outside the allow-list: p3.16xlarge"
    ]
    # A GPU type on a standard AMI is still a GPU group.
    standard_ami = _group(instance_types=["p3.2xlarge"], ami="AL2023_x86_64_STANDARD")
    assert run_resource_rule("gpu-instance-allowlist", standard_ami) == [
        "GPU node group gpu uses instance types outside the allow-list: p3.2xlarge"
    ]


def test_non_gpu_groups_are_out_of_scope() -> None:
    args = _group(instance_types=["m7i.xlarge"], ami="AL2023_x86_64_STANDARD", taints=[])
    assert run_resource_rule("gpu-instance-allowlist", args) == []


def test_gpu_group_without_instance_types_is_violation() -> None:
    assert run_resource_rule("gpu-instance-allowlist", _group(instance_types=None)) == [
        "GPU node group gpu names no instance types, so they cannot be checked"
    ]
    # No AMI type and no instance types: nothing marks it as a GPU group.
    assert run_resource_rule("gpu-instance-allowlist", _group(instance_types=None, ami=None)) == []


def test_allowed_instance_types_setting_changes_the_verdict() -> None:
    config = {"allowedInstanceTypes": ["g6.xlarge"]}
    assert (
        run_resource_rule("gpu-instance-allowlist", _group(config=config, instance_types=["g6.xlarge"])) == []
    )
    assert run_resource_rule(
        "gpu-instance-allowlist", _group(config=config, instance_types=["p5.48xlarge"])
    ) == ["GPU node group gpu uses instance types outside the allow-list: p5.48xlarge"]


# -------------------------------------------------------------------------------------------- gpu-count-cap


def _node_group(name: str, **kwargs: Any) -> Any:
    return policy_resource(NODE_GROUP, _group_props(**kwargs), name=name)


def test_gpus_within_the_cap_are_compliant() -> None:
    resources = [
        _node_group("l4", instance_types=["g6.xlarge", "g6.2xlarge"], max_size=6.0),
        _node_group("l40s", instance_types=["g6e.12xlarge"], max_size=2.0),
        # 100 system nodes carry no GPUs.
        _node_group(
            "system", instance_types=["m7i.xlarge"], ami="AL2023_x86_64_STANDARD", max_size=100.0, taints=[]
        ),
    ]
    assert run_stack_rule("gpu-count-cap", resources) == []


def test_gpus_above_the_cap_are_violation_with_the_breakdown() -> None:
    resources = [
        _node_group("l4", instance_types=["g6.xlarge"], max_size=10.0),
        # The group counts at its largest instance type: 8 GPUs.
        _node_group("big", instance_types=["g6e.12xlarge", "p5.48xlarge"], max_size=7.0),
    ]
    assert run_stack_rule("gpu-count-cap", resources) == [
        ("GPU node groups can reach 66 GPUs, above the cap of 64: l4 10 x 1 = 10; big 7 x 8 = 56", None)
    ]


def test_gpu_group_with_unknown_count_or_no_max_size_is_reported() -> None:
    unknown = _node_group("old", instance_types=["p3.2xlarge"], max_size=2.0)
    unbounded = _node_group("open", instance_types=["g6.xlarge"], max_size=None)
    assert run_stack_rule("gpu-count-cap", [unknown, unbounded]) == [
        (
            "GPU node group old: GPUs per instance unknown for instance types p3.2xlarge; "
            "the GPU cap cannot be checked",
            unknown.urn,
        ),
        ("GPU node group open has no maxSize; the GPU cap cannot be checked", unbounded.urn),
    ]


def test_max_gpus_setting_changes_the_verdict() -> None:
    resources = [_node_group("l40s", instance_types=["g6e.12xlarge"], max_size=3.0)]
    assert run_stack_rule("gpu-count-cap", resources) == []
    assert run_stack_rule("gpu-count-cap", resources, {"maxGpus": 8}) == [
        ("GPU node groups can reach 12 GPUs, above the cap of 8: l40s 3 x 4 = 12", None)
    ]


# ----------------------------------------------------------------------------------------- gpu-pool-tainted


def test_tainted_gpu_pool_is_compliant() -> None:
    assert run_resource_rule("gpu-pool-tainted", _group(instance_types=["g6.xlarge"])) == []
    # The Kubernetes spelling of the effect counts too.
    k8s_spelling = _group(
        instance_types=["g6.xlarge"], taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]
    )
    assert run_resource_rule("gpu-pool-tainted", k8s_spelling) == []


def test_gpu_pool_with_wrong_effect_is_violation() -> None:
    args = _group(instance_types=["g6.xlarge"], taints=[{**GPU_TAINT, "effect": "PREFER_NO_SCHEDULE"}])
    assert run_resource_rule("gpu-pool-tainted", args) == [
        "GPU node group gpu lacks the taint nvidia.com/gpu:NoSchedule"
    ]


def test_gpu_pool_without_taints_is_violation_and_system_pool_is_not() -> None:
    props = _group_props(instance_types=["g6.xlarge"])
    del props["taints"]
    assert run_resource_rule("gpu-pool-tainted", resource_args(NODE_GROUP, props, name="gpu")) == [
        "GPU node group gpu lacks the taint nvidia.com/gpu:NoSchedule"
    ]
    system = _group(instance_types=["m7i.xlarge"], ami="AL2023_x86_64_STANDARD", taints=[])
    assert run_resource_rule("gpu-pool-tainted", system) == []


def test_untainted_gpu_pool_exempted_through_config() -> None:
    args = _group(
        name="shared-gpu",
        config={"exemptions": [{"resource": "shared-gpu", "reason": "mixed CPU/GPU research pool, RFC-7"}]},
        instance_types=["g6.xlarge"],
        taints=[],
    )
    assert run_resource_rule("gpu-pool-tainted", args) == []
