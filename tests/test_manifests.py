"""What `keel plan ENV --manifests DIR` writes is what a cluster of the spec's version would accept.

Built-in kinds are validated with kubernetes-validate in strict mode at the spec's Kubernetes version (an
unknown kind or a removed API version is a failure, not a warning). Custom resources have no schema there:
they are validated against the JSON Schemas in ``tests/crd_schemas/``, written for Keel from each project's
CRD reference (each schema's ``description`` names its sources). A kind with neither fails. Checks neither
validator makes (replica bounds, PDB headroom, GPU request == limit, selectors and references that resolve)
follow, then one negative test per failure mode, so the validators are known to reject what they should.
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pulumi.runtime import rpc
from typer.testing import CliRunner

from keel.cli import app
from keel.engine import SECRET_MASK, Graph
from keel.manifests import HELM_RELEASE, write_manifests
from keel.plan import Plan
from stacks.spec import SUPPORTED_KUBERNETES_VERSIONS
from tests.conftest import plan_with_secret

SHIPPED = ("dev", "staging", "prod")
SCHEMA_DIR = Path(__file__).parent / "crd_schemas"
VALUES_SUFFIX = ".values.yaml"

# Scope of the built-in kinds Keel may emit; a kind in neither set fails until it is added here.
NAMESPACED = {
    "ConfigMap", "CronJob", "DaemonSet", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job",
    "LimitRange", "NetworkPolicy", "PersistentVolumeClaim", "Pod", "PodDisruptionBudget", "ResourceQuota",
    "Role", "RoleBinding", "Secret", "Service", "ServiceAccount", "StatefulSet",
}  # fmt: skip
CLUSTER_SCOPED = {
    "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "IngressClass",
    "MutatingWebhookConfiguration", "Namespace", "PersistentVolume", "PriorityClass", "RuntimeClass",
    "StorageClass", "ValidatingWebhookConfiguration",
}  # fmt: skip
# GA built-in APIs that are still served but deprecated (kubernetes-validate has no notion of this).
DEPRECATED_BUILTINS = {
    ("v1", "Endpoints"): "deprecated since Kubernetes 1.33 (KEP-4974): use discovery.k8s.io/v1 EndpointSlice",
    ("v1", "ComponentStatus"): "deprecated since Kubernetes 1.19",
}
GA_VERSION = re.compile(r"^v\d+$")
EXACT_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
HELM_HEADER = re.compile(
    r"\A# Helm release (?P<release>\S+) in namespace (?P<namespace>\S+)\n"
    r"# chart (?P<chart>\S+) version (?P<version>\S+) from (?P<repo>\S+)\n"
)
CREDENTIAL_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
}

runner = CliRunner()
Doc = dict[str, Any]


# ------------------------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class CrdSchema:
    path: Path
    validator: jsonschema.Draft202012Validator
    scope: str
    deprecated: str | None


@cache
def crd_schemas() -> dict[tuple[str, str], CrdSchema]:
    """Keel's schemas for the custom resources it emits, by (apiVersion, kind)."""
    found: dict[tuple[str, str], CrdSchema] = {}
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        api_version = schema["properties"]["apiVersion"]["const"]
        kind = schema["properties"]["kind"]["const"]
        group, _, version = api_version.rpartition("/")
        if path.name != f"{group}_{version}_{kind}.json":
            raise AssertionError(f"{path.name} holds the schema of {kind} {api_version}")
        found[api_version, kind] = CrdSchema(
            path,
            jsonschema.Draft202012Validator(schema),
            schema["x-keel-scope"],
            schema.get("x-keel-deprecated"),
        )
    return found


def is_builtin(api_version: str) -> bool:
    """Core and ``*.k8s.io`` groups (and the dotless ones: apps, batch, policy...) come with Kubernetes."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _kubernetes_validate(doc: Mapping[str, Any], version: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            kubernetes_validate.validate(copy.deepcopy(dict(doc)), version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [
                f"kubernetes-validate has no schema for {doc['kind']} {doc['apiVersion']} at Kubernetes "
                f"{version}: an unknown kind, or an API version removed by then"
            ]
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(part) for part in error.absolute_path) or "(root)"
            return [f"{where}: {error.message} (strict schema, Kubernetes {error.version})"]
    return []


def _custom_resource(doc: Mapping[str, Any]) -> list[str]:
    api_version, kind = doc["apiVersion"], doc["kind"]
    schema = crd_schemas().get((api_version, kind))
    if schema is None:
        group, _, version = api_version.rpartition("/")
        return [
            f"no schema for {kind} {api_version}: kubernetes-validate has none for custom resources and "
            f"tests/crd_schemas/ has no {group}_{version}_{kind}.json (write one from the CRD's reference)"
        ]
    errors = sorted(schema.validator.iter_errors(dict(doc)), key=lambda e: e.json_path)
    return [f"{error.json_path}: {error.message} ({schema.path.name})" for error in errors]


def _metadata(doc: Mapping[str, Any]) -> list[str]:
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        return ["metadata.name is missing (the object would get a generated name the files cannot show)"]
    kind, api_version = doc["kind"], doc["apiVersion"]
    schema = crd_schemas().get((api_version, kind))
    if schema is not None:
        namespaced = schema.scope == "Namespaced"
    elif not is_builtin(api_version):
        return []  # no schema: reported by _custom_resource
    elif kind in NAMESPACED | CLUSTER_SCOPED:
        namespaced = kind in NAMESPACED
    else:
        return [f"the scope of {kind} is unknown: add it to NAMESPACED or CLUSTER_SCOPED in this test"]
    if namespaced and not metadata.get("namespace"):
        return [f"{kind} is namespaced but metadata.namespace is missing"]
    if not namespaced and "namespace" in metadata:
        return [f"{kind} is cluster-scoped but has metadata.namespace"]
    return []


def problems(doc: Any, kubernetes_version: str) -> list[str]:
    """Why the API server of ``kubernetes_version`` (or the CRD's validation) would reject ``doc``."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("apiVersion"), str) or not doc.get("kind"):
        return ["not a Kubernetes object (apiVersion and kind are required)"]
    api_version: str = doc["apiVersion"]
    if is_builtin(api_version):
        found = _kubernetes_validate(doc, kubernetes_version)
        if not GA_VERSION.match(api_version.rpartition("/")[2]):
            found.append(f"{api_version} is a pre-GA API version (alpha/beta APIs are deprecated or off)")
    else:
        found = _custom_resource(doc)
    return found + _metadata(doc)


def deprecation(doc: Mapping[str, Any]) -> str | None:
    """Why ``doc``'s API version is deprecated (served today, going away), or None."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    if not is_builtin(api_version):
        schema = crd_schemas().get((api_version, kind))
        return schema.deprecated if schema else None
    if (api_version, kind) in DEPRECATED_BUILTINS:
        return f"{kind} {api_version} is {DEPRECATED_BUILTINS[api_version, kind]}"
    latest = kubernetes_validate.latest_version()
    if any("has no schema" in problem for problem in _kubernetes_validate(doc, latest)):
        return f"{kind} {api_version} is removed by Kubernetes {latest}"
    return None


# --------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class Export:
    """One environment's plan and the files `keel plan ENV --manifests DIR` wrote for it."""

    plan: Plan
    directory: Path
    written: tuple[Path, ...]
    objects: Mapping[str, Doc]  # file name -> Kubernetes object
    values: Mapping[str, str]  # file name -> text of a Helm values file

    @property
    def kubernetes_version(self) -> str:
        return f"{self.plan.spec.cluster.kubernetes_version}.0"

    @property
    def docs(self) -> list[Doc]:
        return list(self.objects.values())


def export_plan(plan: Plan, directory: Path) -> Export:
    written = tuple(write_manifests(plan.graph, directory))
    objects: dict[str, Doc] = {}
    values: dict[str, str] = {}
    for path in written:
        text = path.read_text(encoding="utf-8")
        if path.name.endswith(VALUES_SUFFIX):
            values[path.name] = text
        else:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
            assert len(documents) == 1, f"{path.name} holds {len(documents)} YAML documents"
            objects[path.name] = documents[0]
    return Export(plan, directory, written, objects, values)


@pytest.fixture(scope="module")
def exported(plans: dict[str, Plan], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Export]:
    return {env: export_plan(plans[env], tmp_path_factory.mktemp(f"manifests-{env}")) for env in SHIPPED}


def kubernetes_resources(graph: Graph) -> list[Any]:
    return [r for r in graph if r.custom and r.type.startswith("kubernetes:")]


def api_of(resource_type: str) -> tuple[str, str]:
    """``kubernetes:apps/v1:Deployment`` -> (``apps/v1``, ``Deployment``), read independently of keel."""
    match = re.fullmatch(r"kubernetes:(?P<group>[^/:]+)/(?P<version>[^:]+):(?P<kind>\w+)", resource_type)
    assert match, f"not a Kubernetes resource type: {resource_type}"
    group, version, kind = match.group("group", "version", "kind")
    return (version if group == "core" else f"{group}/{version}"), kind


def identity(doc: Mapping[str, Any]) -> tuple[str, str, str, str]:
    metadata = doc.get("metadata") or {}
    return doc["apiVersion"], doc["kind"], metadata.get("namespace", ""), metadata.get("name", "")


def ns(doc: Mapping[str, Any]) -> str:
    return doc["metadata"].get("namespace", "")


def name(doc: Mapping[str, Any]) -> str:
    return doc["metadata"]["name"]


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def find(docs: Iterable[Doc], kind: str, namespace: str, object_name: str) -> Doc | None:
    return next((d for d in of_kind(docs, kind) if ns(d) == namespace and name(d) == object_name), None)


def pod_labels(deployment: Doc) -> Mapping[str, str]:
    return deployment["spec"]["template"].get("metadata", {}).get("labels", {})


def containers(deployment: Doc) -> list[Doc]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_ports(deployment: Doc) -> list[Doc]:
    return [port for c in deployment["spec"]["template"]["spec"]["containers"] for port in c.get("ports", [])]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector is treated as selecting nothing here."""
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and labels.get(key) in values)
            or (operator == "Exists" and key not in labels)
            or (operator == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def selected_deployments(docs: Iterable[Doc], namespace: str, selector: Mapping[str, Any]) -> list[Doc]:
    return [
        d
        for d in of_kind(docs, "Deployment")
        if ns(d) == namespace and selector_matches(selector, pod_labels(d))
    ]


# ------------------------------------------------------------------------------------- semantic checks


def scaled_object_for(docs: Iterable[Doc], deployment: Doc) -> Doc | None:
    for so in of_kind(docs, "ScaledObject"):
        target = so["spec"]["scaleTargetRef"]
        if (
            ns(so) == ns(deployment)
            and target["name"] == name(deployment)
            and target.get("kind", "Deployment") == "Deployment"
            and target.get("apiVersion", "apps/v1") == "apps/v1"
        ):
            return so
    return None


def replica_floor(docs: Iterable[Doc], deployment: Doc) -> int:
    """The fewest replicas the workload runs when it runs at all (KEDA's minimum, else spec.replicas)."""
    so = scaled_object_for(docs, deployment)
    if so is None:
        return int(deployment["spec"].get("replicas", 1))
    return int(so["spec"].get("minReplicaCount", 0))


def scaling_problems(docs: list[Doc]) -> list[str]:
    """KEDA's webhook rules (scaledobject_webhook.go) and the HTTP add-on wiring, which no schema can express."""
    found: list[str] = []
    for so in of_kind(docs, "ScaledObject"):
        where, spec = f"ScaledObject {ns(so)}/{name(so)}", so["spec"]
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if low > high:
            found.append(f"{where}: minReplicaCount {low} > maxReplicaCount {high}")
        if "idleReplicaCount" in spec and spec["idleReplicaCount"] >= low:
            found.append(f"{where}: idleReplicaCount must be below minReplicaCount {low}")
        if "fallback" in spec and spec["fallback"]["replicas"] > high:
            found.append(
                f"{where}: fallback replicas {spec['fallback']['replicas']} > maxReplicaCount {high}"
            )
        trigger_names = [t["name"] for t in spec["triggers"] if t.get("name")]
        if len(trigger_names) != len(set(trigger_names)):
            found.append(f"{where}: trigger names are not unique: {trigger_names}")
        hpa_name = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("name")
        if hpa_name is None and len(f"keda-hpa-{name(so)}") > 63:
            found.append(f"{where}: the HPA name keda-hpa-{name(so)} is longer than 63 characters")
        target = find(
            docs, spec["scaleTargetRef"].get("kind", "Deployment"), ns(so), spec["scaleTargetRef"]["name"]
        )
        if target is None:
            found.append(f"{where}: scales {spec['scaleTargetRef']['name']}, which the plan does not create")
        elif "replicas" in target["spec"]:
            found.append(f"{where}: its target sets spec.replicas, which every apply would fight KEDA over")
        for trigger in spec["triggers"]:
            if trigger["type"] != "external-push":
                continue
            if "httpScaledObject" in trigger["metadata"]:
                found.append(
                    f"{where}: trigger {trigger.get('name')} names an HTTPScaledObject (deprecated since the "
                    "HTTP add-on 0.14): name an InterceptorRoute in metadata.interceptorRoute"
                )
            wanted = trigger["metadata"].get("interceptorRoute")
            if wanted and find(docs, "InterceptorRoute", ns(so), wanted) is None:
                found.append(
                    f"{where}: trigger {trigger.get('name')} names InterceptorRoute {wanted}, not in the plan"
                )
    for route in of_kind(docs, "InterceptorRoute"):
        where, spec = f"InterceptorRoute {ns(route)}/{name(route)}", route["spec"]
        target = spec["target"]
        service = find(docs, "Service", ns(route), target["service"])
        if service is None:
            found.append(f"{where}: routes to Service {target['service']}, not in the plan")
            continue
        ports = service["spec"]["ports"]
        if ("port" in target and target["port"] not in [p["port"] for p in ports]) or (
            "portName" in target and target["portName"] not in [p.get("name") for p in ports]
        ):
            found.append(
                f"{where}: Service {name(service)} has no port {target.get('port', target.get('portName'))}"
            )
        # The route only routes and reports: exactly one ScaledObject must read its metric and scale the pods
        # behind its Service, or a request held at zero replicas wakes nothing.
        owners = [
            so
            for so in of_kind(docs, "ScaledObject")
            if ns(so) == ns(route)
            and any(
                t["type"] == "external-push" and t["metadata"].get("interceptorRoute") == name(route)
                for t in so["spec"]["triggers"]
            )
        ]
        if len(owners) != 1:
            found.append(f"{where}: {len(owners)} ScaledObjects read its metric, expected exactly one")
            continue
        scaled = find(docs, "Deployment", ns(route), owners[0]["spec"]["scaleTargetRef"]["name"])
        served = selected_deployments(docs, ns(route), {"matchLabels": service["spec"].get("selector") or {}})
        if scaled is not None and scaled not in served:
            found.append(
                f"{where}: routes to Service {name(service)}, but ScaledObject {name(owners[0])} scales "
                f"{name(scaled)}, which that Service does not select"
            )
    return found


def _share(value: int | str, total: int) -> int:
    """An int-or-percent PDB field as a pod count (Kubernetes rounds percentages up)."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def disruption_budget_problems(docs: list[Doc]) -> list[str]:
    """Each PDB covers one workload, leaves at least one pod up and still lets one be evicted (drains)."""
    found: list[str] = []
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        where, spec = f"PodDisruptionBudget {ns(pdb)}/{name(pdb)}", pdb["spec"]
        targets = selected_deployments(docs, ns(pdb), spec.get("selector", {}))
        if len(targets) != 1:
            found.append(f"{where}: selects {len(targets)} Deployments, expected exactly one")
            continue
        floor = replica_floor(docs, targets[0])
        if "maxUnavailable" in spec:
            unavailable = _share(spec["maxUnavailable"], floor)
        elif "minAvailable" in spec:
            unavailable = floor - _share(spec["minAvailable"], floor)
        else:
            found.append(f"{where}: sets neither maxUnavailable nor minAvailable")
            continue
        if unavailable < 1:
            found.append(f"{where}: with {floor} replicas no pod may ever be evicted, so node drains hang")
        elif unavailable >= floor:
            found.append(
                f"{where}: lets all {floor} replicas be evicted at once (maxUnavailable vs replicas)"
            )
    return found


def _gpus(quantity: Any) -> int | None:
    try:
        return int(str(quantity))
    except ValueError:
        return None


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else None


def gpu_problems(docs: list[Doc]) -> list[str]:
    """Extended resources must be requested as whole numbers with request == limit; vLLM uses TP x PP GPUs."""
    found: list[str] = []
    for deployment in of_kind(docs, "Deployment"):
        for container in containers(deployment):
            where = f"Deployment {ns(deployment)}/{name(deployment)} container {container['name']}"
            resources = container.get("resources", {})
            requests, limits = resources.get("requests", {}), resources.get("limits", {})
            gpu_keys = sorted({k for k in [*requests, *limits] if k.endswith("/gpu")})
            for key in gpu_keys:
                request, limit = _gpus(requests.get(key, limits.get(key))), _gpus(limits.get(key))
                if limit is None or request is None:
                    found.append(f"{where}: {key} needs a whole-number limit (request defaults to it)")
                elif request != limit:
                    found.append(f"{where}: {key} request {request} != limit {limit}")
            args = [str(a) for a in [*container.get("command", []), *container.get("args", [])]]
            parallel = _flag(args, "--tensor-parallel-size")
            if parallel is not None and gpu_keys:
                expected = int(parallel) * int(_flag(args, "--pipeline-parallel-size") or 1)
                if _gpus(limits.get(gpu_keys[0])) != expected:
                    found.append(
                        f"{where}: {expected} GPUs for tensor x pipeline parallelism, limit is {limits}"
                    )
    return found


def selector_problems(docs: list[Doc]) -> list[str]:
    """Services, PodMonitors and Deployments select the pods they mean to, on ports those pods expose."""
    found: list[str] = []
    for deployment in of_kind(docs, "Deployment"):
        if not selector_matches(deployment["spec"]["selector"], pod_labels(deployment)):
            found.append(
                f"Deployment {ns(deployment)}/{name(deployment)}: selector does not match its pod labels"
            )
    for service in of_kind(docs, "Service"):
        where, spec = f"Service {ns(service)}/{name(service)}", service["spec"]
        targets = selected_deployments(docs, ns(service), {"matchLabels": spec.get("selector") or {}})
        if not targets:
            found.append(f"{where}: selector {spec.get('selector')} matches no Deployment's pod labels")
            continue
        for port in spec.get("ports", []):
            target_port = port.get("targetPort", port["port"])
            key = "name" if isinstance(target_port, str) else "containerPort"
            for deployment in targets:
                if target_port not in [p.get(key) for p in container_ports(deployment)]:
                    found.append(
                        f"{where}: targetPort {target_port} is not a port of {name(deployment)}'s pods"
                    )
    for monitor in of_kind(docs, "PodMonitor"):
        where, spec = f"PodMonitor {ns(monitor)}/{name(monitor)}", monitor["spec"]
        if "namespaceSelector" in spec:
            continue  # scrapes other namespaces: nothing to resolve here
        targets = selected_deployments(docs, ns(monitor), spec["selector"])
        if not targets:
            found.append(f"{where}: selector matches no Deployment's pod labels")
        for endpoint in spec.get("podMetricsEndpoints", []):
            for deployment in targets:
                if "port" in endpoint and endpoint["port"] not in [
                    p.get("name") for p in container_ports(deployment)
                ]:
                    found.append(
                        f"{where}: port {endpoint['port']} is not a named port of {name(deployment)}'s pods"
                    )
    return found


def reference_problems(docs: list[Doc], region: str) -> list[str]:
    """Namespaces, service accounts, secret stores and secrets that objects name all exist in the plan."""
    found: list[str] = []
    namespaces = {name(d) for d in of_kind(docs, "Namespace")} | {"default", "kube-system"}
    found += [
        f"{d['kind']} {name(d)}: namespace {ns(d)} is not created"
        for d in docs
        if ns(d) not in (namespaces | {""})
    ]
    for deployment in of_kind(docs, "Deployment"):
        where, pod = f"Deployment {ns(deployment)}/{name(deployment)}", deployment["spec"]["template"]["spec"]
        account = pod.get("serviceAccountName")
        if account and find(docs, "ServiceAccount", ns(deployment), account) is None:
            found.append(f"{where}: ServiceAccount {account} is not in the plan")
        for container in containers(deployment):
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                sources = [
                    es
                    for es in of_kind(docs, "ExternalSecret")
                    if ns(es) == ns(deployment)
                    and es["spec"].get("target", {}).get("name", name(es)) == ref["name"]
                    and ref["key"] in [item["secretKey"] for item in es["spec"]["data"]]
                ]
                if not sources and not ref.get("optional"):
                    found.append(
                        f"{where}: env {variable['name']} reads Secret {ref['name']}/{ref['key']}, "
                        "which no ExternalSecret makes"
                    )
    for es in of_kind(docs, "ExternalSecret"):
        store = es["spec"]["secretStoreRef"]
        kind = store.get("kind", "SecretStore")
        if find(docs, kind, "" if kind == "ClusterSecretStore" else ns(es), store["name"]) is None:
            found.append(f"ExternalSecret {ns(es)}/{name(es)}: {kind} {store['name']} is not in the plan")
        secret_keys = [item["secretKey"] for item in es["spec"]["data"]]
        if len(secret_keys) != len(set(secret_keys)):
            found.append(f"ExternalSecret {ns(es)}/{name(es)}: duplicate secretKey in {secret_keys}")
    for store in of_kind(docs, "ClusterSecretStore"):
        aws = store["spec"]["provider"]["aws"]
        if aws["region"] != region:
            found.append(
                f"ClusterSecretStore {name(store)}: region {aws['region']}, the environment is in {region}"
            )
        account_ref = aws.get("auth", {}).get("jwt", {}).get("serviceAccountRef")
        if account_ref and "namespace" in account_ref:
            account = find(docs, "ServiceAccount", account_ref["namespace"], account_ref["name"])
            if account is None:
                found.append(
                    f"ClusterSecretStore {name(store)}: ServiceAccount {account_ref} is not in the plan"
                )
            elif "eks.amazonaws.com/role-arn" not in account["metadata"].get("annotations", {}):
                found.append(
                    f"ClusterSecretStore {name(store)}: ServiceAccount {account_ref['name']} has no IRSA role"
                )
    return found


SEMANTIC_CHECKS: dict[str, Callable[[list[Doc]], list[str]]] = {
    "scaling": scaling_problems,
    "disruption budgets": disruption_budget_problems,
    "GPUs": gpu_problems,
    "selectors": selector_problems,
}


# ---------------------------------------------------------------------------------------- the schemas


def test_crd_schemas_are_valid_strict_and_cite_their_sources() -> None:
    schemas = crd_schemas()
    assert set(schemas) == {
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("http.keda.sh/v1alpha1", "HTTPScaledObject"),  # no longer emitted: the deprecation report's control
        ("http.keda.sh/v1beta1", "InterceptorRoute"),
        ("monitoring.coreos.com/v1", "PodMonitor"),
        ("external-secrets.io/v1", "ExternalSecret"),
        ("external-secrets.io/v1", "ClusterSecretStore"),
    }
    shared: dict[str, Any] | None = None
    for schema in schemas.values():
        document = schema.validator.schema
        assert isinstance(document, dict)
        assert re.search(r"https://\S+", document["description"]), schema.path.name
        assert schema.scope in {"Namespaced", "Cluster"}
        assert document["additionalProperties"] is False
        assert document["properties"]["spec"]["additionalProperties"] is False, schema.path.name
        common = {
            k: document["$defs"][k] for k in ("objectMeta", "dnsSubdomain", "dnsLabel", "qualifiedName")
        }
        shared = shared or common
        assert common == shared, f"{schema.path.name}: metadata definitions differ from the other schemas'"


def test_kubernetes_validate_has_schemas_for_every_supported_kubernetes_version() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keel"}}
    for version in SUPPORTED_KUBERNETES_VERSIONS:
        assert problems(namespace, f"{version}.0") == [], version


# ---------------------------------------------------------------------------------------- every file


@pytest.mark.parametrize("env", SHIPPED)
def test_every_manifest_validates_against_the_schema_of_the_spec_kubernetes_version(
    exported: dict[str, Export], env: str
) -> None:
    export = exported[env]
    assert export.objects
    found = {file: problems(doc, export.kubernetes_version) for file, doc in sorted(export.objects.items())}
    assert {file: found_here for file, found_here in found.items() if found_here} == {}
    builtin = [d for d in export.docs if is_builtin(d["apiVersion"])]
    custom = [d for d in export.docs if not is_builtin(d["apiVersion"])]
    assert builtin
    assert custom
    assert len(builtin) + len(custom) == len(export.objects)


@pytest.mark.parametrize("env", SHIPPED)
def test_no_manifest_uses_a_deprecated_api_version(exported: dict[str, Export], env: str) -> None:
    found = {file: deprecation(doc) for file, doc in sorted(exported[env].objects.items())}
    assert {file: reason for file, reason in found.items() if reason} == {}


@pytest.mark.parametrize("env", SHIPPED)
def test_helm_values_files_name_an_exactly_pinned_chart_from_an_https_repository(
    exported: dict[str, Export], env: str
) -> None:
    export = exported[env]
    releases = {(r.inputs["namespace"], r.inputs["name"]): r for r in export.plan.graph.of_type(HELM_RELEASE)}
    assert len(export.values) == len(releases) > 0
    for file, text in sorted(export.values.items()):
        header = HELM_HEADER.match(text)
        assert header, f"{file}: no chart header"
        release = releases[header["namespace"], header["release"]]
        assert file == f"helm-{header['namespace']}-{header['release']}{VALUES_SUFFIX}"
        assert EXACT_CHART_VERSION.match(header["version"]), (
            f"{file}: chart version {header['version']} is a range"
        )
        repository = urlsplit(header["repo"])
        assert repository.scheme == "https", f"{file}: chart repository {header['repo']} is not https"
        assert repository.netloc, file
        assert (header["chart"], header["version"], header["repo"]) == (
            release.inputs["chart"],
            release.inputs["version"],
            release.inputs["repositoryOpts"]["repo"],
        )
        values = yaml.safe_load(text)
        assert isinstance(values, dict), f"{file}: values are not a mapping"
        assert values == (release.inputs.get("values") or {}), f"{file}: values differ from the release's"


@pytest.mark.parametrize("env", SHIPPED)
def test_every_kubernetes_resource_is_written_to_exactly_one_file(
    exported: dict[str, Export], env: str
) -> None:
    export = exported[env]
    resources = kubernetes_resources(export.plan.graph)
    assert sorted(export.directory.iterdir()) == sorted(export.written)
    assert len({p.name for p in export.written}) == len(export.written) == len(resources)
    planned: Counter[tuple[str, ...]] = Counter()
    for resource in resources:
        if resource.type == HELM_RELEASE:
            planned["helm", resource.inputs["namespace"], resource.inputs["name"]] += 1
        else:
            api_version, kind = api_of(resource.type)
            meta = resource.inputs.get("metadata") or {}
            planned[api_version, kind, meta.get("namespace", ""), meta.get("name", "")] += 1
    files: Counter[tuple[str, ...]] = Counter(identity(doc) for doc in export.docs)
    for text in export.values.values():
        header = HELM_HEADER.match(text)
        assert header
        files["helm", header["namespace"], header["release"]] += 1
    assert files == planned
    assert set(files.values()) == {1}


@pytest.mark.parametrize("env", SHIPPED)
def test_files_hold_exactly_the_planned_objects(exported: dict[str, Export], env: str) -> None:
    export = exported[env]
    planned = {}
    for resource in kubernetes_resources(export.plan.graph):
        if resource.type != HELM_RELEASE:
            api_version, kind = api_of(resource.type)
            doc = {"apiVersion": api_version, "kind": kind, **resource.inputs}
            planned[identity(doc)] = doc
    for file, doc in export.objects.items():
        assert doc == planned[identity(doc)], f"{file} differs from the planned inputs"  # 1 == 1.0


@pytest.mark.parametrize("env", SHIPPED)
def test_no_file_holds_a_secret_value(exported: dict[str, Export], env: str) -> None:
    export = exported[env]
    for path in export.written:
        text = path.read_text(encoding="utf-8")
        assert SECRET_MASK not in text, f"{path.name}: a secret input would be applied as {SECRET_MASK!r}"
        assert rpc._special_secret_sig not in text, path.name
        for what, pattern in CREDENTIAL_PATTERNS.items():
            assert not pattern.search(text), f"{path.name} holds what looks like a {what}"
    for doc in of_kind(export.docs, "Secret"):
        assert not ({"data", "stringData"} & set(doc)), f"Secret {name(doc)} carries its value in a manifest"


def test_a_configured_secret_never_reaches_a_manifest(tmp_path: Path) -> None:
    sentinel = "hf_SENTINEL_manifest_0123456789abcdefghij"
    written = write_manifests(plan_with_secret("dev", sentinel).graph, tmp_path)
    assert written
    assert [p.name for p in written if sentinel in p.read_text(encoding="utf-8")] == []


# ------------------------------------------------------------------------------------------ semantics


@pytest.mark.parametrize("env", SHIPPED)
@pytest.mark.parametrize("check", SEMANTIC_CHECKS)
def test_semantic_checks_pass(exported: dict[str, Export], env: str, check: str) -> None:
    assert SEMANTIC_CHECKS[check](exported[env].docs) == []


@pytest.mark.parametrize("env", SHIPPED)
def test_every_reference_resolves(exported: dict[str, Export], env: str) -> None:
    export = exported[env]
    assert reference_problems(export.docs, export.plan.spec.aws.region) == []


def test_the_checks_have_something_to_check(exported: dict[str, Export]) -> None:
    docs = [doc for export in exported.values() for doc in export.docs]
    for kind in (
        "ScaledObject",
        "InterceptorRoute",
        "PodDisruptionBudget",
        "Deployment",
        "Service",
        "PodMonitor",
    ):
        assert of_kind(docs, kind), kind
    servers = [c for d in of_kind(docs, "Deployment") for c in d["spec"]["template"]["spec"]["containers"]]
    assert all("nvidia.com/gpu" in c["resources"]["limits"] for c in servers)
    assert any("initContainers" in d["spec"]["template"]["spec"] for d in of_kind(docs, "Deployment"))


# ---------------------------------------------------------------------------------- negative controls


@pytest.fixture
def dev_docs(exported: dict[str, Export]) -> list[Doc]:
    return copy.deepcopy(exported["dev"].docs)


@pytest.fixture
def prod_docs(exported: dict[str, Export]) -> list[Doc]:
    return copy.deepcopy(exported["prod"].docs)


def test_an_unknown_field_in_a_deployment_fails_strict_validation(dev_docs: list[Doc]) -> None:
    deployment = of_kind(dev_docs, "Deployment")[0]
    deployment["spec"]["template"]["spec"]["containers"][0]["gpuCount"] = 1
    (problem,) = problems(deployment, "1.33.0")
    assert "gpuCount" in problem
    assert "spec.template.spec.containers.0" in problem


def test_a_wrongly_typed_field_fails_validation(dev_docs: list[Doc]) -> None:
    service = of_kind(dev_docs, "Service")[0]
    service["spec"]["ports"][0]["port"] = "8000"
    assert problems(service, "1.33.0") != []


def test_a_removed_api_version_fails(prod_docs: list[Doc]) -> None:
    pdb = of_kind(prod_docs, "PodDisruptionBudget")[0]
    pdb["apiVersion"] = "policy/v1beta1"
    found = problems(pdb, "1.33.0")
    assert any("no schema for PodDisruptionBudget policy/v1beta1 at Kubernetes 1.33.0" in p for p in found), (
        found
    )
    assert any("pre-GA" in p for p in found)


def test_a_served_beta_api_version_fails() -> None:
    claim = {
        "apiVersion": "resource.k8s.io/v1beta1",
        "kind": "ResourceClaim",
        "metadata": {"name": "gpu", "namespace": "model"},
        "spec": {},
    }
    assert [p for p in problems(claim, "1.33.0") if "pre-GA" in p] != []


def test_a_deprecated_api_version_is_reported() -> None:
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "x", "namespace": "y"}}
    assert "EndpointSlice" in (deprecation(endpoints) or "")
    http = {"apiVersion": "http.keda.sh/v1alpha1", "kind": "HTTPScaledObject", "metadata": {"name": "x"}}
    assert "InterceptorRoute" in (deprecation(http) or "")


def test_an_unknown_custom_resource_kind_fails() -> None:
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "qwen", "namespace": "model"},
        "spec": {},
    }
    assert "no schema for HTTPRoute" in problems(route, "1.33.0")[0]
    job = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": "qwen", "namespace": "model"},
        "spec": {},
    }
    (problem,) = problems(job, "1.33.0")
    assert "no schema for ScaledJob keda.sh/v1alpha1" in problem
    assert "keda.sh_v1alpha1_ScaledJob.json" in problem


def test_the_crd_schema_rejects_an_unknown_field_in_a_scaled_object_spec(dev_docs: list[Doc]) -> None:
    so = of_kind(dev_docs, "ScaledObject")[0]
    so["spec"]["minReplicas"] = 1  # HPA's spelling, not KEDA's
    (problem,) = problems(so, "1.33.0")
    assert "$.spec" in problem
    assert "'minReplicas' was unexpected" in problem


@pytest.mark.parametrize(
    ("kind", "mutate", "expected"),
    [
        (
            "ScaledObject",
            lambda d: d["spec"]["fallback"].update(behavior="sometimes"),
            "$.spec.fallback.behavior",
        ),
        ("ScaledObject", lambda d: d["spec"]["triggers"][0]["metadata"].pop("threshold"), "threshold"),
        ("ScaledObject", lambda d: d["spec"].update(maxReplicaCount=0), "$.spec.maxReplicaCount"),
        ("InterceptorRoute", lambda d: d["spec"]["target"].update(portName="http"), "$.spec.target"),
        ("InterceptorRoute", lambda d: d["spec"].update(scalingMetric={}), "$.spec.scalingMetric"),
        ("InterceptorRoute", lambda d: d["spec"].update(timeouts={"readiness": "20 min"}), "readiness"),
        ("InterceptorRoute", lambda d: d["spec"].update(replicas={"min": 0}), "$.spec"),
        (
            "ScaledObject",
            lambda d: d["spec"]["triggers"][1]["metadata"].update(httpScaledObject="qwen"),
            "$.spec.triggers[1].metadata",
        ),
        ("PodMonitor", lambda d: d["spec"]["podMetricsEndpoints"][0].update(interval="15 s"), "interval"),
        ("ExternalSecret", lambda d: d["spec"].update(data=[]), "$.spec.data"),
        ("ExternalSecret", lambda d: d["spec"]["target"].update(creationPolicy="Always"), "creationPolicy"),
        ("ClusterSecretStore", lambda d: d["metadata"].update(namespace="external-secrets"), "$.metadata"),
        ("ClusterSecretStore", lambda d: d["spec"]["provider"].update(vault={}), "$.spec.provider"),
        ("PodMonitor", lambda d: d["metadata"].pop("namespace"), "namespace"),
        ("ExternalSecret", lambda d: d["metadata"]["labels"].update({"bad key!": "x"}), "$.metadata.labels"),
    ],
)
def test_the_crd_schemas_reject_invalid_custom_resources(
    dev_docs: list[Doc], kind: str, mutate: Callable[[Doc], Any], expected: str
) -> None:
    doc = of_kind(dev_docs, kind)[0]
    assert problems(doc, "1.33.0") == []
    mutate(doc)
    found = problems(doc, "1.33.0")
    assert any(expected in p for p in found), found


def test_a_namespaced_builtin_without_namespace_fails(dev_docs: list[Doc]) -> None:
    service = of_kind(dev_docs, "Service")[0]
    del service["metadata"]["namespace"]
    assert problems(service, "1.33.0") == ["Service is namespaced but metadata.namespace is missing"]


def test_min_above_max_replicas_is_caught_although_the_schemas_accept_it(dev_docs: list[Doc]) -> None:
    so = of_kind(dev_docs, "ScaledObject")[0]
    so["spec"].update(minReplicaCount=3, maxReplicaCount=2)
    assert problems(so, "1.33.0") == []
    assert any("minReplicaCount 3 > maxReplicaCount 2" in p for p in scaling_problems(dev_docs))


def http_waker(docs: list[Doc]) -> Doc:
    """The ScaledObject trigger that reads an InterceptorRoute's metric (dev scales from zero)."""
    for so in of_kind(docs, "ScaledObject"):
        for trigger in so["spec"]["triggers"]:
            if "interceptorRoute" in trigger["metadata"]:
                return trigger
    raise AssertionError("no ScaledObject trigger names an InterceptorRoute")


def test_a_trigger_naming_a_missing_interceptor_route_is_caught(dev_docs: list[Doc]) -> None:
    http_waker(dev_docs)["metadata"]["interceptorRoute"] = "no-such-route"
    found = scaling_problems(dev_docs)
    assert any("names InterceptorRoute no-such-route, not in the plan" in p for p in found), found
    assert any("0 ScaledObjects read its metric" in p for p in found), found


def test_a_trigger_naming_an_http_scaled_object_is_caught(dev_docs: list[Doc]) -> None:
    metadata = http_waker(dev_docs)["metadata"]
    metadata["httpScaledObject"] = metadata.pop("interceptorRoute")
    found = scaling_problems(dev_docs)
    assert any("names an HTTPScaledObject (deprecated" in p for p in found), found


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.update(port=8080), "has no port 8080"),
        (lambda t: t.update(service="elsewhere"), "routes to Service elsewhere, not in the plan"),
    ],
)
def test_an_interceptor_route_to_a_wrong_service_port_is_caught(
    dev_docs: list[Doc], mutate: Callable[[Doc], Any], expected: str
) -> None:
    route = of_kind(dev_docs, "InterceptorRoute")[0]
    mutate(route["spec"]["target"])
    assert problems(route, "1.33.0") == []
    assert any(expected in p for p in scaling_problems(dev_docs))


def test_an_interceptor_route_to_pods_its_scaled_object_does_not_scale_is_caught(dev_docs: list[Doc]) -> None:
    route = of_kind(dev_docs, "InterceptorRoute")[0]
    service = find(dev_docs, "Service", ns(route), route["spec"]["target"]["service"])
    assert service is not None
    other = copy.deepcopy(service)
    other["metadata"]["name"] = "other"
    other["spec"]["selector"] = {"app": "other"}
    deployment = copy.deepcopy(of_kind(dev_docs, "Deployment")[0])
    deployment["metadata"]["name"] = "other"
    deployment["spec"]["selector"]["matchLabels"] = deployment["spec"]["template"]["metadata"]["labels"] = {
        "app": "other"
    }
    dev_docs += [other, deployment]
    route["spec"]["target"]["service"] = "other"
    assert any("which that Service does not select" in p for p in scaling_problems(dev_docs))


@pytest.mark.parametrize(("headroom", "expected"), [(0, "lets all"), (None, "drains hang")])
def test_a_pdb_that_protects_nothing_or_blocks_drains_is_caught(
    prod_docs: list[Doc], headroom: int | None, expected: str
) -> None:
    pdb = of_kind(prod_docs, "PodDisruptionBudget")[0]
    (deployment,) = selected_deployments(prod_docs, ns(pdb), pdb["spec"]["selector"])
    pdb["spec"]["maxUnavailable"] = 0 if headroom is None else replica_floor(prod_docs, deployment) + headroom
    assert problems(pdb, "1.33.0") == []
    assert any(expected in p for p in disruption_budget_problems(prod_docs))


def tensor_parallel_server(docs: list[Doc]) -> tuple[Doc, int]:
    """The vLLM container of a Deployment that shards a model over several GPUs, and its GPU count."""
    for deployment in of_kind(docs, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            gpus = int(container["resources"]["limits"].get("nvidia.com/gpu", 0))
            if gpus > 1 and "--tensor-parallel-size" in container.get("args", []):
                return container, gpus
    raise AssertionError("no tensor-parallel Deployment to mutate")


def test_gpu_request_other_than_limit_is_caught(prod_docs: list[Doc]) -> None:
    container, gpus = tensor_parallel_server(prod_docs)
    container["resources"]["requests"]["nvidia.com/gpu"] = str(gpus - 1)
    assert [p for d in of_kind(prod_docs, "Deployment") for p in problems(d, "1.33.0")] == []
    assert any(f"nvidia.com/gpu request {gpus - 1} != limit {gpus}" in p for p in gpu_problems(prod_docs))


def test_gpus_not_matching_tensor_parallelism_are_caught(prod_docs: list[Doc]) -> None:
    container, gpus = tensor_parallel_server(prod_docs)
    resources = container["resources"]
    resources["requests"]["nvidia.com/gpu"] = resources["limits"]["nvidia.com/gpu"] = str(gpus - 1)
    assert any(f"{gpus} GPUs for tensor x pipeline parallelism" in p for p in gpu_problems(prod_docs))


def test_a_service_selecting_no_pods_is_caught(dev_docs: list[Doc]) -> None:
    service = of_kind(dev_docs, "Service")[0]
    service["spec"]["selector"]["app.kubernetes.io/instance"] = "no-such-model"
    assert problems(service, "1.33.0") == []
    assert any("matches no Deployment" in p for p in selector_problems(dev_docs))


def test_a_service_port_the_pods_do_not_expose_is_caught(dev_docs: list[Doc]) -> None:
    service = of_kind(dev_docs, "Service")[0]
    service["spec"]["ports"][0]["targetPort"] = "metrics"
    assert any("targetPort metrics" in p for p in selector_problems(dev_docs))


def test_a_dangling_secret_reference_is_caught(dev_docs: list[Doc]) -> None:
    es = of_kind(dev_docs, "ExternalSecret")[0]
    es["spec"]["data"][0]["secretKey"] = "TOKEN"
    assert any("which no ExternalSecret makes" in p for p in reference_problems(dev_docs, "us-east-1"))


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_writes_the_manifests_and_says_how_many(tmp_path: Path) -> None:
    target = tmp_path / "out"
    result = runner.invoke(app, ["plan", "dev", "--manifests", str(target)])
    assert result.exit_code == 0, result.output
    match = re.search(r"wrote (\d+) manifests", result.stderr)
    assert match, result.stderr
    files = sorted(target.iterdir())
    assert int(match[1]) == len(files) > 0
    assert any(f.name.startswith("deployment-model-") for f in files)
    assert any(f.name.endswith(VALUES_SUFFIX) for f in files)
    for path in files:
        if not path.name.endswith(VALUES_SUFFIX):
            assert problems(yaml.safe_load(path.read_text(encoding="utf-8")), "1.33.0") == [], path.name
