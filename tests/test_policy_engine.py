"""The offline policy run: the engine's configuration order, exemptions, undecided checks and `keel` wiring."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pulumi_policy
import pytest
from pulumi.runtime import rpc
from pulumi_policy import EnforcementLevel

from keel.engine import Graph, PlannedResource
from keel.policy import PolicyConfigError, evaluate, load_policy_config
from policies.framework import RULES

SUBNET = "aws:ec2/subnet:Subnet"


def _subnet(name: str, public: object) -> PlannedResource:
    urn = f"urn:pulumi:test::keel::{SUBNET}::{name}"
    inputs = {"mapPublicIpOnLaunch": public, "cidrBlock": "10.0.0.0/24"}
    return PlannedResource(urn, SUBNET, name, None, None, True, inputs, False, False, (), (), outputs=inputs)


def _write(tmp_path: Path, config: object) -> Path:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(config))
    return path


def test_defaults_without_a_file_follow_the_rule_category() -> None:
    settings = load_policy_config(None)
    assert settings["subnet-no-auto-public-ip"].level is EnforcementLevel.MANDATORY
    assert settings["subnet-no-auto-public-ip"].config == {"exemptions": []}


def test_all_applies_first_then_the_policy_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, {"all": "advisory", "vpc-flow-logs-enabled": {"enforcementLevel": "disabled"}})
    settings = load_policy_config(path)
    assert settings["subnet-no-auto-public-ip"].level is EnforcementLevel.ADVISORY
    assert settings["vpc-flow-logs-enabled"].level is EnforcementLevel.DISABLED


def test_pack_initial_config_sits_between_defaults_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("keel.policy.INITIAL_CONFIG", {"subnet-no-auto-public-ip": "advisory"})
    assert load_policy_config(None)["subnet-no-auto-public-ip"].level is EnforcementLevel.ADVISORY
    path = _write(tmp_path, {"subnet-no-auto-public-ip": "mandatory"})
    assert load_policy_config(path)["subnet-no-auto-public-ip"].level is EnforcementLevel.MANDATORY


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"no-such-rule": "advisory"}, "no-such-rule: unknown policy"),
        ({"all": "blocking"}, "all = 'blocking': allowed levels"),
        ({"subnet-no-auto-public-ip": {"enforcementLevel": "loud"}}, "enforcementLevel = 'loud'"),
        ({"subnet-no-auto-public-ip": {"colour": "red"}}, "subnet-no-auto-public-ip.colour: unknown setting"),
        ({"subnet-no-auto-public-ip": {"exemptions": [{"resource": "x", "reason": "why"}]}}, "exemptions[0]"),
        ({"subnet-no-auto-public-ip": {"exemptions": "all"}}, "exemptions = 'all': expected array"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_fails_on_bad_policy_config(tmp_path: Path, config: object, fragment: str) -> None:
    with pytest.raises(PolicyConfigError, match=None) as caught:
        load_policy_config(_write(tmp_path, config))
    assert str(tmp_path / "policy.json") in str(caught.value)
    assert fragment in str(caught.value)


def test_violations_exemptions_and_undecided(tmp_path: Path) -> None:
    graph = Graph(
        resources=(
            _subnet("public-a", True),
            _subnet("bastion", True),
            _subnet("private-a", False),
            _subnet("pending", rpc.UNKNOWN),
        ),
        outputs={},
    )
    path = _write(
        tmp_path,
        {
            "subnet-no-auto-public-ip": {
                "exemptions": [{"resource": "bastion", "reason": "break-glass access, expires 2027-01"}]
            }
        },
    )
    report = evaluate(graph, load_policy_config(path), "policy.json")
    subnet_findings = [v for v in report.violations if v.policy == "subnet-no-auto-public-ip"]
    assert [(v.urn, v.level) for v in subnet_findings] == [
        (f"urn:pulumi:test::keel::{SUBNET}::public-a", "mandatory")
    ]
    assert [(e.urn.rsplit("::", 1)[-1], e.reason) for e in report.exemptions if e.urn] == [
        ("bastion", "break-glass access, expires 2027-01")
    ]
    undecided = [u for u in report.undecided if u.policy == "subnet-no-auto-public-ip"]
    assert len(undecided) == 1
    assert "mapPublicIpOnLaunch" in undecided[0].message
    assert report.mandatory == tuple(subnet_findings)
    assert report.to_json()["exemptions"][0]["reason"] == "break-glass access, expires 2027-01"


def test_disabled_policy_does_not_run(tmp_path: Path) -> None:
    graph = Graph(resources=(_subnet("public-a", True),), outputs={})
    path = _write(tmp_path, {"subnet-no-auto-public-ip": "disabled"})
    report = evaluate(graph, load_policy_config(path), "policy.json")
    assert not [v for v in report.violations if v.policy == "subnet-no-auto-public-ip"]


def test_pack_entry_point_assembles_every_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `pulumi preview --policy-pack policies` runs, with PolicyPack (which would serve forever) recorded."""
    built: dict[str, object] = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(
        str(Path(__file__).resolve().parent.parent / "policies" / "__main__.py"), run_name="__main__"
    )
    policies = built["policies"]
    assert isinstance(policies, list)
    assert [p.name for p in policies] == [r.name for r in RULES]
    assert built["name"] == "keel"
    assert built["enforcement_level"] is EnforcementLevel.MANDATORY
