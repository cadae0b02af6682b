"""The ``keel`` command line.

Exit status: 0 plan ok; 1 mandatory policy violations; 2 bad config or usage; 3 the stack program failed.
"""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from keel.config import environment_name
from keel.cost import CostConfigError, load_prices
from keel.diff import PlanFileError, compare, load_plan_file
from keel.engine import PlanError
from keel.manifests import write_manifests
from keel.plan import ENVIRONMENTS_DIR, Plan, environment_file, plan_environment
from keel.policy import PolicyConfigError, rule_table
from keel.render import (
    cost_markdown,
    render_cost_text,
    render_json,
    render_rule_table,
    render_rule_table_markdown,
    render_text,
)
from keel.report import render_review_markdown, render_review_text
from keel.worktree import BasePlanError, RevisionError, revision_plan
from stacks.spec import SpecError

EXIT_OK, EXIT_VIOLATIONS, EXIT_BAD_INPUT, EXIT_PROGRAM_FAILED = 0, 1, 2, 3

app = typer.Typer(
    name="keel",
    help="Plan, check and review Keel environments offline (Pulumi mock runtime; no cloud credentials needed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Plan, check and review Keel environments offline."""


class OutputFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


def _fail(message: str, code: int) -> typer.Exit:
    Console(stderr=True, highlight=False, emoji=False).print(
        f"[red]keel:[/red] {escape(message)}", markup=True, soft_wrap=True
    )
    return typer.Exit(code)


def _plan_or_exit(path: Path, policy_config: Path | None, debug: bool) -> Plan:
    """Plan one stack file with the policies on; bad input exits 2, a failing program exits 3."""
    try:
        return plan_environment(path, policy_config=policy_config)
    except SpecError as error:
        raise _fail(f"invalid configuration\n{error}", EXIT_BAD_INPUT) from None
    except PolicyConfigError as error:
        raise _fail(f"invalid policy configuration\n{error}", EXIT_BAD_INPUT) from None
    except CostConfigError as error:
        raise _fail(f"invalid price table\n{error}", EXIT_BAD_INPUT) from None
    except PlanError as error:
        raise _fail(
            f"{path}: the stack program did something the engine would reject: {error}",
            EXIT_PROGRAM_FAILED,
        ) from None
    except Exception as error:
        if debug:
            traceback.print_exc()
        raise _fail(
            f"{path}: the stack program failed: {type(error).__name__}: {error} "
            "(--debug shows the traceback)",
            EXIT_PROGRAM_FAILED,
        ) from None


@app.command()
def plan(  # noqa: PLR0917 (typer maps parameters to options)
    environments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ENV...", help="Environments to plan (names of environments/Pulumi.<ENV>.yaml)."
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.text,
    stack_config: Annotated[
        Path | None,
        typer.Option("--stack-config", help="Plan this stack config file instead of a shipped environment."),
    ] = None,
    environments_dir: Annotated[
        Path, typer.Option("--environments-dir", help="Where Pulumi.<ENV>.yaml files live.")
    ] = ENVIRONMENTS_DIR,
    policy_config: Annotated[
        Path | None,
        typer.Option(
            "--policy-config",
            help="A --policy-pack-config file (default: policies/config/<ENV>.json, else <tier>.json).",
        ),
    ] = None,
    manifests_dir: Annotated[
        Path | None,
        typer.Option(
            "--manifests", help="Also write every Kubernetes object (and Helm values) as YAML here."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of program failures.")] = False,
) -> None:
    """Show what `pulumi up` would create for each environment, and what the policy pack says, offline."""
    paths = (
        [stack_config]
        if stack_config
        else [environment_file(e, environments_dir) for e in environments or []]
    )
    if stack_config and environments:
        raise _fail("give either ENV names or --stack-config, not both", EXIT_BAD_INPUT)
    if not paths:
        shipped = sorted(p.name for p in environments_dir.glob("Pulumi.*.yaml"))
        raise _fail(f"name an environment to plan (shipped: {', '.join(shipped) or 'none'})", EXIT_BAD_INPUT)
    if output_format is OutputFormat.json and len(paths) > 1:
        raise _fail("--format json plans one environment at a time", EXIT_BAD_INPUT)
    missing = [p for p in paths if not p.is_file()]
    if missing and not stack_config:
        shipped = sorted(environment_name(p) for p in environments_dir.glob("Pulumi.*.yaml"))
        names = ", ".join(environment_name(p) for p in missing)
        raise _fail(
            f"no environment {names} (expected {missing[0]}); shipped: {', '.join(shipped)}", EXIT_BAD_INPUT
        )
    console = Console(highlight=False, soft_wrap=False)
    blocked = False
    for path in paths:
        result = _plan_or_exit(path, policy_config, debug)
        if manifests_dir is not None:
            target = manifests_dir / result.environment if len(paths) > 1 else manifests_dir
            written = write_manifests(result.graph, target)
            Console(stderr=True, highlight=False, emoji=False).print(
                f"wrote {len(written)} manifests to {escape(str(target))}"
            )
        if output_format is OutputFormat.json:
            sys.stdout.write(render_json(result) + "\n")
        elif output_format is OutputFormat.markdown:
            # A plan is the review of a change from nothing: the same PR comment as `keel diff`.
            review = compare(None, result.to_json(), base_label=None, head_label="working tree")
            sys.stdout.write(render_review_markdown(review) + "\n")
        else:
            render_text(result, console)
        blocked |= bool(result.policies and result.policies.mandatory)
    if blocked:
        raise typer.Exit(EXIT_VIOLATIONS)


@app.command()
def diff(  # noqa: PLR0917 (typer maps parameters to options)
    environment: Annotated[str, typer.Argument(metavar="ENV", help="The environment to review.")],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            metavar="REF",
            help="Compare with the environment as this git revision plans it (HEAD~1, origin/main, a tag).",
        ),
    ] = None,
    base_plan: Annotated[
        Path | None,
        typer.Option(
            "--base-plan", metavar="FILE", help="Compare with a saved `keel plan ENV --format json`."
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.text,
    policy_config: Annotated[
        Path | None,
        typer.Option(
            "--policy-config",
            help="A --policy-pack-config file for the working tree and a --base revision "
            "(default: each side's policies/config/<ENV>.json).",
        ),
    ] = None,
    environments_dir: Annotated[
        Path,
        typer.Option(
            "--environments-dir",
            help="Where the working tree's Pulumi.<ENV>.yaml lives (a --base revision uses its own).",
        ),
    ] = ENVIRONMENTS_DIR,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of program failures.")] = False,
) -> None:
    """Review a change offline: what `pulumi up` would create, update, replace or delete in ENV compared with
    a git revision or a saved plan, with the risks, the cost delta and the policy findings it adds or resolves.

    The working tree is planned here; --base REF plans the revision's own code in a temporary git worktree.
    If ENV does not exist at REF, everything is reviewed as new.
    """
    if (base is None) == (base_plan is None):
        raise _fail("give exactly one of --base REF or --base-plan FILE", EXIT_BAD_INPUT)
    path = environment_file(environment, environments_dir)
    if not path.is_file():
        shipped = sorted(environment_name(p) for p in environments_dir.glob("Pulumi.*.yaml"))
        raise _fail(
            f"no environment {environment} (expected {path}); shipped: {', '.join(shipped)}", EXIT_BAD_INPUT
        )
    base_document: dict[str, Any] | None = None
    with ExitStack() as running:
        pending = None
        if base_plan is not None:
            try:
                base_document = load_plan_file(base_plan, environment)
            except PlanFileError as error:
                raise _fail(str(error), EXIT_BAD_INPUT) from None
            base_label = f"saved plan {base_plan}"
        else:
            assert base is not None  # exactly one of the two, checked above
            try:
                # The base plans in its own process while the working tree plans here.
                pending = running.enter_context(revision_plan(environment, base, policy_config=policy_config))
            except RevisionError as error:
                raise _fail(str(error), EXIT_BAD_INPUT) from None
            base_label = pending.label
        head = _plan_or_exit(path, policy_config, debug)
        if pending is not None:
            try:
                base_document = pending.result()
            except BasePlanError as error:
                raise _fail(str(error), EXIT_PROGRAM_FAILED) from None
    review = compare(
        base_document, json.loads(render_json(head)), base_label=base_label, head_label="working tree"
    )
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps(review, indent=2) + "\n")
    elif output_format is OutputFormat.markdown:
        sys.stdout.write(render_review_markdown(review) + "\n")
    else:
        render_review_text(review, Console(highlight=False, soft_wrap=False))
    if head.policies and head.policies.mandatory:
        raise typer.Exit(EXIT_VIOLATIONS)


@app.command()
def cost(
    environment: Annotated[str, typer.Argument(metavar="ENV", help="The environment to price.")],
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.text,
    prices: Annotated[
        Path | None,
        typer.Option("--prices", help="A YAML file overriding or extending the shipped price table."),
    ] = None,
    environments_dir: Annotated[
        Path, typer.Option("--environments-dir", help="Where Pulumi.<ENV>.yaml files live.")
    ] = ENVIRONMENTS_DIR,
) -> None:
    """Monthly cost of an environment at idle (every pool at its minimum) and at peak (at its maximum)."""
    path = environment_file(environment, environments_dir)
    if not path.is_file():
        raise _fail(f"no environment {environment} (expected {path})", EXIT_BAD_INPUT)
    try:
        priced = plan_environment(path, check_policies=False, prices=load_prices(prices))
    except SpecError as error:
        raise _fail(f"invalid configuration\n{error}", EXIT_BAD_INPUT) from None
    except CostConfigError as error:
        raise _fail(f"invalid price table\n{error}", EXIT_BAD_INPUT) from None
    report = priced.cost
    assert report is not None  # every plan is priced (plan_stack_file)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    elif output_format is OutputFormat.markdown:
        sys.stdout.write("\n".join(cost_markdown(report)) + "\n")
    else:
        render_cost_text(report, Console(highlight=False), by_resource=True)


@app.command()
def policies(
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="Output format.")
    ] = OutputFormat.text,
) -> None:
    """List the policy pack's rules with their severity and enforcement level in each environment."""
    try:
        table = rule_table()
    except PolicyConfigError as error:
        raise _fail(f"invalid policy configuration\n{error}", EXIT_BAD_INPUT) from None
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps(table, indent=2) + "\n")
    elif output_format is OutputFormat.markdown:
        sys.stdout.write(render_rule_table_markdown(table) + "\n")
    else:
        render_rule_table(table, Console(highlight=False))


def main() -> None:
    """Entry point of the ``keel`` script."""
    app()


if __name__ == "__main__":
    main()
