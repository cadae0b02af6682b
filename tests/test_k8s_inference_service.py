"""InferenceService planned alone under the offline engine (explicit Kubernetes provider): what it renders, what
the Kubernetes policy rules say about it, and the input it refuses.

Three scenarios cover the tiers: ``prod`` (floor of 2, PDB, zone spread, weights synced from S3, TP 2), ``dev``
(scale to zero behind the KEDA HTTP add-on, gated model with a hub token) and ``staging`` (floor of 1, public
model from the hub, nothing optional).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pydantic import ValidationError

from components.aws import node_group
from components.k8s.inference_service import (
    GPU_POOL_LABEL,
    GPU_TAINT_KEY,
    InferenceService,
    InferenceServiceArgs,
    cpu_quantity,
)
from keel.engine import Graph, PlannedResource, run_program
from keel.manifests import plain_numbers
from keel.policy import resource_args, stack_resources
from policies.rules.kubernetes import containers, pod_specs
from tests.policy_helpers import run_resource_rule, run_stack_rule

DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = f"vllm/vllm-openai@{DIGEST}"
AWS_CLI = f"public.ecr.aws/aws-cli/aws-cli@{DIGEST}"
REVISION = "a09a35458c702b33eeacc393d103063234e8bc28"
ROLE_ARN = "arn:aws:iam::123456789012:role/keel-prod-qwen-weights"
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"

T_NAMESPACE = "kubernetes:core/v1:Namespace"
T_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
T_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
T_SERVICE = "kubernetes:core/v1:Service"
T_PDB = "kubernetes:policy/v1:PodDisruptionBudget"
T_NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
T_SCALED = "kubernetes:keda.sh/v1alpha1:ScaledObject"
T_ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
T_POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
T_EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
T_COMPONENT = "keel:k8s:InferenceService"
#: Kinds with a schema in kubernetes-validate (the custom resources have none there).
BUILT_IN = frozenset({T_NAMESPACE, T_ACCOUNT, T_DEPLOYMENT, T_SERVICE, T_PDB, T_NETPOL})

BASE: Mapping[str, Any] = {
    "model_name": "qwen25-7b",
    "image": IMAGE,
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "revision": REVISION,
    "max_model_len": 8192,
    "gpu_pool": "l4",
    "prometheus_address": PROMETHEUS,
    "prometheus_namespace": "monitoring",
}

SCENARIOS: Mapping[str, Mapping[str, Any]] = {
    "prod": {
        **BASE,
        "min_replicas": 2,
        "max_replicas": 6,
        "tensor_parallel_size": 2,
        "max_unavailable": 1,
        "spread_across_zones": True,
        "weights_uri": "s3://keel-prod-artifacts/models/Qwen/Qwen2.5-7B-Instruct/a09a354/",
        "weights_sync_image": AWS_CLI,
        "service_account_role_arn": ROLE_ARN,
        "client_namespaces": ("gateway", "apps"),
        "monitor_labels": {"release": "kube-prometheus-stack"},
        "labels": {"environment": "prod"},
    },
    "dev": {
        **BASE,
        "min_replicas": 0,
        "max_replicas": 2,
        "hub_token_secret": "keel-dev/hf-token",
        "secret_store_name": "aws-secrets-manager",
        "client_namespaces": ("gateway",),
    },
    "staging": {**BASE, "min_replicas": 1, "max_replicas": 3},
}


def scenario_args(scenario: str, **overrides: Any) -> InferenceServiceArgs:
    return InferenceServiceArgs(**{**SCENARIOS[scenario], **overrides})


@cache
def graph(scenario: str) -> Graph:
    def program() -> Mapping[str, Any]:
        provider = k8s.Provider("k8s")
        service = InferenceService(
            "qwen", scenario_args(scenario), opts=pulumi.ResourceOptions(provider=provider)
        )
        return {
            "namespace": service.namespace,
            "service_name": service.service_name,
            "deployment_name": service.deployment_name,
            "service_url": service.service_url,
            "request_url": service.request_url,
            "request_host": service.request_host,
        }

    return run_program(program, stack="components")


def deployment(scenario: str) -> PlannedResource:
    return graph(scenario).one(T_DEPLOYMENT)


def pod_spec(scenario: str) -> Mapping[str, Any]:
    return deployment(scenario).inputs["spec"]["template"]["spec"]


def vllm(scenario: str) -> Mapping[str, Any]:
    (container,) = pod_spec(scenario)["containers"]
    return container


def all_containers(scenario: str) -> list[Mapping[str, Any]]:
    spec = pod_spec(scenario)
    return [*spec.get("initContainers", []), *spec["containers"]]


def flag(container: Mapping[str, Any], name: str) -> str:
    args = container["args"]
    assert args.count(name) == 1, f"{name} given {args.count(name)} times in {args}"
    return args[args.index(name) + 1]


def env(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


ALL = pytest.mark.parametrize("scenario", sorted(SCENARIOS))


# ------------------------------------------------------------------------------------------------ graph shape


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("prod", {T_PDB: 1, T_ROUTE: 0, T_EXTERNAL_SECRET: 0}),
        ("dev", {T_PDB: 0, T_ROUTE: 1, T_EXTERNAL_SECRET: 1}),
        ("staging", {T_PDB: 0, T_ROUTE: 0, T_EXTERNAL_SECRET: 0}),
    ],
)
def test_resource_counts_per_scenario(scenario: str, expected: Mapping[str, int]) -> None:
    counts = graph(scenario).counts_by_type()
    always = {
        T_COMPONENT: 1,
        T_NAMESPACE: 1,
        T_ACCOUNT: 1,
        T_DEPLOYMENT: 1,
        T_SERVICE: 1,
        T_SCALED: 1,
        T_NETPOL: 3,
        T_POD_MONITOR: 1,
    }
    for type_, count in {**always, **expected}.items():
        assert counts[type_] == count, type_


@ALL
def test_every_child_is_parented_named_after_the_component_and_in_the_model_namespace(scenario: str) -> None:
    plan = graph(scenario)
    component = plan.one(T_COMPONENT)
    children = plan.descendants(component.urn)
    assert children
    assert all(c.parent == component.urn for c in children)
    assert all(c.name.startswith("qwen-") for c in children)
    assert all(c.provider and c.provider.endswith("pulumi:providers:kubernetes::k8s") for c in children)
    for child in children:
        if child.type != T_NAMESPACE:
            assert child.inputs["metadata"]["namespace"] == "model-qwen25-7b", child.name


def test_outputs_point_at_the_service_or_the_interceptor() -> None:
    direct = "http://qwen25-7b.model-qwen25-7b.svc.cluster.local:8000/v1"
    staging = graph("staging").outputs
    assert staging["service_url"] == direct
    assert staging["request_url"] == direct
    assert staging["service_name"] == "qwen25-7b"
    assert staging["deployment_name"] == "qwen25-7b"
    assert staging["namespace"] == "model-qwen25-7b"
    dev = graph("dev").outputs
    assert dev["service_url"] == direct
    assert dev["request_url"] == "http://keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local:8080/v1"
    assert dev["request_host"] == "qwen25-7b.model-qwen25-7b.svc.cluster.local"


def test_namespace_enforces_restricted_pod_security() -> None:
    labels = graph("prod").one(T_NAMESPACE).inputs["metadata"]["labels"]
    assert graph("prod").one(T_NAMESPACE).inputs["metadata"]["name"] == "model-qwen25-7b"
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert labels["environment"] == "prod"


def test_namespace_can_be_named() -> None:
    args = scenario_args("staging", namespace="llm")
    assert args.namespace == "llm"
    assert scenario_args("staging").namespace == "model-qwen25-7b"


def test_service_account_carries_the_irsa_role_and_no_api_token() -> None:
    prod = graph("prod").one(T_ACCOUNT).inputs
    assert prod["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    assert prod["automountServiceAccountToken"] is False
    assert "annotations" not in graph("staging").one(T_ACCOUNT).inputs["metadata"]
    for scenario in SCENARIOS:
        assert pod_spec(scenario)["serviceAccountName"] == "qwen25-7b"
        assert pod_spec(scenario)["automountServiceAccountToken"] is False


def test_gpu_pool_constants_match_the_node_pools() -> None:
    assert GPU_POOL_LABEL == node_group.GPU_POOL_LABEL
    assert GPU_TAINT_KEY == node_group.GPU_TAINT_KEY


# -------------------------------------------------------------------------------------------- the workload


@pytest.mark.parametrize(("scenario", "gpus"), [("prod", "2"), ("dev", "1"), ("staging", "1")])
def test_gpu_request_equals_limit_equals_tensor_parallel_size(scenario: str, gpus: str) -> None:
    resources = vllm(scenario)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == gpus
    assert flag(vllm(scenario), "--tensor-parallel-size") == gpus


@pytest.mark.parametrize(
    ("scenario", "cpu", "cpu_limit", "memory"), [("prod", "6", "12", "48Gi"), ("staging", "3", "6", "24Gi")]
)
def test_cpu_and_memory_default_per_gpu(scenario: str, cpu: str, cpu_limit: str, memory: str) -> None:
    resources = vllm(scenario)["resources"]
    assert resources["requests"]["cpu"] == cpu
    assert resources["limits"]["cpu"] == cpu_limit
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == memory
    for container in all_containers(scenario):
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


def test_explicit_sizing_is_rendered_as_quantities() -> None:
    args = scenario_args("staging", cpu_request=1.5, cpu_limit=2, memory_request_gib=20, memory_limit_gib=30)
    assert (args.cpu, args.cpu_max, args.memory_gib, args.memory_max_gib) == (1.5, 2, 20, 30)
    assert (cpu_quantity(1.5), cpu_quantity(2.0), cpu_quantity(0.25)) == ("1500m", "2", "250m")


@ALL
def test_gpu_taint_tolerated_and_pool_required(scenario: str) -> None:
    spec = pod_spec(scenario)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchExpressions": [{"key": "keel.dev/gpu-pool", "operator": "In", "values": ["l4"]}]}]


@ALL
def test_probes_on_health_with_a_startup_window_for_model_load(scenario: str) -> None:
    container = vllm(scenario)
    health = {"path": "/health", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"] == health
    assert (startup["initialDelaySeconds"], startup["periodSeconds"], startup["failureThreshold"]) == (
        15,
        10,
        90,
    )
    assert container["readinessProbe"]["httpGet"] == health
    assert container["livenessProbe"]["httpGet"] == health
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


@ALL
def test_every_container_is_non_root_and_hardened(scenario: str) -> None:
    spec = pod_spec(scenario)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == pod["runAsGroup"] == pod["fsGroup"] == 1000
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in all_containers(scenario):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["privileged"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 1000
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["enableServiceLinks"] is False


@ALL
def test_writable_paths_are_volumes_and_shm_is_in_memory(scenario: str) -> None:
    volumes = {v["name"]: v for v in pod_spec(scenario)["volumes"]}
    assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert volumes["cache"]["emptyDir"] == {"sizeLimit": "100Gi"}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "4Gi"}
    mounts = {m["mountPath"]: m["name"] for m in vllm(scenario)["volumeMounts"]}
    assert mounts == {"/dev/shm": "shm", "/cache": "cache", "/tmp": "tmp"}
    variables = env(vllm(scenario))
    assert variables["HOME"] == "/tmp"
    assert variables["HF_HOME"].startswith("/cache/")
    assert variables["VLLM_CACHE_ROOT"].startswith("/cache/")
    assert variables["VLLM_NO_USAGE_STATS"] == "1"


def test_shm_counts_against_the_memory_limit() -> None:
    with pytest.raises(ValidationError, match=r"shm_size_gib=24 must be below the memory limit 24 GiB"):
        scenario_args("staging", shm_size_gib=24)


@ALL
def test_vllm_server_flags(scenario: str) -> None:
    container = vllm(scenario)
    assert container["image"] == IMAGE
    assert flag(container, "--served-model-name") == "Qwen/Qwen2.5-7B-Instruct"
    assert flag(container, "--max-model-len") == "8192"
    assert flag(container, "--gpu-memory-utilization") == "0.9"
    assert flag(container, "--port") == "8000"
    assert "--no-enable-log-requests" in container["args"]
    assert "--disable-log-requests" not in container["args"]
    assert "command" not in container  # the image's entrypoint (vllm serve / api_server) takes the flags


@pytest.mark.parametrize("scenario", ["dev", "staging"])
def test_hub_download_pins_the_revision(scenario: str) -> None:
    container = vllm(scenario)
    assert flag(container, "--model") == "Qwen/Qwen2.5-7B-Instruct"
    assert flag(container, "--revision") == REVISION
    assert flag(container, "--download-dir") == "/cache/huggingface/hub"
    assert "HF_HUB_OFFLINE" not in env(container)
    assert "initContainers" not in pod_spec(scenario)


def test_weights_from_s3_are_synced_first_and_loaded_offline() -> None:
    container = vllm("prod")
    assert flag(container, "--model") == "/cache/weights"
    assert "--revision" not in container["args"]
    assert env(container)["HF_HUB_OFFLINE"] == "1"
    (sync,) = pod_spec("prod")["initContainers"]
    assert sync["image"] == AWS_CLI
    assert sync["command"][:5] == [
        "aws",
        "s3",
        "sync",
        "s3://keel-prod-artifacts/models/Qwen/Qwen2.5-7B-Instruct/a09a354/",
        "/cache/weights",
    ]
    assert {m["mountPath"] for m in sync["volumeMounts"]} == {"/cache", "/tmp"}
    assert env(sync)["HOME"] == "/tmp"


def test_extra_args_are_appended() -> None:
    args = scenario_args("staging", extra_args=("--enable-prefix-caching", "--max-num-seqs", "64"))
    assert args.extra_args[-1] == "64"


@ALL
def test_rollout_never_drops_below_the_floor_and_drains(scenario: str) -> None:
    spec = deployment(scenario).inputs["spec"]
    assert "replicas" not in spec  # KEDA's HPA owns the count
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert spec["revisionHistoryLimit"] == 3
    assert spec["progressDeadlineSeconds"] == 1800
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 120
    assert vllm(scenario)["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_zone_spread_only_when_asked() -> None:
    (constraint,) = pod_spec("prod")["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["maxSkew"] == 1
    assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"
    assert (
        constraint["labelSelector"]["matchLabels"]
        == deployment("prod").inputs["spec"]["selector"]["matchLabels"]
    )
    assert "topologySpreadConstraints" not in pod_spec("staging")


def test_service_is_cluster_ip_on_8000() -> None:
    spec = graph("prod").one(T_SERVICE).inputs["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert spec["selector"] == deployment("prod").inputs["spec"]["selector"]["matchLabels"]


# ------------------------------------------------------------------------------------------------ autoscaling


def scaled_object(scenario: str) -> Mapping[str, Any]:
    return graph(scenario).one(T_SCALED).inputs["spec"]


@pytest.mark.parametrize(("scenario", "floor", "ceiling"), [("prod", 2, 6), ("dev", 0, 2), ("staging", 1, 3)])
def test_scaled_object_bounds_and_timing(scenario: str, floor: int, ceiling: int) -> None:
    spec = scaled_object(scenario)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "qwen25-7b"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (floor, ceiling)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (15, 360)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 360
    }
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"}


@ALL
def test_queue_depth_trigger(scenario: str) -> None:
    trigger = scaled_object(scenario)["triggers"][0]
    assert trigger["type"] == "prometheus"
    metadata = trigger["metadata"]
    assert metadata["serverAddress"] == PROMETHEUS
    assert metadata["threshold"] == "5"
    assert metadata["query"] == (
        'sum(vllm:num_requests_waiting{namespace="model-qwen25-7b",model_name="Qwen/Qwen2.5-7B-Instruct"})'
    )


def test_fallback_never_exceeds_the_ceiling() -> None:
    assert scenario_args("staging", max_replicas=1, min_replicas=1).fallback == 1
    with pytest.raises(ValidationError, match=r"fallback_replicas=4 exceeds max_replicas=3"):
        scenario_args("staging", fallback_replicas=4)


def test_scale_from_zero_uses_one_scaled_object_with_the_http_trigger() -> None:
    plan = graph("dev")
    route = plan.one(T_ROUTE)
    metadata = route.inputs["metadata"]
    assert metadata["name"] == "qwen25-7b"
    assert metadata["namespace"] == "model-qwen25-7b"
    assert "annotations" not in metadata
    # Routing by Host to the Service and the interceptor's concurrency metric; no replicas: KEDA's job.
    assert route.inputs["spec"] == {
        "target": {"service": "qwen25-7b", "port": 8000},
        "rules": [{"hosts": ["qwen25-7b.model-qwen25-7b.svc.cluster.local"]}],
        "scalingMetric": {"concurrency": {"targetValue": 100}},
    }
    scaled = plan.one(T_SCALED)
    assert scaled.inputs["spec"]["minReplicaCount"] == 0
    triggers = scaled.inputs["spec"]["triggers"]
    assert [t["type"] for t in triggers] == ["prometheus", "external-push"]
    assert triggers[1] == {
        "type": "external-push",
        "name": "http-pending",
        "metadata": {
            "interceptorRoute": metadata["name"],
            "scalerAddress": "keda-add-ons-http-external-scaler.keda:9090",
        },
    }
    # The add-on's scaler answers an empty metric spec for a route it cannot find: the route comes first.
    assert route.urn in scaled.depends_on


@pytest.mark.parametrize("scenario", ["prod", "staging"])
def test_no_http_add_on_with_a_floor(scenario: str) -> None:
    assert graph(scenario).of_type(T_ROUTE) == []
    assert [t["type"] for t in scaled_object(scenario)["triggers"]] == ["prometheus"]


# ------------------------------------------------------------------------------------- disruption, network


def test_pdb_only_when_asked() -> None:
    spec = graph("prod").one(T_PDB).inputs["spec"]
    assert spec["maxUnavailable"] == 1
    assert spec["selector"]["matchLabels"] == deployment("prod").inputs["spec"]["selector"]["matchLabels"]
    assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert graph("staging").of_type(T_PDB) == []


def policies(scenario: str) -> dict[str, Mapping[str, Any]]:
    return {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in graph(scenario).of_type(T_NETPOL)}


@ALL
def test_default_deny_both_directions(scenario: str) -> None:
    assert policies(scenario)["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def allowed_namespaces(scenario: str) -> list[str]:
    (rule,) = policies(scenario)["allow-ingress"]["ingress"]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    return [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]]


@pytest.mark.parametrize(
    ("scenario", "namespaces"),
    [
        ("prod", ["gateway", "apps", "monitoring"]),
        ("dev", ["gateway", "monitoring", "keda"]),
        ("staging", ["monitoring"]),
    ],
)
def test_ingress_only_from_clients_prometheus_and_the_interceptor(
    scenario: str, namespaces: list[str]
) -> None:
    assert allowed_namespaces(scenario) == namespaces
    selector = policies(scenario)["allow-ingress"]["podSelector"]["matchLabels"]
    assert selector == deployment(scenario).inputs["spec"]["selector"]["matchLabels"]


@ALL
def test_egress_only_dns_and_https_without_instance_metadata(scenario: str) -> None:
    dns, https = policies(scenario)["allow-egress"]["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert https["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]
    assert https["ports"] == [{"port": 443, "protocol": "TCP"}]


@ALL
def test_pod_monitor_scrapes_metrics_on_the_http_port(scenario: str) -> None:
    monitor = graph(scenario).one(T_POD_MONITOR).inputs
    assert monitor["spec"] == {
        "selector": {"matchLabels": deployment(scenario).inputs["spec"]["selector"]["matchLabels"]},
        "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
    }
    if scenario == "prod":
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


# -------------------------------------------------------------------------------------------------- secrets


def test_hub_token_comes_from_an_external_secret() -> None:
    secret = graph("dev").one(T_EXTERNAL_SECRET).inputs
    spec = secret["spec"]
    assert spec["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "aws-secrets-manager"}
    assert spec["data"] == [{"secretKey": "HF_TOKEN", "remoteRef": {"key": "keel-dev/hf-token"}}]
    assert env(vllm("dev"))["HF_TOKEN"] == {
        "secretKeyRef": {"name": spec["target"]["name"], "key": "HF_TOKEN"}
    }
    for scenario in ("prod", "staging"):
        assert graph(scenario).of_type(T_EXTERNAL_SECRET) == []
        assert "HF_TOKEN" not in env(vllm(scenario))


def test_hub_token_json_property() -> None:
    args = scenario_args("dev", hub_token_secret_property="token")
    assert args.hub_token_secret_property == "token"


# ----------------------------------------------------------------------------------------------- policy rules

RESOURCE_RULES: Mapping[str, Mapping[str, Any]] = {
    "k8s-no-privileged": {},
    "k8s-non-root-and-hardened": {},
    "k8s-resources-set": {},
    "k8s-gpu-request-equals-limit": {},
    "k8s-probes": {},
    "k8s-image-pinned": {"requireDigest": True},
    "k8s-no-default-namespace-or-sa": {},
}


@ALL
@pytest.mark.parametrize("rule_name", sorted(RESOURCE_RULES))
def test_workload_passes_the_kubernetes_rules(scenario: str, rule_name: str) -> None:
    workload = deployment(scenario)
    args = resource_args(
        workload.type, workload.inputs, urn=workload.urn, name=workload.name, config=RESOURCE_RULES[rule_name]
    )
    assert list(pod_specs(args))
    assert len(list(containers(*next(pod_specs(args))))) >= 1
    assert run_resource_rule(rule_name, args) == []


def test_the_digest_rule_does_bite_on_a_tag() -> None:
    plan_args = scenario_args("staging", image="vllm/vllm-openai:v0.11.0")
    assert plan_args.image.endswith(":v0.11.0")  # a tag is accepted by the Args ...
    props = {
        "metadata": {"name": "x", "namespace": "model-x"},
        "spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": plan_args.image}]}}},
    }
    messages = run_resource_rule(
        "k8s-image-pinned", resource_args(T_DEPLOYMENT, props, config={"requireDigest": True})
    )
    assert messages
    assert "digest" in messages[0]


def test_prod_passes_the_availability_and_network_stack_rules() -> None:
    resources = stack_resources(graph("prod"))
    assert run_stack_rule("k8s-prod-availability", resources, {"minReplicas": 2, "requirePdb": True}) == []
    assert run_stack_rule("k8s-networkpolicy-per-namespace", resources) == []


def test_dev_floor_is_zero_for_the_availability_rule() -> None:
    findings = run_stack_rule("k8s-prod-availability", stack_resources(graph("dev")), {"minReplicas": 1})
    assert len(findings) == 1
    assert "can run 0 replicas" in findings[0][0]


@pytest.mark.parametrize("scenario", ["prod", "dev"])
def test_built_in_objects_validate_against_the_kubernetes_schema(scenario: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    validated = set()
    for resource in graph(scenario):
        if resource.type in BUILT_IN:
            kubernetes_validate.validate(plain_numbers(resource.inputs), "1.33.0", strict=True)
            validated.add(resource.type)
    assert validated == BUILT_IN - ({T_PDB} if scenario != "prod" else set())


# ----------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_replicas": 4, "max_replicas": 2}, r"min_replicas=4 exceeds max_replicas=2"),
        ({"tensor_parallel_size": 0}, r"tensor_parallel_size\n.*greater than or equal to 1"),
        ({"model_name": "Qwen_7B"}, r"model_name\n.*String should match pattern"),
        ({"model_name": "7b-qwen"}, r"model_name\n.*String should match pattern"),
        ({"revision": "main"}, r"revision\n.*String should match pattern"),
        ({"image": "vllm/vllm-openai"}, r"has no tag"),
        ({"image": "vllm/vllm-openai:latest"}, r"mutable :latest tag"),
        ({"extra_args": ("--port=9000",)}, r"extra_args repeat flags .*'--port'"),
        ({"weights_uri": "s3://bucket/models/"}, r"weights_sync_image .* is required"),
        ({"hub_token_secret": "hf"}, r"secret_store_name .* is required"),
        ({"weights_uri": "s3://bucket/models"}, r"weights_uri\n.*String should match pattern"),
        ({"client_namespaces": ("Gateway",)}, r"client_namespaces \['Gateway'\]"),
        ({"labels": {"bad key!": "x"}}, r"label key 'bad key!'"),
        ({"drain_delay_seconds": 200}, r"drain_delay_seconds=200 must be shorter"),
        ({"cpu_request": 4, "cpu_limit": 2}, r"cpu_limit=2.0 is below the CPU request 4.0"),
        ({"gpu_memory_utilization": 1.5}, r"gpu_memory_utilization\n.*less than or equal to 0.98"),
        ({"unknown": 1}, r"unknown\n.*Extra inputs are not permitted"),
    ],
)
def test_fails_on_bad_args(overrides: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        scenario_args("staging", **overrides)


def test_fails_when_weights_and_hub_token_are_both_given() -> None:
    with pytest.raises(ValidationError, match=r"hub_token_secret is unused when weights_uri is set"):
        scenario_args("prod", hub_token_secret="hf", secret_store_name="aws-secrets-manager")


def test_fails_when_weights_have_no_role() -> None:
    with pytest.raises(ValidationError, match=r"service_account_role_arn .* is required"):
        scenario_args("prod", service_account_role_arn=None)


def test_args_are_frozen() -> None:
    args = scenario_args("staging")
    with pytest.raises(ValidationError, match="frozen"):
        args.min_replicas = 5  # type: ignore[misc]
