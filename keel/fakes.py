"""Deterministic, realistic outputs for resources planned under the mock runtime.

The real provider computes ids, ARNs and endpoints at deploy time. Offline, the program still reads some of
them (an OIDC issuer to build an IRSA trust policy, an ASG name to tag it), so the mocks must return values
shaped like the real ones. Every value is derived from the resource's URN: the same program yields the same
plan, byte for byte, which is what makes plans diffable.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Used where a resource's provider carries no region or account (e.g. a component tested alone).
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "111111111111"


@dataclass(frozen=True)
class FakeContext:
    """What a fake output may depend on: the resource's identity and where its provider deploys."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT

    def digest(self, length: int, salt: str = "") -> str:
        """A hex string that is stable for this resource."""
        return hashlib.sha256((self.urn + salt).encode()).hexdigest()[:length]

    def uuid(self) -> str:
        h = self.digest(32, "uuid")
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def auto_name(self) -> str:
        """Pulumi's auto-naming: the logical name plus a random-looking suffix."""
        return f"{self.name}-{self.digest(7, 'name')}"

    def physical_name(self, key: str = "name") -> str:
        """The explicit name input if given, else a ``namePrefix`` plus suffix, else an auto-name."""
        given = self.inputs.get(key)
        if isinstance(given, str) and given:
            return given
        prefix = self.inputs.get(f"{key}Prefix")
        if isinstance(prefix, str) and prefix:
            return f"{prefix}{self.digest(12, 'prefix')}"
        return self.auto_name()

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:aws:{service}:{self.region if region else ''}:{self.account if account else ''}:{resource}"
        )


# EC2-style id prefixes: the real ids look like this, which keeps rendered plans recognisable.
_EC2_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/flowLog:FlowLog": "fl",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/route:Route": "r-rtb",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "sgr",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "sgr",
}


def _pem(ctx: FakeContext) -> str:
    body = base64.b64encode(hashlib.sha512(ctx.urn.encode()).digest() * 4).decode()
    pem = "-----BEGIN CERTIFICATE-----\n" + body + "\n-----END CERTIFICATE-----\n"
    return base64.b64encode(pem.encode()).decode()


def _eks_cluster(ctx: FakeContext) -> dict[str, Any]:
    name = ctx.physical_name()
    hex_id = ctx.digest(32, "eks").upper()
    vpc_config = dict(ctx.inputs.get("vpcConfig") or {})
    vpc_config["clusterSecurityGroupId"] = f"sg-{ctx.digest(17, 'clustersg')}"
    vpc_config["vpcId"] = vpc_config.get("vpcId") or f"vpc-{ctx.digest(17, 'vpc')}"
    return {
        "name": name,
        "arn": ctx.arn("eks", f"cluster/{name}"),
        "endpoint": f"https://{hex_id}.gr7.{ctx.region}.eks.amazonaws.com",
        "certificateAuthority": {"data": _pem(ctx)},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{ctx.region}.amazonaws.com/id/{hex_id}"}]}],
        "vpcConfig": vpc_config,
        "status": "ACTIVE",
        "platformVersion": "eks.1",
    }


def _eks_node_group(ctx: FakeContext) -> dict[str, Any]:
    name = ctx.physical_name("nodeGroupName")
    cluster = ctx.inputs.get("clusterName", "cluster")
    return {
        "nodeGroupName": name,
        "arn": ctx.arn("eks", f"nodegroup/{cluster}/{name}/{ctx.uuid()}"),
        "resources": [
            {"autoscalingGroups": [{"name": f"eks-{name}-{ctx.uuid()}"}], "remoteAccessSecurityGroupId": ""}
        ],
        "status": "ACTIVE",
    }


def _iam_entity(kind: str, id_key: str, id_prefix: str) -> Callable[[FakeContext], dict[str, Any]]:
    """IAM roles and policies: global ARNs (no region) and ids with IAM's type prefix (AROA, ANPA)."""

    def fake(ctx: FakeContext) -> dict[str, Any]:
        name = ctx.physical_name()
        return {
            "name": name,
            "arn": ctx.arn("iam", f"{kind}/{name}", region=False),
            id_key: id_prefix + ctx.digest(17).upper(),
        }

    return fake


def _oidc_provider(ctx: FakeContext) -> dict[str, Any]:
    url = str(ctx.inputs.get("url", "")).removeprefix("https://")
    return {"arn": ctx.arn("iam", f"oidc-provider/{url}", region=False)}


def _kms_key(ctx: FakeContext) -> dict[str, Any]:
    key_id = ctx.uuid()
    return {"keyId": key_id, "arn": ctx.arn("kms", f"key/{key_id}")}


def _kms_alias(ctx: FakeContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"name": name, "arn": ctx.arn("kms", name)}


def _s3_bucket(ctx: FakeContext) -> dict[str, Any]:
    name = ctx.physical_name("bucket")
    return {
        "bucket": name,
        "arn": f"arn:aws:s3:::{name}",
        "bucketDomainName": f"{name}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{name}.s3.{ctx.region}.amazonaws.com",
        "region": ctx.region,
    }


def _named_arn(service: str, resource_format: str, name_key: str = "name") -> Callable[[FakeContext], dict]:
    def fake(ctx: FakeContext) -> dict[str, Any]:
        name = ctx.physical_name(name_key)
        return {
            name_key: name,
            "arn": ctx.arn(service, resource_format.format(name=name, suffix=ctx.digest(6))),
        }

    return fake


def _log_group(ctx: FakeContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"name": name, "arn": ctx.arn("logs", f"log-group:{name}")}


def _secret(ctx: FakeContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"name": name, "arn": ctx.arn("secretsmanager", f"secret:{name}-{ctx.digest(6)}")}


def _launch_template(ctx: FakeContext) -> dict[str, Any]:
    return {
        "latestVersion": 1.0,
        "defaultVersion": 1.0,
        "arn": ctx.arn("ec2", f"launch-template/lt-{ctx.digest(17)}"),
    }


def _budget(ctx: FakeContext) -> dict[str, Any]:
    name = ctx.physical_name()
    return {"name": name, "arn": ctx.arn("budgets", f"budget/{name}", region=False)}


def _backup_plan(ctx: FakeContext) -> dict[str, Any]:
    plan_id = ctx.uuid()
    return {"arn": ctx.arn("backup", f"backup-plan:{plan_id}"), "version": ctx.digest(32)}


_SPECIFIC: dict[str, Callable[[FakeContext], dict[str, Any]]] = {
    "aws:eks/cluster:Cluster": _eks_cluster,
    "aws:eks/nodeGroup:NodeGroup": _eks_node_group,
    "aws:iam/role:Role": _iam_entity("role", "uniqueId", "AROA"),
    "aws:iam/policy:Policy": _iam_entity("policy", "policyId", "ANPA"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": _oidc_provider,
    "aws:kms/key:Key": _kms_key,
    "aws:kms/alias:Alias": _kms_alias,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "aws:s3/bucketV2:BucketV2": _s3_bucket,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:secretsmanager/secret:Secret": _secret,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:sns/topic:Topic": _named_arn("sns", "{name}"),
    "aws:backup/vault:Vault": _named_arn("backup", "backup-vault:{name}"),
    "aws:backup/plan:Plan": _backup_plan,
    "aws:budgets/budget:Budget": _budget,
    "aws:costexplorer/anomalyMonitor:AnomalyMonitor": _named_arn("ce", "anomalymonitor/{suffix}"),
    "aws:costexplorer/anomalySubscription:AnomalySubscription": _named_arn(
        "ce", "anomalysubscription/{suffix}"
    ),
}

_TOKEN = re.compile(r"^(?P<pkg>[^:]+):(?P<module>[^/:]+)(/[^:]*)?:(?P<kind>.+)$")


def fake_id(ctx: FakeContext) -> str:
    """The id the provider would assign: EC2-style for network resources, else the physical name or a uuid."""
    prefix = _EC2_ID_PREFIX.get(ctx.type)
    if prefix:
        return f"{prefix}-{ctx.digest(17)}"
    if ctx.type.startswith("pulumi:providers:"):
        return ctx.uuid()
    cluster = ctx.inputs.get("clusterName")
    if ctx.type.startswith("aws:eks/") and isinstance(cluster, str) and cluster:
        # EKS sub-resources are "<cluster>:<name>", as the provider imports them; never the cluster's own id.
        for key in ("nodeGroupName", "addonName", "principalArn"):
            value = ctx.inputs.get(key)
            if isinstance(value, str) and value:
                return f"{cluster}:{value}"
        return f"{cluster}:{ctx.auto_name()}"
    for key in ("name", "bucket", "nodeGroupName", "clusterName", "keyId"):
        value = ctx.inputs.get(key)
        if isinstance(value, str) and value:
            return value
    return ctx.auto_name()


def fake_outputs(ctx: FakeContext) -> dict[str, Any]:
    """All output properties of a planned resource: its inputs, plus what the provider would compute."""
    state: dict[str, Any] = dict(ctx.inputs)
    specific = _SPECIFIC.get(ctx.type)
    if specific is not None:
        state.update(specific(ctx))
    elif ctx.type.startswith("aws:") and "arn" not in state:
        match = _TOKEN.match(ctx.type)
        service = match.group("module") if match else "aws"
        kind = (match.group("kind") if match else "resource").lower()
        state["arn"] = ctx.arn(service, f"{kind}/{fake_id(ctx)}")
    if ctx.type.startswith("aws:") and "tags" in state:
        state["tagsAll"] = state["tags"]
    return state
