"""The stack program: config -> validated spec -> the environment's components.

``run()`` is what ``pulumi up`` executes (through ``stacks/__main__.py``) and what ``keel plan`` executes under
the mock runtime: one program, two engines.
"""

from __future__ import annotations

from typing import Any

import pulumi

from stacks import aws_platform
from stacks.config import read_stack_config
from stacks.spec import CONFIG_NAMESPACE, EnvironmentSpec, SpecError, parse_spec


def load_spec() -> EnvironmentSpec:
    """The running stack's spec; bad config stops the program with the spec's own message."""
    values, secret_keys = read_stack_config()
    stack = pulumi.get_stack()
    try:
        return parse_spec(
            values, environment=stack, source=f"environments/Pulumi.{stack}.yaml", secret_keys=secret_keys
        )
    except SpecError as error:
        raise pulumi.RunError(f"invalid configuration\n{error}") from None


def secret_values(spec: EnvironmentSpec) -> dict[str, pulumi.Output[str] | None]:
    """Each declared secret's value from secret config (``None`` where not set yet)."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    values: dict[str, pulumi.Output[str] | None] = {}
    for secret in spec.secrets:
        value = config.get_secret(secret.config_key)
        if value is None:
            pulumi.warn(
                f"secret {secret.name!r} has no value: Secrets Manager gets the secret without a version. Set it "
                f"with `pulumi config set --secret {CONFIG_NAMESPACE}:{secret.config_key}` or in Secrets Manager."
            )
        values[secret.name] = value
    return values


def run() -> dict[str, Any]:
    """Build the running stack's environment and return its stack outputs."""
    spec = load_spec()
    return aws_platform.build(spec, secret_values(spec))
