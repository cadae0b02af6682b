"""Which resource types hold state, and which input changes make the provider replace a resource.

A review of two plans (``keel diff``) can only say "this change replaces the bucket" if it knows which inputs
the provider cannot update in place. This module is that knowledge, curated for every AWS and Kubernetes type
Keel's stack programs create, and nothing else:

- ``STATEFUL_TYPES``: what is lost when a resource of the type is deleted or replaced (data, or an identity
  that other things depend on).
- ``REPLACEMENT_PROPERTIES``: per type, the input paths whose change forces a replacement, each with the URL of
  the source it was verified at. AWS entries come from the Terraform provider schema that pulumi-aws bridges
  (``ForceNew: true`` or a ``RequiresReplace`` plan modifier); Kubernetes entries from pulumi-kubernetes' own
  list of replace-on-change fields. Every URL is a commit-pinned GitHub link to the file that was read.
- ``NO_REPLACEMENT_INPUTS``: types Keel creates that have no replacement-forcing input Keel sets, with the
  reason, so that a type missing from both tables is a gap a test catches.

Paths are engine input keys (camelCase, list items as ``[i]``). A changed path forces replacement when it
equals an entry or lies under it (``accessScope`` covers ``accessScope.type`` and ``accessScope.namespaces[0]``),
or when an entry lies under it: ``keel diff`` reports a block added or removed whole at the block's path, and
a ``launchTemplate`` block appearing changes ``launchTemplate.id``. Callers report leaf paths otherwise.

Left out on purpose (see docs/replacements.md): conditional replacements a path cannot express (a VPC
endpoint's ``privateDnsEnabled`` forces one only for non-Interface endpoints; removing an EKS cluster's
``encryptionConfig`` forces one, changing it does not), and fields the Kubernetes API refuses to update but
the provider does not replace on (a StorageClass's ``reclaimPolicy`` and ``volumeBindingMode``): those make
``pulumi up`` fail instead.

``python -m keel.replacements`` prints the Markdown table kept in docs/replacements.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TF_AWS = "https://github.com/hashicorp/terraform-provider-aws/blob"
_PULUMI_K8S = "https://github.com/pulumi/pulumi-kubernetes/blob/94977969d64112b04e19945818a7d5d5f38f631d/provider/pkg/provider"
# pulumi-kubernetes: every kind replaces on .metadata.name/.metadata.namespace, plus the per-kind fields.
_K8S_METADATA = f"{_PULUMI_K8S}/diff.go#L207-L212"
_K8S_DEPLOYMENT = f"{_PULUMI_K8S}/diff.go#L171-L176"
_K8S_SERVICE = f"{_PULUMI_K8S}/diff.go#L158-L160"
_K8S_STORAGE_CLASS = f"{_PULUMI_K8S}/diff.go#L72-L75"
_K8S_HELM_RELEASE = f"{_PULUMI_K8S}/helm_release.go#L907"


def _tf(commit: str, path: str) -> str:
    """A commit-pinned link to a terraform-provider-aws resource file under internal/service/."""
    return f"{_TF_AWS}/{commit}/internal/service/{path}"


def _forcing(url: str, *paths: str) -> dict[str, str]:
    """``{path: url}`` for input paths verified at the same source."""
    return dict.fromkeys(paths, url)


def _namespaced(*paths: str, url: str | None = None) -> dict[str, str]:
    """A namespaced Kubernetes object's identity, plus kind-specific fields verified at ``url``."""
    return {
        **_forcing(_K8S_METADATA, "metadata.name", "metadata.namespace"),
        **(_forcing(url, *paths) if url else {}),
    }


STATEFUL_TYPES: dict[str, str] = {
    "aws:s3/bucket:Bucket": "the stored objects and all their versions (the mirrored model weights).",
    "aws:kms/key:Key": (
        "everything encrypted under it (logs, cluster secrets, bucket objects, backups, secrets) once the "
        "scheduled deletion's waiting period ends."
    ),
    "aws:backup/vault:Vault": "the recovery points (backups) stored in it.",
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": (
        "the lock that keeps recovery points from early deletion; a compliance-mode lock past its grace "
        "period cannot be removed, so a replace fails."
    ),
    "aws:secretsmanager/secret:Secret": (
        "the secret value and its versions, deleted for good when the recovery window ends."
    ),
    "aws:cloudwatch/logGroup:LogGroup": "the log history (EKS control-plane audit logs or VPC flow logs).",
    "aws:eks/cluster:Cluster": (
        "every Kubernetes object and workload in it, and its identity (API endpoint, CA, OIDC issuer)."
    ),
    "aws:ec2/vpc:Vpc": "its identity: subnets, gateways and endpoints cannot move and are replaced with it.",
    "aws:ec2/subnet:Subnet": "its identity: the NAT gateways and node groups placed in it are replaced with it.",
    "aws:ec2/eip:Eip": "the public IP address: NAT egress moves to a new one and allow-lists naming it break.",
    "aws:sns/topicSubscription:TopicSubscription": (
        "the recipient's confirmation: a new e-mail subscription delivers no alerts until confirmed again."
    ),
    "kubernetes:core/v1:Namespace": (
        "every object in it, including ones Pulumi does not track (synced Secrets, StatefulSet volume claims)."
    ),
    "kubernetes:helm.sh/v3:Release": (
        "everything its chart installed; kube-prometheus-stack's metrics history survives only on an orphaned "
        "volume claim."
    ),
}

REPLACEMENT_PROPERTIES: dict[str, dict[str, str]] = {
    # --- network
    "aws:ec2/vpc:Vpc": _forcing(_tf("00081ce41cc691433ac19bf42227cdabffd0454d", "ec2/vpc_.go"), "cidrBlock"),
    "aws:ec2/subnet:Subnet": _forcing(
        _tf("00cda125a19d31754cb0d073cf551264c57955cb", "ec2/vpc_subnet.go"),
        "availabilityZone",
        "availabilityZoneId",
        "cidrBlock",
        "vpcId",
    ),
    "aws:ec2/eip:Eip": _forcing(
        _tf("01606926a0c0ab9174aec440f976a48b0baee722", "ec2/ec2_eip.go"),
        "address",
        "domain",
        "networkBorderGroup",
        "publicIpv4Pool",
    ),
    "aws:ec2/natGateway:NatGateway": _forcing(
        _tf("04088eaa54948421bf1ef7494ae2b2c01d9243e3", "ec2/vpc_nat_gateway.go"),
        "allocationId",
        "connectivityType",
        "privateIp",
        "subnetId",
    ),
    "aws:ec2/routeTable:RouteTable": _forcing(
        _tf("022092419b7cda11527df3c6b51cbfe1876c1722", "ec2/vpc_route_table.go"), "vpcId"
    ),
    "aws:ec2/route:Route": _forcing(
        _tf("0128541e0711766f28540143a9d73738aced60aa", "ec2/vpc_route.go"),
        "destinationCidrBlock",
        "routeTableId",
    ),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": _forcing(
        _tf("0be71beb458ad8875e0acc5c91519c0ceeb214aa", "ec2/vpc_route_table_association.go"),
        "gatewayId",
        "subnetId",
    ),
    "aws:ec2/securityGroup:SecurityGroup": _forcing(
        _tf("01606926a0c0ab9174aec440f976a48b0baee722", "ec2/vpc_security_group.go"),
        "description",
        "name",
        "namePrefix",
        "vpcId",
    ),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": _forcing(
        _tf("01f431114674c27cf790fafb67ac274bf8f765e1", "ec2/vpc_default_security_group.go"), "vpcId"
    ),
    "aws:ec2/vpcEndpoint:VpcEndpoint": _forcing(
        _tf("008db85aad5e56627b1eecab8830464a282552ed", "ec2/vpc_endpoint.go"),
        "serviceName",
        "vpcEndpointType",
        "vpcId",
    ),
    "aws:ec2/flowLog:FlowLog": _forcing(
        _tf("00a35305dc1b297a6fcdecdfbba33f1e63c3da39", "ec2/vpc_flow_log.go"),
        "iamRoleArn",
        "logDestination",
        "logDestinationType",
        "logFormat",
        "maxAggregationInterval",
        "trafficType",
        "vpcId",
    ),
    # --- cluster and nodes
    "aws:eks/cluster:Cluster": _forcing(
        _tf("00555dc5b38f92abbfa230badea0ed0754cea81e", "eks/cluster.go"),
        "accessConfig.bootstrapClusterCreatorAdminPermissions",
        "bootstrapSelfManagedAddons",
        "kubernetesNetworkConfig.ipFamily",
        "kubernetesNetworkConfig.serviceIpv4Cidr",
        "name",
        "roleArn",
    ),
    "aws:eks/nodeGroup:NodeGroup": _forcing(
        _tf("012e0a32f0686212f447447fd3d81c3d0ce256ad", "eks/node_group.go"),
        "amiType",
        "capacityType",
        "clusterName",
        "diskSize",
        "instanceTypes",
        "launchTemplate.id",
        "launchTemplate.name",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "nodeRoleArn",
        "remoteAccess",
        "subnetIds",
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": _forcing(
        _tf("025e4f81cab8553cb052aebfcc5987e2aa8c702a", "ec2/ec2_launch_template.go"), "name", "namePrefix"
    ),
    "aws:autoscaling/tag:Tag": _forcing(
        _tf("050ac11163cab8cdae5936a7f40b0e528ff780df", "autoscaling/group_tag.go"),
        "autoscalingGroupName",
        "tag.key",
    ),
    "aws:eks/addon:Addon": _forcing(
        _tf("00a35305dc1b297a6fcdecdfbba33f1e63c3da39", "eks/addon.go"), "addonName", "clusterName"
    ),
    "aws:eks/accessEntry:AccessEntry": _forcing(
        _tf("01f431114674c27cf790fafb67ac274bf8f765e1", "eks/access_entry.go"),
        "clusterName",
        "principalArn",
        "type",
    ),
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": _forcing(
        _tf("01f431114674c27cf790fafb67ac274bf8f765e1", "eks/access_policy_association.go"),
        "accessScope",
        "clusterName",
        "policyArn",
        "principalArn",
    ),
    # --- identity and keys
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _forcing(
        _tf("01606926a0c0ab9174aec440f976a48b0baee722", "iam/openid_connect_provider.go"), "url"
    ),
    "aws:iam/role:Role": _forcing(
        _tf("0040ea6911af00bea2cca6dbb14e86829826ad8e", "iam/role.go"), "name", "namePrefix", "path"
    ),
    "aws:iam/rolePolicy:RolePolicy": _forcing(
        _tf("02f97af85f89a04e8ed89f5e8b64a9a67f3cfe07", "iam/role_policy.go"), "name", "namePrefix", "role"
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": _forcing(
        _tf("04c79849dbe7fbe76c3054b364357bcdaade9ac5", "iam/role_policy_attachment.go"), "policyArn", "role"
    ),
    "aws:kms/key:Key": _forcing(
        _tf("00a35305dc1b297a6fcdecdfbba33f1e63c3da39", "kms/key.go"),
        "customerMasterKeySpec",
        "keyUsage",
        "multiRegion",
    ),
    "aws:kms/alias:Alias": _forcing(
        _tf("01c08000ddb14181b5bd19201d8fca311dc570e4", "kms/alias.go"), "name", "namePrefix"
    ),
    "aws:secretsmanager/secret:Secret": _forcing(
        _tf("00c21cedec069dd27093b175baf15bac6d4b30fe", "secretsmanager/secret.go"), "name", "namePrefix"
    ),
    "aws:cloudwatch/logGroup:LogGroup": _forcing(
        _tf("0073593e7d6993ba482409f4dc35438daaa79bb3", "logs/group.go"),
        "logGroupClass",
        "name",
        "namePrefix",
    ),
    # --- data and backups
    "aws:s3/bucket:Bucket": _forcing(
        _tf("0070bcd12c952f14c5434a6f351ef7b6fa791226", "s3/bucket.go"), "bucket", "bucketPrefix"
    ),
    "aws:s3/bucketVersioning:BucketVersioning": _forcing(
        _tf("01c08000ddb14181b5bd19201d8fca311dc570e4", "s3/bucket_versioning.go"),
        "bucket",
        "expectedBucketOwner",
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": _forcing(
        _tf("01606926a0c0ab9174aec440f976a48b0baee722", "s3/bucket_server_side_encryption_configuration.go"),
        "bucket",
        "expectedBucketOwner",
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": _forcing(
        _tf("01606926a0c0ab9174aec440f976a48b0baee722", "s3/bucket_lifecycle_configuration.go"),
        "bucket",
        "expectedBucketOwner",
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": _forcing(
        _tf("01606926a0c0ab9174aec440f976a48b0baee722", "s3/bucket_public_access_block.go"), "bucket"
    ),
    "aws:s3/bucketPolicy:BucketPolicy": _forcing(
        _tf("0073593e7d6993ba482409f4dc35438daaa79bb3", "s3/bucket_policy.go"), "bucket"
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": _forcing(
        _tf("01c08000ddb14181b5bd19201d8fca311dc570e4", "s3/bucket_ownership_controls.go"), "bucket"
    ),
    "aws:backup/vault:Vault": _forcing(
        _tf("050ac11163cab8cdae5936a7f40b0e528ff780df", "backup/vault.go"), "kmsKeyArn", "name"
    ),
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": _forcing(
        _tf("01606926a0c0ab9174aec440f976a48b0baee722", "backup/vault_lock_configuration.go"),
        "backupVaultName",
        "changeableForDays",
        "maxRetentionDays",
        "minRetentionDays",
    ),
    "aws:backup/plan:Plan": _forcing(
        _tf("01f431114674c27cf790fafb67ac274bf8f765e1", "backup/plan.go"), "name"
    ),
    "aws:backup/selection:Selection": _forcing(
        _tf("00a35305dc1b297a6fcdecdfbba33f1e63c3da39", "backup/selection.go"),
        "conditions",
        "iamRoleArn",
        "name",
        "notResources",
        "planId",
        "resources",
        "selectionTags",
    ),
    # --- budget and alerts
    "aws:budgets/budget:Budget": _forcing(
        _tf("01d5888a070712729f1d55bb0918d299a3d2a140", "budgets/budget.go"),
        "accountId",
        "name",
        "namePrefix",
    ),
    "aws:costexplorer/anomalyMonitor:AnomalyMonitor": _forcing(
        _tf("0509e60e8e895c393eb27fcebb30cceceff51528", "ce/anomaly_monitor.go"),
        "monitorDimension",
        "monitorSpecification",
        "monitorType",
    ),
    "aws:costexplorer/anomalySubscription:AnomalySubscription": _forcing(
        _tf("050ac11163cab8cdae5936a7f40b0e528ff780df", "ce/anomaly_subscription.go"), "name"
    ),
    "aws:sns/topic:Topic": _forcing(
        _tf("00a35305dc1b297a6fcdecdfbba33f1e63c3da39", "sns/topic.go"), "fifoTopic", "name", "namePrefix"
    ),
    "aws:sns/topicPolicy:TopicPolicy": _forcing(
        _tf("00a35305dc1b297a6fcdecdfbba33f1e63c3da39", "sns/topic_policy.go"), "arn"
    ),
    "aws:sns/topicSubscription:TopicSubscription": _forcing(
        _tf("04a2e6e5bc625ec85ea8c678219b483fc674877e", "sns/topic_subscription.go"),
        "endpoint",
        "protocol",
        "topic",
    ),
    # --- Kubernetes
    "kubernetes:core/v1:Namespace": _forcing(_K8S_METADATA, "metadata.name"),
    "kubernetes:core/v1:ServiceAccount": _namespaced(),
    "kubernetes:core/v1:Service": _namespaced("spec.clusterIP", url=_K8S_SERVICE),
    "kubernetes:apps/v1:Deployment": _namespaced("spec.selector", url=_K8S_DEPLOYMENT),
    "kubernetes:policy/v1:PodDisruptionBudget": _namespaced(),
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": _namespaced(),
    "kubernetes:storage.k8s.io/v1:StorageClass": {
        **_forcing(_K8S_METADATA, "metadata.name"),
        **_forcing(_K8S_STORAGE_CLASS, "parameters", "provisioner"),
    },
    "kubernetes:helm.sh/v3:Release": _forcing(_K8S_HELM_RELEASE, "name", "namespace"),
    "kubernetes:external-secrets.io/v1:ClusterSecretStore": _forcing(_K8S_METADATA, "metadata.name"),
    "kubernetes:external-secrets.io/v1:ExternalSecret": _namespaced(),
    "kubernetes:keda.sh/v1alpha1:ScaledObject": _namespaced(),
    "kubernetes:http.keda.sh/v1beta1:InterceptorRoute": _namespaced(),
    "kubernetes:monitoring.coreos.com/v1:PodMonitor": _namespaced(),
}

NO_REPLACEMENT_INPUTS: dict[str, tuple[str, str]] = {
    "aws:ec2/internetGateway:InternetGateway": (
        "a changed vpcId detaches and re-attaches the gateway in place; no other input forces a replacement.",
        _tf("08923b68b5ad6fcfdd38362fb5247e39a9b07add", "ec2/vpc_internet_gateway.go"),
    ),
}
"""Types Keel creates whose inputs never force a replacement: (why, where that was verified)."""


def _lies_under(path: str, entry: str) -> bool:
    # "bucketPrefix" must not match "bucket": the next character has to start a key or an index.
    return path == entry or (path.startswith(entry) and path[len(entry)] in ".[")


def replacement_paths(type_: str, changed_paths: Iterable[str], *, whole_blocks: bool = True) -> list[str]:
    """The changed input paths of a resource of ``type_`` that force the provider to replace it, in order.

    A path matches an entry of ``REPLACEMENT_PROPERTIES[type_]`` if it equals it or lies under it
    (``blockDeviceMappings[0].ebs.volumeSize`` lies under ``blockDeviceMappings``), or if the entry lies under
    it (a whole ``launchTemplate`` block added or removed changes ``launchTemplate.id``); ``whole_blocks=False``
    leaves that last case out, for a path known to change only somewhere inside (a new ARN in an annotation
    under ``metadata`` does not change ``metadata.name``). Types without entries (components, providers, the
    stack) never force a replacement.
    """
    entries = REPLACEMENT_PROPERTIES.get(type_, {})
    return [
        path
        for path in changed_paths
        if any(_lies_under(path, entry) or (whole_blocks and _lies_under(entry, path)) for entry in entries)
    ]


def stateful_reason(type_: str) -> str | None:
    """What deleting or replacing a resource of ``type_`` loses, or ``None`` if it holds nothing that matters."""
    return STATEFUL_TYPES.get(type_)


_GITHUB_FILE = re.compile(
    r"^https://github\.com/[^/]+/(?P<repo>[^/]+)/blob/[0-9a-f]{40}/(?P<path>[^#]+)(?:#(?P<lines>L\d+(?:-L\d+)?))?$"
)


def _source_link(url: str) -> str:
    match = _GITHUB_FILE.match(url)
    if not match:
        return f"<{url}>"
    label = f"{match['repo']} `{match['path'].rsplit('/', 1)[-1]}`"
    return f"[{label}{' ' + match['lines'] if match['lines'] else ''}]({url})"


def render_markdown() -> str:
    """The table kept in docs/replacements.md: every type, what it loses, what replaces it, and the sources."""
    types = sorted({*STATEFUL_TYPES, *REPLACEMENT_PROPERTIES, *NO_REPLACEMENT_INPUTS})
    lines = [
        "| type | stateful: lost on delete or replace | inputs that force replacement | verified at |",
        "|---|---|---|---|",
    ]
    for type_ in types:
        stateful = STATEFUL_TYPES.get(type_, "no")
        if type_ in NO_REPLACEMENT_INPUTS:
            why, url = NO_REPLACEMENT_INPUTS[type_]
            inputs, urls = f"none: {why}", [url]
        else:
            entries = REPLACEMENT_PROPERTIES[type_]
            inputs = ", ".join(f"`{path}`" for path in entries)
            urls = list(dict.fromkeys(entries.values()))
        lines.append(f"| `{type_}` | {stateful} | {inputs} | {'<br>'.join(map(_source_link, urls))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown())
