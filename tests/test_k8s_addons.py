"""ClusterAddons planned alone under the offline engine, with explicit AWS and Kubernetes providers.

What matters: every chart pinned, namespaces with Pod Security labels, controllers on system nodes and only the
GPU agents on GPU nodes, resource requests everywhere, least-privilege IRSA roles, the ClusterSecretStore spec.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import kubernetes_validate
import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from pydantic import ValidationError

from components.base import AwsContext
from components.k8s.addons import (
    CHARTS,
    CLUSTER_AUTOSCALER_IMAGE_TAGS,
    STORAGE_CLASS,
    ClusterAddons,
    ClusterAddonsArgs,
    ServiceEndpoint,
)
from keel.engine import Graph, PlannedResource, run_program
from keel.manifests import manifests
from tests.chart_layout import COMPONENTS

ACCOUNT = "123456789012"
REGION = "eu-west-1"
CONTEXT = AwsContext(account_id=ACCOUNT, region=REGION)
CLUSTER = "keel-test"
ISSUER = f"oidc.eks.{REGION}.amazonaws.com/id/0123456789ABCDEF"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ISSUER}"
SECRET_ARNS = (
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keel-test/hf-token-AbCdEf",
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keel-test/api-key-GhIjKl",
)
SECRETS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/secrets-key"
TAGS = {"environment": "test", "owner": "ml-platform", "cost-centre": "CC-1", "managed-by": "keel"}

AWS_PROVIDER = "urn:pulumi:addons::keel::pulumi:pulumi:Stack$pulumi:providers:aws::aws"
K8S_PROVIDER = "urn:pulumi:addons::keel::pulumi:pulumi:Stack$pulumi:providers:kubernetes::k8s"

T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_NAMESPACE = "kubernetes:core/v1:Namespace"
T_STORE = "kubernetes:external-secrets.io/v1:ClusterSecretStore"
T_SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
T_STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
T_ROLE = "aws:iam/role:Role"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"

SYSTEM = {"keel.dev/node-role": "system"}
GPU = {"nvidia.com/gpu.present": "true"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_CHARTS = ("nvidia-device-plugin", "dcgm-exporter")
SYSTEM_CHARTS = tuple(sorted(set(CHARTS) - set(GPU_CHARTS)))


def args(**overrides: Any) -> ClusterAddonsArgs:
    fields: dict[str, Any] = {
        "context": CONTEXT,
        "cluster_name": CLUSTER,
        "oidc_provider_arn": OIDC_ARN,
        "oidc_issuer": ISSUER,
        "secret_arns": list(SECRET_ARNS),
        "secrets_key_arn": SECRETS_KEY,
        "tags": TAGS,
    }
    fields.update(overrides)
    return ClusterAddonsArgs(**fields)


def plan_addons(addons_args: ClusterAddonsArgs) -> tuple[Graph, ClusterAddons]:
    """Plan the component with both providers passed the way a stack passes them."""
    built: list[ClusterAddons] = []

    def program() -> None:
        aws_provider = aws.Provider("aws", region=REGION, allowed_account_ids=[ACCOUNT])
        k8s_provider = k8s.Provider("k8s", kubeconfig="{}")
        built.append(
            ClusterAddons(
                "addons", addons_args, opts=pulumi.ResourceOptions(providers=[aws_provider, k8s_provider])
            )
        )

    graph = run_program(program, stack="addons")
    return graph, built[0]


@cache
def default_plan() -> tuple[Graph, ClusterAddons]:
    return plan_addons(args())


@cache
def custom_plan() -> tuple[Graph, ClusterAddons]:
    return plan_addons(
        args(
            kubernetes_version="1.33",
            chart_versions={"keda": "2.21.1"},
            scale_down_unneeded_time="5m",
            scale_down_delay_after_add="3m",
            expander_priorities={90: [".*-spot-.*"], 1: [".*"]},
            prometheus_retention="30d",
            prometheus_storage_class="gp3",
            prometheus_volume_gib=100,
            secret_store_name="env-secrets",
            secret_store_namespaces=["models"],
        )
    )


@cache
def persistent_plan() -> tuple[Graph, ClusterAddons]:
    return plan_addons(args(prometheus_persistent=True, prometheus_volume_gib=200))


def graph() -> Graph:
    return default_plan()[0]


def release(plan: Graph, chart: str) -> PlannedResource:
    return plan.one(T_RELEASE, f"addons-{chart}")


def values(plan: Graph, chart: str) -> dict[str, Any]:
    return release(plan, chart).inputs["values"]


def at(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (the empty path is the document itself)."""
    found: Any = document
    for key in filter(None, path.split(".")):
        found = found[key]
    return found


def find_key(document: Any, key: str, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of ``key`` anywhere in a nested document."""
    if isinstance(document, Mapping):
        for name, item in document.items():
            item_path = f"{path}.{name}" if path else name
            if name == key:
                yield item_path, item
            yield from find_key(item, key, item_path)
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from find_key(item, key, f"{path}[{index}]")


def statements(policy: str) -> list[dict[str, Any]]:
    found = json.loads(policy)["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_named(plan: Graph, name: str) -> tuple[PlannedResource, list[dict[str, Any]]]:
    """An IRSA role and the statements of its inline policy."""
    role = plan.one(T_ROLE, name)
    policy = plan.one(T_ROLE_POLICY, f"{name}-inline")
    return role, statements(policy.inputs["policy"])


# ------------------------------------------------------------------------------------------------ releases


def test_every_add_on_is_one_helm_release_of_a_pinned_chart_from_its_https_repository() -> None:
    releases = graph().of_type(T_RELEASE)
    assert sorted(r.inputs["chart"] for r in releases) == sorted(CHARTS)
    for resource in releases:
        chart = CHARTS[resource.inputs["chart"]]
        assert resource.inputs["version"] == chart.version
        assert resource.inputs["repositoryOpts"] == {"repo": chart.repo}
        assert chart.repo.startswith("https://")
        assert resource.inputs["name"] == resource.inputs["chart"], "stable release names"
        assert resource.inputs["namespace"] == chart.namespace
        assert resource.inputs["atomic"] is True


def test_releases_attribute_exposes_every_release_for_depends_on() -> None:
    _, addons = default_plan()
    assert sorted(addons.releases) == sorted(CHARTS)
    assert all(isinstance(r, k8s.helm.v3.Release) for r in addons.releases.values())


def test_chart_version_override_replaces_only_that_pin() -> None:
    plan = custom_plan()[0]
    assert release(plan, "keda").inputs["version"] == "2.21.1"
    assert release(plan, "keda-add-ons-http").inputs["version"] == CHARTS["keda-add-ons-http"].version


def test_releases_needing_crds_of_another_wait_for_it() -> None:
    plan = graph()
    depends = {chart: set(release(plan, chart).depends_on) for chart in CHARTS}
    assert release(plan, "kube-prometheus-stack").urn in depends["dcgm-exporter"], "ServiceMonitor CRD"
    assert release(plan, "keda").urn in depends["keda-add-ons-http"], "ScaledObject CRD"
    store = plan.one(T_STORE)
    assert release(plan, "external-secrets").urn in store.depends_on, "ClusterSecretStore CRD"


# ---------------------------------------------------------------------------------------------- namespaces


def test_each_release_goes_in_a_namespace_created_here_with_pod_security_labels() -> None:
    plan = graph()
    namespaces = {n.inputs["metadata"]["name"]: n for n in plan.of_type(T_NAMESPACE)}
    for resource in plan.of_type(T_RELEASE):
        namespace = namespaces[resource.inputs["namespace"]]
        assert namespace.urn in resource.depends_on
    for name, namespace in namespaces.items():
        labels = namespace.inputs["metadata"]["labels"]
        gpu_agent = name in {CHARTS[c].namespace for c in GPU_CHARTS}
        expected = "privileged" if gpu_agent else "baseline"
        assert labels["pod-security.kubernetes.io/enforce"] == expected, name
        assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
        if not gpu_agent:
            assert labels["pod-security.kubernetes.io/warn"] == "restricted"
            assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_plain_kubernetes_objects_are_valid_for_the_cluster_version() -> None:
    checked: Counter[str] = Counter()
    for manifest in manifests(graph()):
        if manifest.helm_header is not None:
            continue  # a Helm values file
        api_version = manifest.document["apiVersion"]
        # Built-in APIs only: the core group and *.k8s.io; custom resources have no schema there.
        if api_version == "v1" or ".k8s.io/" in api_version:
            kubernetes_validate.validate(dict(manifest.document), "1.33.0", strict=True)
            checked[manifest.document["kind"]] += 1
    assert checked == {"Namespace": 6, "ServiceAccount": 1, "StorageClass": 1}


# -------------------------------------------------------------------------------------------- scheduling


@pytest.mark.parametrize("chart", SYSTEM_CHARTS)
def test_controllers_run_only_on_system_nodes_and_never_tolerate_the_gpu_taint(chart: str) -> None:
    document = values(graph(), chart)
    selectors = dict(find_key(document, "nodeSelector"))
    expected = {f"{p}.nodeSelector" if p else "nodeSelector" for p in COMPONENTS.get(chart, ("",))}
    assert expected <= set(selectors), f"components without a node selector: {expected - set(selectors)}"
    assert all(selector == SYSTEM for selector in selectors.values()), selectors
    for _, tolerations in find_key(document, "tolerations"):
        assert not any(t.get("key") == "nvidia.com/gpu" for t in tolerations)


@pytest.mark.parametrize("chart", GPU_CHARTS)
def test_gpu_agents_run_only_on_gpu_nodes_and_tolerate_the_gpu_taint(chart: str) -> None:
    document = values(graph(), chart)
    assert document["nodeSelector"] == GPU
    terms = document["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}
    ]
    assert GPU_TOLERATION in document["tolerations"]


@pytest.mark.parametrize("chart", sorted(CHARTS))
def test_every_component_requests_cpu_and_memory_and_has_limits(chart: str) -> None:
    document = values(graph(), chart)
    if chart == "keda":
        blocks = [document["resources"][part] for part in ("operator", "metricServer", "webhooks")]
    else:
        blocks = [at(document, path)["resources"] for path in COMPONENTS[chart]]
    for block in blocks:
        assert set(block["requests"]) == {"cpu", "memory"}
        assert set(block["limits"]) == {"cpu", "memory"}


# ---------------------------------------------------------------------------------------- cluster autoscaler


def test_autoscaler_irsa_trust_is_only_its_service_account_with_the_sts_audience() -> None:
    plan = graph()
    role, _ = role_named(plan, "addons-cluster-autoscaler-irsa")
    (trust,) = statements(role.inputs["assumeRolePolicy"])
    assert trust["Principal"] == {"Federated": OIDC_ARN}
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Condition"] == {
        "StringEquals": {
            f"{ISSUER}:sub": "system:serviceaccount:cluster-autoscaler:cluster-autoscaler",
            f"{ISSUER}:aud": "sts.amazonaws.com",
        }
    }
    account = values(plan, "cluster-autoscaler")["rbac"]["serviceAccount"]
    assert account["name"] == "cluster-autoscaler"
    assert account["annotations"] == {"eks.amazonaws.com/role-arn": role.outputs["arn"]}
    assert role.provider == AWS_PROVIDER


def test_autoscaler_may_scale_only_groups_tagged_as_owned_by_this_cluster() -> None:
    _, policy = role_named(graph(), "addons-cluster-autoscaler-irsa")
    for statement in (s for s in policy if "Condition" not in s):
        assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in as_list(statement["Action"]))
    (scale,) = [s for s in policy if "Condition" in s]
    assert set(as_list(scale["Action"])) == {
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    }
    assert (
        scale["Condition"]["StringEquals"][f"aws:ResourceTag/k8s.io/cluster-autoscaler/{CLUSTER}"] == "owned"
    )
    assert scale["Resource"] == (
        f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/*"
    )


def test_autoscaler_reads_node_groups_of_this_cluster_for_scale_from_zero() -> None:
    _, policy = role_named(graph(), "addons-cluster-autoscaler-irsa")
    (nodegroups,) = [s for s in policy if "eks:DescribeNodegroup" in as_list(s["Action"])]
    assert nodegroups["Resource"] == f"arn:aws:eks:{REGION}:{ACCOUNT}:nodegroup/{CLUSTER}/*"
    reads = {a for s in policy if s["Resource"] == "*" for a in as_list(s["Action"])}
    assert {"autoscaling:DescribeAutoScalingGroups", "ec2:DescribeLaunchTemplateVersions"} <= reads
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in reads)


def test_autoscaler_discovers_this_cluster_and_is_tuned_for_gpu_scale_down() -> None:
    document = values(graph(), "cluster-autoscaler")
    assert document["autoDiscovery"] == {"clusterName": CLUSTER}
    assert document["awsRegion"] == REGION
    extra = document["extraArgs"]
    assert extra["balance-similar-node-groups"] is True
    assert extra["skip-nodes-with-system-pods"] is False
    assert extra["skip-nodes-with-local-storage"] is False, "vLLM's /dev/shm emptyDir would pin GPU nodes"
    assert extra["scale-down-unneeded-time"] == "10m"
    assert extra["scale-down-delay-after-add"] == "10m"
    assert extra["expander"].split(",")[0] == "priority"
    assert "image" not in document, "the chart's own image unless the Kubernetes version is given"


def test_autoscaler_priority_expander_prefers_spot_over_on_demand_groups() -> None:
    priorities = values(graph(), "cluster-autoscaler")["expanderPriorities"]
    by_pattern = {pattern: int(priority) for priority, patterns in priorities.items() for pattern in patterns}
    assert by_pattern[".*-spot-.*"] > by_pattern[".*-od-.*"]


def test_autoscaler_settings_and_image_follow_args() -> None:
    document = values(custom_plan()[0], "cluster-autoscaler")
    assert document["extraArgs"]["scale-down-unneeded-time"] == "5m"
    assert document["extraArgs"]["scale-down-delay-after-add"] == "3m"
    assert document["expanderPriorities"] == {"90": [".*-spot-.*"], "1": [".*"]}
    assert document["image"] == {"tag": CLUSTER_AUTOSCALER_IMAGE_TAGS["1.33"]}


# ----------------------------------------------------------------------------------- KEDA and Prometheus


def test_keda_http_interceptor_holds_requests_through_a_cold_start() -> None:
    interceptor = values(graph(), "keda-add-ons-http")["interceptor"]
    assert interceptor["readinessTimeout"] == "20m"
    assert interceptor["responseHeaderTimeout"] == "10m"
    _, addons = default_plan()
    assert addons.keda_namespace == CHARTS["keda"].namespace == CHARTS["keda-add-ons-http"].namespace
    assert addons.http_interceptor_service == ServiceEndpoint(
        namespace="keda", name="keda-add-ons-http-interceptor-proxy", port=8080
    )
    assert (
        addons.http_interceptor_service.url
        == "http://keda-add-ons-http-interceptor-proxy.keda.svc.cluster.local:8080"
    )


def test_prometheus_picks_up_monitors_from_every_namespace_without_labels() -> None:
    spec = values(graph(), "kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "rule", "probe"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorNamespaceSelector"] == {}
    assert spec["podMonitorNamespaceSelector"] == {}
    assert spec["retention"] == "15d"
    assert spec["storageSpec"] == {}
    _, addons = default_plan()
    assert addons.prometheus_selector_labels == {}
    assert addons.prometheus_namespace == "monitoring"
    assert (
        addons.prometheus_url == "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090"
    )
    assert values(graph(), "kube-prometheus-stack")["fullnameOverride"] == "kube-prometheus-stack"


def test_prometheus_stack_leaves_out_grafana_alertmanager_and_unscrapeable_eks_targets() -> None:
    document = values(graph(), "kube-prometheus-stack")
    assert document["grafana"]["enabled"] is False
    assert document["alertmanager"]["enabled"] is False
    for target in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy", "nodeExporter"):
        assert document[target] == {"enabled": False}


def test_prometheus_retention_and_persistent_volume_follow_args() -> None:
    spec = values(custom_plan()[0], "kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d"
    assert spec["retentionSize"] == "90GiB"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3"
    assert claim["resources"]["requests"]["storage"] == "100Gi"


def test_storage_class_is_encrypted_gp3_from_the_ebs_csi_driver_retained_and_not_the_default() -> None:
    plan, addons = default_plan()
    storage_class = plan.one(T_STORAGE_CLASS)
    assert storage_class.inputs["metadata"] == {"name": "keel-gp3-encrypted"}, "no default-class annotation"
    assert storage_class.inputs["provisioner"] == "ebs.csi.aws.com"
    assert storage_class.inputs["parameters"] == {"type": "gp3", "encrypted": "true"}
    assert storage_class.inputs["reclaimPolicy"] == "Retain", "metrics outlive a release"
    assert storage_class.inputs["volumeBindingMode"] == "WaitForFirstConsumer", "volume in the pod's zone"
    assert storage_class.inputs["allowVolumeExpansion"] is True
    assert storage_class.provider == K8S_PROVIDER
    assert isinstance(addons.storage_class, k8s.storage.v1.StorageClass)
    assert STORAGE_CLASS == "keel-gp3-encrypted"


def test_storage_class_encrypts_with_the_volume_key_when_given() -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/volumes"
    plan, _ = plan_addons(args(volume_key_arn=key))
    assert plan.one(T_STORAGE_CLASS).inputs["parameters"] == {
        "type": "gp3",
        "encrypted": "true",
        "kmsKeyId": key,
    }


def test_prometheus_without_persistence_keeps_its_data_in_an_empty_dir() -> None:
    plan = graph()
    spec = values(plan, "kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    assert spec["storageSpec"] == {}
    assert spec["retentionSize"] == ""
    storage_class = plan.one(T_STORAGE_CLASS)
    assert storage_class.urn not in release(plan, "kube-prometheus-stack").depends_on


def test_persistent_prometheus_claims_a_volume_of_the_encrypted_class() -> None:
    plan, _ = persistent_plan()
    spec = values(plan, "kube-prometheus-stack")["prometheus"]["prometheusSpec"]
    assert spec["storageSpec"] == {
        "volumeClaimTemplate": {
            "spec": {
                "storageClassName": STORAGE_CLASS,
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "200Gi"}},
            }
        }
    }
    assert spec["retentionSize"] == "180GiB"
    storage_class = plan.one(T_STORAGE_CLASS)
    assert storage_class.urn in release(plan, "kube-prometheus-stack").depends_on, "class before the claim"


def test_persistent_prometheus_may_name_keels_class_explicitly() -> None:
    addons_args = args(prometheus_persistent=True, prometheus_storage_class=STORAGE_CLASS)
    assert addons_args.prometheus_volume_class == STORAGE_CLASS


def test_own_storage_class_is_used_without_depending_on_keels() -> None:
    plan = custom_plan()[0]
    claim = values(plan, "kube-prometheus-stack")["prometheus"]["prometheusSpec"]["storageSpec"]
    assert claim["volumeClaimTemplate"]["spec"]["storageClassName"] == "gp3"
    storage_class = plan.one(T_STORAGE_CLASS)
    assert storage_class.urn not in release(plan, "kube-prometheus-stack").depends_on


def test_dcgm_exporter_is_scraped_through_a_service_monitor() -> None:
    assert values(graph(), "dcgm-exporter")["serviceMonitor"]["enabled"] is True


# ---------------------------------------------------------------------------------------- secret delivery


def test_external_secrets_role_reads_only_the_given_secrets_and_decrypts_only_via_secrets_manager() -> None:
    plan = graph()
    role, policy = role_named(plan, "addons-external-secrets-irsa")
    secret_statements = [
        s for s in policy if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
    ]
    (read,) = secret_statements
    assert sorted(as_list(read["Resource"])) == sorted(SECRET_ARNS)
    assert all(a.split(":")[1].startswith(("Get", "Describe", "List")) for a in as_list(read["Action"]))
    (decrypt,) = [s for s in policy if s is not read]
    assert decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Resource"] == SECRETS_KEY
    assert decrypt["Condition"] == {
        "StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
    }
    assert not any("*" in str(s["Resource"]) for s in policy)
    (trust,) = statements(role.inputs["assumeRolePolicy"])
    assert trust["Condition"]["StringEquals"][f"{ISSUER}:sub"] == (
        "system:serviceaccount:external-secrets:aws-secrets-manager-reader"
    )


def test_only_the_reader_service_account_carries_the_secrets_role() -> None:
    plan = graph()
    role = plan.one(T_ROLE, "addons-external-secrets-irsa")
    reader = plan.one(T_SERVICE_ACCOUNT)
    assert reader.inputs["metadata"] == {
        "name": "aws-secrets-manager-reader",
        "namespace": "external-secrets",
        "annotations": {"eks.amazonaws.com/role-arn": role.outputs["arn"]},
    }
    assert reader.inputs["automountServiceAccountToken"] is False
    controller = values(plan, "external-secrets")["serviceAccount"]
    assert "annotations" not in controller, "the controller itself holds no AWS role"


def test_cluster_secret_store_reads_secrets_manager_with_the_reader_account_jwt() -> None:
    plan, addons = default_plan()
    store = plan.one(T_STORE)
    assert store.inputs["apiVersion"] == "external-secrets.io/v1"
    assert store.inputs["kind"] == "ClusterSecretStore"
    assert store.inputs["metadata"]["name"] == "aws-secrets-manager" == addons.secret_store_name
    assert store.inputs["spec"] == {
        "provider": {
            "aws": {
                "service": "SecretsManager",
                "region": REGION,
                "auth": {
                    "jwt": {
                        "serviceAccountRef": {
                            "name": "aws-secrets-manager-reader",
                            "namespace": "external-secrets",
                        }
                    }
                },
            }
        }
    }


def test_cluster_secret_store_name_and_allowed_namespaces_follow_args() -> None:
    plan, addons = custom_plan()
    store = plan.one(T_STORE)
    assert store.inputs["metadata"]["name"] == "env-secrets" == addons.secret_store_name
    assert store.inputs["spec"]["conditions"] == [{"namespaces": ["models"]}]


# -------------------------------------------------------------------------------------------- providers


def test_iam_uses_the_aws_provider_and_everything_in_the_cluster_the_kubernetes_one() -> None:
    plan = graph()
    component = plan.one("keel:k8s:ClusterAddons")
    children = plan.descendants(component.urn)
    assert children
    for resource in children:
        expected = AWS_PROVIDER if resource.type.startswith("aws:") else K8S_PROVIDER
        assert resource.provider == expected, resource.name
    assert plan.counts_by_type() == {
        "pulumi:providers:aws": 1,
        "pulumi:providers:kubernetes": 1,
        "keel:k8s:ClusterAddons": 1,
        T_NAMESPACE: 6,
        T_RELEASE: 7,
        T_ROLE: 2,
        T_ROLE_POLICY: 2,
        T_SERVICE_ACCOUNT: 1,
        T_STORE: 1,
        T_STORAGE_CLASS: 1,
    }
    assert all(r.tags.items() >= TAGS.items() for r in plan.of_type(T_ROLE))


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chart_versions": {"keda": "^2.20"}}, r"chart_versions\['keda'\] = '\^2.20' is not an exact"),
        ({"chart_versions": {"karpenter": "1.0.0"}}, r"chart_versions\.karpenter"),
        ({"scale_down_unneeded_time": "ten minutes"}, r"scale_down_unneeded_time"),
        ({"prometheus_retention": "15 days"}, r"prometheus_retention"),
        ({"expander_priorities": {10: ["(unclosed"]}}, r"pattern '\(unclosed' is not a regex"),
        ({"expander_priorities": {-1: [".*"]}}, r"a priority >= 0"),
        ({"secret_store_name": "AWS_Store"}, r"secret_store_name"),
        ({"secret_store_namespaces": ["Models"]}, r"\['Models'\] are not namespace names"),
        ({"kubernetes_version": "1.29"}, r"kubernetes_version"),
        (
            {"prometheus_persistent": True, "prometheus_storage_class": "gp2"},
            r"prometheus_persistent=True uses the 'keel-gp3-encrypted' StorageClass but "
            r"prometheus_storage_class='gp2' names another",
        ),
    ],
)
def test_fails_addons_args(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        args(**overrides)


def test_no_secrets_means_no_secret_delivery() -> None:
    planned, addons = plan_addons(args(secret_arns=[]))
    releases = {r.inputs["name"] for r in planned.of_type("kubernetes:helm.sh/v3:Release")}
    assert "external-secrets" not in releases
    assert "keda" in releases
    assert planned.of_type("kubernetes:external-secrets.io/v1:ClusterSecretStore") == []
    namespaces = {r.inputs["metadata"]["name"] for r in planned.of_type("kubernetes:core/v1:Namespace")}
    assert "external-secrets" not in namespaces
    assert (addons.secret_store_name, addons.secret_store, addons.external_secrets_role_arn) == (
        None,
        None,
        None,
    )
