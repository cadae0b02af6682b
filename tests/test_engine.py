"""The offline engine: it records what the real engine would see and refuses what the real engine would not."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from keel.engine import SECRET_MASK, PlanError, run_program


def _provider() -> aws.Provider:
    return aws.Provider("aws", region="eu-west-1", allowed_account_ids=["222222222222"])


def test_records_parent_provider_and_options() -> None:
    def program() -> dict[str, object]:
        provider = _provider()
        parent = pulumi.ComponentResource(
            "keel:test:Thing", "thing", None, pulumi.ResourceOptions(provider=provider)
        )
        key = aws.kms.Key(
            "key",
            enable_key_rotation=True,
            opts=pulumi.ResourceOptions(parent=parent, protect=True, retain_on_delete=True),
        )
        return {"arn": key.arn}

    graph = run_program(program, stack="unit")
    key = graph.one("aws:kms/key:Key")
    assert key.parent == graph.one("keel:test:Thing").urn
    assert key.provider == graph.one("pulumi:providers:aws").urn
    assert key.protect
    assert key.retain_on_delete
    assert key.inputs == {"enableKeyRotation": True}
    # Fakes follow the provider's region and account.
    assert str(graph.outputs["arn"]).startswith("arn:aws:kms:eu-west-1:222222222222:key/")


def test_secrets_are_masked_in_inputs_and_outputs() -> None:
    def program() -> dict[str, object]:
        secret = aws.secretsmanager.Secret("s", opts=pulumi.ResourceOptions(provider=_provider()))
        aws.secretsmanager.SecretVersion(
            "v",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret("hunter2"),
            opts=pulumi.ResourceOptions(provider=_provider()),
        )
        return {"token": pulumi.Output.secret("hunter2")}

    with pytest.raises(Exception, match="duplicate"):
        run_program(program)  # two providers with one name: the engine refuses, so does ours

    def fixed() -> dict[str, object]:
        provider = _provider()
        secret = aws.secretsmanager.Secret("s", opts=pulumi.ResourceOptions(provider=provider))
        aws.secretsmanager.SecretVersion(
            "v",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret("hunter2"),
            opts=pulumi.ResourceOptions(provider=provider),
        )
        return {"token": pulumi.Output.secret("hunter2")}

    graph = run_program(fixed)
    assert graph.one("aws:secretsmanager/secretVersion:SecretVersion").inputs["secretString"] == SECRET_MASK
    assert graph.outputs["token"] == SECRET_MASK
    assert "hunter2" not in repr(graph)


def test_fails_on_python_style_key_in_untyped_dict() -> None:
    def program() -> None:
        aws.eks.NodeGroup(
            "ng",
            cluster_name="c",
            node_role_arn="arn:aws:iam::1:role/r",
            subnet_ids=["s"],
            # Correct snake_case keys are translated by the SDK; a misspelled one reaches the engine as is.
            scaling_config={"desird_size": 1, "max_size": 2, "min_size": 0},  # type: ignore[arg-type]
            opts=pulumi.ResourceOptions(provider=_provider()),
        )

    with pytest.raises(Exception, match=r"scalingConfig\.desird_size.*not a provider property name"):
        run_program(program)


def test_fails_on_default_provider() -> None:
    def program() -> None:
        aws.s3.Bucket("b")

    with pytest.raises(Exception, match="no explicit provider"):
        run_program(program)


def test_fails_on_unknown_invoke() -> None:
    def program() -> dict[str, object]:
        zones = aws.get_availability_zones_output(opts=pulumi.InvokeOutputOptions(provider=_provider()))
        return {"zones": zones.names}

    with pytest.raises(
        Exception, match="unexpected invoke aws:index/getAvailabilityZones:getAvailabilityZones"
    ):
        run_program(program)


def test_state_is_reset_between_stacks() -> None:
    def program() -> dict[str, object]:
        aws.ec2.Vpc("vpc", cidr_block="10.0.0.0/16", opts=pulumi.ResourceOptions(provider=_provider()))
        return {}

    first = run_program(program, stack="one")
    second = run_program(program, stack="two")
    assert [r.urn.split("::")[0] for r in first] == ["urn:pulumi:one"] * 2
    assert [r.urn.split("::")[0] for r in second] == ["urn:pulumi:two"] * 2


def test_plan_error_type_is_public() -> None:
    assert issubclass(PlanError, Exception)
