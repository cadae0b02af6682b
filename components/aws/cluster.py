"""The EKS control plane: private endpoint, encrypted secrets, logs, IRSA, access entries, core add-ons."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from typing import Literal

import pulumi
import pulumi_aws as aws
from pydantic import Field, field_validator, model_validator

from components.aws.iam import role_with_policies
from components.aws.logs import encrypted_log_group
from components.aws.network import CLUSTER_NAME_PATTERN, RetentionDays
from components.aws.node_group import NodeGroup, NodeGroupArgs
from components.aws.policy_documents import (
    assume_role_policy,
    aws_managed_policy_arn,
    document,
    ebs_volume_key_statements,
)
from components.base import (
    AwsContext,
    ComponentArgs,
    Stateful,
    StrInput,
    child_options,
    named_tags,
)

#: Every control-plane log type EKS can ship to CloudWatch.
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

#: The EKS add-ons every Keel cluster runs.
AddonName = Literal["vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns", "aws-ebs-csi-driver"]

# DaemonSets that nodes need to become Ready go in before the system node group; Deployments that need a
# node to run on (and would otherwise sit DEGRADED) go in after it.
_ADDONS_BEFORE_NODES: tuple[AddonName, ...] = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
#: Add-on settings (the add-on's configuration schema). The VPC CNI enforces NetworkPolicies only when asked:
#: without this, every model's default-deny policy would be accepted by the API server and ignored.
ADDON_CONFIGURATION: dict[AddonName, str] = {"vpc-cni": json.dumps({"enableNetworkPolicy": "true"})}
_ADDONS_AFTER_NODES: tuple[AddonName, ...] = ("coredns", "aws-ebs-csi-driver")

_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")


def _admin_slug(role_arn: str) -> str:
    """The part of an admin role's resource names derived from its ARN: the role name, lower-cased."""
    match = _ROLE_ARN.match(role_arn)
    return re.sub(r"[^A-Za-z0-9]+", "-", match.group(1) if match else role_arn).strip("-").lower()


class SystemNodes(ComponentArgs):
    """The small on-demand node group that runs cluster add-ons (CoreDNS, controllers, monitoring)."""

    instance_types: list[str] = Field(default=["m7i.large"], min_length=1)
    """Instance types, in order of preference. Default: ``["m7i.large"]``."""
    min_size: int = Field(default=2, ge=1)
    """Fewest nodes; at least 1 so add-ons always have somewhere to run. Default: ``2``."""
    max_size: int = Field(default=4, ge=1)
    """Most nodes. Default: ``4``."""
    desired_size: int = Field(default=2, ge=1)
    """Nodes at creation (the cluster autoscaler owns it afterwards). Default: ``2``."""
    root_volume_gib: int = Field(default=50, ge=20, le=16384)
    """Encrypted gp3 root volume size. Default: ``50``."""


class ClusterArgs(ComponentArgs):
    """Inputs of :class:`Cluster`."""

    context: AwsContext
    """Account, region and partition of the cluster. Required."""
    cluster_name: str = Field(pattern=CLUSTER_NAME_PATTERN)
    """The EKS cluster's name (also in the control-plane log group name and kubeconfig). Required."""
    kubernetes_version: str = Field(pattern=r"^1\.\d+$")
    """Kubernetes minor version, e.g. ``"1.33"``. Required."""
    subnet_ids: list[StrInput] = Field(min_length=2)
    """Private subnets (in at least two availability zones, as EKS requires) for the control-plane network
    interfaces and the system nodes. EKS derives the VPC from them. Required."""
    public_access_cidrs: list[str] = []
    """CIDRs allowed to reach the public API endpoint. Empty: the public endpoint is off and the API is
    reachable only from inside the VPC. Non-empty: public access limited to exactly these ranges
    (``0.0.0.0/0`` is refused). The private endpoint is always on. Default: empty."""
    secrets_key_arn: StrInput
    """ARN of the KMS key for envelope encryption of Kubernetes secrets. Required."""
    log_key_arn: StrInput
    """ARN of the KMS key encrypting the control-plane log group (its key policy must allow the
    ``logs.<region>.amazonaws.com`` principal). Required."""
    log_retention_days: RetentionDays
    """Days control-plane logs are kept; one of the CloudWatch Logs retention periods. Required."""
    volume_key_arn: StrInput | None = None
    """ARN of the KMS key (purpose ``volumes``) for EBS volumes the EBS CSI driver creates: its IRSA role gets
    the key rights EBS encryption needs (through EC2 only). Default: ``None`` (the driver can use only the
    region's default EBS key)."""
    assumed_log_gb_per_month: float | None = Field(default=None, ge=0)
    """GB of control-plane logs ingested per month, tagged on the log group for the cost model
    (``keel:cost-assumed-gb``). Default: ``None`` (untagged: the log group is unpriced)."""
    admin_role_arns: list[str] = Field(min_length=1)
    """IAM role ARNs granted cluster-admin through access entries; the only way into the cluster. Required."""
    system_nodes: SystemNodes = SystemNodes()
    """The system node group. Default: :class:`SystemNodes` defaults (2-4 ``m7i.large``, on demand)."""
    addon_versions: dict[AddonName, str] = {}
    """Pinned add-on versions (e.g. ``{"vpc-cni": "v1.19.5-eksbuild.1"}``); add-ons not listed get the
    default version EKS picks for the cluster's Kubernetes version. Default: none pinned."""
    tags: Mapping[str, str]
    """The environment's merged tags, put on every taggable resource. Required."""
    stateful: Stateful = Stateful()
    """Protection of the cluster and its log group. Default: unprotected."""

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs_are_narrow_networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                network = ipaddress.IPv4Network(cidr, strict=True)
            except ValueError as error:
                raise ValueError(
                    f"public_access_cidrs entry {cidr!r} is not an IPv4 network "
                    f"such as '203.0.113.0/24' ({error})"
                ) from error
            if network.prefixlen == 0:
                raise ValueError(
                    f"public_access_cidrs entry {cidr!r} opens the API to the internet; allowed: specific "
                    "ranges, or an empty list for a private-only endpoint"
                )
        return value

    @field_validator("admin_role_arns")
    @classmethod
    def _admins_are_role_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not _ROLE_ARN.match(arn):
                raise ValueError(
                    f"admin_role_arns entry {arn!r} is not an IAM role ARN; allowed: "
                    "'arn:aws:iam::<12-digit account>:role/<path/>name'"
                )
        slugs = [_admin_slug(arn) for arn in value]
        if len(set(slugs)) != len(slugs):
            raise ValueError(
                f"admin_role_arns {value} repeat a role name ({slugs}); allowed: roles with distinct names"
            )
        return value

    @model_validator(mode="after")
    def _system_sizes_consistent(self) -> ClusterArgs:
        nodes = self.system_nodes
        if not nodes.min_size <= nodes.desired_size <= nodes.max_size:
            raise ValueError(
                f"system_nodes sizes min_size={nodes.min_size}, desired_size={nodes.desired_size}, "
                f"max_size={nodes.max_size} are inconsistent; allowed: min_size <= desired_size <= max_size"
            )
        return self


def irsa_trust_policy(
    oidc_provider_arn: StrInput,
    oidc_issuer: StrInput,
    *,
    namespace: str,
    service_account: str,
    audience: str = "sts.amazonaws.com",
) -> pulumi.Output[str]:
    """An assume-role policy for IRSA: only ``namespace/service_account`` of this cluster, with STS audience.

    ``oidc_issuer`` is the issuer without ``https://`` (``oidc.eks.<region>.amazonaws.com/id/<ID>``).
    """
    issuer = pulumi.Output.from_input(oidc_issuer)
    return document(
        [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": issuer.apply(
                        lambda host: {
                            f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{host}:aud": audience,
                        }
                    )
                },
            }
        ]
    )


def _required(value: str | None, what: str) -> str:
    if not value:
        raise ValueError(f"EKS reported no {what}")
    return value


def _issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity]) -> str:
    for identity in identities:
        for oidc in identity.oidcs or []:
            if oidc.issuer:
                return oidc.issuer
    raise ValueError("EKS reported no OIDC issuer for the cluster")


def _kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    user = f"{name}-aws"
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": [
                                "eks",
                                "get-token",
                                "--cluster-name",
                                name,
                                "--region",
                                region,
                                "--output",
                                "json",
                            ],
                            "interactiveMode": "Never",
                        }
                    },
                }
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
            "current-context": name,
        },
        indent=2,
    )


class Cluster(pulumi.ComponentResource):
    """An EKS cluster that is private by default and reachable only by the listed admin roles.

    The API endpoint is private (public only from allowlisted CIDRs), Kubernetes secrets are
    envelope-encrypted with a customer key, all five control-plane log types go to a pre-created encrypted
    log group with retention, access uses EKS access entries only (no ``aws-auth``, no implicit creator
    admin), IRSA is set up with an OIDC provider, and the core add-ons (VPC CNI and EBS CSI on their own
    IRSA roles, kube-proxy, CoreDNS, Pod Identity agent) are EKS-managed. A small on-demand
    :class:`NodeGroup` runs the add-ons. Use :meth:`irsa_role` to give further service accounts an IAM role.
    """

    cluster_name: pulumi.Output[str]
    """The EKS cluster's name; it resolves once the networking add-ons exist, so node groups built from it
    never boot into a cluster without a CNI."""
    endpoint: pulumi.Output[str]
    """The Kubernetes API server URL."""
    certificate_authority_data: pulumi.Output[str]
    """Base64-encoded CA certificate of the API server."""
    oidc_provider_arn: pulumi.Output[str]
    """ARN of the IAM OIDC provider for IRSA."""
    oidc_issuer: pulumi.Output[str]
    """The cluster's OIDC issuer without ``https://``, as IRSA trust conditions spell it."""
    cluster_security_group_id: pulumi.Output[str]
    """The security group EKS created for control plane to node traffic (attached to managed nodes)."""
    kubeconfig: pulumi.Output[str]
    """A kubeconfig (JSON) that authenticates with ``aws eks get-token``; marked secret."""
    system_node_group: NodeGroup
    """The system node group."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("keel:aws:Cluster", name, None, opts)
        ctx = args.context
        self._name = name
        self._tags = args.tags

        role, (role_policy,) = role_with_policies(
            self,
            f"{name}-cluster",
            description=f"EKS control plane of {args.cluster_name}",
            trust_policy=assume_role_policy("eks.amazonaws.com"),
            tags=named_tags(args.tags, f"{args.cluster_name}-cluster"),
            policies={f"{name}-cluster-policy": aws_managed_policy_arn(ctx, "AmazonEKSClusterPolicy")},
        )
        # EKS encrypts secrets as the cluster role, which the managed policy gives no KMS rights.
        key_policy = aws.iam.RolePolicy(
            f"{name}-cluster-kms",
            role=role.id,
            policy=document(
                [
                    {
                        "Effect": "Allow",
                        "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                        "Resource": args.secrets_key_arn,
                    }
                ]
            ),
            opts=child_options(self),
        )
        # Created first so EKS finds it and does not create its own, unencrypted and never expiring.
        log_group = encrypted_log_group(
            self,
            f"{name}-control-plane-logs",
            log_group_name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_days=args.log_retention_days,
            key_arn=args.log_key_arn,
            tags=args.tags,
            tag_name=f"{args.cluster_name}-control-plane-logs",
            assumed_gb_per_month=args.assumed_log_gb_per_month,
            stateful=args.stateful,
        )

        cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=list(args.subnet_ids),
                endpoint_private_access=True,
                endpoint_public_access=bool(args.public_access_cidrs),
                public_access_cidrs=list(args.public_access_cidrs) or None,
            ),
            # API only: access comes from access entries, never from the aws-auth ConfigMap. The identity
            # running `pulumi up` gets no implicit admin entry; admins are exactly admin_role_arns.
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=args.secrets_key_arn),
                resources=["secrets"],
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            # The core networking add-ons are installed below as EKS-managed add-ons instead of the
            # unmanaged copies EKS would otherwise bootstrap.
            bootstrap_self_managed_addons=False,
            tags=named_tags(args.tags, args.cluster_name),
            opts=child_options(self, stateful=args.stateful, depends_on=[log_group, role_policy, key_policy]),
        )

        issuer_url = cluster.identities.apply(_issuer)
        oidc = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc",
            url=issuer_url,
            client_id_lists=[f"sts.{ctx.dns_suffix}"],
            tags=named_tags(args.tags, f"{args.cluster_name}-oidc"),
            opts=child_options(self),
        )
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer = issuer_url.apply(lambda url: url.removeprefix("https://"))
        self._audience = f"sts.{ctx.dns_suffix}"

        addon_roles: dict[AddonName, aws.iam.Role] = {
            "vpc-cni": self.irsa_role(
                f"{name}-vpc-cni",
                namespace="kube-system",
                service_account="aws-node",
                policy_arns=[aws_managed_policy_arn(ctx, "AmazonEKS_CNI_Policy")],
            ),
            "aws-ebs-csi-driver": self.irsa_role(
                f"{name}-ebs-csi",
                namespace="kube-system",
                service_account="ebs-csi-controller-sa",
                policy_arns=[aws_managed_policy_arn(ctx, "service-role/AmazonEBSCSIDriverPolicy")],
                inline_policy=document(ebs_volume_key_statements(ctx, args.volume_key_arn))
                if args.volume_key_arn is not None
                else None,
            ),
        }

        def addon(addon_name: AddonName, depends_on: list[pulumi.Resource]) -> aws.eks.Addon:
            addon_role = addon_roles.get(addon_name)
            return aws.eks.Addon(
                f"{name}-{addon_name}",
                cluster_name=cluster.name,
                addon_name=addon_name,
                addon_version=args.addon_versions.get(addon_name),
                service_account_role_arn=addon_role.arn if addon_role else None,
                configuration_values=ADDON_CONFIGURATION.get(addon_name),
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=named_tags(args.tags, f"{args.cluster_name}-{addon_name}"),
                opts=child_options(self, depends_on=depends_on),
            )

        before_nodes = [addon(a, []) for a in _ADDONS_BEFORE_NODES]
        # A component's depends_on does not reach its children, so the node group waits for the networking
        # add-ons through its cluster_name input instead: nodes must find the CNI when they boot.
        cluster_name_after_addons = pulumi.Output.all(cluster.name, *(a.id for a in before_nodes)).apply(
            lambda values: str(values[0])
        )

        nodes = args.system_nodes
        self.system_node_group = NodeGroup(
            f"{name}-system",
            NodeGroupArgs(
                context=ctx,
                cluster_name=cluster_name_after_addons,
                subnet_ids=list(args.subnet_ids),
                instance_types=list(nodes.instance_types),
                capacity_type="ON_DEMAND",
                min_size=nodes.min_size,
                max_size=nodes.max_size,
                desired_size=nodes.desired_size,
                root_volume_gib=nodes.root_volume_gib,
                labels={"keel.dev/node-role": "system"},
                kubernetes_version=args.kubernetes_version,
                tags=args.tags,
            ),
            opts=child_options(self),
        )
        for addon_name in _ADDONS_AFTER_NODES:
            addon(addon_name, [self.system_node_group])

        admin_policy = f"arn:{ctx.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        for arn in args.admin_role_arns:
            slug = _admin_slug(arn)
            entry = aws.eks.AccessEntry(
                f"{name}-admin-{slug}",
                cluster_name=cluster.name,
                principal_arn=arn,
                type="STANDARD",
                tags=named_tags(args.tags, f"{args.cluster_name}-admin-{slug}"),
                opts=child_options(self),
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{slug}",
                cluster_name=cluster.name,
                principal_arn=arn,
                policy_arn=admin_policy,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=child_options(self, depends_on=[entry]),
            )

        self.cluster_name = cluster_name_after_addons
        self.endpoint = cluster.endpoint
        self.certificate_authority_data = cluster.certificate_authority.apply(
            lambda ca: _required(ca.data, "certificate authority data")
        )
        self.cluster_security_group_id = cluster.vpc_config.apply(
            lambda vpc: _required(vpc.cluster_security_group_id, "cluster security group")
        )
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(self.cluster_name, self.endpoint, self.certificate_authority_data).apply(
                lambda parts: _kubeconfig(parts[0], parts[1], parts[2], ctx.region)
            )
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "endpoint": self.endpoint,
                "certificate_authority_data": self.certificate_authority_data,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_issuer": self.oidc_issuer,
                "cluster_security_group_id": self.cluster_security_group_id,
                "kubeconfig": self.kubeconfig,
            }
        )

    def irsa_role(
        self,
        name: str,
        *,
        namespace: str,
        service_account: str,
        policy_arns: Sequence[StrInput] = (),
        inline_policy: StrInput | None = None,
        parent: pulumi.Resource | None = None,
    ) -> aws.iam.Role:
        """An IAM role that only ``namespace/service_account`` in this cluster can assume (IRSA).

        Creates the role (logical name ``name``) and one attachment per policy ARN (``<name>-policy-<n>``),
        plus ``inline_policy`` (a policy document) if given, parented to ``parent`` (default: this cluster),
        so later components (cluster autoscaler, external
        secrets, model servers) get roles with the same trust policy. Annotate the service account with
        ``eks.amazonaws.com/role-arn: <role.arn>``.
        """
        role, _ = role_with_policies(
            parent or self,
            name,
            description=f"IRSA role of service account {namespace}/{service_account}",
            trust_policy=irsa_trust_policy(
                self.oidc_provider_arn,
                self.oidc_issuer,
                namespace=namespace,
                service_account=service_account,
                audience=self._audience,
            ),
            tags=named_tags(self._tags, name),
            policies={f"{name}-policy-{index}": arn for index, arn in enumerate(policy_arns)},
            inline_policy=inline_policy,
        )
        return role
