"""The cluster add-ons GPU inference needs, as pinned Helm releases: :class:`ClusterAddons`.

NVIDIA device plugin and DCGM exporter (GPU nodes only), cluster autoscaler (IRSA), KEDA with its HTTP add-on
(scale from zero), kube-prometheus-stack (Prometheus for KEDA and dashboards) and External Secrets Operator
(Secrets Manager -> Kubernetes secrets, IRSA). Every add-on gets its own namespace with Pod Security labels,
resource requests and limits, and runs on the system node group; only the two GPU agents run on GPU nodes.
An encrypted EBS gp3 StorageClass (:data:`STORAGE_CLASS`) holds Prometheus' data when it is persistent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from pulumi_kubernetes.helm.v3 import Release, ReleaseArgs, RepositoryOptsArgs
from pydantic import Field, field_validator, model_validator

from components.aws.cluster import irsa_trust_policy
from components.aws.iam import role_with_policies
from components.aws.node_group import GPU_PRESENT_LABEL, GPU_TAINT_KEY
from components.aws.policy_documents import PolicyStatement, document, kms_decrypt_via_service
from components.base import AwsContext, ComponentArgs, StrInput, child_options, named_tags

ChartName = Literal[
    "nvidia-device-plugin",
    "cluster-autoscaler",
    "keda",
    "keda-add-ons-http",
    "kube-prometheus-stack",
    "dcgm-exporter",
    "external-secrets",
]
PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


@dataclass(frozen=True)
class Chart:
    """Where a chart comes from, the version Keel pins and the namespace its release goes in."""

    repo: str
    version: str
    namespace: str


#: Pinned charts. Versions were read from each project's own repository (Chart.yaml at a release tag, and the
#: published Helm repository index where it is mirrored), snapshots of August 2026:
#: - nvidia-device-plugin 0.20.0: NVIDIA/k8s-device-plugin tag v0.20.0, gh-pages index.yaml (2026-08-20).
#: - cluster-autoscaler 9.59.0 (app 1.35.0): kubernetes/autoscaler tag cluster-autoscaler-chart-9.59.0,
#:   gh-pages index.yaml (2026-07-21).
#: - keda 2.20.2 and keda-add-ons-http 0.15.0: kedacore/charts keda/Chart.yaml ("prepare v2.20.2 release",
#:   2026-07-31) and http-add-on/Chart.yaml ("release v0.15.0", 2026-06-15). KEDA chart 2.21.1 was announced
#:   in November (kedacore/charts discussion #937); move to it through ``chart_versions`` once tested.
#: - kube-prometheus-stack 88.5.3: prometheus-community/helm-charts tag kube-prometheus-stack-88.5.3 (2026-08-21).
#: - dcgm-exporter 4.8.2 (DCGM 4.5.3): NVIDIA/dcgm-exporter tag 4.5.3-4.8.2, gh-pages helm-charts/index.yaml.
#: - external-secrets 2.9.0: external-secrets/external-secrets tag helm-chart-2.9.0, gh-pages index.yaml
#:   (2026-08-08); its CRDs serve only external-secrets.io/v1 (v1beta1 is no longer served).
CHARTS: Mapping[ChartName, Chart] = {
    "nvidia-device-plugin": Chart(
        repo="https://nvidia.github.io/k8s-device-plugin", version="0.20.0", namespace="nvidia-device-plugin"
    ),
    "cluster-autoscaler": Chart(
        repo="https://kubernetes.github.io/autoscaler", version="9.59.0", namespace="cluster-autoscaler"
    ),
    "keda": Chart(repo="https://kedacore.github.io/charts", version="2.20.2", namespace="keda"),
    # The HTTP add-on's documentation installs it into KEDA's namespace.
    "keda-add-ons-http": Chart(repo="https://kedacore.github.io/charts", version="0.15.0", namespace="keda"),
    "kube-prometheus-stack": Chart(
        repo="https://prometheus-community.github.io/helm-charts", version="88.5.3", namespace="monitoring"
    ),
    "dcgm-exporter": Chart(
        repo="https://nvidia.github.io/dcgm-exporter/helm-charts", version="4.8.2", namespace="dcgm-exporter"
    ),
    "external-secrets": Chart(
        repo="https://charts.external-secrets.io", version="2.9.0", namespace="external-secrets"
    ),
}

#: Pod Security Standard enforced per namespace. The GPU agents need hostPath volumes (device-plugin socket,
#: kubelet pod-resources) and DCGM profiling needs SYS_ADMIN, so their namespaces are privileged; every
#: other add-on runs under ``baseline`` with ``restricted`` violations reported (audit log and kubectl warnings).
POD_SECURITY: Mapping[str, PodSecurityLevel] = {
    "nvidia-device-plugin": "privileged",
    "dcgm-exporter": "privileged",
    "cluster-autoscaler": "baseline",
    "keda": "baseline",
    "monitoring": "baseline",
    "external-secrets": "baseline",
}

#: The label of the system node group (components/aws/cluster.py), where every controller runs.
SYSTEM_NODE_SELECTOR: Mapping[str, str] = {"keel.dev/node-role": "system"}
#: GPU nodes (components/aws/node_group.py): only the GPU agents select them.
GPU_NODE_SELECTOR: Mapping[str, str] = {GPU_PRESENT_LABEL: "true"}
GPU_TOLERATION: Mapping[str, str] = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}

#: Cluster autoscaler image per Kubernetes minor: the autoscaler is released per minor and should match the
#: control plane. Latest patch of each line from kubernetes/autoscaler release tags (July 2026).
CLUSTER_AUTOSCALER_IMAGE_TAGS: Mapping[str, str] = {
    "1.32": "v1.32.7",
    "1.33": "v1.33.6",
    "1.34": "v1.34.5",
    "1.35": "v1.35.2",
}

CLUSTER_AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
#: ESO reads Secrets Manager as this service account (JWT auth); the controller's own account has no AWS role,
#: so only stores that name this account get credentials.
SECRETS_READER_SERVICE_ACCOUNT = "aws-secrets-manager-reader"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"

#: The StorageClass this component creates: encrypted EBS gp3 volumes from the EBS CSI driver (the
#: ``aws-ebs-csi-driver`` EKS add-on of components/aws/cluster.py). Not the cluster default: only claims that
#: name it get it.
STORAGE_CLASS = "keel-gp3-encrypted"
EBS_CSI_PROVISIONER = "ebs.csi.aws.com"
#: CreateVolume parameters of the EBS CSI driver (kubernetes-sigs/aws-ebs-csi-driver docs/parameters.md), plus
#: ``kmsKeyId`` when ``volume_key_arn`` is given (the cluster's EBS CSI role then has the rights to use it);
#: without it EBS uses the region's default EBS key (``aws/ebs`` unless the account changed it).
EBS_GP3_ENCRYPTED_PARAMETERS: Mapping[str, str] = {"type": "gp3", "encrypted": "true"}

_GO_DURATION = r"^([0-9]+(ms|s|m|h))+$"
_PROMETHEUS_DURATION = r"^[0-9]+(ms|s|m|h|d|w|y)$"
_EXACT_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$")
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


@dataclass(frozen=True)
class ServiceEndpoint:
    """A Service inside the cluster: where the KEDA HTTP interceptor proxy receives model traffic."""

    namespace: str
    name: str
    port: int

    @property
    def host(self) -> str:
        """The Service's cluster DNS name."""
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def url(self) -> str:
        """``http://<host>:<port>``."""
        return f"http://{self.host}:{self.port}"


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}}


def _on_system_nodes(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict[str, Any]:
    """Scheduling and sizing of one add-on component on the system node group (no GPU toleration)."""
    return {
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        "tolerations": [],
        "resources": _resources(cpu, memory, cpu_limit, memory_limit),
    }


def _on_gpu_nodes_only() -> dict[str, Any]:
    """Scheduling of a GPU node agent: GPU nodes only, tolerating their taint."""
    return {
        "nodeSelector": dict(GPU_NODE_SELECTOR),
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": GPU_PRESENT_LABEL, "operator": "In", "values": ["true"]}
                            ]
                        }
                    ]
                }
            }
        },
        "tolerations": [dict(GPU_TOLERATION)],
    }


class ClusterAddonsArgs(ComponentArgs):
    """Inputs of :class:`ClusterAddons`."""

    context: AwsContext
    """Account, region and partition of the cluster (IAM ARNs, the autoscaler's and secret store's region).
    Required."""
    cluster_name: StrInput
    """The EKS cluster's name: autoscaler auto-discovery and the ASG tag its IAM policy is scoped to. Required."""
    oidc_provider_arn: StrInput
    """ARN of the cluster's IAM OIDC provider (IRSA). Required."""
    oidc_issuer: StrInput
    """The cluster's OIDC issuer without ``https://`` (IRSA trust conditions). Required."""
    secret_arns: list[StrInput] = []
    """ARNs of the Secrets Manager secrets of this environment; External Secrets can read these and no others.
    Default: none, and then no secret delivery is installed (no External Secrets, role or store)."""
    secrets_key_arn: StrInput
    """ARN of the KMS key encrypting those secrets (``kms:Decrypt`` only via Secrets Manager). Required."""
    volume_key_arn: StrInput | None = None
    """ARN of the KMS key the StorageClass encrypts volumes with (``kmsKeyId``); the cluster's EBS CSI role must
    be allowed to use it (``ClusterArgs.volume_key_arn``). Default: ``None`` (the region's default EBS key)."""
    tags: Mapping[str, str]
    """The environment's merged tags, put on the IAM roles. Required."""
    kubernetes_version: Literal["1.32", "1.33", "1.34", "1.35"] | None = None
    """The cluster's Kubernetes minor; picks the matching cluster autoscaler image
    (:data:`CLUSTER_AUTOSCALER_IMAGE_TAGS`). Default: ``None``, the chart's image (v1.35.0 for chart 9.59.0)."""
    chart_versions: dict[ChartName, str] = {}
    """Exact chart versions replacing the pins in :data:`CHARTS`, e.g. ``{"keda": "2.21.1"}``. Default: none."""
    scale_down_unneeded_time: str = Field(default="10m", pattern=_GO_DURATION)
    """How long a node must be unneeded before the autoscaler removes it; the idle GPU time paid after the last
    model replica leaves. Default: ``"10m"`` (the autoscaler's default)."""
    scale_down_delay_after_add: str = Field(default="10m", pattern=_GO_DURATION)
    """How long after a scale-up the autoscaler waits before considering scale-down. Default: ``"10m"``."""
    expander_priorities: dict[int, list[str]] = {50: [".*-spot-.*"], 10: [".*-od-.*"]}
    """Priority expander configuration: priority -> regexes over Auto Scaling group names (EKS names them
    ``eks-<node group name>-<uuid>``); the highest matching priority wins, ``least-waste`` breaks ties.
    Default: spot node groups (``-spot-``) before on-demand ones (``-od-``)."""
    http_cold_start_timeout: str = Field(default="20m", pattern=_GO_DURATION)
    """How long the KEDA HTTP interceptor holds a request while a model scales from zero (GPU node start, image
    pull and model load). Default: ``"20m"``."""
    http_response_header_timeout: str = Field(default="10m", pattern=_GO_DURATION)
    """How long the interceptor waits for a model's response headers; a non-streaming completion sends them
    only when generation ends. Default: ``"10m"``."""
    prometheus_retention: str = Field(default="15d", pattern=_PROMETHEUS_DURATION)
    """How long Prometheus keeps samples. Default: ``"15d"``."""
    prometheus_persistent: bool = False
    """Keep Prometheus' data on a persistent volume of Keel's encrypted EBS gp3 class (:data:`STORAGE_CLASS`),
    so metric history (dashboards, alerts, past queue depth) survives a reschedule or node replacement. The
    volume outlives the release (reclaim policy ``Retain``) and sits in one availability zone: Prometheus can
    then only run on a system node in that zone. Default: ``False``, an emptyDir whose metrics are lost when
    the pod moves (dev); the inference stack turns it on for every other tier."""
    prometheus_storage_class: str | None = None
    """A StorageClass of your own for Prometheus' persistent volume, instead of Keel's; with
    ``prometheus_persistent`` it may only name :data:`STORAGE_CLASS`. Default: ``None``."""
    prometheus_volume_gib: int = Field(default=50, ge=10, le=16384)
    """Size of the persistent volume; retention by size is capped at 90% of it. Default: ``50``."""
    grafana: bool = False
    """Install Grafana with the stack. Default: ``False``: dashboards need an admin credential and usually live
    outside the cluster (e.g. Amazon Managed Grafana reading this Prometheus)."""
    alertmanager: bool = False
    """Install Alertmanager. Default: ``False``: receivers are environment-specific; Prometheus still evaluates
    the stack's alert rules and shows them firing."""
    secret_store_name: str = Field(default="aws-secrets-manager", pattern=_DNS_LABEL)
    """Name of the ``ClusterSecretStore`` that ExternalSecrets reference. Default: ``"aws-secrets-manager"``."""
    secret_store_namespaces: list[str] = []
    """Namespaces allowed to use the store. Default: empty, every namespace."""

    @field_validator("chart_versions")
    @classmethod
    def _exact_versions(cls, value: dict[ChartName, str]) -> dict[ChartName, str]:
        for chart, version in value.items():
            if not _EXACT_VERSION.match(version):
                raise ValueError(
                    f"chart_versions[{chart!r}] = {version!r} is not an exact chart version; allowed: "
                    "MAJOR.MINOR.PATCH (e.g. '2.21.1'), never a range"
                )
        return value

    @field_validator("expander_priorities")
    @classmethod
    def _valid_priorities(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        for priority, patterns in value.items():
            if priority < 0 or not patterns:
                raise ValueError(
                    f"expander_priorities[{priority}] = {patterns!r}; allowed: a priority >= 0 with one or "
                    "more regexes"
                )
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as error:
                    raise ValueError(
                        f"expander_priorities[{priority}] pattern {pattern!r} is not a regex ({error})"
                    ) from error
        return value

    @field_validator("secret_store_namespaces")
    @classmethod
    def _namespace_names(cls, value: list[str]) -> list[str]:
        bad = [ns for ns in value if not re.match(_DNS_LABEL, ns)]
        if bad:
            raise ValueError(f"secret_store_namespaces {bad} are not namespace names (DNS labels)")
        return value

    @model_validator(mode="after")
    def _one_prometheus_storage_class(self) -> ClusterAddonsArgs:
        own = self.prometheus_storage_class
        if self.prometheus_persistent and own is not None and own != STORAGE_CLASS:
            raise ValueError(
                f"prometheus_persistent=True uses the {STORAGE_CLASS!r} StorageClass but "
                f"prometheus_storage_class={own!r} names another; set one of them"
            )
        return self

    @property
    def prometheus_volume_class(self) -> str | None:
        """StorageClass of Prometheus' persistent volume, or ``None`` for an emptyDir."""
        if self.prometheus_storage_class is not None:
            return self.prometheus_storage_class
        return STORAGE_CLASS if self.prometheus_persistent else None

    def chart(self, name: ChartName) -> Chart:
        """The chart as deployed: the pin, or its override."""
        pinned = CHARTS[name]
        version = self.chart_versions.get(name, pinned.version)
        return Chart(repo=pinned.repo, version=version, namespace=pinned.namespace)


class ClusterAddons(pulumi.ComponentResource):
    """The cluster add-ons of a GPU inference cluster, as pinned Helm releases.

    Pass both providers: ``opts=pulumi.ResourceOptions(providers=[aws_provider, k8s_provider])``; the IAM
    roles take the AWS one, everything in the cluster the Kubernetes one.
    """

    releases: dict[str, Release]
    """Every Helm release by chart name; depend on the ones whose CRDs you use (``keda``, ``keda-add-ons-http``,
    ``kube-prometheus-stack``, ``external-secrets``)."""
    namespaces: dict[str, k8s.core.v1.Namespace]
    """The add-on namespaces by name."""
    prometheus_namespace: str
    """Namespace of Prometheus."""
    prometheus_url: str
    """In-cluster URL of the Prometheus server (KEDA's prometheus trigger ``serverAddress``)."""
    prometheus_selector_labels: dict[str, str]
    """Labels a ServiceMonitor or PodMonitor must carry for Prometheus to pick it up: none, Prometheus selects
    every monitor in every namespace."""
    keda_namespace: str
    """Namespace of KEDA and its HTTP add-on."""
    http_interceptor_service: ServiceEndpoint
    """The KEDA HTTP interceptor proxy: route model traffic here (Host header = the model's host) so requests
    reach a model scaled to zero and wake it."""
    storage_class: k8s.storage.v1.StorageClass
    """The encrypted EBS gp3 StorageClass (named :data:`STORAGE_CLASS`); claims may name it too."""
    secret_store_name: str | None
    """Name of the ``ClusterSecretStore`` reading this environment's Secrets Manager secrets."""
    secret_store: k8s.apiextensions.CustomResource | None
    """The ``ClusterSecretStore`` itself, to depend on."""
    cluster_autoscaler_role_arn: pulumi.Output[str]
    """ARN of the cluster autoscaler's IRSA role."""
    external_secrets_role_arn: pulumi.Output[str] | None
    """ARN of the role External Secrets assumes to read the secrets."""

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keel:k8s:ClusterAddons", name, None, opts)
        self._name = name
        self._args = args
        self.releases = {}
        self.namespaces = {
            namespace: k8s.core.v1.Namespace(
                f"{name}-ns-{namespace}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace, labels=_pod_security_labels(level)),
                opts=child_options(self),
            )
            for namespace, level in POD_SECURITY.items()
            if namespace != CHARTS["external-secrets"].namespace or args.secret_arns
        }

        self._release("nvidia-device-plugin", _device_plugin_values())

        self.cluster_autoscaler_role_arn = self._cluster_autoscaler_role().arn
        self._release("cluster-autoscaler", self._cluster_autoscaler_values())

        keda = self._release("keda", _keda_values())
        self._release("keda-add-ons-http", self._http_add_on_values(), depends_on=[keda])

        self.storage_class = self._storage_class()
        # Prometheus' claim waits for its class instead of staying Pending.
        on_keel_class = args.prometheus_volume_class == STORAGE_CLASS
        stack = self._release(
            "kube-prometheus-stack",
            self._prometheus_values(),
            depends_on=[self.storage_class] if on_keel_class else None,
        )
        # The chart renders a ServiceMonitor: the CRD comes with kube-prometheus-stack.
        self._release("dcgm-exporter", _dcgm_values(), depends_on=[stack])

        self.external_secrets_role_arn = None
        self.secret_store_name = None
        self.secret_store = None
        if args.secret_arns:
            role_arn = self._external_secrets_role().arn
            eso = self._release("external-secrets", _external_secrets_values())
            self.external_secrets_role_arn = role_arn
            self.secret_store_name = args.secret_store_name
            self.secret_store = self._secret_store(eso, role_arn)

        prometheus = CHARTS["kube-prometheus-stack"].namespace
        self.prometheus_namespace = prometheus
        self.prometheus_url = f"http://kube-prometheus-stack-prometheus.{prometheus}.svc.cluster.local:9090"
        self.prometheus_selector_labels = {}
        self.keda_namespace = CHARTS["keda"].namespace
        # The chart names the Service "<chart name>-<interceptor.proxy.service>", port interceptor.proxy.port.
        self.http_interceptor_service = ServiceEndpoint(
            namespace=CHARTS["keda-add-ons-http"].namespace,
            name="keda-add-ons-http-interceptor-proxy",
            port=8080,
        )
        self.register_outputs(
            {
                "prometheus_namespace": self.prometheus_namespace,
                "prometheus_url": self.prometheus_url,
                "keda_namespace": self.keda_namespace,
                "http_interceptor_url": self.http_interceptor_service.url,
                "secret_store_name": self.secret_store_name,
                "storage_class_name": STORAGE_CLASS,
                "cluster_autoscaler_role_arn": self.cluster_autoscaler_role_arn,
                "external_secrets_role_arn": self.external_secrets_role_arn,
            }
        )

    # ------------------------------------------------------------------------------------------- releases

    def _release(
        self,
        chart_name: ChartName,
        values: Mapping[str, Any],
        *,
        depends_on: list[pulumi.Resource] | None = None,
    ) -> Release:
        chart = self._args.chart(chart_name)
        release = Release(
            f"{self._name}-{chart_name}",
            ReleaseArgs(
                name=chart_name,
                chart=chart_name,
                version=chart.version,
                repository_opts=RepositoryOptsArgs(repo=chart.repo),
                # Taking the name from the Namespace resource orders the release after it.
                namespace=self.namespaces[chart.namespace].metadata.name,
                values=dict(values),
                # A failed install or upgrade rolls back instead of leaving a half-applied release.
                atomic=True,
                cleanup_on_fail=True,
                max_history=10,
                timeout=900,
            ),
            opts=child_options(self, depends_on=depends_on),
        )
        self.releases[chart_name] = release
        return release

    def _cluster_autoscaler_values(self) -> dict[str, Any]:
        args = self._args
        values: dict[str, Any] = {
            "cloudProvider": "aws",
            "awsRegion": args.context.region,
            "autoDiscovery": {"clusterName": args.cluster_name},
            "rbac": {
                "serviceAccount": {
                    "create": True,
                    "name": CLUSTER_AUTOSCALER_SERVICE_ACCOUNT,
                    "annotations": {ROLE_ARN_ANNOTATION: self.cluster_autoscaler_role_arn},
                }
            },
            "extraArgs": {
                "logtostderr": True,
                "stderrthreshold": "info",
                "v": "4",
                # Similar node groups (same instance shape, labels and taints) grow evenly.
                "balance-similar-node-groups": True,
                # kube-system Deployments (CoreDNS, CSI controllers) may move: they must not pin a node.
                "skip-nodes-with-system-pods": False,
                # vLLM keeps /dev/shm in an emptyDir: with the default (true) no GPU node would ever scale down.
                "skip-nodes-with-local-storage": False,
                "scale-down-unneeded-time": args.scale_down_unneeded_time,
                "scale-down-delay-after-add": args.scale_down_delay_after_add,
                "expander": "priority,least-waste",
            },
            # The chart renders the cluster-autoscaler-priority-expander ConfigMap from this map.
            "expanderPriorities": {
                str(priority): list(patterns) for priority, patterns in args.expander_priorities.items()
            },
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "fsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containerSecurityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            **_on_system_nodes("100m", "300Mi", "500m", "600Mi"),
        }
        if args.kubernetes_version is not None:
            values["image"] = {"tag": CLUSTER_AUTOSCALER_IMAGE_TAGS[args.kubernetes_version]}
        return values

    def _http_add_on_values(self) -> dict[str, Any]:
        return {
            "operator": _on_system_nodes("50m", "64Mi", "500m", "256Mi"),
            "scaler": _on_system_nodes("50m", "64Mi", "500m", "256Mi"),
            "interceptor": {
                **_on_system_nodes("100m", "64Mi", "1", "512Mi"),
                "readinessTimeout": self._args.http_cold_start_timeout,
                "responseHeaderTimeout": self._args.http_response_header_timeout,
            },
        }

    def _storage_class(self) -> k8s.storage.v1.StorageClass:
        return k8s.storage.v1.StorageClass(
            f"{self._name}-storage-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=STORAGE_CLASS),
            provisioner=EBS_CSI_PROVISIONER,
            parameters={
                **EBS_GP3_ENCRYPTED_PARAMETERS,
                **({"kmsKeyId": self._args.volume_key_arn} if self._args.volume_key_arn is not None else {}),
            },
            # The EBS volume outlives its claim (a release uninstalled, a claim deleted): data is removed by hand.
            reclaim_policy="Retain",
            # Created in the zone of the node the pod is scheduled to, not a random one it cannot attach from.
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            opts=child_options(self),
        )

    def _prometheus_values(self) -> dict[str, Any]:
        args = self._args
        storage: dict[str, Any] = {}
        retention_size = ""
        storage_class = args.prometheus_volume_class
        if storage_class is not None:
            storage = {
                "volumeClaimTemplate": {
                    "spec": {
                        "storageClassName": storage_class,
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": f"{args.prometheus_volume_gib}Gi"}},
                    }
                }
            }
            retention_size = f"{args.prometheus_volume_gib * 9 // 10}GiB"
        return {
            # Stable object names: the Prometheus Service is "kube-prometheus-stack-prometheus".
            "fullnameOverride": "kube-prometheus-stack",
            "crds": {"enabled": True},
            "grafana": {"enabled": args.grafana, **_on_system_nodes("100m", "256Mi", "500m", "512Mi")},
            "alertmanager": {
                "enabled": args.alertmanager,
                "alertmanagerSpec": _on_system_nodes("50m", "128Mi", "500m", "256Mi"),
            },
            # EKS runs the control plane: its scheduler, controller manager and etcd cannot be scraped, and
            # kube-proxy binds metrics to localhost; their targets would only ever be down.
            "kubeControllerManager": {"enabled": False},
            "kubeScheduler": {"enabled": False},
            "kubeEtcd": {"enabled": False},
            "kubeProxy": {"enabled": False},
            # node-exporter is a host-network DaemonSet that would land on GPU nodes; kubelet/cAdvisor metrics
            # cover containers on every node and DCGM covers the GPUs.
            "nodeExporter": {"enabled": False},
            "kube-state-metrics": _on_system_nodes("50m", "128Mi", "500m", "512Mi"),
            "prometheusOperator": {
                **_on_system_nodes("100m", "128Mi", "500m", "512Mi"),
                "admissionWebhooks": {"patch": _on_system_nodes("50m", "64Mi", "200m", "128Mi")},
            },
            "prometheus": {
                "prometheusSpec": {
                    # Pick up ServiceMonitors, PodMonitors and rules from every namespace without a release
                    # label, so model namespaces need nothing chart-specific.
                    "serviceMonitorSelectorNilUsesHelmValues": False,
                    "podMonitorSelectorNilUsesHelmValues": False,
                    "ruleSelectorNilUsesHelmValues": False,
                    "probeSelectorNilUsesHelmValues": False,
                    "serviceMonitorNamespaceSelector": {},
                    "podMonitorNamespaceSelector": {},
                    "retention": args.prometheus_retention,
                    "retentionSize": retention_size,
                    "storageSpec": storage,
                    **_on_system_nodes("200m", "1Gi", "1", "3Gi"),
                }
            },
        }

    # ------------------------------------------------------------------------------------------- IAM

    def _cluster_autoscaler_role(self) -> aws.iam.Role:
        args = self._args
        ctx = args.context
        cluster = pulumi.Output.from_input(args.cluster_name)
        statements: list[PolicyStatement] = [
            {
                "Sid": "ReadScalingState",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                "Resource": "*",
            },
            {
                # Labels, taints and GPU capacity of managed node groups at zero nodes (scale from zero).
                "Sid": "ReadNodeGroups",
                "Effect": "Allow",
                "Action": "eks:DescribeNodegroup",
                "Resource": cluster.apply(lambda c: ctx.arn("eks", f"nodegroup/{c}/*")),
            },
            {
                # Only Auto Scaling groups EKS tagged as owned by this cluster.
                "Sid": "ScaleThisClustersGroups",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                "Resource": ctx.arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/*"),
                "Condition": cluster.apply(
                    lambda c: {
                        "StringEquals": {
                            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{c}": "owned",
                            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
                        }
                    }
                ),
            },
        ]
        role, _ = role_with_policies(
            self,
            f"{self._name}-cluster-autoscaler-irsa",
            description="IRSA role of the cluster autoscaler",
            trust_policy=irsa_trust_policy(
                args.oidc_provider_arn,
                args.oidc_issuer,
                namespace=CHARTS["cluster-autoscaler"].namespace,
                service_account=CLUSTER_AUTOSCALER_SERVICE_ACCOUNT,
                audience=f"sts.{args.context.dns_suffix}",
            ),
            tags=named_tags(args.tags, f"{self._name}-cluster-autoscaler-irsa"),
            policies={},
            inline_policy=document(statements),
        )
        return role

    def _external_secrets_role(self) -> aws.iam.Role:
        args = self._args
        namespace = CHARTS["external-secrets"].namespace
        role, _ = role_with_policies(
            self,
            f"{self._name}-external-secrets-irsa",
            description="IRSA role External Secrets uses to read this environment's secrets",
            trust_policy=irsa_trust_policy(
                args.oidc_provider_arn,
                args.oidc_issuer,
                namespace=namespace,
                service_account=SECRETS_READER_SERVICE_ACCOUNT,
                audience=f"sts.{args.context.dns_suffix}",
            ),
            tags=named_tags(args.tags, f"{self._name}-external-secrets-irsa"),
            policies={},
            inline_policy=document(
                [
                    {
                        "Sid": "ReadEnvironmentSecrets",
                        "Effect": "Allow",
                        "Action": [
                            "secretsmanager:GetSecretValue",
                            "secretsmanager:DescribeSecret",
                            "secretsmanager:ListSecretVersionIds",
                        ],
                        "Resource": list(args.secret_arns),
                    },
                    kms_decrypt_via_service(
                        args.context, args.secrets_key_arn, "secretsmanager", "DecryptSecrets"
                    ),
                ]
            ),
        )
        return role

    # ------------------------------------------------------------------------------------------- secrets

    def _secret_store(self, eso: Release, role_arn: pulumi.Output[str]) -> k8s.apiextensions.CustomResource:
        args = self._args
        namespace = CHARTS["external-secrets"].namespace
        reader = k8s.core.v1.ServiceAccount(
            f"{self._name}-secrets-reader",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SECRETS_READER_SERVICE_ACCOUNT,
                namespace=self.namespaces[namespace].metadata.name,
                annotations={ROLE_ARN_ANNOTATION: role_arn},
            ),
            # ESO requests tokens for it; no pod mounts it.
            automount_service_account_token=False,
            opts=child_options(self),
        )
        spec: dict[str, Any] = {
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": args.context.region,
                    "auth": {
                        "jwt": {
                            "serviceAccountRef": {
                                "name": SECRETS_READER_SERVICE_ACCOUNT,
                                "namespace": namespace,
                            }
                        }
                    },
                }
            }
        }
        if args.secret_store_namespaces:
            spec["conditions"] = [{"namespaces": list(args.secret_store_namespaces)}]
        return k8s.apiextensions.CustomResource(
            f"{self._name}-secret-store",
            api_version="external-secrets.io/v1",
            kind="ClusterSecretStore",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.secret_store_name),
            spec=spec,
            # The CRD comes with the chart.
            opts=child_options(self, depends_on=[eso, reader]),
        )


def _pod_security_labels(level: PodSecurityLevel) -> dict[str, str]:
    labels = {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    if level == "baseline":
        # Report what would break under "restricted" (audit log, kubectl warnings) without blocking it.
        labels["pod-security.kubernetes.io/audit"] = "restricted"
        labels["pod-security.kubernetes.io/warn"] = "restricted"
    return labels


def _device_plugin_values() -> dict[str, Any]:
    return {
        **_on_gpu_nodes_only(),
        "resources": _resources("50m", "64Mi", "200m", "256Mi"),
    }


def _dcgm_values() -> dict[str, Any]:
    return {
        **_on_gpu_nodes_only(),
        "resources": _resources("100m", "256Mi", "500m", "1Gi"),
        # Scraped by Prometheus, which selects every ServiceMonitor.
        "serviceMonitor": {"enabled": True, "interval": "15s"},
    }


def _keda_values() -> dict[str, Any]:
    placement = _on_system_nodes("100m", "128Mi", "1", "1000Mi")
    return {
        "nodeSelector": placement["nodeSelector"],
        "tolerations": [],
        "resources": {
            "operator": placement["resources"],
            "metricServer": placement["resources"],
            "webhooks": _resources("50m", "64Mi", "500m", "256Mi"),
        },
    }


def _external_secrets_values() -> dict[str, Any]:
    return {
        "installCRDs": True,
        # The controller's own account has no AWS role: stores reach AWS through the reader account's JWT.
        "serviceAccount": {"create": True, "name": "external-secrets"},
        **_on_system_nodes("50m", "128Mi", "500m", "512Mi"),
        "webhook": _on_system_nodes("25m", "64Mi", "200m", "256Mi"),
        "certController": _on_system_nodes("25m", "64Mi", "200m", "256Mi"),
    }
