"""Kubernetes rules on realistic manifests: a hardened vLLM Deployment, mutated once per violation."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from keel.policy import policy_resource, resource_args
from policies.framework import to_policy
from policies.rules.kubernetes import containers, pod_specs, selector_matches
from tests.policy_helpers import rule, run_resource_rule, run_stack_rule

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HARDENED_CONTAINER: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
HEALTH = {"httpGet": {"path": "/health", "port": 8000.0}}


def vllm_deployment(name: str = "llama-3-8b", namespace: str = "inference") -> dict[str, Any]:
    """A Deployment every Kubernetes rule accepts: what the inference component should render."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "keel"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 2.0,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000.0,
                        "runAsGroup": 1000.0,
                        "fsGroup": 1000.0,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "nodeSelector": {"keel.dev/gpu-pool": "l4"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "initContainers": [
                        {
                            "name": "fetch-model",
                            "image": "public.ecr.aws/aws-cli/aws-cli:2.27.50",
                            "args": ["s3", "sync", "s3://keel-prod-artifacts/models/llama-3-8b/", "/models"],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"cpu": "1", "memory": "1Gi"},
                            },
                            "securityContext": copy.deepcopy(HARDENED_CONTAINER),
                            "volumeMounts": [{"name": "models", "mountPath": "/models"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": "vllm",
                            "image": "vllm/vllm-openai:v0.9.2",
                            "args": [
                                "--model",
                                "/models/llama-3-8b",
                                "--max-model-len",
                                "8192",
                                "--gpu-memory-utilization",
                                "0.90",
                                "--no-enable-log-requests",
                            ],
                            "ports": [{"name": "http", "containerPort": 8000.0}],
                            "env": [
                                {
                                    "name": "VLLM_API_KEY",
                                    "valueFrom": {"secretKeyRef": {"name": "vllm-api-key", "key": "key"}},
                                },
                                {"name": "TOKENIZERS_PARALLELISM", "value": "false"},
                            ],
                            "resources": {
                                "requests": {"cpu": "4", "memory": "24Gi", "nvidia.com/gpu": "1"},
                                "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"},
                            },
                            "readinessProbe": {**HEALTH, "periodSeconds": 10.0},
                            "livenessProbe": {**HEALTH, "periodSeconds": 30.0, "failureThreshold": 3.0},
                            "startupProbe": {
                                **HEALTH,
                                "initialDelaySeconds": 15.0,
                                "periodSeconds": 10.0,
                                "failureThreshold": 60.0,
                            },
                            "securityContext": copy.deepcopy(HARDENED_CONTAINER),
                            "volumeMounts": [
                                {"name": "models", "mountPath": "/models"},
                                {"name": "shm", "mountPath": "/dev/shm"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "models", "emptyDir": {}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
                    ],
                },
            },
        },
    }


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def vllm(manifest: dict[str, Any]) -> dict[str, Any]:
    return pod(manifest)["containers"][0]


def check(name: str, manifest: dict[str, Any], *, type_: str = DEPLOYMENT, **config: Any) -> list[str]:
    return run_resource_rule(name, resource_args(type_, manifest, name="vllm", config=config))


RESOURCE_RULES = (
    "k8s-no-privileged",
    "k8s-non-root-and-hardened",
    "k8s-image-pinned",
    "k8s-resources-set",
    "k8s-gpu-request-equals-limit",
    "k8s-probes",
    "k8s-no-default-namespace-or-sa",
)


# ---------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize("name", RESOURCE_RULES)
def test_hardened_vllm_deployment_passes_every_rule(name: str) -> None:
    assert check(name, vllm_deployment()) == []


@pytest.mark.parametrize("name", RESOURCE_RULES)
def test_manifest_without_spec_passes(name: str) -> None:
    assert check(name, {"metadata": {"name": "x", "namespace": "inference"}}) == []


def test_pod_specs_and_containers_cover_every_workload_kind() -> None:
    template = {"spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "main"}]}}
    shapes = {
        "kubernetes:apps/v1:StatefulSet": {"spec": {"template": template}},
        "kubernetes:apps/v1:DaemonSet": {"spec": {"template": template}},
        "kubernetes:batch/v1:Job": {"spec": {"template": template}},
        "kubernetes:batch/v1:CronJob": {"spec": {"jobTemplate": {"spec": {"template": template}}}},
        "kubernetes:core/v1:Pod": template,
    }
    for type_, manifest in shapes.items():
        specs = list(pod_specs(resource_args(type_, manifest)))
        assert len(specs) == 1, type_
        spec, path = specs[0]
        assert [(c["name"], p) for c, p in containers(spec, path)] == [
            ("init", f"{path}.initContainers[0]"),
            ("main", f"{path}.containers[0]"),
        ]
        assert [c["name"] for c, _ in containers(spec, path, init=False)] == ["main"]
    assert list(pod_specs(resource_args("kubernetes:core/v1:Service", {"spec": {}}))) == []


def test_selector_semantics_of_policy_v1() -> None:
    labels = {"app": "vllm", "tier": "gpu"}
    assert selector_matches({"matchLabels": {"app": "vllm"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "other"}}, labels)
    assert selector_matches({}, labels)  # empty selects all
    assert not selector_matches(None, labels)  # null selects nothing
    expressions = [
        {"key": "tier", "operator": "In", "values": ["gpu", "cpu"]},
        {"key": "zone", "operator": "DoesNotExist"},
        {"key": "app", "operator": "Exists"},
        {"key": "tier", "operator": "NotIn", "values": ["batch"]},
    ]
    assert selector_matches({"matchExpressions": expressions}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)


# ---------------------------------------------------------------------------------------- k8s-no-privileged


def test_privileged_container_and_host_namespaces_are_violations() -> None:
    manifest = vllm_deployment()
    pod(manifest)["hostNetwork"] = True
    pod(manifest)["hostPID"] = True
    vllm(manifest)["securityContext"]["privileged"] = True
    assert check("k8s-no-privileged", manifest) == [
        "Deployment vllm: pod sets hostNetwork: true (spec.template.spec.hostNetwork)",
        "Deployment vllm: pod sets hostPID: true (spec.template.spec.hostPID)",
        "Deployment vllm: container vllm is privileged",
    ]


def test_privilege_escalation_must_be_explicitly_off_in_init_containers_too() -> None:
    manifest = vllm_deployment()
    del pod(manifest)["initContainers"][0]["securityContext"]
    vllm(manifest)["securityContext"]["allowPrivilegeEscalation"] = True
    assert check("k8s-no-privileged", manifest) == [
        "Deployment vllm: container fetch-model does not set allowPrivilegeEscalation: false",
        "Deployment vllm: container vllm does not set allowPrivilegeEscalation: false",
    ]


def test_added_capabilities_follow_the_setting() -> None:
    manifest = vllm_deployment()
    vllm(manifest)["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]
    assert check("k8s-no-privileged", manifest) == [
        "Deployment vllm: container vllm adds capabilities NET_ADMIN"
    ]
    assert check("k8s-no-privileged", manifest, forbiddenCapabilities=["SYS_ADMIN"]) == []


def test_privileged_daemonset_can_be_exempted() -> None:
    manifest = {"spec": {"template": vllm_deployment()["spec"]["template"]}}
    pod(manifest)["hostPID"] = True
    exemption = {"resource": "vllm", "reason": "DCGM exporter reads host GPU processes"}
    daemonset = "kubernetes:apps/v1:DaemonSet"
    assert check("k8s-no-privileged", manifest, type_=daemonset)
    assert check("k8s-no-privileged", manifest, type_=daemonset, exemptions=[exemption]) == []


def test_cronjob_pod_spec_is_checked() -> None:
    template = vllm_deployment()["spec"]["template"]
    template["spec"]["containers"][0]["securityContext"]["privileged"] = True
    cronjob = {
        "metadata": {"namespace": "inference"},
        "spec": {"jobTemplate": {"spec": {"template": template}}},
    }
    assert check("k8s-no-privileged", cronjob, type_="kubernetes:batch/v1:CronJob") == [
        "CronJob vllm: container vllm is privileged"
    ]


def test_unknown_security_context_makes_the_check_undecided() -> None:
    manifest = vllm_deployment()
    vllm(manifest)["securityContext"] = UNKNOWN
    args = resource_args(DEPLOYMENT, manifest, name="vllm", config={"forbiddenCapabilities": []})
    policy = to_policy(rule("k8s-no-privileged"))
    assert isinstance(policy, ResourceValidationPolicy)
    with pytest.raises(UnknownValueError):
        policy.validate(args, lambda message, urn: None)


# -------------------------------------------------------------------------------- k8s-non-root-and-hardened


def test_container_running_as_root_overrides_the_pod() -> None:
    manifest = vllm_deployment()
    vllm(manifest)["securityContext"]["runAsNonRoot"] = False
    vllm(manifest)["securityContext"]["runAsUser"] = 0.0
    assert check("k8s-non-root-and-hardened", manifest) == [
        "Deployment vllm: container vllm: runAsNonRoot is not true; runAsUser is 0"
    ]


def test_unhardened_pod_lists_every_gap_per_container() -> None:
    manifest = vllm_deployment()
    del pod(manifest)["securityContext"]
    del pod(manifest)["initContainers"]
    del vllm(manifest)["securityContext"]
    assert check("k8s-non-root-and-hardened", manifest) == [
        "Deployment vllm: container vllm: runAsNonRoot is not true; capabilities.drop lacks ALL; "
        "seccompProfile.type is unset"
    ]


def test_container_level_settings_suffice_without_a_pod_context() -> None:
    manifest = vllm_deployment()
    del pod(manifest)["securityContext"]
    for container in [vllm(manifest), pod(manifest)["initContainers"][0]]:
        container["securityContext"].update(
            {"runAsNonRoot": True, "runAsUser": 1000.0, "seccompProfile": {"type": "Localhost"}}
        )
    assert check("k8s-non-root-and-hardened", manifest) == []


def test_allowed_seccomp_profiles_setting() -> None:
    manifest = vllm_deployment()
    pod(manifest)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    message = "Deployment vllm: container vllm: seccompProfile.type is Unconfined"
    assert message in check("k8s-non-root-and-hardened", manifest)
    allowed = ["RuntimeDefault", "Localhost", "Unconfined"]
    assert check("k8s-non-root-and-hardened", manifest, allowedSeccompProfiles=allowed) == []


# ---------------------------------------------------------------------------------------- k8s-image-pinned


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("vllm/vllm-openai", "image vllm/vllm-openai has no tag (pulls :latest)"),
        ("vllm/vllm-openai:latest", "image vllm/vllm-openai:latest uses the mutable :latest tag"),
        ("registry.internal:5000/vllm", "image registry.internal:5000/vllm has no tag (pulls :latest)"),
        ("vllm/vllm-openai@sha256:abc", "image vllm/vllm-openai@sha256:abc has a malformed digest"),
    ],
)
def test_unpinned_images_are_violations(image: str, message: str) -> None:
    manifest = vllm_deployment()
    vllm(manifest)["image"] = image
    assert check("k8s-image-pinned", manifest) == [f"Deployment vllm: container vllm {message}"]


def test_missing_image_is_a_violation() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["image"]
    assert check("k8s-image-pinned", manifest) == ["Deployment vllm: container vllm sets no image"]


def test_require_digest_setting() -> None:
    manifest = vllm_deployment()
    assert check("k8s-image-pinned", manifest, requireDigest=True) == [
        "Deployment vllm: container fetch-model image public.ecr.aws/aws-cli/aws-cli:2.27.50 is not pinned "
        "by digest (@sha256:...)",
        "Deployment vllm: container vllm image vllm/vllm-openai:v0.9.2 is not pinned by digest (@sha256:...)",
    ]
    digest = "sha256:" + "a" * 64
    vllm(manifest)["image"] = f"vllm/vllm-openai:v0.9.2@{digest}"
    pod(manifest)["initContainers"][0]["image"] = f"public.ecr.aws/aws-cli/aws-cli@{digest}"
    assert check("k8s-image-pinned", manifest, requireDigest=True) == []


# --------------------------------------------------------------------------------------- k8s-resources-set


def test_missing_cpu_limit_and_absent_resources_are_violations() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["resources"]["limits"]["cpu"]
    del pod(manifest)["initContainers"][0]["resources"]
    assert check("k8s-resources-set", manifest) == [
        "Deployment vllm: container fetch-model sets no requests.cpu, requests.memory, limits.cpu, limits.memory",
        "Deployment vllm: container vllm sets no limits.cpu",
    ]


def test_limits_alone_also_set_requests() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["resources"]["requests"]
    assert check("k8s-resources-set", manifest) == []


def test_required_limits_setting() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["resources"]["limits"]["cpu"]
    assert check("k8s-resources-set", manifest, limits=["memory"]) == []


# ----------------------------------------------------------------------------- k8s-gpu-request-equals-limit


def test_gpu_request_differing_from_limit_is_a_violation() -> None:
    manifest = vllm_deployment()
    vllm(manifest)["resources"]["requests"]["nvidia.com/gpu"] = "1"
    vllm(manifest)["resources"]["limits"]["nvidia.com/gpu"] = 2.0
    assert check("k8s-gpu-request-equals-limit", manifest) == [
        "Deployment vllm: container vllm requests 1 nvidia.com/gpu but limits 2.0"
    ]


def test_gpu_count_as_number_or_string_is_equal() -> None:
    manifest = vllm_deployment()
    vllm(manifest)["resources"]["limits"]["nvidia.com/gpu"] = 1.0
    assert check("k8s-gpu-request-equals-limit", manifest) == []


def test_gpu_request_without_limit_and_without_toleration() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["resources"]["limits"]["nvidia.com/gpu"]
    del pod(manifest)["tolerations"]
    assert check("k8s-gpu-request-equals-limit", manifest) == [
        "Deployment vllm: container vllm requests nvidia.com/gpu without a limit",
        "Deployment vllm: pod uses nvidia.com/gpu but does not tolerate the taint nvidia.com/gpu=true:NoSchedule",
    ]


def test_gpu_limit_alone_is_enough() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["resources"]["requests"]["nvidia.com/gpu"]
    assert check("k8s-gpu-request-equals-limit", manifest) == []


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "true"}, True),  # Equal by default, any effect
        ({"operator": "Exists"}, True),  # tolerates everything
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "false", "effect": "NoSchedule"}, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "dedicated", "operator": "Exists"}, False),
    ],
)
def test_gpu_taint_toleration_forms(toleration: dict[str, Any], tolerated: bool) -> None:
    manifest = vllm_deployment()
    pod(manifest)["tolerations"] = [toleration]
    assert (check("k8s-gpu-request-equals-limit", manifest) == []) is tolerated


def test_cpu_only_workload_needs_no_toleration() -> None:
    manifest = vllm_deployment()
    del pod(manifest)["tolerations"]
    for kind in ("requests", "limits"):
        del vllm(manifest)["resources"][kind]["nvidia.com/gpu"]
    assert check("k8s-gpu-request-equals-limit", manifest) == []


def test_gpu_taint_setting() -> None:
    manifest = vllm_deployment()
    assert check("k8s-gpu-request-equals-limit", manifest, taintKey="keel.dev/gpu") == [
        "Deployment vllm: pod uses nvidia.com/gpu but does not tolerate the taint keel.dev/gpu=true:NoSchedule"
    ]


# ---------------------------------------------------------------------------------------------- k8s-probes


def test_missing_probes_are_violations() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["livenessProbe"]
    del vllm(manifest)["readinessProbe"]
    assert check("k8s-probes", manifest) == [
        "Deployment vllm: container vllm has no readinessProbe, livenessProbe"
    ]
    assert check("k8s-probes", manifest, type_="kubernetes:apps/v1:StatefulSet") == [
        "StatefulSet vllm: container vllm has no readinessProbe, livenessProbe"
    ]


def test_probes_are_not_required_of_jobs() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["livenessProbe"]
    assert check("k8s-probes", manifest, type_="kubernetes:batch/v1:Job") == []


def test_required_probes_setting() -> None:
    manifest = vllm_deployment()
    del vllm(manifest)["livenessProbe"]
    assert check("k8s-probes", manifest) == ["Deployment vllm: container vllm has no livenessProbe"]
    assert check("k8s-probes", manifest, requiredProbes=["readinessProbe"]) == []


# ---------------------------------------------------------------------------------- default namespace / SA


def test_default_namespace_and_service_account_are_violations() -> None:
    manifest = vllm_deployment(namespace="default")
    pod(manifest)["serviceAccountName"] = "default"
    assert check("k8s-no-default-namespace-or-sa", manifest) == [
        "Deployment vllm runs in namespace default",
        "Deployment vllm runs under the default service account",
    ]


def test_missing_namespace_and_service_account_are_violations() -> None:
    manifest = vllm_deployment()
    del manifest["metadata"]["namespace"]
    del pod(manifest)["serviceAccountName"]
    assert check("k8s-no-default-namespace-or-sa", manifest) == [
        "Deployment vllm runs in namespace default (none set)",
        "Deployment vllm runs under the default service account",
    ]


def test_forbidden_namespaces_setting() -> None:
    manifest = vllm_deployment(namespace="sandbox")
    assert check("k8s-no-default-namespace-or-sa", manifest) == []
    assert check("k8s-no-default-namespace-or-sa", manifest, forbiddenNamespaces=["default", "sandbox"]) == [
        "Deployment vllm runs in namespace sandbox"
    ]


# ------------------------------------------------------------------------------ k8s-no-public-loadbalancer

SERVICE = "kubernetes:core/v1:Service"


def _service(annotations: dict[str, str] | None = None, type_: str | None = "LoadBalancer") -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80.0, "targetPort": 8000.0}], "selector": {"app": "vllm"}}
    if type_:
        spec["type"] = type_
    return {
        "metadata": {"name": "vllm", "namespace": "inference", "annotations": annotations or {}},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "annotations",
    [
        {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
        {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
    ],
)
def test_internal_load_balancer_is_compliant(annotations: dict[str, str]) -> None:
    assert check("k8s-no-public-loadbalancer", _service(annotations), type_=SERVICE) == []


def test_public_load_balancer_is_a_violation() -> None:
    public = _service({"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"})
    message = "Service vllm is a LoadBalancer without an internal-scheme annotation (internet-facing)"
    assert check("k8s-no-public-loadbalancer", public, type_=SERVICE) == [message]
    # No annotations at all.
    assert check("k8s-no-public-loadbalancer", _service(), type_=SERVICE) == [message]


def test_cluster_ip_service_without_type_is_compliant() -> None:
    assert check("k8s-no-public-loadbalancer", _service(type_=None), type_=SERVICE) == []


def test_public_load_balancer_can_be_exempted() -> None:
    exemption = {"resource": "vllm", "reason": "public demo endpoint behind WAF, approved in SEC-42"}
    assert check("k8s-no-public-loadbalancer", _service(), type_=SERVICE, exemptions=[exemption]) == []


# ----------------------------------------------------------------------------------- k8s-prod-availability


def _deployment(replicas: float | None = 2.0, namespace: str = "inference") -> Any:
    manifest = vllm_deployment(namespace=namespace)
    if replicas is None:
        del manifest["spec"]["replicas"]
    else:
        manifest["spec"]["replicas"] = replicas
    return policy_resource(DEPLOYMENT, manifest, name="llama")


def _scaled_object(
    min_replicas: float | None, namespace: str = "inference", target: str = "llama-3-8b"
) -> Any:
    spec: dict[str, Any] = {"scaleTargetRef": {"name": target}, "maxReplicaCount": 4.0}
    if min_replicas is not None:
        spec["minReplicaCount"] = min_replicas
    return policy_resource(
        "kubernetes:keda.sh/v1alpha1:ScaledObject",
        {"metadata": {"name": target, "namespace": namespace}, "spec": spec},
        name="llama-scaler",
    )


def _pdb(selector: dict[str, Any] | None, namespace: str = "inference") -> Any:
    spec: dict[str, Any] = {"maxUnavailable": 1.0}
    if selector is not None:
        spec["selector"] = selector
    return policy_resource(
        "kubernetes:policy/v1:PodDisruptionBudget",
        {"metadata": {"name": "llama", "namespace": namespace}, "spec": spec},
        name="llama-pdb",
    )


DEPLOYMENT_URN = f"urn:pulumi:test::keel::{DEPLOYMENT}::llama"


def test_deployment_with_two_replicas_is_available() -> None:
    assert run_stack_rule("k8s-prod-availability", [_deployment()]) == []


def test_replicas_below_the_minimum_are_a_violation() -> None:
    findings = run_stack_rule("k8s-prod-availability", [_deployment(1.0)], {"minReplicas": 2})
    assert findings == [
        ("Deployment inference/llama-3-8b can run 1 replicas (spec.replicas), fewer than 2", DEPLOYMENT_URN)
    ]


def test_missing_replicas_default_to_one() -> None:
    assert run_stack_rule("k8s-prod-availability", [_deployment(None)]) == []
    assert run_stack_rule("k8s-prod-availability", [_deployment(None)], {"minReplicas": 2})


def test_keda_floor_replaces_spec_replicas() -> None:
    scale_to_zero = [_deployment(2.0), _scaled_object(0.0)]
    assert run_stack_rule("k8s-prod-availability", scale_to_zero) == [
        (
            "Deployment inference/llama-3-8b can run 0 replicas (ScaledObject llama-scaler minReplicaCount), "
            "fewer than 1",
            DEPLOYMENT_URN,
        )
    ]
    # KEDA's default minReplicaCount is 0; dev may allow scale to zero.
    assert run_stack_rule("k8s-prod-availability", [_deployment(2.0), _scaled_object(None)])
    assert run_stack_rule("k8s-prod-availability", scale_to_zero, {"minReplicas": 0}) == []
    assert run_stack_rule("k8s-prod-availability", [_deployment(0.0), _scaled_object(1.0)]) == []


def test_scaled_object_in_another_namespace_or_for_another_target_is_ignored() -> None:
    for scaler in (_scaled_object(0.0, namespace="batch"), _scaled_object(0.0, target="other")):
        assert run_stack_rule("k8s-prod-availability", [_deployment(2.0), scaler]) == []


def test_hpa_floor_counts() -> None:
    hpa = policy_resource(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        {
            "metadata": {"name": "llama", "namespace": "inference"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "llama-3-8b"}, "maxReplicas": 4.0},
        },
        name="llama-hpa",
    )
    assert run_stack_rule("k8s-prod-availability", [_deployment(3.0), hpa], {"minReplicas": 2}) == [
        (
            "Deployment inference/llama-3-8b can run 1 replicas (HorizontalPodAutoscaler llama-hpa minReplicas), "
            "fewer than 2",
            DEPLOYMENT_URN,
        )
    ]


def test_require_pdb_setting() -> None:
    matching = _pdb({"matchLabels": {"app.kubernetes.io/name": "llama-3-8b"}})
    assert run_stack_rule("k8s-prod-availability", [_deployment()]) == []
    assert run_stack_rule("k8s-prod-availability", [_deployment()], {"requirePdb": True}) == [
        ("Deployment inference/llama-3-8b has no PodDisruptionBudget selecting its pods", DEPLOYMENT_URN)
    ]
    assert run_stack_rule("k8s-prod-availability", [_deployment(), matching], {"requirePdb": True}) == []


@pytest.mark.parametrize(
    "pdb",
    [
        _pdb({"matchLabels": {"app.kubernetes.io/name": "other"}}),
        _pdb({"matchLabels": {"app.kubernetes.io/name": "llama-3-8b"}}, namespace="batch"),
        _pdb(None),  # a null selector selects no pods
    ],
)
def test_pdb_must_select_the_deployment_pods_in_its_namespace(pdb: Any) -> None:
    assert run_stack_rule("k8s-prod-availability", [_deployment(), pdb], {"requirePdb": True}) != []


# ------------------------------------------------------------------------- k8s-networkpolicy-per-namespace


def _network_policy(namespace: str = "inference") -> Any:
    return policy_resource(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy",
        {
            "metadata": {"name": "default-deny", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        name="default-deny",
    )


def _namespace(name: str = "inference") -> Any:
    return policy_resource("kubernetes:core/v1:Namespace", {"metadata": {"name": name}}, name=f"ns-{name}")


def test_namespace_with_network_policy_is_compliant() -> None:
    resources = [_namespace(), _deployment(), _network_policy()]
    assert run_stack_rule("k8s-networkpolicy-per-namespace", resources) == []


def test_namespace_without_network_policy_is_reported_on_the_namespace() -> None:
    resources = [_namespace(), _deployment(), _network_policy("other")]
    assert run_stack_rule("k8s-networkpolicy-per-namespace", resources) == [
        (
            "namespace inference runs workloads (Deployment llama) but has no NetworkPolicy",
            "urn:pulumi:test::keel::kubernetes:core/v1:Namespace::ns-inference",
        )
    ]


def test_workload_without_namespace_counts_as_default() -> None:
    manifest = vllm_deployment()
    del manifest["metadata"]["namespace"]
    job = policy_resource("kubernetes:batch/v1:Job", {"spec": {}}, name="warmup")
    findings = run_stack_rule("k8s-networkpolicy-per-namespace", [policy_resource(DEPLOYMENT, manifest), job])
    assert findings == [
        (
            "namespace default runs workloads (Deployment subject, Job warmup) but has no NetworkPolicy",
            f"urn:pulumi:test::keel::{DEPLOYMENT}::subject",
        )
    ]


def test_ignore_namespaces_setting_and_namespace_exemption() -> None:
    resources = [_namespace(), _deployment()]
    assert (
        run_stack_rule("k8s-networkpolicy-per-namespace", resources, {"ignoreNamespaces": ["inference"]})
        == []
    )
    exemption = {"resource": "ns-inference", "reason": "Cilium cluster-wide policy covers this namespace"}
    assert run_stack_rule("k8s-networkpolicy-per-namespace", resources, {"exemptions": [exemption]}) == []
