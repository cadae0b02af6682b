"""The ``keel`` command line.

Exit status: 0 plan ok; 1 mandatory policy violations; 2 bad config or usage; 3 the stack program failed.
"""

from __future__ import annotations

import json
import sys
import traceback
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from keel.config import environment_name
from keel.cost import CostConfigError, estimate
from keel.engine import PlanError
from keel.manifests import write_manifests
from keel.plan import ENVIRONMENTS_DIR, environment_file, plan_environment
from keel.policy import PolicyConfigError, rule_table
from keel.render import (
    cost_markdown,
    render_cost_text,
    render_json,
    render_markdown,
    render_rule_table,
    render_rule_table_markdown,
    render_text,
)
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
    Console(stderr=True, highlight=False).print(
        f"[red]keel:[/red] {escape(message)}", markup=True, soft_wrap=True
    )
    return typer.Exit(code)


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
        try:
            result = plan_environment(path, policy_config=policy_config)
        except SpecError as error:
            raise _fail(f"invalid configuration\n{error}", EXIT_BAD_INPUT) from None
        except PolicyConfigError as error:
            raise _fail(f"invalid policy configuration\n{error}", EXIT_BAD_INPUT) from None
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
        if manifests_dir is not None:
            target = manifests_dir / result.environment if len(paths) > 1 else manifests_dir
            written = write_manifests(result.graph, target)
            Console(stderr=True, highlight=False).print(
                f"wrote {len(written)} manifests to {escape(str(target))}"
            )
        if output_format is OutputFormat.json:
            sys.stdout.write(render_json(result) + "\n")
        elif output_format is OutputFormat.markdown:
            sys.stdout.write(render_markdown(result) + "\n")
        else:
            render_text(result, console)
        blocked |= bool(result.policies and result.policies.mandatory)
    if blocked:
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
        report = estimate(plan_environment(path, check_policies=False), overrides=prices)
    except SpecError as error:
        raise _fail(f"invalid configuration\n{error}", EXIT_BAD_INPUT) from None
    except CostConfigError as error:
        raise _fail(f"invalid price table\n{error}", EXIT_BAD_INPUT) from None
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    elif output_format is OutputFormat.markdown:
        sys.stdout.write("\n".join(cost_markdown(report)) + "\n")
    else:
        render_cost_text(report, Console(highlight=False))


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
