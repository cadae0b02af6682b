"""EKS managed node groups on their own launch template: :class:`NodeGroup` and :class:`GpuNodePool`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

import pulumi
import pulumi_aws as aws
from pydantic import Field, model_validator

from components.aws.iam import role_with_policies
from components.aws.policy_documents import assume_role_policy, aws_managed_policy_arn
from components.base import AwsContext, ComponentArgs, StrInput, child_options, named_tags

TaintEffect = Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"]

#: EKS API taint effects and their Kubernetes spelling (used in cluster-autoscaler node-template tags).
KUBERNETES_TAINT_EFFECT: Mapping[str, str] = {
    "NO_SCHEDULE": "NoSchedule",
    "NO_EXECUTE": "NoExecute",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
}

#: Amazon Linux 2023 AMI types: their root device is ``/dev/xvda``, which the launch template sizes.
#: Bottlerocket keeps its data on a second volume, so it is not offered here.
AmiType = Literal[
    "AL2023_x86_64_STANDARD",
    "AL2023_ARM_64_STANDARD",
    "AL2023_x86_64_NVIDIA",
    "AL2023_ARM_64_NVIDIA",
    "AL2023_x86_64_NEURON",
]

GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_POOL_LABEL = "keel.dev/gpu-pool"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
CLUSTER_AUTOSCALER_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"

#: Node role policies: kubelet's EC2/EKS calls (and Pod Identity) plus image pulls. The VPC CNI has its own
#: IRSA role, so ``AmazonEKS_CNI_Policy`` is deliberately absent: pods cannot borrow it from the node.
NODE_ROLE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")

_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class Taint(ComponentArgs):
    """A Kubernetes taint put on every node of a node group."""

    key: str = Field(pattern=_LABEL_KEY.pattern)
    """The taint key, a Kubernetes qualified name such as ``nvidia.com/gpu``. Required."""
    value: str = Field(default="", pattern=_LABEL_VALUE.pattern)
    """The taint value (at most 63 characters). Default: empty."""
    effect: TaintEffect
    """What the taint does to pods without a matching toleration, in the EKS API spelling:
    ``NO_SCHEDULE``, ``NO_EXECUTE`` or ``PREFER_NO_SCHEDULE``. Required."""


class _NodeGroupFields(ComponentArgs):
    """Fields common to :class:`NodeGroupArgs` and :class:`GpuNodePoolArgs`."""

    context: AwsContext
    """Account, region and partition of the node group. Required."""
    cluster_name: StrInput
    """Name of the EKS cluster the nodes join (pass the cluster's output so the group waits for it).
    Required."""
    subnet_ids: list[StrInput] = Field(min_length=1)
    """Private subnets the nodes are launched in, usually one per availability zone. Required."""
    instance_types: list[str] = Field(min_length=1)
    """EC2 instance types, in order of preference; several types improve spot availability. Required."""
    capacity_type: Literal["ON_DEMAND", "SPOT"]
    """Purchase option for every instance in the group. Required."""
    min_size: int = Field(ge=0)
    """Fewest nodes the autoscaler may scale to (0 allows scale to zero). Required."""
    max_size: int = Field(ge=1)
    """Most nodes the autoscaler may scale to (the cost cap). Required."""
    desired_size: int = Field(ge=0)
    """Nodes at creation; afterwards the cluster autoscaler owns it and Pulumi ignores changes. Required."""
    labels: dict[str, str] = {}
    """Kubernetes labels on every node (the workload labels pods select with ``nodeSelector``).
    Default: none."""
    taints: list[Taint] = []
    """Taints on every node. Default: none."""
    metadata_hop_limit: int = Field(default=1, ge=1, le=64)
    """IMDSv2 response hop limit. Default: ``1``, so only processes on the host (including host-network
    add-ons such as the VPC CNI and kube-proxy) reach instance metadata; pods on the pod network cannot
    borrow the node role's credentials and must use IRSA or EKS Pod Identity."""
    kubernetes_version: str | None = Field(default=None, pattern=r"^1\.\d+$")
    """Kubelet minor version (e.g. ``"1.33"``). Default: ``None``, the cluster's version."""
    tags: Mapping[str, str]
    """The environment's merged tags; also stamped on instances, volumes and network interfaces through the
    launch template, so cost-allocation tags reach the EC2 bill. Required."""

    @model_validator(mode="after")
    def _check_sizes_labels_taints(self) -> _NodeGroupFields:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"sizes min_size={self.min_size}, desired_size={self.desired_size}, max_size={self.max_size} "
                "are inconsistent; allowed: min_size <= desired_size <= max_size"
            )
        for key, value in self.labels.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(
                    f"labels key {key!r} is not a Kubernetes label key (e.g. 'example.com/role')"
                )
            if not _LABEL_VALUE.match(value):
                raise ValueError(
                    f"labels[{key!r}] value {value!r} is not a Kubernetes label value "
                    "(at most 63 letters, digits, '-', '_', '.', starting and ending alphanumeric)"
                )
        keys = [taint.key for taint in self.taints]
        if len(set(keys)) != len(keys):
            raise ValueError(f"taints keys {keys} repeat; allowed: one taint per key")
        return self


class NodeGroupArgs(_NodeGroupFields):
    """Inputs of :class:`NodeGroup`."""

    ami_type: AmiType = "AL2023_x86_64_STANDARD"
    """The EKS-optimized AMI family; EKS picks the image for the Kubernetes version.
    Default: ``"AL2023_x86_64_STANDARD"``."""
    root_volume_gib: int = Field(default=50, ge=20, le=16384)
    """Size of the encrypted gp3 root volume (images and container layers live here). Default: ``50``."""


class GpuNodePoolArgs(_NodeGroupFields):
    """Inputs of :class:`GpuNodePool`: a node group's fields plus the GPU count.

    The AMI is always ``AL2023_x86_64_NVIDIA`` (driver and container toolkit preinstalled); the taint
    ``nvidia.com/gpu=true:NoSchedule`` and labels ``keel.dev/gpu-pool=<pool name>`` and
    ``nvidia.com/gpu.present=true`` are always added.
    """

    pool_name: str | None = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    """The GPU pool this node group belongs to, the value of the ``keel.dev/gpu-pool`` label; several node groups
    (spot and on-demand) may serve one pool. Default: the component's name."""
    gpus_per_instance: int = Field(ge=1)
    """GPUs on each instance type of the pool, advertised to the cluster autoscaler so it can scale the
    pool up from zero nodes. Required."""
    root_volume_gib: int = Field(default=200, ge=50, le=16384)
    """Size of the encrypted gp3 root volume, which holds the large inference images and model weights
    cached on the node. Default: ``200``."""

    @model_validator(mode="after")
    def _reserved_keys_unused(self) -> GpuNodePoolArgs:
        reserved = {GPU_POOL_LABEL, GPU_PRESENT_LABEL} & set(self.labels)
        if reserved:
            raise ValueError(f"labels {sorted(reserved)} are set by GpuNodePool itself; remove them")
        if any(taint.key == GPU_TAINT_KEY for taint in self.taints):
            raise ValueError(f"taints: {GPU_TAINT_KEY!r} is added by GpuNodePool itself; remove it")
        return self


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def _first_asg_name(resources: Sequence[aws.eks.outputs.NodeGroupResource]) -> str:
    for resource in resources:
        for group in resource.autoscaling_groups or []:
            if group.name:
                return group.name
    raise ValueError("EKS reported no Auto Scaling group for the node group")


class _ManagedNodeGroup(pulumi.ComponentResource):
    """The shared builder: node IAM role, launch template, managed node group and autoscaler tags."""

    node_group_name: pulumi.Output[str]
    """The managed node group's name (auto-named from the logical name)."""
    node_role_arn: pulumi.Output[str]
    """ARN of the nodes' IAM role."""
    node_role_name: pulumi.Output[str]
    """Name of the nodes' IAM role."""
    launch_template_id: pulumi.Output[str]
    """Id of the node group's launch template."""
    asg_name: pulumi.Output[str]
    """Name of the Auto Scaling group EKS created for the node group."""

    def __init__(
        self,
        type_token: str,
        name: str,
        args: _NodeGroupFields,
        *,
        ami_type: str,
        root_volume_gib: int,
        labels: Mapping[str, str],
        taints: Sequence[Taint],
        gpus_per_instance: int | None,
        opts: pulumi.ResourceOptions | None,
    ) -> None:
        super().__init__(type_token, name, None, opts)
        ctx = args.context

        role, attachments = role_with_policies(
            self,
            f"{name}-node",
            description=f"EKS nodes of node group {name}",
            trust_policy=assume_role_policy(f"ec2.{ctx.dns_suffix}"),
            tags=named_tags(args.tags, f"{name}-node"),
            policies={f"{name}-node-{_slug(p)}": aws_managed_policy_arn(ctx, p) for p in NODE_ROLE_POLICIES},
        )

        instance_tags = named_tags(args.tags, name)
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"Nodes of EKS node group {name}; the AMI comes from the node group's ami_type",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=args.metadata_hop_limit,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=root_volume_gib,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=resource_type, tags=instance_tags)
                for resource_type in ("instance", "volume", "network-interface")
            ],
            tags=named_tags(args.tags, f"{name}-lt"),
            opts=child_options(self),
        )

        node_group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=args.cluster_name,
            node_role_arn=role.arn,
            subnet_ids=list(args.subnet_ids),
            instance_types=list(args.instance_types),
            capacity_type=args.capacity_type,
            ami_type=ami_type,
            version=args.kubernetes_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.min_size, max_size=args.max_size, desired_size=args.desired_size
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=dict(labels),
            taints=[aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value, effect=t.effect) for t in taints],
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id,
                # The API takes the version as a string; the provider reports it as a number.
                version=template.latest_version.apply(lambda v: str(int(v))),
            ),
            tags=named_tags(args.tags, name),
            # The cluster autoscaler owns the desired size once the group exists.
            opts=child_options(self, depends_on=[*attachments], ignore_changes=["scalingConfig.desiredSize"]),
        )
        asg_name = node_group.resources.apply(_first_asg_name)

        # Scale-from-zero hints: with no node to look at, the autoscaler reads these ASG tags (EKS itself
        # adds the k8s.io/cluster-autoscaler/enabled and /<cluster> discovery tags).
        template_tags: dict[str, tuple[str, str]] = {}
        for key, value in labels.items():
            template_tags[f"label-{_slug(key)}"] = (f"{CLUSTER_AUTOSCALER_TEMPLATE}/label/{key}", value)
        for taint in taints:
            template_tags[f"taint-{_slug(taint.key)}"] = (
                f"{CLUSTER_AUTOSCALER_TEMPLATE}/taint/{taint.key}",
                f"{taint.value}:{KUBERNETES_TAINT_EFFECT[taint.effect]}",
            )
        if gpus_per_instance is not None:
            template_tags["gpu"] = (
                f"{CLUSTER_AUTOSCALER_TEMPLATE}/resources/nvidia.com/gpu",
                str(gpus_per_instance),
            )
        for role_name, (key, value) in template_tags.items():
            aws.autoscaling.Tag(
                f"{name}-asg-{role_name}",
                autoscaling_group_name=asg_name,
                tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                opts=child_options(self),
            )

        self.node_group_name = node_group.node_group_name
        self.node_role_arn = role.arn
        self.node_role_name = role.name
        self.launch_template_id = template.id
        self.asg_name = asg_name
        self.register_outputs(
            {
                "node_group_name": self.node_group_name,
                "node_role_arn": self.node_role_arn,
                "node_role_name": self.node_role_name,
                "launch_template_id": self.launch_template_id,
                "asg_name": self.asg_name,
            }
        )


def _check_slugs_unique(name: str, labels: Mapping[str, str], taints: Sequence[Taint]) -> None:
    """Autoscaler tag resources are named after label/taint keys; two keys must not map to one name."""
    for kind, keys in (("labels", list(labels)), ("taints", [t.key for t in taints])):
        slugs = [_slug(key) for key in keys]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"{name}: {kind} keys {keys} collide once reduced to resource names {slugs}")


class NodeGroup(_ManagedNodeGroup):
    """An EKS managed node group on its own launch template.

    Nodes get an IAM role with only the worker-node and ECR pull-only policies, IMDSv2 with a hop limit of
    1, an encrypted gp3 root volume, and the environment's tags on instances, volumes and network
    interfaces. The desired size is set at creation and then left to the cluster autoscaler; the ASG carries
    node-template tags for every label and taint so the autoscaler can scale the group up from zero.
    """

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check_slugs_unique(name, args.labels, args.taints)
        super().__init__(
            "keel:aws:NodeGroup",
            name,
            args,
            ami_type=args.ami_type,
            root_volume_gib=args.root_volume_gib,
            labels=args.labels,
            taints=args.taints,
            gpus_per_instance=None,
            opts=opts,
        )


class GpuNodePool(_ManagedNodeGroup):
    """A managed node group of NVIDIA GPU instances, reserved for GPU workloads.

    Like :class:`NodeGroup`, on the ``AL2023_x86_64_NVIDIA`` AMI, tainted ``nvidia.com/gpu=true:NoSchedule``
    so only pods that tolerate it (inference servers, the NVIDIA device plugin) land there, labelled
    ``keel.dev/gpu-pool=<name>`` and ``nvidia.com/gpu.present=true``, and advertising
    ``nvidia.com/gpu=<gpus_per_instance>`` to the cluster autoscaler for scale from zero.
    """

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        pool_name = args.pool_name or name
        if not _LABEL_VALUE.match(pool_name) or len(pool_name) > 63:
            raise ValueError(
                f"GpuNodePool pool name {pool_name!r} must be a Kubernetes label value (it labels the nodes)"
            )
        labels = {**args.labels, GPU_POOL_LABEL: pool_name, GPU_PRESENT_LABEL: "true"}
        taints = [*args.taints, Taint(key=GPU_TAINT_KEY, value="true", effect="NO_SCHEDULE")]
        _check_slugs_unique(name, labels, taints)
        super().__init__(
            "keel:aws:GpuNodePool",
            name,
            args,
            ami_type=GPU_AMI_TYPE,
            root_volume_gib=args.root_volume_gib,
            labels=labels,
            taints=taints,
            gpus_per_instance=args.gpus_per_instance,
            opts=opts,
        )
