"""One model served by vLLM on Kubernetes: :class:`InferenceService`.

Everything lives in the model's own namespace (Pod Security ``restricted``): a service account for IRSA, the
vLLM Deployment on the GPU pool, a ClusterIP Service, KEDA autoscaling on queue depth, a PodDisruptionBudget,
default-deny NetworkPolicies with the few allowed peers, a PodMonitor for Prometheus and, when the model needs a
Hugging Face token, an ExternalSecret that delivers it from AWS Secrets Manager.

The component creates Kubernetes objects only. The caller passes the Kubernetes provider through ``opts`` and
creates the IAM role (IRSA) the pods assume, handing over its ARN.

Scale from zero (``min_replicas == 0``). At zero replicas no pod exists to report
``vllm:num_requests_waiting``, so a queue-depth trigger alone can never wake the model. The KEDA HTTP add-on's
interceptor sits in front instead: it holds requests while the first replica starts and reports them as
pending. An ``InterceptorRoute`` (``http.keda.sh/v1beta1``, the add-on's routing API since v0.14) tells the
interceptor which ``Host`` goes to the model's Service and which metric to report; it creates no ScaledObject.
KEDA lets exactly one ScaledObject (one HPA) own a Deployment, so the component's single ScaledObject carries
both triggers: the add-on's ``external-push`` scaler (metadata ``interceptorRoute``) wakes the model 0 -> 1 and
the Prometheus queue-depth trigger scales 1 -> N. KEDA activates on any active trigger and the HPA follows the
larger of the two desired counts. The ScaledObject is created after the InterceptorRoute: the add-on's scaler
answers an empty metric spec for a route it cannot find yet.
The trade-off: clients of a scale-from-zero model must send requests through the interceptor (``request_url``
with the ``Host`` header ``request_host``); a request sent straight to the Service at zero replicas is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
from pydantic import Field, field_validator, model_validator

from components.base import ComponentArgs, StrInput, child_options

#: Node label and taint of Keel's GPU pools (the values ``components.aws.node_group.GpuNodePool`` applies).
GPU_POOL_LABEL = "keel.dev/gpu-pool"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_RESOURCE = "nvidia.com/gpu"

#: The port vLLM's OpenAI-compatible server listens on; the Service, probes and metrics use it too.
HTTP_PORT = 8000
HTTP_PORT_NAME = "http"

#: Where the writable volumes are mounted (the root filesystem is read-only).
CACHE_PATH = "/cache"
TMP_PATH = "/tmp"
SHM_PATH = "/dev/shm"
HF_HOME = f"{CACHE_PATH}/huggingface"
HF_HUB_CACHE = f"{HF_HOME}/hub"
WEIGHTS_PATH = f"{CACHE_PATH}/weights"

#: Flags the component sets itself; ``extra_args`` may not repeat them.
MANAGED_FLAGS = frozenset(
    {
        "--model",
        "--revision",
        "--tensor-parallel-size",
        "-tp",
        "--max-model-len",
        "--gpu-memory-utilization",
        "--served-model-name",
        "--download-dir",
        "--port",
        "--host",
        "--enable-log-requests",
        "--no-enable-log-requests",
        "--disable-log-requests",
    }
)

#: Pod Security Standard labels for the model's namespace: enforce, audit and warn at ``restricted``.
POD_SECURITY_LABELS: Mapping[str, str] = {
    **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")},
    **{f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")},
}

#: Label every namespace carries since Kubernetes 1.22; NetworkPolicy peers select namespaces by it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

#: The instance metadata endpoint: never reachable from model pods, even though HTTPS egress is open.
IMDS_CIDR = "169.254.169.254/32"

_DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")

#: Builds the metadata of a namespaced child: ``meta(object_name, **extra_labels)``.
Meta = Callable[..., k8s.meta.v1.ObjectMetaArgs]


def _image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or ``None``: a digest, or a tag other than ``latest``."""
    if _DIGEST.search(image):
        return None
    if "@" in image:
        return "has a malformed digest (expected @sha256:<64 hex>)"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if not tag:
        return "has no tag (pulls :latest)"
    if tag == "latest":
        return "uses the mutable :latest tag"
    return None


def cpu_quantity(cores: float) -> str:
    """A CPU quantity: whole cores as ``"4"``, fractions in millicores (``"1500m"``)."""
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


class InferenceServiceArgs(ComponentArgs):
    """Inputs of :class:`InferenceService`: one model, its image, sizing, autoscaling and network peers."""

    # ------------------------------------------------------------------------------------------- identity
    model_name: str = Field(pattern=_DNS_LABEL, max_length=40)
    """Kebab-case name of the deployment (e.g. ``qwen25-7b``): the Deployment, Service and service account are
    named after it. Required."""
    namespace: str = Field(default="", max_length=63)
    """Namespace created for the model. Default: ``model-<model_name>``."""
    labels: Mapping[str, str] = {}
    """Extra labels on every object (e.g. ``environment``). Default: none."""

    # --------------------------------------------------------------------------------------- image, model
    image: str = Field(min_length=1)
    """The vLLM OpenAI server image, pinned: ``vllm/vllm-openai@sha256:...`` (a release tag is accepted here;
    the ``k8s-image-pinned`` policy demands digests in prod). vLLM 0.10.1 or newer, which knows
    ``--no-enable-log-requests`` (vllm-project/vllm#21739). Required."""
    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Hugging Face hub id, e.g. ``Qwen/Qwen2.5-7B-Instruct``. Required."""
    revision: str = Field(pattern=r"^[0-9a-f]{40}$")
    """The model's commit sha on the hub (40 hex characters), so a re-pushed branch never changes what is
    served. Required."""
    served_model_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./:-]*$")
    """The name clients put in ``"model"`` (``--served-model-name``), also the ``model_name`` label of vLLM's
    metrics. Default: ``model`` (the hub id)."""
    weights_uri: str | None = Field(default=None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(\S+/)?$")
    """``s3://bucket/prefix/`` holding a snapshot of ``model`` at ``revision``. When set, an init container
    syncs it into the cache volume and vLLM loads the local copy with ``HF_HUB_OFFLINE=1``: a scale-up never
    depends on the public hub. Default: ``None`` (vLLM downloads from the hub at start)."""
    weights_sync_image: str | None = None
    """Pinned AWS CLI image (e.g. ``public.ecr.aws/aws-cli/aws-cli@sha256:...``) of the weight-sync init
    container. Required when ``weights_uri`` is set. Default: ``None``."""
    hub_token_secret: str | None = Field(default=None, min_length=1, max_length=512)
    """Name of the Secrets Manager secret holding a Hugging Face token (gated models). An ExternalSecret copies it
    into a Kubernetes Secret and the container gets ``HF_TOKEN`` from it. Only for hub downloads. Default:
    ``None`` (public model, or weights from ``weights_uri``)."""
    hub_token_secret_property: str | None = None
    """JSON key inside the secret when it holds a JSON object. Default: ``None`` (the whole secret string)."""
    secret_store_name: str | None = Field(default=None, pattern=_DNS_SUBDOMAIN, max_length=253)
    """External Secrets ``ClusterSecretStore`` for Secrets Manager. Required with ``hub_token_secret``.
    Default: ``None``."""
    service_account_role_arn: StrInput | None = None
    """ARN of the IAM role the pods assume through IRSA (S3 read of ``weights_uri``). Required when
    ``weights_uri`` is set. Default: ``None`` (no AWS access)."""

    # ----------------------------------------------------------------------------------------- vLLM engine
    tensor_parallel_size: int = Field(default=1, ge=1, le=8)
    """GPUs per replica (``--tensor-parallel-size``); the pod requests exactly this many. Default: ``1``."""
    max_model_len: int = Field(ge=16)
    """Context length (``--max-model-len``), which sizes the KV cache. Required."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=0.98)
    """Fraction of GPU memory vLLM may use (``--gpu-memory-utilization``). Default: ``0.9``."""
    extra_args: tuple[str, ...] = ()
    """More ``vllm serve`` flags (e.g. ``("--enable-prefix-caching",)``); flags the component sets are refused.
    Default: none."""

    # ------------------------------------------------------------------------------------ sizing, placement
    cpu_request: float | None = Field(default=None, gt=0)
    """CPU cores requested. Default: 3 per GPU."""
    cpu_limit: float | None = Field(default=None, gt=0)
    """CPU cores limit. Default: twice the request."""
    memory_request_gib: int | None = Field(default=None, ge=1)
    """Memory requested, GiB. Default: 24 per GPU."""
    memory_limit_gib: int | None = Field(default=None, ge=1)
    """Memory limit, GiB; ``/dev/shm`` usage counts against it. Default: the request."""
    shm_size_gib: int = Field(default=8, ge=1)
    """Size limit of the in-memory ``/dev/shm`` (NCCL and vLLM's worker processes). Default: ``8``."""
    cache_size_gib: int = Field(default=100, ge=10)
    """Size limit of the cache volume (weights, Hugging Face and vLLM caches) on the node's root volume. It is
    deliberately not requested as ``ephemeral-storage``: the cluster autoscaler cannot see that capacity on a node
    group at zero nodes and would never scale it up. Default: ``100``."""
    tmp_size_gib: int = Field(default=4, ge=1)
    """Size limit of ``/tmp`` (home directory, compile caches). Default: ``4``."""
    run_as_user: int = Field(default=1000, ge=1)
    """Numeric uid (and gid, fsGroup) of every container. Default: ``1000``."""
    gpu_pool: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    """GPU pool to run on: required node affinity on ``keel.dev/gpu-pool=<gpu_pool>``. Required."""
    spread_across_zones: bool = False
    """Spread replicas across ``topology.kubernetes.io/zone``. Default: ``False`` (the tier turns it on)."""
    zone_spread_when_unsatisfiable: Literal["ScheduleAnyway", "DoNotSchedule"] = "ScheduleAnyway"
    """What the zone spread does when a zone has no GPU capacity: ``ScheduleAnyway`` prefers spreading but
    never leaves a replica pending (GPU capacity is often missing in one zone); ``DoNotSchedule`` insists.
    Default: ``"ScheduleAnyway"``."""

    # ------------------------------------------------------------------------------------------ lifecycle
    startup_failure_threshold: int = Field(default=90, ge=1)
    """Startup probe failures allowed, 10 s apart after 15 s: model load may take this long (the weight sync
    runs before, in the init container). Default: ``90`` (15 minutes)."""
    termination_grace_seconds: int = Field(default=120, ge=10)
    """Time a stopping replica has to finish in-flight generations. Default: ``120``."""
    drain_delay_seconds: int = Field(default=15, ge=0)
    """preStop sleep, so endpoints deregister before vLLM stops accepting. Default: ``15``."""
    rollout_timeout_seconds: int = Field(default=1800, ge=600)
    """``progressDeadlineSeconds`` of the Deployment and Pulumi's wait on it: a rollout may need a new GPU node,
    the image pull and the model load. Default: ``1800``."""

    # ------------------------------------------------------------------------------------------ autoscaling
    min_replicas: int = Field(ge=0)
    """Fewest replicas; ``0`` scales to zero behind the KEDA HTTP add-on. Required."""
    max_replicas: int = Field(ge=1)
    """Most replicas (the GPU cost cap). Required."""
    queue_depth_target: int = Field(default=5, ge=1)
    """Target ``vllm:num_requests_waiting`` per replica (KEDA threshold). Default: ``5``."""
    cooldown_seconds: int = Field(default=360, ge=0)
    """Quiet time before scaling down: KEDA's ``cooldownPeriod`` (to zero) and the HPA's scale-down
    stabilization window (N -> N-1). Default: ``360``."""
    polling_seconds: int = Field(default=15, ge=1)
    """KEDA ``pollingInterval``. Default: ``15``."""
    fallback_replicas: int | None = Field(default=None, ge=1)
    """Replicas KEDA holds while the metrics source fails. Default: ``min(2, max_replicas)``."""
    fallback_failure_threshold: int = Field(default=3, ge=1)
    """Consecutive metric failures before the fallback applies. Default: ``3``."""
    fallback_behavior: Literal[
        "static", "currentReplicas", "currentReplicasIfHigher", "currentReplicasIfLower"
    ] = "currentReplicasIfHigher"
    """KEDA ``fallback.behavior`` (KEDA >= 2.17): by default a Prometheus outage never shrinks a busy model below
    its current size. Default: ``"currentReplicasIfHigher"``."""
    prometheus_address: str = Field(pattern=r"^https?://[^\s/]+(:\d+)?(/\S*)?$")
    """Prometheus query endpoint for KEDA, e.g. ``http://prometheus-operated.monitoring.svc:9090``. Required."""
    prometheus_namespace: str = Field(pattern=_NAMESPACE.pattern)
    """Namespace Prometheus scrapes from (allowed in on port 8000). Required."""
    monitor_labels: Mapping[str, str] = {}
    """Labels on the PodMonitor that the Prometheus ``podMonitorSelector`` matches (kube-prometheus-stack:
    ``release: <release name>`` unless it selects all). Default: none."""
    scrape_interval_seconds: int = Field(default=15, ge=5)
    """Metrics scrape interval. Default: ``15``."""

    # ---------------------------------------------------------------------------------- scale from zero
    http_interceptor_namespace: str = Field(default="keda", pattern=_NAMESPACE.pattern)
    """Namespace of the KEDA HTTP add-on (its interceptor is allowed in when ``min_replicas == 0``).
    Default: ``"keda"``."""
    http_interceptor_service: str = Field(default="keda-add-ons-http-interceptor-proxy", pattern=_DNS_LABEL)
    """The interceptor proxy Service clients call. Default: ``"keda-add-ons-http-interceptor-proxy"``."""
    http_interceptor_port: int = Field(default=8080, ge=1, le=65535)
    """The interceptor proxy port. Default: ``8080``."""
    http_scaler_address: str = Field(
        default="keda-add-ons-http-external-scaler.keda:9090", pattern=r"^[a-z0-9.-]+:\d+$"
    )
    """``host:port`` of the add-on's external scaler (gRPC). Default:
    ``"keda-add-ons-http-external-scaler.keda:9090"``."""
    http_concurrency_target: int = Field(default=100, ge=1)
    """In-flight requests per replica the HTTP trigger aims for; high, so that queue depth drives 1 -> N and the
    HTTP trigger mainly wakes the model. Default: ``100``."""

    # ------------------------------------------------------------------------------------------ network
    client_namespaces: tuple[str, ...] = ()
    """Namespaces allowed to call the Service on port 8000 (gateways, applications). Default: none."""
    max_unavailable: int | None = Field(default=None, ge=1)
    """PodDisruptionBudget ``maxUnavailable``; ``None`` creates no budget (prod sets 1). Default: ``None``."""

    @model_validator(mode="before")
    @classmethod
    def _default_namespace(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("namespace") and isinstance(data.get("model_name"), str):
            return {**data, "namespace": f"model-{data['model_name']}"}
        return data

    @field_validator("namespace", "prometheus_namespace", "http_interceptor_namespace")
    @classmethod
    def _namespace_name(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError(f"namespace {value!r} is not a DNS label (lowercase, digits, '-', at most 63)")
        return value

    @field_validator("client_namespaces")
    @classmethod
    def _client_namespaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in value if not _NAMESPACE.match(n)]
        if bad:
            raise ValueError(f"client_namespaces {bad} are not namespace names (DNS labels)")
        return value

    @field_validator("labels", "monitor_labels")
    @classmethod
    def _label_map(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        for key, item in value.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(f"label key {key!r} is not a Kubernetes label key (e.g. 'example.com/team')")
            if not _LABEL_VALUE.match(item):
                raise ValueError(f"label {key!r} value {item!r} is not a Kubernetes label value")
        return value

    @field_validator("image", "weights_sync_image")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        if value is not None:
            problem = _image_problem(value)
            if problem:
                raise ValueError(
                    f"image {value!r} {problem}; pin a release tag or, better, a @sha256: digest"
                )
        return value

    @field_validator("extra_args")
    @classmethod
    def _unmanaged_flags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        managed = sorted({arg.split("=", 1)[0] for arg in value} & MANAGED_FLAGS)
        if managed:
            raise ValueError(f"extra_args repeat flags the component sets from its own fields: {managed}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> InferenceServiceArgs:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas={self.min_replicas} exceeds max_replicas={self.max_replicas}; "
                "allowed: min_replicas <= max_replicas"
            )
        if self.fallback_replicas is not None and self.fallback_replicas > self.max_replicas:
            raise ValueError(
                f"fallback_replicas={self.fallback_replicas} exceeds max_replicas={self.max_replicas}"
            )
        if self.weights_uri is not None:
            if self.weights_sync_image is None:
                raise ValueError(
                    "weights_uri is set: weights_sync_image (a pinned AWS CLI image) is required"
                )
            if self.service_account_role_arn is None:
                raise ValueError(
                    "weights_uri is set: service_account_role_arn (IRSA role with S3 read) is required"
                )
            if self.hub_token_secret is not None:
                raise ValueError(
                    "hub_token_secret is unused when weights_uri is set (vLLM runs with HF_HUB_OFFLINE=1); remove it"
                )
        if self.hub_token_secret is not None and self.secret_store_name is None:
            raise ValueError(
                "hub_token_secret is set: secret_store_name (the ClusterSecretStore) is required"
            )
        if self.drain_delay_seconds >= self.termination_grace_seconds:
            raise ValueError(
                f"drain_delay_seconds={self.drain_delay_seconds} must be shorter than "
                f"termination_grace_seconds={self.termination_grace_seconds}"
            )
        if self.cpu_limit is not None and self.cpu_limit < self.cpu:
            raise ValueError(f"cpu_limit={self.cpu_limit} is below the CPU request {self.cpu}")
        if self.memory_limit_gib is not None and self.memory_limit_gib < self.memory_gib:
            raise ValueError(
                f"memory_limit_gib={self.memory_limit_gib} is below the request {self.memory_gib}"
            )
        if self.shm_size_gib >= self.memory_max_gib:
            raise ValueError(
                f"shm_size_gib={self.shm_size_gib} must be below the memory limit {self.memory_max_gib} GiB "
                "(/dev/shm is memory and counts against the container's limit)"
            )
        return self

    # -------------------------------------------------------------------------------- derived values
    @property
    def cpu(self) -> float:
        """CPU cores requested."""
        return self.cpu_request if self.cpu_request is not None else 3.0 * self.tensor_parallel_size

    @property
    def cpu_max(self) -> float:
        """CPU cores limit."""
        return self.cpu_limit if self.cpu_limit is not None else 2 * self.cpu

    @property
    def memory_gib(self) -> int:
        """Memory requested, GiB."""
        return (
            self.memory_request_gib if self.memory_request_gib is not None else 24 * self.tensor_parallel_size
        )

    @property
    def memory_max_gib(self) -> int:
        """Memory limit, GiB."""
        return self.memory_limit_gib if self.memory_limit_gib is not None else self.memory_gib

    @property
    def served_name(self) -> str:
        """The name clients request and metrics carry."""
        return self.served_model_name or self.model

    @property
    def fallback(self) -> int:
        """Replicas held while metrics fail."""
        return self.fallback_replicas if self.fallback_replicas is not None else min(2, self.max_replicas)

    @property
    def scale_from_zero(self) -> bool:
        """Whether the model scales to zero behind the KEDA HTTP add-on."""
        return self.min_replicas == 0

    @property
    def service_host(self) -> str:
        """The Service's cluster DNS name."""
        return f"{self.model_name}.{self.namespace}.svc.cluster.local"


class InferenceService(pulumi.ComponentResource):
    """A vLLM OpenAI-compatible server for one model, autoscaled on queue depth, in its own locked-down namespace.

    Children (logical names ``<name>-<role>``): ``namespace``, ``service-account``, ``deployment``, ``service``,
    ``scaled-object``, ``interceptor-route`` (scale from zero only), ``pdb`` (when ``max_unavailable`` is set),
    ``default-deny``, ``allow-ingress``, ``allow-egress`` (NetworkPolicies), ``pod-monitor`` and ``hub-token``
    (ExternalSecret, only with ``hub_token_secret``).
    """

    namespace: pulumi.Output[str]
    """The model's namespace."""
    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service (port 8000, ``http``)."""
    deployment_name: pulumi.Output[str]
    """Name of the vLLM Deployment."""
    service_url: pulumi.Output[str]
    """``http://<service>.<namespace>.svc.cluster.local:8000/v1``: the OpenAI base URL, straight to the pods."""
    request_url: pulumi.Output[str]
    """Where clients send requests: ``service_url``, or the KEDA interceptor's ``/v1`` URL for a scale-from-zero
    model (sent with ``Host: request_host``)."""
    request_host: pulumi.Output[str]
    """The ``Host`` header for ``request_url``: the Service's cluster DNS name."""

    def __init__(
        self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keel:k8s:InferenceService", name, None, opts)
        self._args = args
        selector = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": args.model_name}
        labels = {
            **args.labels,
            **selector,
            "app.kubernetes.io/component": "inference",
            "app.kubernetes.io/part-of": "keel",
            "app.kubernetes.io/managed-by": "pulumi",
        }
        self._selector = selector
        self._labels = labels

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace, labels={**labels, **POD_SECURITY_LABELS}
            ),
            opts=child_options(self),
        )
        namespace = ns.metadata.apply(lambda m: m.name or args.namespace)
        self.namespace = namespace

        def meta(object_name: str, **extra_labels: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(
                name=object_name, namespace=namespace, labels={**labels, **extra_labels}
            )

        # IRSA: the EKS pod identity webhook reads this annotation and injects its own projected token volume
        # (audience sts.amazonaws.com) plus AWS_ROLE_ARN / AWS_WEB_IDENTITY_TOKEN_FILE. That token is what the AWS
        # SDK exchanges with STS, and the kubelet mounts it whatever automountServiceAccountToken says. The
        # automounted token is a different one, for the Kubernetes API, which neither vLLM nor the AWS CLI calls:
        # it stays off, so a compromised model server holds no API credential.
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.model_name,
                namespace=namespace,
                labels=labels,
                annotations=(
                    {"eks.amazonaws.com/role-arn": args.service_account_role_arn}
                    if args.service_account_role_arn is not None
                    else None
                ),
            ),
            automount_service_account_token=False,
            opts=child_options(self),
        )

        token_secret: k8s.apiextensions.CustomResource | None = None
        token_secret_name = f"{args.model_name}-hf-token"
        if args.hub_token_secret is not None:
            remote_ref: dict[str, Any] = {"key": args.hub_token_secret}
            if args.hub_token_secret_property:
                remote_ref["property"] = args.hub_token_secret_property
            token_secret = k8s.apiextensions.CustomResource(
                f"{name}-hub-token",
                api_version="external-secrets.io/v1",
                kind="ExternalSecret",
                metadata=meta(token_secret_name),
                spec={
                    "refreshInterval": "1h",
                    "secretStoreRef": {"kind": "ClusterSecretStore", "name": args.secret_store_name},
                    "target": {"name": token_secret_name, "creationPolicy": "Owner"},
                    "data": [{"secretKey": "HF_TOKEN", "remoteRef": remote_ref}],
                },
                opts=child_options(self),
            )

        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(args.model_name, **{"keel.dev/model-revision": args.revision}),
            spec=self._deployment_spec(
                account.metadata.apply(lambda m: m.name or args.model_name), token_secret_name
            ),
            opts=pulumi.ResourceOptions.merge(
                child_options(self, depends_on=[token_secret] if token_secret is not None else None),
                pulumi.ResourceOptions(
                    custom_timeouts=pulumi.CustomTimeouts(
                        create=f"{args.rollout_timeout_seconds + 300}s",
                        update=f"{args.rollout_timeout_seconds + 300}s",
                    )
                ),
            ),
        )
        deployment_name = deployment.metadata.apply(lambda m: m.name or args.model_name)

        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(args.model_name),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name=HTTP_PORT_NAME, port=HTTP_PORT, target_port=HTTP_PORT_NAME, protocol="TCP"
                    )
                ],
            ),
            opts=child_options(self),
        )
        service_name = service.metadata.apply(lambda m: m.name or args.model_name)

        self._autoscaling(name, meta, deployment_name, service_name)

        if args.max_unavailable is not None:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata=meta(args.model_name),
                spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                    max_unavailable=args.max_unavailable,
                    selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                    # A replica stuck loading (not Ready) may still be evicted, so it never blocks a node drain.
                    unhealthy_pod_eviction_policy="AlwaysAllow",
                ),
                opts=child_options(self),
            )

        self._network_policies(name, meta)

        k8s.apiextensions.CustomResource(
            f"{name}-pod-monitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.model_name, namespace=namespace, labels={**labels, **args.monitor_labels}
            ),
            spec={
                "selector": {"matchLabels": selector},
                "podMetricsEndpoints": [
                    {
                        "port": HTTP_PORT_NAME,
                        "path": "/metrics",
                        "interval": f"{args.scrape_interval_seconds}s",
                    }
                ],
            },
            opts=child_options(self),
        )

        self.service_name = service_name
        self.deployment_name = deployment_name
        self.service_url = pulumi.Output.concat(
            "http://", service_name, ".", namespace, f".svc.cluster.local:{HTTP_PORT}/v1"
        )
        self.request_host = pulumi.Output.concat(service_name, ".", namespace, ".svc.cluster.local")
        self.request_url = (
            pulumi.Output.from_input(
                f"http://{args.http_interceptor_service}.{args.http_interceptor_namespace}.svc.cluster.local:"
                f"{args.http_interceptor_port}/v1"
            )
            if args.scale_from_zero
            else self.service_url
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_name": self.service_name,
                "deployment_name": self.deployment_name,
                "service_url": self.service_url,
                "request_url": self.request_url,
                "request_host": self.request_host,
            }
        )

    # ------------------------------------------------------------------------------------------- workload

    def _vllm_args(self) -> list[str]:
        args = self._args
        if args.weights_uri is not None:
            # A local snapshot: --revision and --download-dir only apply to hub downloads.
            source = ["--model", WEIGHTS_PATH]
        else:
            source = ["--model", args.model, "--revision", args.revision, "--download-dir", HF_HUB_CACHE]
        return [
            *source,
            "--served-model-name",
            args.served_name,
            "--tensor-parallel-size",
            str(args.tensor_parallel_size),
            "--max-model-len",
            str(args.max_model_len),
            "--gpu-memory-utilization",
            f"{args.gpu_memory_utilization:g}",
            "--port",
            str(HTTP_PORT),
            # Prompts never reach the logs: off by default in recent vLLM, explicit so that no image bump or
            # default change turns it on (the older --disable-log-requests is gone since vLLM 0.12).
            "--no-enable-log-requests",
            *args.extra_args,
        ]

    def _env(self, token_secret_name: str) -> list[k8s.core.v1.EnvVarArgs]:
        args = self._args
        # The vllm-openai image runs as root with HOME=/root; as a numeric non-root user with a read-only root
        # filesystem every cache must point at a writable volume. USER/LOGNAME matter: the uid has no passwd
        # entry and getpass.getuser() (used for torch's compile-cache path) falls back to them.
        plain = {
            "HOME": TMP_PATH,
            "USER": "vllm",
            "LOGNAME": "vllm",
            "HF_HOME": HF_HOME,
            "HF_HUB_CACHE": HF_HUB_CACHE,
            "VLLM_CACHE_ROOT": f"{CACHE_PATH}/vllm",
            "XDG_CACHE_HOME": f"{CACHE_PATH}/xdg",
            "TRITON_CACHE_DIR": f"{CACHE_PATH}/triton",
            # No usage reports or hub telemetry leave the cluster.
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        if args.weights_uri is not None:
            plain |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env = [k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in plain.items()]
        if args.hub_token_secret is not None:
            env.append(
                k8s.core.v1.EnvVarArgs(
                    name="HF_TOKEN",
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                            name=token_secret_name, key="HF_TOKEN"
                        )
                    ),
                )
            )
        return env

    def _container_security(self) -> k8s.core.v1.SecurityContextArgs:
        return k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            privileged=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=self._args.run_as_user,
            run_as_group=self._args.run_as_user,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        )

    def _weights_sync(self) -> k8s.core.v1.ContainerArgs:
        args = self._args
        return k8s.core.v1.ContainerArgs(
            name="weights-sync",
            image=args.weights_sync_image,
            command=[
                "aws",
                "s3",
                "sync",
                str(args.weights_uri),
                WEIGHTS_PATH,
                "--only-show-errors",
                "--no-progress",
            ],
            env=[k8s.core.v1.EnvVarArgs(name="HOME", value=TMP_PATH)],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "2Gi"}
            ),
            security_context=self._container_security(),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="cache", mount_path=CACHE_PATH),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path=TMP_PATH),
            ],
        )

    def _deployment_spec(
        self, service_account: pulumi.Output[str], token_secret_name: str
    ) -> k8s.apps.v1.DeploymentSpecArgs:
        args = self._args
        gpus = str(args.tensor_parallel_size)
        health = k8s.core.v1.HTTPGetActionArgs(path="/health", port=HTTP_PORT_NAME)
        container = k8s.core.v1.ContainerArgs(
            name="vllm",
            image=args.image,
            args=self._vllm_args(),
            ports=[
                k8s.core.v1.ContainerPortArgs(name=HTTP_PORT_NAME, container_port=HTTP_PORT, protocol="TCP")
            ],
            env=self._env(token_secret_name),
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={
                    "cpu": cpu_quantity(args.cpu),
                    "memory": f"{args.memory_gib}Gi",
                    GPU_RESOURCE: gpus,
                },
                limits={
                    "cpu": cpu_quantity(args.cpu_max),
                    "memory": f"{args.memory_max_gib}Gi",
                    GPU_RESOURCE: gpus,
                },
            ),
            startup_probe=k8s.core.v1.ProbeArgs(
                http_get=health,
                initial_delay_seconds=15,
                period_seconds=10,
                timeout_seconds=5,
                failure_threshold=args.startup_failure_threshold,
            ),
            readiness_probe=k8s.core.v1.ProbeArgs(
                http_get=health, period_seconds=10, timeout_seconds=5, failure_threshold=3
            ),
            # Lenient: killing a GPU replica costs a full model reload.
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=health, period_seconds=15, timeout_seconds=10, failure_threshold=4
            ),
            lifecycle=k8s.core.v1.LifecycleArgs(
                pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                    sleep=k8s.core.v1.SleepActionArgs(seconds=args.drain_delay_seconds)
                )
            ),
            security_context=self._container_security(),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="cache", mount_path=CACHE_PATH),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path=TMP_PATH),
                k8s.core.v1.VolumeMountArgs(name="shm", mount_path=SHM_PATH),
            ],
        )
        spread = (
            [
                k8s.core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key="topology.kubernetes.io/zone",
                    when_unsatisfiable=args.zone_spread_when_unsatisfiable,
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._selector),
                    # Count only the pods of the same rollout revision, so a surge pod is spread as well.
                    match_label_keys=["pod-template-hash"],
                )
            ]
            if args.spread_across_zones
            else None
        )
        return k8s.apps.v1.DeploymentSpecArgs(
            # No replicas: KEDA's HPA owns the count, and a value here would reset it on every `pulumi up`.
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._selector),
            revision_history_limit=3,
            progress_deadline_seconds=args.rollout_timeout_seconds,
            # Never below the floor during a rollout: surge one replica (one more GPU), then retire an old one.
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
            ),
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=self._labels),
                spec=k8s.core.v1.PodSpecArgs(
                    service_account_name=service_account,
                    automount_service_account_token=False,
                    # Service links would inject <SERVICE>_PORT variables; a Service named "vllm" sets VLLM_PORT,
                    # which vLLM reads as its own configuration.
                    enable_service_links=False,
                    termination_grace_period_seconds=args.termination_grace_seconds,
                    security_context=k8s.core.v1.PodSecurityContextArgs(
                        run_as_non_root=True,
                        run_as_user=args.run_as_user,
                        run_as_group=args.run_as_user,
                        fs_group=args.run_as_user,
                        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                    ),
                    tolerations=[
                        k8s.core.v1.TolerationArgs(key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")
                    ],
                    affinity=k8s.core.v1.AffinityArgs(
                        node_affinity=k8s.core.v1.NodeAffinityArgs(
                            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                                node_selector_terms=[
                                    k8s.core.v1.NodeSelectorTermArgs(
                                        match_expressions=[
                                            k8s.core.v1.NodeSelectorRequirementArgs(
                                                key=GPU_POOL_LABEL, operator="In", values=[args.gpu_pool]
                                            )
                                        ]
                                    )
                                ]
                            )
                        )
                    ),
                    topology_spread_constraints=spread,
                    init_containers=[self._weights_sync()] if args.weights_uri is not None else None,
                    containers=[container],
                    volumes=[
                        k8s.core.v1.VolumeArgs(
                            name="cache",
                            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                size_limit=f"{args.cache_size_gib}Gi"
                            ),
                        ),
                        k8s.core.v1.VolumeArgs(
                            name="tmp",
                            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                size_limit=f"{args.tmp_size_gib}Gi"
                            ),
                        ),
                        k8s.core.v1.VolumeArgs(
                            name="shm",
                            empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                medium="Memory", size_limit=f"{args.shm_size_gib}Gi"
                            ),
                        ),
                    ],
                ),
            ),
        )

    # ---------------------------------------------------------------------------------------- autoscaling

    def _autoscaling(
        self,
        name: str,
        meta: Meta,
        deployment_name: pulumi.Output[str],
        service_name: pulumi.Output[str],
    ) -> None:
        args = self._args
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name}
        # vLLM labels its metrics with model_name (the served name); the PodMonitor adds namespace.
        query = (
            f'sum(vllm:num_requests_waiting{{namespace="{args.namespace}",model_name="{args.served_name}"}})'
        )
        triggers: list[dict[str, Any]] = [
            {
                "type": "prometheus",
                "name": "queue-depth",
                "metadata": {
                    "serverAddress": args.prometheus_address,
                    "query": query,
                    "threshold": str(args.queue_depth_target),
                    # At zero replicas the query returns nothing: that reads as 0, not as an error.
                    "ignoreNullValues": "true",
                },
            }
        ]
        depends: list[pulumi.Resource] = []
        if args.scale_from_zero:
            # Routing and the pending-request metric only: the ScaledObject below owns the Deployment.
            route = k8s.apiextensions.CustomResource(
                f"{name}-interceptor-route",
                api_version="http.keda.sh/v1beta1",
                kind="InterceptorRoute",
                metadata=meta(args.model_name),
                spec={
                    "target": {"service": service_name, "port": HTTP_PORT},
                    "rules": [{"hosts": [args.service_host]}],
                    "scalingMetric": {"concurrency": {"targetValue": args.http_concurrency_target}},
                },
                opts=child_options(self),
            )
            depends.append(route)
            triggers.append(
                {
                    "type": "external-push",
                    "name": "http-pending",
                    # The add-on's scaler looks the route up by name in the ScaledObject's namespace.
                    "metadata": {
                        "interceptorRoute": args.model_name,
                        "scalerAddress": args.http_scaler_address,
                    },
                }
            )
        k8s.apiextensions.CustomResource(
            f"{name}-scaled-object",
            api_version="keda.sh/v1alpha1",
            kind="ScaledObject",
            metadata=meta(args.model_name),
            spec={
                "scaleTargetRef": target,
                "minReplicaCount": args.min_replicas,
                "maxReplicaCount": args.max_replicas,
                "pollingInterval": args.polling_seconds,
                "cooldownPeriod": args.cooldown_seconds,
                "fallback": {
                    "failureThreshold": args.fallback_failure_threshold,
                    "replicas": args.fallback,
                    "behavior": args.fallback_behavior,
                },
                # cooldownPeriod only governs the step to zero; the HPA's window governs N -> N-1.
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": args.cooldown_seconds}}
                    }
                },
                "triggers": triggers,
            },
            opts=child_options(self, depends_on=depends or None),
        )

    # ------------------------------------------------------------------------------------------- network

    def _network_policies(self, name: str, meta: Meta) -> None:
        args = self._args

        def from_namespace(namespace: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
            return k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={NAMESPACE_NAME_LABEL: namespace}
                )
            )

        http_port = [k8s.networking.v1.NetworkPolicyPortArgs(port=HTTP_PORT, protocol="TCP")]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=meta("default-deny"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(), policy_types=["Ingress", "Egress"]
            ),
            opts=child_options(self),
        )
        callers = [*args.client_namespaces, args.prometheus_namespace]
        if args.scale_from_zero:
            callers.append(args.http_interceptor_namespace)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-ingress",
            metadata=meta("allow-ingress"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=self._selector),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[from_namespace(n) for n in dict.fromkeys(callers)], ports=http_port
                    )
                ],
            ),
            opts=child_options(self),
        )
        # NetworkPolicy matches addresses, never DNS names: S3, STS and the Hugging Face hub cannot be named, so
        # HTTPS is open to every address except instance metadata. Narrow it with an egress proxy or a CNI with
        # FQDN policies if the hub must be unreachable.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-allow-egress",
            metadata=meta("allow-egress"),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Egress"],
                egress=[
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={NAMESPACE_NAME_LABEL: "kube-system"}
                                ),
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={"k8s-app": "kube-dns"}
                                ),
                            )
                        ],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="UDP"),
                            k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="TCP"),
                        ],
                    ),
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                ip_block=k8s.networking.v1.IPBlockArgs(cidr="0.0.0.0/0", except_=[IMDS_CIDR])
                            )
                        ],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=443, protocol="TCP")],
                    ),
                ],
            ),
            opts=child_options(self),
        )
