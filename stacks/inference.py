"""Composes the Kubernetes layer of an environment: cluster add-ons and one InferenceService per model.

Runs after the AWS platform: the Kubernetes provider is built from the cluster's own outputs. A model that loads
weights from the artifact bucket gets an IRSA role that may read only its own prefix; a hub model gets none.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as kubernetes

from components.aws.backups import Backups
from components.aws.cluster import Cluster
from components.aws.node_group import GpuNodePool
from components.aws.policy_documents import PolicyStatement, document
from components.aws.secrets import Secrets
from components.base import AwsContext
from components.k8s.addons import ClusterAddons, ClusterAddonsArgs
from components.k8s.inference_service import InferenceService, InferenceServiceArgs
from stacks.spec import EnvironmentSpec, ModelSpec

#: The secret (``keel:secrets[].name``) holding a Hugging Face token, used by models that load from the hub.
HUB_TOKEN_SECRET = "model-hub-token"
#: AWS CLI v2 image that syncs mirrored weights into a pod's cache, pinned by digest (published July 2026).
#: Mirror it into your own registry and bump it deliberately.
WEIGHTS_SYNC_IMAGE = "amazon/aws-cli@sha256:eb85b2c72442c9eab0bdbe608095b9b909bc2a7136924124d63fe0c03b2ec334"


def kubernetes_provider(cluster: Cluster) -> kubernetes.Provider:
    """A provider for the environment's cluster, from its kubeconfig (``aws eks get-token`` exec auth)."""
    return kubernetes.Provider(
        "kubernetes",
        kubeconfig=cluster.kubeconfig,
        enable_server_side_apply=True,
        # A namespace that never exists: an object that names none fails loudly instead of landing in "default".
        namespace="keel-unset",
        opts=pulumi.ResourceOptions(depends_on=[cluster.system_node_group]),
    )


def _model_policy(model: ModelSpec, backups: Backups) -> list[PolicyStatement]:
    # Hub models need no AWS access: External Secrets (its own role) delivers the token as a Kubernetes Secret.
    if model.weights == "artifact-bucket":
        return backups.read_policy_statements(model.artifact_prefix)
    return []


def build(
    spec: EnvironmentSpec,
    *,
    context: AwsContext,
    aws_provider: aws.Provider,
    cluster: Cluster,
    gpu_pools: list[GpuNodePool],
    backups: Backups,
    secrets: Secrets | None,
    secrets_key_arn: pulumi.Output[str],
    volume_key_arn: pulumi.Output[str],
    bucket_name: str,
) -> dict[str, Any]:
    """Add-ons and model services; returns the outputs a user needs to call each model."""
    k8s = kubernetes_provider(cluster)
    addons = ClusterAddons(
        "addons",
        ClusterAddonsArgs(
            context=context,
            cluster_name=cluster.cluster_name,
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer=cluster.oidc_issuer,
            secret_arns=list(secrets.arns.values()) if secrets else [],
            secrets_key_arn=secrets_key_arn,
            volume_key_arn=volume_key_arn,
            tags=spec.merged_tags,
            kubernetes_version=spec.cluster.kubernetes_version,  # type: ignore[arg-type]  # validated by the spec
            prometheus_persistent=spec.tier != "dev",
        ),
        opts=pulumi.ResourceOptions(providers=[aws_provider, k8s], depends_on=[*gpu_pools]),
    )
    models: dict[str, Any] = {}
    for model in spec.models:
        namespace = f"model-{model.name}"
        statements = _model_policy(model, backups)
        role = (
            cluster.irsa_role(
                f"model-{model.name}-irsa",
                namespace=namespace,
                service_account=model.name,
                inline_policy=document(statements),
            )
            if statements
            else None
        )
        from_bucket = model.weights == "artifact-bucket"
        hub_token = (
            f"{spec.name_prefix}/{HUB_TOKEN_SECRET}"
            if not from_bucket and secrets is not None and HUB_TOKEN_SECRET in secrets.arns
            else None
        )
        service = InferenceService(
            f"model-{model.name}",
            InferenceServiceArgs(
                model_name=model.name,
                namespace=namespace,
                image=model.image,
                model=model.model,
                revision=model.revision,
                weights_uri=f"s3://{bucket_name}/{model.artifact_prefix}" if from_bucket else None,
                weights_sync_image=WEIGHTS_SYNC_IMAGE if from_bucket else None,
                hub_token_secret=hub_token,
                secret_store_name=addons.secret_store_name if hub_token else None,
                service_account_role_arn=role.arn if role is not None else None,
                tensor_parallel_size=model.gpus_per_replica,
                max_model_len=model.max_model_len,
                gpu_memory_utilization=model.gpu_memory_utilization,
                cpu_request=model.cpu_request,
                memory_request_gib=model.memory_request_gib,
                extra_args=tuple(model.extra_args),
                gpu_pool=model.pool,
                spread_across_zones=spec.tier == "prod",
                min_replicas=model.min_replicas or 0,
                max_replicas=model.max_replicas,
                queue_depth_target=model.queue_depth_target,
                prometheus_address=addons.prometheus_url,
                prometheus_namespace=addons.prometheus_namespace,
                monitor_labels=addons.prometheus_selector_labels,
                http_interceptor_namespace=addons.http_interceptor_service.namespace,
                http_interceptor_service=addons.http_interceptor_service.name,
                http_interceptor_port=addons.http_interceptor_service.port,
                client_namespaces=tuple(model.client_namespaces),
                max_unavailable=1 if spec.tier == "prod" else None,
            ),
            opts=pulumi.ResourceOptions(provider=k8s, depends_on=list(addons.releases.values())),
        )
        models[model.name] = {
            "url": service.service_url,
            "requestUrl": service.request_url,
            "requestHost": service.request_host,
        }
    return {"models": models}
