"""Kubernetes workload rules: hardened pods, pinned images, sized and probed containers, GPUs scheduled right.

Workloads are Deployments, StatefulSets, DaemonSets, Jobs, CronJobs and bare Pods; ``pod_specs`` finds the
pod template of each and ``containers`` its containers (init containers included unless asked otherwise).
Resource rules see a manifest as the program declares it, stack rules see what the cluster returned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from policies.framework import Resource, as_map, items, of_type, prop, resource_rule, stack_rule, truthy

#: Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, str] = {
    "kubernetes:apps/v1:Deployment": "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
    "kubernetes:core/v1:Pod": "spec",
}
WORKLOAD_TYPES: tuple[str, ...] = tuple(POD_SPEC_PATHS)
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
NAMESPACE = "kubernetes:core/v1:Namespace"


# ------------------------------------------------------------------------------------------------ helpers


def pod_specs(resource: Resource) -> Iterator[tuple[Mapping[str, Any], str]]:
    """The pod spec of a workload with its dotted path; nothing for other types or a spec-less manifest."""
    path = POD_SPEC_PATHS.get(resource.resource_type)
    if path is None:
        return
    spec = prop(resource, path)
    if isinstance(spec, Mapping):
        yield spec, path


def containers(
    pod_spec: Mapping[str, Any], path: str, *, init: bool = True
) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Each container of a pod spec with its path (``...containers[0]``); init containers first if ``init``."""
    for kind in ("initContainers", "containers") if init else ("containers",):
        for index, container in enumerate(items(pod_spec.get(kind))):
            if isinstance(container, Mapping):
                yield container, f"{path}.{kind}[{index}]"


def container_name(container: Mapping[str, Any], path: str) -> str:
    return str(container.get("name") or path)


def workload(resource: Resource) -> str:
    """``Deployment vllm`` — kind and logical name, for messages."""
    return f"{resource.resource_type.rsplit(':', 1)[-1]} {resource.name}"


def namespace_of(resource: Resource) -> str:
    """A resource's namespace; a manifest without one lands in ``default``."""
    return str(prop(resource, "metadata.namespace") or "default")


def object_name(resource: Resource) -> str:
    """The Kubernetes name (``metadata.name``), or the logical name when the program leaves it to Pulumi."""
    return str(prop(resource, "metadata.name") or resource.name)


def _quantity(value: Any) -> Any:
    """``1``, ``1.0`` and ``"1"`` compare equal; other quantities compare as written."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return str(value)


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    key = str(expression.get("key"))
    present = key in labels
    value = str(labels[key]) if present else None
    values = [str(v) for v in items(expression.get("values"))]
    return {
        "In": present and value in values,
        "NotIn": not present or value not in values,
        "Exists": present,
        "DoesNotExist": not present,
    }.get(str(expression.get("operator")), False)


def selector_matches(selector: Any, labels: Mapping[str, Any]) -> bool:
    """A ``LabelSelector`` against labels (policy/v1 semantics: a null selector selects nothing)."""
    if not isinstance(selector, Mapping):
        return False
    match_labels = as_map(selector.get("matchLabels"))
    return all(labels.get(key) == value for key, value in match_labels.items()) and all(
        _expression_matches(as_map(e), labels) for e in items(selector.get("matchExpressions"))
    )


# ------------------------------------------------------------------------------------------ pod security

PRIVILEGED_CAPABILITIES = ["ALL", "SYS_ADMIN", "NET_ADMIN", "SYS_MODULE", "SYS_PTRACE", "BPF"]


@resource_rule(
    name="k8s-no-privileged",
    description="Pods share no host namespace and their containers are not privileged and cannot escalate.",
    domain="kubernetes",
    category="security",
    severity="critical",
    remediation="Remove privileged, hostNetwork/hostPID/hostIPC and added host-level capabilities; set "
    "securityContext.allowPrivilegeEscalation: false on every container (init containers included).",
    types=WORKLOAD_TYPES,
    settings={
        "forbiddenCapabilities": {
            "type": "array",
            "items": {"type": "string"},
            "default": PRIVILEGED_CAPABILITIES,
            "description": "Capabilities a container may not add (each is as good as root on the node).",
        }
    },
)
def k8s_no_privileged(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    forbidden = {str(c).upper() for c in config.get("forbiddenCapabilities") or []}
    who = workload(resource)
    for spec, path in pod_specs(resource):
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if truthy(spec.get(key)):
                yield f"{who}: pod sets {key}: true ({path}.{key})"
        for container, cpath in containers(spec, path):
            name = container_name(container, cpath)
            context = as_map(container.get("securityContext"))
            if truthy(context.get("privileged")):
                yield f"{who}: container {name} is privileged"
            if context.get("allowPrivilegeEscalation") is not False:
                yield f"{who}: container {name} does not set allowPrivilegeEscalation: false"
            added = {str(c).upper() for c in items(as_map(context.get("capabilities")).get("add"))}
            if added & forbidden:
                yield f"{who}: container {name} adds capabilities {', '.join(sorted(added & forbidden))}"


def _effective(key: str, container: Mapping[str, Any], pod: Mapping[str, Any]) -> Any:
    """A security setting as Kubernetes applies it: the container's, else the pod's."""
    value = container.get(key)
    return pod.get(key) if value is None else value


@resource_rule(
    name="k8s-non-root-and-hardened",
    description="Containers run as non-root, drop all capabilities and use a runtime seccomp profile.",
    domain="kubernetes",
    category="security",
    severity="high",
    remediation="Set runAsNonRoot: true (pod or container securityContext) with a non-zero runAsUser, "
    "capabilities.drop: [ALL] on every container, and seccompProfile.type: RuntimeDefault.",
    types=WORKLOAD_TYPES,
    settings={
        "allowedSeccompProfiles": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["RuntimeDefault", "Localhost"],
            "description": "seccompProfile.type values that count as confined.",
        }
    },
)
def k8s_non_root_and_hardened(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    allowed_seccomp = [str(s) for s in config.get("allowedSeccompProfiles") or []]
    who = workload(resource)
    for spec, path in pod_specs(resource):
        pod_context = as_map(spec.get("securityContext"))
        for container, cpath in containers(spec, path):
            context = as_map(container.get("securityContext"))
            problems: list[str] = []
            if _effective("runAsNonRoot", context, pod_context) is not True:
                problems.append("runAsNonRoot is not true")
            run_as_user = _effective("runAsUser", context, pod_context)
            if run_as_user is not None and _quantity(run_as_user) == 0:
                problems.append("runAsUser is 0")
            dropped = {str(c).upper() for c in items(as_map(context.get("capabilities")).get("drop"))}
            if "ALL" not in dropped:
                problems.append("capabilities.drop lacks ALL")
            seccomp = as_map(_effective("seccompProfile", context, pod_context)).get("type")
            if seccomp not in allowed_seccomp:
                problems.append(f"seccompProfile.type is {seccomp or 'unset'}")
            if problems:
                yield f"{who}: container {container_name(container, cpath)}: {'; '.join(problems)}"


# ---------------------------------------------------------------------------------------- images, sizing


def _image_problem(image: Any, require_digest: bool) -> str | None:
    if not isinstance(image, str) or not image.strip():
        return "sets no image"
    if "@" in image:
        digest = image.split("@", 1)[1]
        valid = re.fullmatch(r"sha256:[0-9a-f]{64}", digest) is not None
        return None if valid else f"image {image} has a malformed digest"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if require_digest:
        problem = "is not pinned by digest (@sha256:...)"
    elif tag is None:
        problem = "has no tag (pulls :latest)"
    elif tag in ("", "latest"):
        problem = "uses the mutable :latest tag"
    else:
        return None
    return f"image {image} {problem}"


@resource_rule(
    name="k8s-image-pinned",
    description="Every container image names an immutable version: a tag other than latest, or a digest.",
    domain="kubernetes",
    category="security",
    severity="medium",
    remediation="Pin each image to a release tag (vllm/vllm-openai:v0.9.2) or, better, a digest "
    "(image@sha256:...); set requireDigest to demand digests.",
    types=WORKLOAD_TYPES,
    settings={
        "requireDigest": {
            "type": "boolean",
            "default": False,
            "description": "Demand @sha256: digests, not tags.",
        }
    },
)
def k8s_image_pinned(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    require_digest = config.get("requireDigest") is True
    who = workload(resource)
    for spec, path in pod_specs(resource):
        for container, cpath in containers(spec, path):
            problem = _image_problem(container.get("image"), require_digest)
            if problem:
                yield f"{who}: container {container_name(container, cpath)} {problem}"


@resource_rule(
    name="k8s-resources-set",
    description="Every container declares CPU and memory requests and limits.",
    domain="kubernetes",
    category="security",
    severity="medium",
    remediation="Set resources.requests and resources.limits for cpu and memory on every container, init "
    "containers included (limits alone also set requests, as Kubernetes defaults requests to limits).",
    types=WORKLOAD_TYPES,
    settings={
        "requests": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["cpu", "memory"],
            "description": "Resources every container must request.",
        },
        "limits": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["cpu", "memory"],
            "description": "Resources every container must limit.",
        },
    },
)
def k8s_resources_set(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    who = workload(resource)
    for spec, path in pod_specs(resource):
        for container, cpath in containers(spec, path):
            resources = as_map(container.get("resources"))
            limits = as_map(resources.get("limits"))
            # Kubernetes defaults a missing request to the limit.
            requests = {**limits, **as_map(resources.get("requests"))}
            missing = [
                f"{kind}.{name}"
                for kind, declared in (("requests", requests), ("limits", limits))
                for name in config.get(kind) or []
                if declared.get(name) in (None, "")
            ]
            if missing:
                yield f"{who}: container {container_name(container, cpath)} sets no {', '.join(missing)}"


@resource_rule(
    name="k8s-gpu-request-equals-limit",
    description="A container asking for GPUs requests exactly its limit, and its pod tolerates the GPU taint.",
    domain="kubernetes",
    category="security",
    severity="medium",
    remediation="Set resources.limits.nvidia.com/gpu (and requests, if given, to the same count) and add the "
    "toleration {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule} to the pod spec.",
    types=WORKLOAD_TYPES,
    settings={
        "gpuResource": {
            "type": "string",
            "default": "nvidia.com/gpu",
            "description": "Extended resource name of a GPU.",
        },
        "taintKey": {"type": "string", "default": "nvidia.com/gpu", "description": "GPU node taint key."},
        "taintValue": {"type": "string", "default": "true", "description": "GPU node taint value."},
        "taintEffect": {"type": "string", "default": "NoSchedule", "description": "GPU node taint effect."},
    },
)
def k8s_gpu_request_equals_limit(
    resource: ResourceValidationArgs, config: Mapping[str, Any]
) -> Iterable[str]:
    gpu = str(config.get("gpuResource") or "nvidia.com/gpu")
    who = workload(resource)
    for spec, path in pod_specs(resource):
        uses_gpu = False
        for container, cpath in containers(spec, path):
            resources = as_map(container.get("resources"))
            limit = as_map(resources.get("limits")).get(gpu)
            request = as_map(resources.get("requests")).get(gpu)
            if limit is None and request is None:
                continue
            uses_gpu = True
            name = container_name(container, cpath)
            if limit is None:
                yield f"{who}: container {name} requests {gpu} without a limit"
            elif request is not None and _quantity(request) != _quantity(limit):
                yield f"{who}: container {name} requests {request} {gpu} but limits {limit}"
        if uses_gpu and not any(_tolerates(t, config) for t in items(spec.get("tolerations"))):
            yield (
                f"{who}: pod uses {gpu} but does not tolerate the taint "
                f"{config.get('taintKey')}={config.get('taintValue')}:{config.get('taintEffect')}"
            )


def _tolerates(toleration: Any, config: Mapping[str, Any]) -> bool:
    toleration = as_map(toleration)
    effect = toleration.get("effect")
    if effect and effect != config.get("taintEffect"):
        return False
    key = toleration.get("key")
    if toleration.get("operator") == "Exists":
        return not key or key == config.get("taintKey")
    return key == config.get("taintKey") and str(toleration.get("value") or "") == config.get("taintValue")


@resource_rule(
    name="k8s-probes",
    description="Every container of a Deployment or StatefulSet has readiness and liveness probes.",
    domain="kubernetes",
    category="availability",
    severity="medium",
    remediation="Add readinessProbe and livenessProbe (vLLM: HTTP GET /health on port 8000) and a "
    "startupProbe long enough for the model to load, so slow starts are not killed.",
    types=[DEPLOYMENT, STATEFUL_SET],
    settings={
        "requiredProbes": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["readinessProbe", "livenessProbe"],
            "description": "Probes every (non-init) container must declare.",
        }
    },
)
def k8s_probes(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    who = workload(resource)
    for spec, path in pod_specs(resource):
        for container, cpath in containers(spec, path, init=False):
            missing = [p for p in config.get("requiredProbes") or [] if container.get(p) is None]
            if missing:
                yield f"{who}: container {container_name(container, cpath)} has no {', '.join(missing)}"


# ------------------------------------------------------------------------------------- placement, exposure


@resource_rule(
    name="k8s-no-default-namespace-or-sa",
    description="Workloads run in their own namespace under their own service account.",
    domain="kubernetes",
    category="security",
    severity="medium",
    remediation="Set metadata.namespace explicitly (a provider-level default namespace is invisible to "
    "policies) and spec.serviceAccountName to a dedicated service account.",
    types=WORKLOAD_TYPES,
    settings={
        "forbiddenNamespaces": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["default"],
            "description": "Namespaces no workload may run in (a missing namespace counts as default).",
        }
    },
)
def k8s_no_default_namespace_or_sa(
    resource: ResourceValidationArgs, config: Mapping[str, Any]
) -> Iterable[str]:
    who = workload(resource)
    namespace = prop(resource, "metadata.namespace")
    if not namespace or namespace in (config.get("forbiddenNamespaces") or []):
        yield f"{who} runs in namespace {namespace or 'default (none set)'}"
    for spec, _ in pod_specs(resource):
        account = spec.get("serviceAccountName") or spec.get("serviceAccount")
        if not account or account == "default":
            yield f"{who} runs under the default service account"


@resource_rule(
    name="k8s-no-public-loadbalancer",
    description="LoadBalancer Services are internal unless exempted.",
    domain="kubernetes",
    category="security",
    severity="high",
    remediation="Annotate the Service with service.beta.kubernetes.io/aws-load-balancer-scheme: internal "
    "(AWS Load Balancer Controller) or service.beta.kubernetes.io/aws-load-balancer-internal: 'true'; "
    "publish endpoints through a reviewed ingress instead.",
    types=[SERVICE],
)
def k8s_no_public_loadbalancer(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    if prop(resource, "spec.type") != "LoadBalancer":
        return
    annotations = as_map(prop(resource, "metadata.annotations"))
    scheme = annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme")
    internal = annotations.get("service.beta.kubernetes.io/aws-load-balancer-internal")
    if scheme != "internal" and str(internal).lower() != "true":
        yield f"Service {resource.name} is a LoadBalancer without an internal-scheme annotation (internet-facing)"


# ------------------------------------------------------------------------------------------- stack rules


def _autoscaler_floor(
    deployment: PolicyResource, scalers: Sequence[PolicyResource]
) -> tuple[float, str] | None:
    """The replica floor a KEDA ScaledObject or an HPA targeting the Deployment sets, with its source."""
    namespace, name = namespace_of(deployment), object_name(deployment)
    for scaler in scalers:
        target = as_map(prop(scaler, "spec.scaleTargetRef"))
        if (
            namespace_of(scaler) == namespace
            and target.get("name") == name
            and (target.get("kind") or "Deployment") == "Deployment"
        ):
            if scaler.resource_type == SCALED_OBJECT:
                # KEDA's default minReplicaCount is 0.
                floor = prop(scaler, "spec.minReplicaCount", 0)
                return float(floor), f"ScaledObject {scaler.name} minReplicaCount"
            floor = prop(scaler, "spec.minReplicas", 1)
            return float(floor), f"HorizontalPodAutoscaler {scaler.name} minReplicas"
    return None


@stack_rule(
    name="k8s-prod-availability",
    description="Deployments keep at least minReplicas replicas (counting KEDA and HPA floors) and, if "
    "required, a PodDisruptionBudget.",
    domain="kubernetes",
    category="availability",
    severity="high",
    remediation="Raise spec.replicas, or the ScaledObject's minReplicaCount / the HPA's minReplicas, to "
    "minReplicas; add a policy/v1 PodDisruptionBudget whose selector matches the Deployment's pod labels.",
    settings={
        "minReplicas": {
            "type": "integer",
            "minimum": 0,
            "default": 1,
            "description": "Fewest replicas a Deployment may scale to.",
        },
        "requirePdb": {
            "type": "boolean",
            "default": False,
            "description": "Demand a PodDisruptionBudget for every Deployment.",
        },
    },
)
def k8s_prod_availability(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[tuple[str, str | None]]:
    minimum = float(config.get("minReplicas", 1))
    scalers = of_type(resources, SCALED_OBJECT) + of_type(resources, HPA)
    budgets = of_type(resources, PDB)
    for deployment in of_type(resources, DEPLOYMENT):
        who = f"Deployment {namespace_of(deployment)}/{object_name(deployment)}"
        floor = _autoscaler_floor(deployment, scalers)
        if floor is None:
            floor = float(prop(deployment, "spec.replicas", 1)), "spec.replicas"
        if floor[0] < minimum:
            yield f"{who} can run {floor[0]:g} replicas ({floor[1]}), fewer than {minimum:g}", deployment.urn
        if config.get("requirePdb") is True:
            labels = as_map(prop(deployment, "spec.template.metadata.labels"))
            if not any(
                namespace_of(pdb) == namespace_of(deployment)
                and selector_matches(prop(pdb, "spec.selector"), labels)
                for pdb in budgets
            ):
                yield f"{who} has no PodDisruptionBudget selecting its pods", deployment.urn


@stack_rule(
    name="k8s-networkpolicy-per-namespace",
    description="Every namespace that runs workloads has at least one NetworkPolicy.",
    domain="kubernetes",
    category="security",
    severity="medium",
    remediation="Add a networking.k8s.io/v1 NetworkPolicy to the namespace: a default deny, then the "
    "ingress the inference service needs (gateway to port 8000, Prometheus to metrics).",
    settings={
        "ignoreNamespaces": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Namespaces exempt from the rule (e.g. kube-system add-ons).",
        }
    },
)
def k8s_networkpolicy_per_namespace(
    resources: Sequence[PolicyResource], config: Mapping[str, Any]
) -> Iterable[tuple[str, str | None]]:
    ignored = set(config.get("ignoreNamespaces") or [])
    covered = {namespace_of(p) for p in of_type(resources, NETWORK_POLICY)}
    namespaces = {object_name(n): n.urn for n in of_type(resources, NAMESPACE)}
    workloads: dict[str, list[PolicyResource]] = {}
    for resource in of_type(resources, *WORKLOAD_TYPES):
        workloads.setdefault(namespace_of(resource), []).append(resource)
    for namespace, members in workloads.items():
        if namespace in covered or namespace in ignored:
            continue
        names = ", ".join(workload(m) for m in members)
        yield (
            f"namespace {namespace} runs workloads ({names}) but has no NetworkPolicy",
            namespaces.get(namespace, members[0].urn),
        )
