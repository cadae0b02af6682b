"""Renders a plan for people (terminal tree, Markdown for PR comments) and machines (JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from keel.cost import CostReport
from keel.engine import PlannedResource
from keel.plan import Plan
from keel.policy import PolicyReport
from keel.report import money, short_urn

#: The inputs worth showing next to each resource type in a tree (dotted paths into the inputs).
KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "pulumi:providers:aws": ("region", "allowedAccountIds"),
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone", "mapPublicIpOnLaunch"),
    "aws:ec2/natGateway:NatGateway": ("connectivityType",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType", "privateDnsEnabled"),
    "aws:ec2/flowLog:FlowLog": ("trafficType", "logDestinationType"),
    "aws:ec2/launchTemplate:LaunchTemplate": (
        "metadataOptions.httpTokens",
        "metadataOptions.httpPutResponseHopLimit",
        "blockDeviceMappings[0].ebs.volumeSize",
        "blockDeviceMappings[0].ebs.encrypted",
    ),
    "aws:eks/cluster:Cluster": (
        "version",
        "vpcConfig.endpointPublicAccess",
        "vpcConfig.publicAccessCidrs",
        "accessConfig.authenticationMode",
    ),
    "aws:eks/nodeGroup:NodeGroup": (
        "amiType",
        "capacityType",
        "instanceTypes",
        "scalingConfig.minSize",
        "scalingConfig.maxSize",
        "taints",
    ),
    "aws:eks/addon:Addon": ("addonName", "addonVersion"),
    "aws:eks/accessEntry:AccessEntry": ("principalArn",),
    "aws:kms/key:Key": ("enableKeyRotation", "deletionWindowInDays"),
    "aws:kms/alias:Alias": ("name",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:s3/bucket:Bucket": ("bucketPrefix", "bucket"),
    "aws:secretsmanager/secret:Secret": ("name", "recoveryWindowInDays"),
    "aws:backup/plan:Plan": ("name",),
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": ("minRetentionDays", "maxRetentionDays"),
    "aws:budgets/budget:Budget": ("limitAmount", "limitUnit", "timeUnit"),
    "aws:sns/topicSubscription:TopicSubscription": ("protocol",),
    "aws:autoscaling/tag:Tag": ("tag.key", "tag.value"),
}


def _lookup(inputs: Mapping[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            value = value[index] if isinstance(value, list) and len(value) > index else None
        else:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return None
    return value


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list) and value and isinstance(value[0], Mapping) and "key" in value[0]:
        return ",".join(f"{t.get('key')}={t.get('value', '')}:{t.get('effect', '')}" for t in value)
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def key_properties(resource: PlannedResource) -> str:
    """``key=value`` pairs for the inputs that matter for this type (empty if none are set)."""
    pairs = []
    for path in KEY_PROPERTIES.get(resource.type, ()):
        value = _lookup(resource.inputs, path)
        if value is not None:
            pairs.append(f"{path.rsplit('.', 1)[-1]}={_short(value)}")
    return " ".join(pairs)


def _flags(resource: PlannedResource) -> str:
    flags = [
        flag for flag, on in (("protect", resource.protect), ("retain", resource.retain_on_delete)) if on
    ]
    return f" [{', '.join(flags)}]" if flags else ""


def _label(resource: PlannedResource, markup: bool) -> str:
    props = key_properties(resource)
    if markup:
        flags = _flags(resource)
        return (
            f"[bold]{escape(resource.name)}[/bold] [dim]{escape(resource.type)}[/dim]"
            f"{'[yellow]' + escape(flags) + '[/yellow]' if flags else ''}"
            f"{'  [cyan]' + escape(props) + '[/cyan]' if props else ''}"
        )
    return f"{resource.name} ({resource.type}){_flags(resource)}{'  ' + props if props else ''}"


def _headline(plan: Plan) -> str:
    spec = plan.spec
    return (
        f"Environment {spec.environment} (tier {spec.tier}, {spec.cloud} {spec.aws.region}, account "
        f"{spec.aws.account_id}): {len(plan.resources)} resources to create"
    )


HONESTY_NOTE = (
    "Offline plan of the inputs the program declares, run under Pulumi's mock runtime. Values computed by the "
    "cloud (ids, ARNs, endpoints) are realistic stand-ins. This is not a diff against deployed state: use "
    "`pulumi preview` for that."
)


def tree_order(resources: tuple[PlannedResource, ...]) -> list[tuple[int, PlannedResource]]:
    """Resources depth-first under their parents (top-level first), with their depth."""
    by_parent: dict[str | None, list[PlannedResource]] = {}
    urns = {r.urn for r in resources}
    for resource in resources:
        by_parent.setdefault(resource.parent if resource.parent in urns else None, []).append(resource)
    ordered: list[tuple[int, PlannedResource]] = []

    def visit(parent: str | None, depth: int) -> None:
        for child in by_parent.get(parent, []):
            ordered.append((depth, child))
            visit(child.urn, depth + 1)

    visit(None, 0)
    return ordered


def render_text(plan: Plan, console: Console) -> None:
    """The terminal view: headline, resource tree (component -> children), counts by type, outputs."""
    console.print(f"[bold]{_headline(plan)}[/bold]")
    console.print(f"[dim]{HONESTY_NOTE}[/dim]")
    tree = Tree(f"[bold]stack {plan.environment}[/bold]")
    nodes: list[Tree] = [tree]
    for depth, resource in tree_order(plan.resources):
        del nodes[depth + 1 :]
        nodes.append(nodes[depth].add(_label(resource, markup=True)))
    console.print(tree)
    counts = Table(title="Resources by type", show_edge=False)
    counts.add_column("type")
    counts.add_column("count", justify="right")
    for type_, count in sorted(plan.graph.counts_by_type().items()):
        counts.add_row(type_, str(count))
    console.print(counts)
    outputs = Table(title="Stack outputs", show_edge=False)
    outputs.add_column("output")
    outputs.add_column("value")
    for key, value in plan.graph.outputs.items():
        outputs.add_row(escape(key), escape(_short(value)))
    console.print(outputs)
    for message in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(message)}")
    if plan.cost is not None:
        render_cost_text(plan.cost, console)
    if plan.policies is not None:
        _render_policies_text(plan.policies, console)


def _render_policies_text(report: PolicyReport, console: Console) -> None:
    console.print(f"[bold]Policies[/bold] [dim](config {escape(report.config_file)})[/dim]")
    if not report.violations and not report.exemptions and not report.undecided:
        console.print("  [green]no violations[/green]")
    for level, colour in (("mandatory", "red"), ("advisory", "yellow")):
        found = [v for v in report.violations if v.level == level]
        if found:
            console.print(f"  [{colour}]{level} violations: {len(found)}[/{colour}]")
        for v in found:
            console.print(
                f"    [{colour}]{escape(v.policy)}[/{colour}] {escape(short_urn(v.urn))}: {escape(v.message)}"
            )
            console.print(f"      [dim]fix: {escape(report.remediation.get(v.policy, ''))}[/dim]")
    for e in report.exemptions:
        console.print(
            f"  [cyan]exempted[/cyan] {escape(e.policy)} {escape(short_urn(e.urn))}: {escape(e.reason or '')}"
        )
    for u in report.undecided:
        console.print(
            f"  [magenta]undecided[/magenta] {escape(u.policy)} {escape(short_urn(u.urn))}: {escape(u.message)}"
        )


def cost_lines(report: CostReport) -> list[tuple[str, str, str]]:
    """(component, idle, peak) rows, largest peak first, then the totals and the budget."""
    components = sorted(report.peak.by_component, key=lambda c: -report.peak.by_component[c])
    rows = [
        (
            c,
            money(report.idle.by_component.get(c, 0.0), report.currency),
            money(report.peak.by_component[c], report.currency),
        )
        for c in components
    ]
    # With unpriced resources the totals are lower bounds (the notes list what is missing).
    bound = "" if report.complete else "≥ "
    unpriced = sum(len(u.resources) for u in report.unpriced)
    if unpriced:
        rows.append((f"unpriced ({unpriced} resources: see the notes)", "not counted", "not counted"))
    rows.append(
        (
            "total per month",
            bound + money(report.idle.total, report.currency),
            bound + money(report.peak.total, report.currency),
        )
    )
    if report.budget is not None:
        rows.append(
            ("monthly budget", money(report.budget, report.currency), money(report.budget, report.currency))
        )
    return rows


def _cost_caveats(report: CostReport) -> list[str]:
    notes = [f"list prices as of {report.prices_as_of.isoformat()} ({report.region}); spot is an estimate"]
    if report.peak_within_budget is False:
        notes.append("OVER BUDGET at peak")
    notes += [f"unpriced: {u.type} ({len(u.resources)}): {u.reason}" for u in report.unpriced]
    notes += [f"assumed: {a}" for a in report.assumptions]
    return notes


def resource_cost_lines(report: CostReport) -> list[tuple[str, str, str, str, str]]:
    """(resource, component, idle, peak, how it was computed at peak) for every priced resource, largest peak
    first."""
    idle = {item.urn: item.monthly for item in report.idle.by_resource}
    items = sorted(report.peak.by_resource, key=lambda item: (-item.monthly, item.component, item.name))
    return [
        (
            item.name,
            item.component,
            money(idle.get(item.urn, 0.0), report.currency),
            money(item.monthly, report.currency),
            item.basis,
        )
        for item in items
    ]


def render_cost_text(report: CostReport, console: Console, *, by_resource: bool = False) -> None:
    """Monthly cost per component at idle and peak, with the budget and every assumption (and, with
    ``by_resource``, every priced resource with how its figure was computed)."""
    table = Table(title="Monthly cost", show_edge=False)
    for column in ("component", "idle", "peak"):
        table.add_column(column, justify="left" if column == "component" else "right")
    for row in cost_lines(report):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    if by_resource:
        resources = Table(title="By resource (peak basis)", show_edge=False)
        for column in ("resource", "component", "idle", "peak", "basis"):
            resources.add_column(
                column, justify="right" if column in {"idle", "peak"} else "left", overflow="fold"
            )
        for row in resource_cost_lines(report):
            resources.add_row(*(escape(cell) for cell in row))
        console.print(resources)
    for note in _cost_caveats(report):
        console.print(f"  [dim]{escape(note)}[/dim]")


def cost_markdown(report: CostReport) -> list[str]:
    """``keel cost --format markdown``: components, then every resource in a collapsed table, then the notes."""
    lines = ["**Monthly cost**", "", "| component | idle | peak |", "|---|---:|---:|"]
    lines += [f"| {c} | {idle} | {peak} |" for c, idle, peak in cost_lines(report)]
    rows = resource_cost_lines(report)
    lines += ["", f"<details><summary>By resource ({len(rows)})</summary>", ""]
    lines += ["| resource | component | idle | peak | how (peak) |", "|---|---|---:|---:|---|"]
    lines += [
        f"| `{name}` | {component} | {idle} | {peak} | {basis.replace('|', '/')} |"
        for name, component, idle, peak, basis in rows
    ]
    lines += ["", "</details>"]
    return [*lines, "", *[f"- {note}" for note in _cost_caveats(report)], ""]


def render_rule_table(table: list[dict[str, Any]], console: Console) -> None:
    """``keel policies`` for people."""
    environments = list(table[0]["levels"]) if table else []
    out = Table(title=f"{len(table)} rules", show_edge=False)
    for column in ("rule", "domain", "category", "severity", *environments, "description"):
        out.add_column(column)
    for row in table:
        out.add_row(
            row["name"],
            row["domain"],
            row["category"],
            row["severity"],
            *(row["levels"][env] for env in environments),
            escape(row["description"]),
        )
    console.print(out)


def render_rule_table_markdown(table: list[dict[str, Any]]) -> str:
    """``keel policies --format markdown``: the rule table kept in the README."""
    environments = list(table[0]["levels"]) if table else []
    lines = [
        "| rule | domain | category | severity | " + " | ".join(environments) + " | what it checks |",
        "|---|---|---|---|" + "---|" * len(environments) + "---|",
    ]
    lines += [
        f"| `{row['name']}` | {row['domain']} | {row['category']} | {row['severity']} | "
        + " | ".join(row["levels"][env] for env in environments)
        + f" | {row['description']} |"
        for row in table
    ]
    return "\n".join(lines)


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=2, sort_keys=False, default=str)
