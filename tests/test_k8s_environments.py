"""The Kubernetes layer of the shipped environments (dev, staging, prod), read off the whole planned graph.

Per model of each environment's spec: its objects in ``model-<name>``, autoscaling bounds of the tier, GPU sizing
and placement checked against the GPU node groups the same plan creates, the vLLM engine flags, where weights come
from and what the model's IRSA role may do. Per environment: the add-on Helm releases (pins, placement) and the
cluster autoscaler's role. The ``plans`` fixture (``conftest.py``) plans each environment once per session.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from keel.config import load_environment
from keel.engine import Graph, PlannedResource
from keel.plan import Plan, environment_file
from stacks.catalogue import gpu_instance
from stacks.spec import ModelSpec
from tests.chart_layout import SYSTEM_COMPONENTS
from tests.conftest import SHIPPED

T_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
T_SERVICE = "kubernetes:core/v1:Service"
T_SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
T_NAMESPACE = "kubernetes:core/v1:Namespace"
T_SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
T_INTERCEPTOR_ROUTE = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
T_NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
T_PDB = "kubernetes:policy/v1:PodDisruptionBudget"
T_EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
T_RELEASE = "kubernetes:helm.sh/v3:Release"
T_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
T_ROLE = "aws:iam/role:Role"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"

#: minReplicas each tier gives a model whose config is silent (README, "Environments and tiers").
TIER_MIN_REPLICAS = {"dev": 0, "staging": 1, "prod": 2}
POOL_LABEL = "keel.dev/gpu-pool"
GPU_RESOURCE = "nvidia.com/gpu"
ZONE_KEY = "topology.kubernetes.io/zone"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
SYSTEM_SELECTOR = {"keel.dev/node-role": "system"}
#: Kubernetes spelling of the EKS API's taint effects.
TAINT_EFFECT = {
    "NO_SCHEDULE": "NoSchedule",
    "NO_EXECUTE": "NoExecute",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
}
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")
#: Add-ons whose pods belong on GPU nodes (per-node agents); every other add-on runs on the system nodes.
GPU_CHARTS = ("nvidia-device-plugin", "dcgm-exporter")
#: Where each system add-on chart takes a pod's placement, read from the pinned charts' values.yaml; "" is the
#: top level. Every pod-running component of the chart that Keel leaves enabled is listed.
#: Read-only IAM verbs; anything else is a mutation.
READ_ONLY_ACTION = re.compile(r"^[a-z0-9-]+:(Describe|Get|List)[A-Za-z]*$")


def _shipped_models() -> list[tuple[str, str]]:
    """(environment, model name) for every model the shipped stack files declare (config only, no planning)."""
    return [
        (env, model.name) for env in SHIPPED for model in load_environment(environment_file(env))[1].models
    ]


MODELS = _shipped_models()
PROD_MODELS = [(env, name) for env, name in MODELS if env == "prod"]
PER_MODEL = pytest.mark.parametrize(("env", "name"), MODELS)
#: Models that load weights from the artifact bucket (prod) hold an IRSA role; hub models (dev, staging) need none.
PER_BUCKET_MODEL = pytest.mark.parametrize(("env", "name"), [m for m in MODELS if m[0] == "prod"])
PER_HUB_MODEL = pytest.mark.parametrize(("env", "name"), [m for m in MODELS if m[0] != "prod"])
PER_ENV = pytest.mark.parametrize("env", SHIPPED)

# ------------------------------------------------------------------------------------------------ helpers


def model_spec(plan: Plan, name: str) -> ModelSpec:
    return next(m for m in plan.spec.models if m.name == name)


def namespace_of(resource: PlannedResource) -> str | None:
    return (resource.inputs.get("metadata") or {}).get("namespace")


def in_namespace(graph: Graph, type_: str, namespace: str) -> list[PlannedResource]:
    return [r for r in graph.of_type(type_) if namespace_of(r) == namespace]


def one_in(graph: Graph, type_: str, namespace: str) -> PlannedResource:
    found = in_namespace(graph, type_, namespace)
    assert len(found) == 1, f"{type_} in {namespace}: {[r.name for r in found]}"
    return found[0]


def network_policy(graph: Graph, name: str, policy: str) -> PlannedResource:
    (found,) = [
        p
        for p in in_namespace(graph, T_NETWORK_POLICY, f"model-{name}")
        if p.inputs["metadata"]["name"] == policy
    ]
    return found


def deployment(plan: Plan, name: str) -> PlannedResource:
    return one_in(plan.graph, T_DEPLOYMENT, f"model-{name}")


def pod_spec(plan: Plan, name: str) -> Mapping[str, Any]:
    return deployment(plan, name).inputs["spec"]["template"]["spec"]


def vllm(plan: Plan, name: str) -> Mapping[str, Any]:
    (container,) = [c for c in pod_spec(plan, name)["containers"] if c["name"] == "vllm"]
    return container


def flags(arguments: list[str]) -> dict[str, list[str]]:
    """``--flag value`` / ``--flag=value`` pairs (a flag without a value maps to ``[""]``), in order."""
    parsed: dict[str, list[str]] = {}
    index = 0
    while index < len(arguments):
        arg = arguments[index]
        assert arg.startswith("--"), f"stray argument {arg!r} in {arguments}"
        if "=" in arg:
            key, value = arg.split("=", 1)
            index += 1
        elif index + 1 < len(arguments) and not arguments[index + 1].startswith("--"):
            key, value = arg, arguments[index + 1]
            index += 2
        else:
            key, value = arg, ""
            index += 1
        parsed.setdefault(key, []).append(value)
    return parsed


def gpu_node_groups(graph: Graph) -> list[Mapping[str, Any]]:
    """Inputs of the managed node groups that run the NVIDIA AMI (GPU nodes, whatever their labels say)."""
    return [g.inputs for g in graph.of_type(T_NODE_GROUP) if "NVIDIA" in g.inputs["amiType"]]


def other_node_groups(graph: Graph) -> list[Mapping[str, Any]]:
    return [g.inputs for g in graph.of_type(T_NODE_GROUP) if "NVIDIA" not in g.inputs["amiType"]]


def pool_node_groups(graph: Graph, pool: str) -> list[Mapping[str, Any]]:
    return [g for g in gpu_node_groups(graph) if (g.get("labels") or {}).get(POOL_LABEL) == pool]


def tolerates(tolerations: list[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' matching of a node taint (EKS API spelling) by a pod's tolerations."""
    effect = TAINT_EFFECT[taint["effect"]]
    for toleration in tolerations:
        operator = toleration.get("operator", "Equal")
        key = toleration.get("key", "")
        if key != taint["key"] and not (key == "" and operator == "Exists"):
            continue
        if toleration.get("effect") not in (None, "", effect):
            continue
        if operator == "Exists" or toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def statements(document: str) -> list[dict[str, Any]]:
    parsed = json.loads(document)
    listed = parsed["Statement"]
    return listed if isinstance(listed, list) else [listed]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def trust_subjects(role: PlannedResource) -> list[str]:
    """Every value of a ``...:sub`` condition key in the role's trust policy, whatever the operator."""
    return [
        subject
        for statement in statements(role.inputs["assumeRolePolicy"])
        for condition in (statement.get("Condition") or {}).values()
        for key, value in condition.items()
        if key.endswith(":sub")
        for subject in as_list(value)
    ]


def role_trusting(graph: Graph, namespace: str, service_account: str) -> PlannedResource:
    """The one IAM role whose trust names the service account (or anything in its namespace)."""
    found = [
        r
        for r in graph.of_type(T_ROLE)
        if any(s.startswith(f"system:serviceaccount:{namespace}:") for s in trust_subjects(r))
    ]
    assert len(found) == 1, f"roles trusting {namespace}: {[r.name for r in found]}"
    return found[0]


def policies_of(graph: Graph, role: PlannedResource) -> list[PlannedResource]:
    return [
        p
        for p in graph.of_type(T_ROLE_POLICY)
        if role.urn in p.property_dependencies.get("role", ()) or p.inputs.get("role") == role.outputs["name"]
    ]


def release(graph: Graph, chart: str) -> PlannedResource:
    (found,) = [r for r in graph.of_type(T_RELEASE) if r.inputs["chart"] == chart]
    return found


def at(document: Mapping[str, Any], path: str) -> Any:
    for part in filter(None, path.split(".")):
        document = document[part]
    return document


def find_key(document: Any, key: str, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every value stored under ``key`` anywhere in a nested document, with its path."""
    if isinstance(document, Mapping):
        for k, v in document.items():
            here = f"{path}.{k}" if path else str(k)
            if k == key:
                yield here, v
            yield from find_key(v, key, here)
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from find_key(item, key, f"{path}[{index}]")


def quantity(value: str) -> float:
    """A Kubernetes CPU (cores) or memory (GiB) quantity as a number."""
    units = {"m": 1e-3, "Ki": 2**-20, "Mi": 2**-10, "Gi": 1.0, "Ti": 2**10}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def subnet_zones(graph: Graph) -> dict[str, str]:
    """Subnet id -> availability zone."""
    return {
        s.outputs["arn"].rsplit("/", 1)[1]: s.inputs["availabilityZone"]
        for s in graph.of_type("aws:ec2/subnet:Subnet")
    }


# ---------------------------------------------------------------------------------------- the models' objects


def test_every_shipped_environment_serves_models() -> None:
    assert {env for env, _ in MODELS} == set(SHIPPED)
    assert len(PROD_MODELS) >= 2, "prod needs two models for the isolation checks to mean something"


@PER_ENV
def test_each_model_has_one_deployment_service_and_scaled_object_in_its_namespace(
    plans: dict[str, Plan], env: str
) -> None:
    graph = plans[env].graph
    expected = {f"model-{m.name}": 1 for m in plans[env].spec.models}
    namespaces = {r.inputs["metadata"]["name"] for r in graph.of_type(T_NAMESPACE)}
    assert set(expected) <= namespaces
    for type_ in (T_DEPLOYMENT, T_SERVICE, T_SCALED_OBJECT):
        counts = Counter(namespace_of(r) for r in graph.of_type(type_))
        # No model namespace without a model, no model with two, nothing of these kinds outside them.
        assert dict(counts) == expected, type_
    for model in plans[env].spec.models:
        namespace = f"model-{model.name}"
        service = one_in(graph, T_SERVICE, namespace)
        labels = deployment(plans[env], model.name).inputs["spec"]["template"]["metadata"]["labels"]
        assert selector_matches(service.inputs["spec"]["selector"], labels), "the Service selects no pod"


@PER_MODEL
def test_network_policies_are_a_default_deny_plus_allows(plans: dict[str, Plan], env: str, name: str) -> None:
    policies = {
        p.inputs["metadata"]["name"]: p.inputs["spec"]
        for p in in_namespace(plans[env].graph, T_NETWORK_POLICY, f"model-{name}")
    }
    assert set(policies) == {"default-deny", "allow-ingress", "allow-egress"}
    deny = policies["default-deny"]
    assert not (deny.get("podSelector") or {}).get("matchLabels"), "default deny must select every pod"
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert not deny.get("ingress")
    assert not deny.get("egress")
    pod_labels = deployment(plans[env], name).inputs["spec"]["template"]["metadata"]["labels"]
    allow = policies["allow-ingress"]
    assert allow["policyTypes"] == ["Ingress"]
    assert selector_matches(allow["podSelector"]["matchLabels"], pod_labels)


@PER_MODEL
def test_model_ingress_allows_prometheus_and_in_dev_the_keda_interceptor(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    graph = plan.graph
    model = model_spec(plan, name)
    policy = network_policy(graph, name, "allow-ingress")
    (rule,) = policy.inputs["spec"]["ingress"]
    allowed = {peer["namespaceSelector"]["matchLabels"][NAMESPACE_NAME_LABEL] for peer in rule["from"]}
    prometheus = release(graph, "kube-prometheus-stack").inputs["namespace"]
    interceptor = release(graph, "keda-add-ons-http").inputs["namespace"]
    expected = {prometheus, *model.client_namespaces} | ({interceptor} if env == "dev" else set())
    assert allowed == expected
    ports = {(p["port"], p["protocol"]) for p in rule["ports"]}
    container_ports = {(p["containerPort"], p["protocol"]) for p in vllm(plan, name)["ports"]}
    assert ports == container_ports
    assert rule["ports"], "an ingress rule without ports opens every port"


@PER_MODEL
def test_pdb_only_in_prod_with_one_replica_unavailable_at_most(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    pdbs = in_namespace(plans[env].graph, T_PDB, f"model-{name}")
    if env != "prod":
        assert pdbs == []
        return
    (pdb,) = pdbs
    spec = pdb.inputs["spec"]
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec
    pod_labels = deployment(plans[env], name).inputs["spec"]["template"]["metadata"]["labels"]
    assert selector_matches(spec["selector"]["matchLabels"], pod_labels), "the budget covers no pod"


# --------------------------------------------------------------------------------------------- autoscaling


@PER_MODEL
def test_scaled_object_bounds_are_the_tiers(plans: dict[str, Plan], env: str, name: str) -> None:
    plan = plans[env]
    model = model_spec(plan, name)
    assert model.min_replicas == TIER_MIN_REPLICAS[env], "the shipped file overrides the tier's floor"
    scaled = one_in(plan.graph, T_SCALED_OBJECT, f"model-{name}").inputs["spec"]
    assert scaled["minReplicaCount"] == TIER_MIN_REPLICAS[env]
    assert scaled["maxReplicaCount"] == model.max_replicas
    target = scaled["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        deployment(plan, name).inputs["metadata"]["name"],
    )


@PER_MODEL
def test_only_dev_scales_to_zero_behind_an_interceptor_route(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    namespace = f"model-{name}"
    routes = in_namespace(plan.graph, T_INTERCEPTOR_ROUTE, namespace)
    scaled = one_in(plan.graph, T_SCALED_OBJECT, namespace)
    wakers = [t for t in scaled.inputs["spec"]["triggers"] if t["type"] == "external-push"]
    if env != "dev":
        assert routes == []
        assert wakers == []
        return
    (route,) = routes
    # The InterceptorRoute only routes and reports; the one ScaledObject owns the Deployment's replica count.
    service = one_in(plan.graph, T_SERVICE, namespace)
    spec = route.inputs["spec"]
    assert spec["target"] == {"service": service.inputs["metadata"]["name"], "port": 8000}
    assert spec["rules"] == [
        {"hosts": [f"{service.inputs['metadata']['name']}.{namespace}.svc.cluster.local"]}
    ]
    assert set(spec) == {"target", "rules", "scalingMetric"}
    assert scaled.inputs["spec"]["minReplicaCount"] == 0
    assert scaled.inputs["spec"]["maxReplicaCount"] == model_spec(plan, name).max_replicas
    (waker,) = wakers
    assert waker["metadata"]["interceptorRoute"] == route.inputs["metadata"]["name"]
    assert "httpScaledObject" not in waker["metadata"]
    assert route.urn in scaled.depends_on


@PER_MODEL
def test_scaled_object_triggers_on_vllm_queue_depth(plans: dict[str, Plan], env: str, name: str) -> None:
    plan = plans[env]
    model = model_spec(plan, name)
    triggers = one_in(plan.graph, T_SCALED_OBJECT, f"model-{name}").inputs["spec"]["triggers"]
    (queue,) = [t for t in triggers if t["type"] == "prometheus"]
    metadata = queue["metadata"]
    served = flags(list(vllm(plan, name)["args"]))["--served-model-name"]
    assert "vllm:num_requests_waiting{" in metadata["query"]
    assert f'namespace="model-{name}"' in metadata["query"]
    assert f'model_name="{served[0]}"' in metadata["query"]
    assert metadata["threshold"] == str(model.queue_depth_target)
    prometheus = release(plan.graph, "kube-prometheus-stack").inputs["namespace"]
    assert f".{prometheus}.svc" in metadata["serverAddress"]


@PER_MODEL
def test_deployment_leaves_the_replica_count_to_keda(plans: dict[str, Plan], env: str, name: str) -> None:
    assert "replicas" not in deployment(plans[env], name).inputs["spec"]


# ------------------------------------------------------------------------------------ GPU sizing, placement


@PER_MODEL
def test_gpu_request_equals_limit_equals_gpus_per_replica(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    gpus = str(model_spec(plan, name).gpus_per_replica)
    resources = vllm(plan, name)["resources"]
    assert resources["requests"][GPU_RESOURCE] == resources["limits"][GPU_RESOURCE] == gpus
    for init in pod_spec(plan, name).get("initContainers") or []:
        assert GPU_RESOURCE not in (init.get("resources") or {}).get("limits", {}), init["name"]


@PER_MODEL
def test_pods_tolerate_the_taints_of_their_pool_node_groups(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    groups = pool_node_groups(plan.graph, model_spec(plan, name).pool)
    assert groups, "no GPU node group carries the model's pool label"
    tolerations = list(pod_spec(plan, name)["tolerations"])
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    for group in groups:
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"} in group["taints"]
        untolerated = [t for t in group["taints"] if not tolerates(tolerations, t)]
        assert untolerated == [], group["labels"]


@PER_MODEL
def test_pods_require_their_pool_which_only_gpu_node_groups_carry(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    pool = model_spec(plan, name).pool
    required = pod_spec(plan, name)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    # Terms are ORed: every one of them must pin the pool.
    for term in required["nodeSelectorTerms"]:
        assert {"key": POOL_LABEL, "operator": "In", "values": [pool]} in term["matchExpressions"]
    assert required["nodeSelectorTerms"]
    assert pool_node_groups(plan.graph, pool)
    assert [g for g in other_node_groups(plan.graph) if POOL_LABEL in (g.get("labels") or {})] == []


@pytest.mark.parametrize(("env", "name"), PROD_MODELS)
def test_prod_spreads_replicas_across_the_zones_of_its_pool(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    pod_labels = deployment(plan, name).inputs["spec"]["template"]["metadata"]["labels"]
    spread = [
        c for c in pod_spec(plan, name).get("topologySpreadConstraints") or [] if c["topologyKey"] == ZONE_KEY
    ]
    assert len(spread) == 1
    assert spread[0]["maxSkew"] == 1
    assert selector_matches(spread[0]["labelSelector"]["matchLabels"], pod_labels)
    zones = subnet_zones(plan.graph)
    for group in pool_node_groups(plan.graph, model_spec(plan, name).pool):
        assert len({zones[s] for s in group["subnetIds"]}) >= 3, "the pool's nodes cannot spread"


@pytest.mark.parametrize("env", SHIPPED)
def test_every_instance_type_of_a_models_pool_fits_one_replica(plans: dict[str, Plan], env: str) -> None:
    plan = plans[env]
    misfits = []
    for model in plan.spec.models:
        requests = vllm(plan, model.name)["resources"]["requests"]
        for group in pool_node_groups(plan.graph, model.pool):
            for instance_type in group["instanceTypes"]:
                shape = gpu_instance(instance_type)
                assert shape is not None, instance_type
                if (
                    quantity(requests["memory"]) >= shape.memory_gib
                    or quantity(requests["cpu"]) >= shape.vcpus
                    or int(requests[GPU_RESOURCE]) > shape.gpus
                ):
                    misfits.append(f"{model.name} on {instance_type}")
    assert misfits == []


# ----------------------------------------------------------------------------------------- engine, weights


@PER_MODEL
def test_vllm_engine_flags_match_the_spec(plans: dict[str, Plan], env: str, name: str) -> None:
    plan = plans[env]
    model = model_spec(plan, name)
    parsed = flags(list(vllm(plan, name)["args"]))
    assert parsed["--tensor-parallel-size"] == [str(model.gpus_per_replica)]
    assert parsed["--max-model-len"] == [str(model.max_model_len)]
    assert len(parsed["--gpu-memory-utilization"]) == 1
    assert float(parsed["--gpu-memory-utilization"][0]) == model.gpu_memory_utilization
    for extra in model.extra_args:
        assert extra.split("=", 1)[0] in parsed, extra


@pytest.mark.parametrize(("env", "name"), PROD_MODELS)
def test_prod_models_load_weights_from_their_artifact_prefix(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    model = model_spec(plan, name)
    bucket = plan.graph.one("aws:s3/bucket:Bucket").inputs["bucket"]
    assert bucket == f"keel-prod-artifacts-{plan.spec.aws.account_id}"
    uri = f"s3://{bucket}/models/{model.model}/{model.revision}/"
    (sync,) = pod_spec(plan, name)["initContainers"]
    command = list(sync["command"])
    assert command[:3] == ["aws", "s3", "sync"]
    assert command[3] == uri
    container = vllm(plan, name)
    parsed = flags(list(container["args"]))
    assert parsed["--model"] == [command[4]], "vLLM does not load what the init container synced"
    assert "--revision" not in parsed
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    assert env_vars.get("HF_HUB_OFFLINE") == "1"
    assert "HF_TOKEN" not in env_vars


@pytest.mark.parametrize(("env", "name"), [(env, name) for env, name in MODELS if env != "prod"])
def test_dev_and_staging_models_load_weights_from_the_hub(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    model = model_spec(plan, name)
    assert not pod_spec(plan, name).get("initContainers")
    container = vllm(plan, name)
    parsed = flags(list(container["args"]))
    assert parsed["--model"] == [model.model]
    assert parsed["--revision"] == [model.revision]
    assert "s3://" not in json.dumps(dict(deployment(plan, name).inputs))
    # The hub token arrives as a Kubernetes Secret that an ExternalSecret fills from this environment's secret.
    (token,) = [e for e in container["env"] if e["name"] == "HF_TOKEN"]
    secret_name = token["valueFrom"]["secretKeyRef"]["name"]
    external = one_in(plan.graph, T_EXTERNAL_SECRET, f"model-{name}").inputs["spec"]
    assert external["target"]["name"] == secret_name
    assert [d["remoteRef"]["key"] for d in external["data"]] == [f"{plan.spec.name_prefix}/model-hub-token"]


# ------------------------------------------------------------------------------------------------ model IRSA


@PER_BUCKET_MODEL
def test_model_role_trusts_only_the_models_service_account(
    plans: dict[str, Plan], env: str, name: str
) -> None:
    plan = plans[env]
    graph = plan.graph
    namespace = f"model-{name}"
    role = role_trusting(graph, namespace, name)
    (statement,) = statements(role.inputs["assumeRolePolicy"])
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    oidc = graph.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert statement["Principal"] == {"Federated": oidc.outputs["arn"]}
    assert set(statement["Condition"]) == {"StringEquals"}, "no wildcard operators on the subject"
    issuer = oidc.inputs["url"].removeprefix("https://")
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer}:sub": f"system:serviceaccount:{namespace}:{name}",
        f"{issuer}:aud": "sts.amazonaws.com",
    }
    (account,) = [
        a for a in in_namespace(graph, T_SERVICE_ACCOUNT, namespace) if a.inputs["metadata"]["name"] == name
    ]
    assert account.inputs["metadata"]["annotations"][ROLE_ARN_ANNOTATION] == role.outputs["arn"]
    assert pod_spec(plan, name)["serviceAccountName"] == name


@PER_BUCKET_MODEL
def test_model_role_grants_only_its_own_weights(plans: dict[str, Plan], env: str, name: str) -> None:
    plan = plans[env]
    graph = plan.graph
    model = model_spec(plan, name)
    role = role_trusting(graph, f"model-{name}", name)
    attached = [
        a
        for a in graph.of_type(T_ROLE_POLICY_ATTACHMENT)
        if role.urn in a.property_dependencies.get("role", ())
    ]
    assert attached == [], "a model role carries only its inline policy"
    (policy,) = policies_of(graph, role)
    found = statements(policy.inputs["policy"])
    assert all(s["Effect"] == "Allow" for s in found)
    actions = {a for s in found for a in as_list(s["Action"])}
    region = plan.spec.aws.region
    decrypt = [s for s in found if as_list(s["Action"]) == ["kms:Decrypt"]]
    bucket = graph.one("aws:s3/bucket:Bucket").inputs["bucket"]
    prefix = model.artifact_prefix
    assert actions == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    for statement in found:
        if "s3:GetObject" in as_list(statement["Action"]):
            assert as_list(statement["Resource"]) == [f"arn:aws:s3:::{bucket}/{prefix}*"]
        if "s3:ListBucket" in as_list(statement["Action"]):
            assert as_list(statement["Resource"]) == [f"arn:aws:s3:::{bucket}"]
            prefixes = as_list(statement["Condition"]["StringLike"]["s3:prefix"])
            assert prefixes
            assert all(p.startswith(prefix) for p in prefixes), prefixes
    via = f"s3.{region}.amazonaws.com"
    assert decrypt, "reading encrypted data needs kms:Decrypt"
    for statement in decrypt:
        assert statement["Condition"] == {"StringEquals": {"kms:ViaService": via}}
        assert "*" not in as_list(statement["Resource"])


@PER_HUB_MODEL
def test_hub_models_hold_no_aws_credentials(plans: dict[str, Plan], env: str, name: str) -> None:
    """External Secrets delivers the hub token with its own role; the model's pods need no AWS access at all."""
    graph = plans[env].graph
    namespace = f"model-{name}"
    assert [
        r.name
        for r in graph.of_type(T_ROLE)
        if any(s.startswith(f"system:serviceaccount:{namespace}:") for s in trust_subjects(r))
    ] == []
    (account,) = [
        a for a in in_namespace(graph, T_SERVICE_ACCOUNT, namespace) if a.inputs["metadata"]["name"] == name
    ]
    assert ROLE_ARN_ANNOTATION not in (account.inputs["metadata"].get("annotations") or {})


# --------------------------------------------------------------------------------------------------- add-ons


@PER_ENV
def test_every_helm_release_is_pinned_and_comes_from_an_https_repository(
    plans: dict[str, Plan], env: str
) -> None:
    releases = plans[env].graph.of_type(T_RELEASE)
    charts = {r.inputs["chart"] for r in releases}
    assert {*GPU_CHARTS, *SYSTEM_COMPONENTS} <= charts
    for r in releases:
        assert EXACT_VERSION.match(str(r.inputs.get("version", ""))), (r.name, r.inputs.get("version"))
        assert r.inputs["repositoryOpts"]["repo"].startswith("https://"), r.name
        assert "/" not in r.inputs["chart"], "a chart by URL or path bypasses the pinned repository"


@pytest.mark.parametrize(("env", "chart"), [(env, chart) for env in SHIPPED for chart in SYSTEM_COMPONENTS])
def test_add_on_pods_run_on_system_nodes_only(plans: dict[str, Plan], env: str, chart: str) -> None:
    graph = plans[env].graph
    values = release(graph, chart).inputs["values"]
    for path in SYSTEM_COMPONENTS[chart]:
        assert at(values, path).get("nodeSelector") == SYSTEM_SELECTOR, f"{chart}: {path or '(top level)'}"
    # Wherever else the values place a pod, it is the system nodes too, and nothing tolerates GPU taints.
    for path, selector in find_key(values, "nodeSelector"):
        assert selector == SYSTEM_SELECTOR, f"{chart}: {path}"
    gpu_taints = [t for g in gpu_node_groups(graph) for t in g["taints"]]
    for path, tolerations in find_key(values, "tolerations"):
        assert not any(tolerates(tolerations, t) for t in gpu_taints), f"{chart}: {path}"
    # The selector matches a real, untainted non-GPU node group.
    system = [g for g in other_node_groups(graph) if selector_matches(SYSTEM_SELECTOR, g.get("labels") or {})]
    assert system
    assert all(not g.get("taints") for g in system)


@pytest.mark.parametrize(("env", "chart"), [(env, chart) for env in SHIPPED for chart in GPU_CHARTS])
def test_gpu_agents_run_on_every_gpu_node_group_and_only_there(
    plans: dict[str, Plan], env: str, chart: str
) -> None:
    graph = plans[env].graph
    values = release(graph, chart).inputs["values"]
    selector = values["nodeSelector"]
    assert selector
    gpu_groups = gpu_node_groups(graph)
    assert gpu_groups
    for group in gpu_groups:
        assert selector_matches(selector, group.get("labels") or {}), group["labels"]
        assert [t for t in group["taints"] if not tolerates(values["tolerations"], t)] == []
    assert [g for g in other_node_groups(graph) if selector_matches(selector, g.get("labels") or {})] == []


@PER_ENV
def test_cluster_autoscaler_role_reads_node_groups_and_mutates_only_this_clusters(
    plans: dict[str, Plan], env: str
) -> None:
    plan = plans[env]
    graph = plan.graph
    cluster = graph.one("aws:eks/cluster:Cluster").inputs["name"]
    autoscaler = release(graph, "cluster-autoscaler").inputs
    assert autoscaler["values"]["autoDiscovery"]["clusterName"] == cluster
    account = autoscaler["values"]["rbac"]["serviceAccount"]
    role = role_trusting(graph, autoscaler["namespace"], account["name"])
    assert trust_subjects(role) == [f"system:serviceaccount:{autoscaler['namespace']}:{account['name']}"]
    assert account["annotations"][ROLE_ARN_ANNOTATION] == role.outputs["arn"]
    (policy,) = policies_of(graph, role)
    found = statements(policy.inputs["policy"])
    assert all(s["Effect"] == "Allow" for s in found)
    spec = plan.spec
    describe = [s for s in found if "eks:DescribeNodegroup" in as_list(s["Action"])]
    assert [as_list(s["Resource"]) for s in describe] == [
        [f"arn:aws:eks:{spec.aws.region}:{spec.aws.account_id}:nodegroup/{cluster}/*"]
    ]
    mutating = [s for s in found if any(not READ_ONLY_ACTION.match(a) for a in as_list(s["Action"]))]
    mutations = {a for s in mutating for a in as_list(s["Action"])}
    assert {"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"} <= mutations
    for statement in mutating:
        condition = statement.get("Condition", {}).get("StringEquals", {})
        assert condition.get(f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster}") == "owned", statement
