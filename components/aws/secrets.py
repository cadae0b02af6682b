"""Secrets Manager secrets on a customer-managed key, with a read-grant helper for workload roles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws
from pydantic import ConfigDict, Field, field_validator, model_validator

from components.aws.policy_documents import PolicyStatement, kms_decrypt_via_service
from components.base import AwsContext, ComponentArgs, Stateful, StrInput, child_options, named_tags


class SecretSpec(ComponentArgs):
    """One secret: its name, what it is for, and optionally its value."""

    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=64)
    """Kebab-case name, e.g. ``hf-token``; the physical name is ``<name_prefix>/<name>``. Required."""
    description: str = Field(min_length=1, max_length=2048)
    """What the secret holds and who reads it, shown in the console. Required."""
    value: pulumi.Output[str] | None = Field(default=None, repr=False)
    """The secret value, an Output the caller made secret (``config.require_secret``). A plain ``str`` is
    refused so that no plaintext travels through the program. Default: ``None`` (no version is created; the
    value is set out of band, e.g. by a rotation function or an operator)."""

    # A refused value must not be echoed: validation errors of this model never print their input.
    model_config = ConfigDict(hide_input_in_errors=True)

    @field_validator("value", mode="before")
    @classmethod
    def _not_plain_text(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError(
                "value is a plain str; allowed: a secret Output (config.require_secret) so that no plaintext "
                "travels through the program (the value is not shown)"
            )
        return value


class SecretsArgs(ComponentArgs):
    """Inputs of :class:`Secrets`."""

    # Its input can hold secret values (``secrets`` given as mappings): errors never print the input.
    model_config = ConfigDict(hide_input_in_errors=True)

    context: AwsContext
    """Account and region of the secrets (used for the read-grant's ``kms:ViaService``). Required."""
    name_prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}(/[a-z0-9-]{1,40})*$")
    """Path prefix of the physical secret names, e.g. ``keel-prod`` gives ``keel-prod/hf-token``. Required."""
    key_arn: StrInput
    """ARN of the customer-managed KMS key (purpose ``secrets``) that encrypts every secret. Required."""
    secrets: tuple[SecretSpec, ...] = Field(min_length=1)
    """The secrets to create; names must be unique. Required, at least one."""
    recovery_window_days: int = 30
    """Days a deleted secret stays recoverable: 7-30, or 0 to delete at once (needs ``allow_force_delete``).
    Default: 30."""
    allow_force_delete: bool = False
    """Permit ``recovery_window_days=0`` (dev only: the name is free again at once). Default: ``False``."""
    tags: Mapping[str, str]
    """Environment tags applied to every secret. Required."""
    stateful: Stateful
    """Protect/retain flags for the secrets. Required."""

    @field_validator("secrets")
    @classmethod
    def _unique_names(cls, value: tuple[SecretSpec, ...]) -> tuple[SecretSpec, ...]:
        names = [s.name for s in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"secrets must have unique names, got {names} (repeated: {duplicates})")
        return value

    @model_validator(mode="after")
    def _recovery_window(self) -> SecretsArgs:
        days = self.recovery_window_days
        if days == 0 and not self.allow_force_delete:
            raise ValueError(
                "recovery_window_days=0 deletes secrets without recovery; allowed only with "
                "allow_force_delete=True (dev), otherwise use 7-30"
            )
        if days != 0 and not 7 <= days <= 30:
            raise ValueError(f"recovery_window_days must be 0 (force delete) or 7-30, got {days}")
        return self


class Secrets(pulumi.ComponentResource):
    """Secrets Manager secrets on one CMK; a version is written only for secrets given a value."""

    arns: dict[str, pulumi.Output[str]]
    """Secret ARN per secret name (the ARN ends in a random suffix, so always take it from here)."""

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("keel:aws:Secrets", name, None, opts)
        self._name = name
        self._context = args.context
        self._key_arn = args.key_arn
        self.arns = {}
        # A version is replaced whenever its value changes, so protecting it would block every rotation;
        # it only inherits retain_on_delete.
        version_guard = Stateful(retain_on_delete=args.stateful.retain_on_delete)
        for spec in args.secrets:
            physical_name = f"{args.name_prefix}/{spec.name}"
            secret = aws.secretsmanager.Secret(
                f"{name}-{spec.name}",
                name=physical_name,
                description=spec.description,
                kms_key_id=args.key_arn,
                recovery_window_in_days=args.recovery_window_days,
                tags=named_tags(args.tags, physical_name),
                opts=child_options(self, stateful=args.stateful),
            )
            if spec.value is not None:
                aws.secretsmanager.SecretVersion(
                    f"{name}-{spec.name}-version",
                    secret_id=secret.id,
                    secret_string=pulumi.Output.secret(spec.value),
                    opts=pulumi.ResourceOptions.merge(
                        child_options(self, stateful=version_guard),
                        pulumi.ResourceOptions(additional_secret_outputs=["secretString"]),
                    ),
                )
            self.arns[spec.name] = secret.arn
        self.register_outputs({"arns": self.arns})

    def read_policy_statements(self, names: Sequence[str]) -> list[PolicyStatement]:
        """IAM statements letting a role read exactly the named secrets (decrypting only via Secrets Manager).

        Combine them with other statements via ``policy_documents.document(...)`` for a workload role.
        """
        unknown = sorted(set(names) - set(self.arns))
        if not names or unknown:
            raise ValueError(
                f"read_policy_statements needs one or more secret names of Secrets {self._name!r}, "
                f"got {list(names)} (unknown: {unknown}; known: {sorted(self.arns)})"
            )
        return [
            {
                "Sid": "ReadSecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
                "Resource": [self.arns[n] for n in dict.fromkeys(names)],
            },
            kms_decrypt_via_service(self._context, self._key_arn, "secretsmanager", "DecryptSecrets"),
        ]
