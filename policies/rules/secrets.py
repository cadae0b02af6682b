"""Secrets rules: secrets encrypted with Keel's own keys, and no credential written into a resource.

``no-secret-literals`` reads every string a resource declares. A value the engine cannot know yet (computed from
another resource) is not a literal and is skipped rather than making the whole resource undecided; the rule runs
again with known values during ``pulumi up``. Values masked as Pulumi secrets (``[secret]`` offline) are never
reported, and a finding names the property path, never the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import ResourceValidationArgs
from pulumi_policy.proxy import UnknownValueError

from policies.framework import Resource, as_map, items, prop, resource_rule
from policies.rules.kubernetes import container_name, containers, pod_specs, workload

SECRET_MASK = "[secret]"
AWS_MANAGED_SECRETS_KEY = "alias/aws/secretsmanager"


@resource_rule(
    name="secretsmanager-cmk",
    description="Secrets Manager secrets are encrypted with a customer-managed KMS key.",
    domain="secrets",
    category="security",
    severity="medium",
    remediation="Set kmsKeyId to the ARN of the environment's secrets KMS key (the EncryptionKeys component "
    "makes one); the AWS-managed aws/secretsmanager key cannot be scoped by key policy or audited per use.",
    types=["aws:secretsmanager/secret:Secret"],
)
def secretsmanager_cmk(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    key = prop(resource, "kmsKeyId")
    if not key:
        yield f"secret {resource.name} sets no kmsKeyId: it is encrypted with the AWS-managed key"
    elif key == AWS_MANAGED_SECRETS_KEY:
        yield f"secret {resource.name} names the AWS-managed key {AWS_MANAGED_SECRETS_KEY}"


# ----------------------------------------------------------------------------------------- literal secrets

#: Shapes of credentials, each with the name a finding uses.
CREDENTIAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("Slack token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}")),
    # sk-..., sk-proj-..., sk-ant-...: long, with both letters and digits (resource names rarely are).
    (
        "API secret key (sk-)",
        re.compile(r"\bsk-(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}"),
    ),
)
#: ``password=...`` / ``db_secret = '...'`` and ``scheme://user:password@host``; the value group is checked
#: against placeholders before reporting.
ASSIGNMENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "password or secret assignment",
        re.compile(
            r"(?i)(?<![A-Za-z0-9])[A-Za-z0-9_.-]*(?:password|passwd|secret)\s*=\s*['\"]?(?P<value>[^\s'\"&;,]+)"
        ),
    ),
    ("credentials in a URL", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:(?P<value>[^\s/@]+)@")),
)
#: Resources whose purpose is to hold a secret (and SecureString SSM parameters' ``value``): the engine hands
#: policies their plaintext, so a credential there is where it belongs.
SECRET_STORES: dict[str, tuple[str, ...]] = {
    "aws:secretsmanager/secretVersion:SecretVersion": ("secretString", "secretBinary"),
    "kubernetes:core/v1:Secret": ("data", "stringData"),
}
SECURE_PARAMETER = "aws:ssm/parameter:Parameter"
DEFAULT_SECRET_ENV_NAMES = r"(^|_)(TOKEN|SECRET|PASSWORD|API_KEY|PRIVATE_KEY)(_|$)"


def _placeholder(value: str) -> bool:
    """``$VAR``, ``${...}``, ``{{ ... }}``, ``<...>``, ``%s``, ``[secret]`` and ``****`` are not credentials."""
    return value.startswith(("$", "{", "<", "%", "[")) or set(value) <= {"*", "x", "X"}


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every known string under ``value`` with its path; unknown (computed) values are not literals."""
    if isinstance(value, str):
        yield path, value
        return
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = ((f"{path}.{key}" if path else str(key), key) for key in value)
    elif isinstance(value, Sequence):
        items = ((f"{path}[{index}]", index) for index in range(len(value)))
    else:
        return
    for child_path, key in items:
        try:
            child = value[key]
        except UnknownValueError:
            continue
        yield from _strings(child, child_path)


def _decoded(path: str, text: str) -> str | None:
    """User data is base64: scan its text too."""
    if not path.rsplit(".", 1)[-1].startswith("userData"):
        return None
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _findings(text: str, extra: Sequence[tuple[str, re.Pattern[str]]]) -> list[str]:
    kinds = [kind for kind, pattern in (*CREDENTIAL_PATTERNS, *extra) if pattern.search(text)]
    for kind, pattern in ASSIGNMENT_PATTERNS:
        if any(not _placeholder(m.group("value")) for m in pattern.finditer(text)):
            kinds.append(kind)
    return kinds


def _glob(pattern: str) -> re.Pattern[str]:
    """An ignorePaths entry: ``*`` matches anything, everything else literally; a path's subtree matches too."""
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(rf"{body}(?:[.\[].*)?")


def _secret_env(resource: Resource, names: re.Pattern[str]) -> Iterator[tuple[str, str]]:
    """(path, message) for env entries with a secret-looking name and a literal value."""
    for spec, path in pod_specs(resource):
        for container, cpath in containers(spec, path):
            for index, item in enumerate(items(container.get("env"))):
                entry = as_map(item)
                name = entry.get("name")
                if not isinstance(name, str) or not names.search(name):
                    continue
                if not any(key == "value" for key in entry):
                    continue
                try:
                    value = entry["value"]
                except UnknownValueError:
                    value = "(computed)"  # still a literal in the manifest, only not known yet
                if value in (None, "", SECRET_MASK):
                    continue
                yield (
                    f"{cpath}.env[{index}].value",
                    f"{workload(resource)}: container {container_name(container, cpath)} sets {name} "
                    "from a literal value",
                )


@resource_rule(
    name="no-secret-literals",
    description="No resource carries a literal credential, and no container gets a secret-named variable "
    "from a literal value.",
    domain="secrets",
    category="security",
    severity="critical",
    remediation="Rotate the exposed credential, then keep it in Secrets Manager (or Pulumi encrypted config "
    "for bootstrap) and pass it by reference: env valueFrom.secretKeyRef / External Secrets for pods, the "
    "secret ARN for AWS resources.",
    settings={
        "extraPatterns": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "More regular expressions (Python syntax) that mark a string as a credential.",
        },
        "ignorePaths": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Property paths not to scan (spec.template.spec.containers[0].args, tags.*).",
        },
        "secretEnvNames": {
            "type": "string",
            "default": DEFAULT_SECRET_ENV_NAMES,
            "description": "Regular expression (case-insensitive) for container env names that hold secrets.",
        },
    },
)
def no_secret_literals(resource: ResourceValidationArgs, config: Mapping[str, Any]) -> Iterable[str]:
    extra: list[tuple[str, re.Pattern[str]]] = []
    for index, source in enumerate(config.get("extraPatterns") or []):
        try:
            extra.append((f"match of extraPatterns[{index}]", re.compile(str(source))))
        except re.error as error:
            yield f"extraPatterns[{index}] is not a valid regular expression: {error}"
    ignored = [_glob(str(p)) for p in config.get("ignorePaths") or []]
    ignored += [_glob(p) for p in SECRET_STORES.get(resource.resource_type, ())]
    if resource.resource_type == SECURE_PARAMETER and prop(resource, "type") == "SecureString":
        ignored.append(_glob("value"))

    def skipped(path: str) -> bool:
        return any(pattern.fullmatch(path) for pattern in ignored)

    reported: set[str] = set()
    for path, text in _strings(resource.props, ""):
        if text == SECRET_MASK or skipped(path):
            continue
        decoded = _decoded(path, text)
        kinds = _findings(text, extra) + (_findings(decoded, extra) if decoded else [])
        for kind in dict.fromkeys(kinds):
            reported.add(path)
            yield f"{resource.name}: literal {kind} in {path}"
    try:
        names = re.compile(str(config.get("secretEnvNames") or DEFAULT_SECRET_ENV_NAMES), re.IGNORECASE)
    except re.error as error:
        yield f"secretEnvNames is not a valid regular expression: {error}"
        return
    for path, message in _secret_env(resource, names):
        if path not in reported and not skipped(path):
            yield f"{message} ({path}); use valueFrom.secretKeyRef"
