"""Renders a review (the document ``keel.diff.compare`` returns) as a GitHub PR comment and for the terminal.

A review compares two offline plans of one environment (or one plan against nothing): which resources would
be created, changed, replaced or deleted, which of those changes are risky, what the policy pack says before
and after, and what the environment costs before and after.

The PR comment (``render_review_markdown``) starts with ``<!-- keel-review:ENV -->`` so that CI finds and
updates the one comment per environment. Its sections, in order: the headline (counts and markers), a
shortening notice if one was needed, the honesty note, "Needs attention", policies, monthly cost, the
per-resource changes by component (collapsed), and the plan's warnings.

Markers (GitHub emoji shortcodes; the comment uses only these, each for one thing):

- ``:warning:`` needs attention: a stateful or protected resource is replaced or deleted, or a protected
  resource is updated.
- ``:no_entry:`` a mandatory policy violation: the policy pack blocks ``pulumi up`` (``keel`` exits 1).
- ``:small_orange_diamond:`` an advisory policy violation: reported, does not block.
- ``:white_check_mark:`` a violation of the base that this change resolves.
- ``:mute:`` an exemption this change adds: a policy rule is silenced for a resource; read its reason.
- ``:moneybag:`` the estimated monthly cost at peak is over the environment's budget.
- ``:scissors:`` the comment was shortened to fit GitHub's limit; the notice says what was left out.

An estimate with unpriced resources (``cost.complete`` false) gets a headline line without a marker, says so
in the cost section, and shows its totals, changes and shares of the budget as lower bounds (``≥``). When the
base's estimate had unpriced resources (``cost.before_complete`` false), its totals are lower bounds (``≥``)
and the changes upper bounds (``≤``), or approximate (``≈``) when both estimates are incomplete.

A new exemption (``"new": true``) is listed first and marked **new** (``keel.diff`` does not count the
violation it silences as resolved: silencing a rule is not a fix).

Shortening: a comment longer than ``limit`` characters loses, in this order, until it fits:

1. the per-resource detail of whole components, the largest (in characters) first, since that keeps the
   most components complete;
2. rows of the cost-per-component table, the cheapest (at peak, after) first;
3. the ends of the secondary lists (resolved violations, exemptions, undecided findings, warnings, cost
   notes), down to ``SECONDARY_FLOOR`` items each;
4. the ends of every list together, the primary ones (changes needing attention, mandatory and advisory
   violations) included: each shows at most the same number of items.

A cut list ends with a count of what was cut. The headline (whose counts and markers cover everything), the
cost summary and the notice are always kept.

Every string that comes from configuration or code (names, messages, values) is escaped for Markdown and HTML,
so it cannot break the comment's layout; only the code spans in its prose (balanced backticks on one line, as
in `` `keel cost ENV` ``) stay code spans, whose content Markdown shows literally. Property values are shown as
compact JSON, shortened with an ellipsis past ``VALUE_WIDTH`` characters; ``[secret]`` values stay masked. A
value that depends on replaced resources (``known_after``) is prose: ``(known after vpc is replaced)``.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from keel.engine import SECRET_MASK
from keel.manifests import plain_numbers

RISK = ":warning:"
MANDATORY = ":no_entry:"
ADVISORY = ":small_orange_diamond:"
RESOLVED = ":white_check_mark:"
NEW_EXEMPTION = ":mute:"
OVER_BUDGET = ":moneybag:"
SHORTENED = ":scissors:"

#: GitHub refuses comments over 65,536 characters; the default leaves room for CI to add a footer.
DEFAULT_LIMIT = 60_000
#: The parts never dropped fit in this, because every configurable string in them is clipped.
MIN_LIMIT = 5_000
#: Secondary lists keep this many items before the primary lists (attention, violations) are cut.
SECONDARY_FLOOR = 10
#: A property value longer than this (as compact JSON) is shortened with an ellipsis.
VALUE_WIDTH = 80
#: Environment, labels and paths in the headline are clipped to this.
LABEL_WIDTH = 100
#: A known-after value names at most this many replaced resources, each clipped to ``VALUE_WIDTH // 2``.
KNOWN_AFTER_NAMES = 3

REVIEW_NOTE = (
    "Offline review of the inputs the program declares, planned under Pulumi's mock runtime; values only the "
    "cloud computes (ids, ARNs, endpoints) are stand-ins. This is not a diff against deployed state: "
    "`pulumi preview --diff` is the source of truth for what `pulumi up` will do."
)

ACTION_COLOURS = {"create": "green", "update": "yellow", "replace": "red", "delete": "red"}
_COUNT_PHRASES = (
    ("create", "to create"),
    ("update", "to change"),
    ("replace", "to replace"),
    ("delete", "to delete"),
)
_FINDING_LISTS = ("added", "remaining", "resolved", "exemptions", "undecided")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Characters that Markdown or HTML would interpret in prose; a backslash makes each literal (CommonMark).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_WHITESPACE = re.compile(r"\s+")
_BACKTICKS = re.compile(r"`+")
# A code span as CommonMark reads one: a whole run of backticks, up to the next run of the same length.
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)


# ------------------------------------------------------------------------------------------ shared helpers


def short_urn(urn: str | None) -> str:
    """The resource name at the end of a URN (``(stack)`` for a stack-level finding)."""
    return urn.rsplit("::", 1)[-1] if urn else "(stack)"


def money(value: float, currency: str) -> str:
    """A monthly amount in whole units, ``12,345 USD`` (the estimate is not more precise than that)."""
    return f"{value:,.0f} {currency}"


def signed_money(value: float, currency: str) -> str:
    """A difference of monthly amounts with its sign, ``+804 USD``; ``0 USD`` when it rounds to nothing."""
    whole = round(value)
    if whole == 0:
        return money(0, currency)
    return ("+" if whole > 0 else "-") + money(abs(value), currency)


def counts_phrase(counts: Mapping[str, int]) -> str:
    """``3 to create, 1 to replace`` (zeros left out), or ``no changes``."""
    parts = [f"{counts[action]:,} {phrase}" for action, phrase in _COUNT_PHRASES if counts.get(action)]
    return ", ".join(parts) or "no changes"


def known_after_text(names: Sequence[str]) -> str:
    """``(known after vpc and subnet-a are replaced)``: a value the provider computes only once the named
    resources are replaced. At most ``KNOWN_AFTER_NAMES`` are named, so the text stays short."""
    shown = [_clip(str(name), VALUE_WIDTH // 2) for name in names[:KNOWN_AFTER_NAMES]]
    if len(names) > KNOWN_AFTER_NAMES:
        shown.append(f"{len(names) - KNOWN_AFTER_NAMES:,} more")
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
    return f"(known after {listed} {'is' if len(names) == 1 else 'are'} replaced)"


def _is_prose(change: Mapping[str, Any], side: str) -> bool:
    """Whether a side of a change is shown as words (not set, known after a replacement), not as a value."""
    return change.get(side) is None or (side == "after" and bool(change.get("known_after")))


def format_change(change: Mapping[str, Any]) -> tuple[str, str]:
    """Both sides of a change as compact JSON (``(not set)`` for none, secrets still ``[secret]``), each
    shortened with an ellipsis past ``VALUE_WIDTH``; when both are that long, the shortened views start just
    before the first character where they differ, so the difference stays visible. An after side that waits
    on replaced resources (``known_after``) is ``(known after vpc is replaced)``."""
    before = _full_value(change.get("before"))
    if change.get("known_after"):
        return _clip(before, VALUE_WIDTH), known_after_text(change["known_after"])
    after = _full_value(change.get("after"))
    if len(before) > VALUE_WIDTH and len(after) > VALUE_WIDTH:
        first = next(
            (i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b),
            min(len(before), len(after)),
        )
        start = max(0, first - VALUE_WIDTH // 4)
        if start:
            before, after = "…" + before[start:], "…" + after[start:]
    return _clip(before, VALUE_WIDTH), _clip(after, VALUE_WIDTH)


def _full_value(value: Any) -> str:
    if value is None:
        return "(not set)"
    if value == SECRET_MASK:
        return SECRET_MASK
    return json.dumps(plain_numbers(value), separators=(",", ":"), ensure_ascii=False)


def attention_changes(resource: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The changes worth showing next to a risk: what forces a replacement, or every change of an update."""
    changes = resource.get("changes") or []
    if resource["action"] == "replace":
        return [c for c in changes if c.get("replaces")]
    return list(changes)


def why_it_matters(resource: Mapping[str, Any]) -> str | None:
    """What replacing or deleting a stateful resource loses, unless its risk already says so."""
    stateful = resource.get("stateful")
    if not stateful or str(stateful).rstrip(".") in (resource.get("risk") or ""):
        return None
    return f"why it matters: replacing or deleting it loses {stateful}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _one_line(text: Any) -> str:
    # A newline in a table cell or list item would end it: every configurable string is kept to one line.
    return _WHITESPACE.sub(" ", str(text))


def _literal(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(text))


def _md(text: Any, *, cell: bool = False) -> str:
    """Prose from configuration or code, made literal for Markdown (tables included) and HTML, except that its
    code spans on one line stay code spans; ``cell`` when it sits in a table (GFM splits cells on ``|`` even
    inside a code span). Backticks without a partner are made literal like the rest."""
    source, pieces, done = str(text), [], 0
    for span in _CODE_SPAN.finditer(source):
        if len(span[0].splitlines()) > 1:  # a line break would end the list item or table row it sits in
            continue
        pieces += [_literal(source[done : span.start()]), span[0].replace("|", "\\|") if cell else span[0]]
        done = span.end()
    return "".join([*pieces, _literal(source[done:])])


def _code(text: Any, *, cell: bool = False) -> str:
    """A code span holding ``text`` literally; ``cell`` when it sits in a table (GFM splits cells on ``|``)."""
    body = _one_line(text).strip()
    if not body:
        return "(empty)"
    if cell:
        body = body.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def _html(text: Any, width: int = LABEL_WIDTH) -> str:
    """Text for an HTML block (``<summary>``), where Markdown is not parsed."""
    return html.escape(_clip(_one_line(text).strip(), width))


def _md_change(change: Mapping[str, Any]) -> str:
    before, after = (
        _md(text) if _is_prose(change, side) else _code(text)
        for side, text in zip(("before", "after"), format_change(change), strict=True)
    )
    forces = " **forces replacement**" if change.get("replaces") else ""
    return f"{_code(change['path'])}: {before} → {after}{forces}"


def _plural(count: int, singular: str) -> str:
    return f"{count:,} {singular if count == 1 else singular + 's'}"


def _labels(review: Mapping[str, Any]) -> tuple[str, str]:
    base = review.get("base")
    return (base["label"] if base else "nothing"), review["head"]["label"]


def _environment(review: Mapping[str, Any]) -> str:
    environment = str(review["environment"])
    if not _ENVIRONMENT.match(environment):
        raise ValueError(
            f"review environment {environment!r} cannot name a comment: use letters, digits, '.', '_' and '-'"
        )
    return environment


def _violations(policies: Mapping[str, Any], level: str) -> list[tuple[bool, Mapping[str, Any]]]:
    """(new, finding) for the head's violations of one level, the new ones first."""
    found = [(True, f) for f in policies["added"] if f["level"] == level]
    return found + [(False, f) for f in policies["remaining"] if f["level"] == level]


def _exemptions(policies: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The head's exemptions, those this change adds first (so that shortening keeps them)."""
    return sorted(policies["exemptions"], key=lambda f: not f.get("new"))


def _new_exemptions(policies: Mapping[str, Any]) -> int:
    return sum(1 for f in policies["exemptions"] if f.get("new"))


def _risky(review: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in review["resources"] if r.get("risk")]


def _by_component(review: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for resource in review["resources"]:
        groups.setdefault(resource["component"], []).append(resource)
    return groups


def _action_counts(resources: Sequence[Mapping[str, Any]]) -> Counter[str]:
    return Counter(resource["action"] for resource in resources)


def _currency(cost: Mapping[str, Any]) -> str:
    return _clip(str(cost["currency"]), 10)


def _cost_basis(cost: Mapping[str, Any]) -> str:
    return (
        "Idle: every node pool at its minimum, with the nodes models need at their minimum replicas; peak: "
        "every pool at its maximum, on its most expensive instance type. List prices as of "
        f"{_clip(str(cost['prices_as_of']), 20)}."
    )


def _unpriced(cost: Mapping[str, Any]) -> str | None:
    """``3 resources are unpriced`` when the head's estimate is incomplete (its totals are lower bounds)."""
    if cost.get("complete", True):
        return None
    count = int(cost.get("unpriced") or 0)
    if not count:
        return "some resources are unpriced"
    return f"{_plural(count, 'resource')} {'is' if count == 1 else 'are'} unpriced"


def _base_incomplete(cost: Mapping[str, Any]) -> bool:
    """Whether the base's estimate had unpriced resources (its totals are lower bounds)."""
    return cost.get("before") is not None and cost.get("before_complete", True) is False


def _bounds_note(cost: Mapping[str, Any]) -> str | None:
    """The sentence the cost section gives figures that are bounds (``≥``, ``≤``, ``≈``), if any are."""
    unpriced, base = _unpriced(cost), _base_incomplete(cost)
    head = f"{unpriced[:1].upper()}{unpriced[1:]}: the totals are lower bounds (≥)" if unpriced else None
    if head and base:
        return (
            f"{head}; the base's estimate had unpriced resources too, so the base's totals are lower bounds as "
            "well and the changes approximate (≈)"
        )
    if base:
        return (
            "The base's estimate had unpriced resources, so the base's totals are lower bounds (≥) and the "
            "changes upper bounds (≤)"
        )
    return head


def _scenario_cells(cost: Mapping[str, Any], scenario: str) -> tuple[str, str, str, str, str]:
    """Before, after, change, budget and share of the budget at idle or peak. A side whose estimate is
    incomplete is a lower bound (``≥``); the change is then a lower bound (after incomplete), an upper bound
    (``≤``, before incomplete) or approximate (``≈``, both)."""
    currency, budget = _currency(cost), cost.get("budget")
    before, after, delta = cost.get("before"), cost["after"], cost.get("delta")
    after_low, before_low = bool(_unpriced(cost)), _base_incomplete(cost)
    bound = "≥ " if after_low else ""
    change = {(False, False): "", (False, True): "≥ ", (True, False): "≤ ", (True, True): "≈ "}[
        (before_low, after_low)
    ]
    return (
        ("≥ " if before_low else "") + _money_or_na(before, scenario, currency),
        bound + money(after[scenario], currency),
        change + signed_money(delta[scenario], currency) if delta is not None else "n/a",
        money(budget, currency) if budget is not None else "none",
        f"{bound}{after[scenario] / budget:.1%}" if budget else "n/a",
    )


# ------------------------------------------------------------------------------------------------ Markdown


@dataclass(frozen=True)
class _Keep:
    """How much of each droppable part the comment keeps (see the module docstring for the order)."""

    components: int
    cost_rows: int
    secondary: int
    primary: int


@dataclass(frozen=True)
class _Parts:
    """Every piece of the comment rendered once; ``_compose`` joins the pieces a ``_Keep`` allows."""

    environment: str
    head: list[str]
    attention: list[str]
    policies_header: list[str]
    mandatory: list[str]
    advisory: list[str]
    resolved: list[str]
    exemptions: list[str]
    new_exemptions: int
    undecided: list[str]
    cost_summary: list[str]
    cost_rows: list[str]
    cost_notes: list[str]
    details: list[tuple[str, str]]
    detail_order: list[int]
    """Indexes into ``details``, smallest first: the first ``_Keep.components`` of them are kept."""
    warnings: list[str]

    @property
    def secondary_lists(self) -> tuple[list[str], ...]:
        return self.resolved, self.exemptions, self.undecided, self.warnings, self.cost_notes

    @property
    def primary_lists(self) -> tuple[list[str], ...]:
        return self.attention, self.mandatory, self.advisory

    def everything(self) -> _Keep:
        return _Keep(
            components=len(self.details),
            cost_rows=len(self.cost_rows),
            secondary=max(map(len, self.secondary_lists)),
            primary=max(map(len, self.primary_lists)),
        )


def _headline(review: Mapping[str, Any], environment: str) -> list[str]:
    base, head = (_code(_clip(label, LABEL_WIDTH)) for label in _labels(review))
    counts = review["counts"]
    against = (
        f"{base} → {head}"
        if review.get("base")
        else f"{head} against nothing (a plain plan: every resource is new)"
    )
    sources = [
        _code(_clip(str(side["source"]), LABEL_WIDTH))
        for side in (review.get("base"), review["head"])
        if side and side.get("source") is not None
    ]
    # A base without a stack file is an environment this change creates.
    new = " (new)" if review.get("base") and review["base"].get("source") is None else ""
    unchanged = f" ({counts.get('unchanged', 0):,} unchanged)" if counts.get("unchanged") else ""
    lines = [
        f"<!-- keel-review:{environment} -->",
        f"### Keel review: {_code(environment)}",
        "",
        f"**{counts_phrase(counts)}**{unchanged}: {against}.",
        "",
        *([f"Stack file {' → '.join(dict.fromkeys(sources))}{new}.", ""] if sources else []),
    ]
    summary = [
        f"- {marker}{' ' if marker else ''}**{_md(headline)}**{_md(rest)}"
        for marker, _, headline, rest in _summary(review)
    ]
    return lines + ([*summary, ""] if summary else [])


def _summary(review: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(marker or "", terminal colour, headline, rest) for each thing a reviewer must not miss."""
    found: list[tuple[str, str, str, str]] = []
    risky = _risky(review)
    if risky:
        verb = "needs" if len(risky) == 1 else "need"
        found.append(
            (
                RISK,
                "red",
                f"{_plural(len(risky), 'change')} to stateful or protected resources {verb} attention",
                f": {counts_phrase(_action_counts(risky))}",
            )
        )
    policies = review.get("policies")
    if policies:
        for level, marker, colour, consequence in (
            ("mandatory", MANDATORY, "red", ": the policy pack blocks pulumi up"),
            ("advisory", ADVISORY, "yellow", ""),
        ):
            violations = _violations(policies, level)
            if violations:
                new = sum(1 for is_new, _ in violations if is_new)
                found.append(
                    (
                        marker,
                        colour,
                        _plural(len(violations), f"{level} violation"),
                        f" ({f'{new:,}' if new else 'none'} new){consequence}",
                    )
                )
        exempted = _new_exemptions(policies)
        if exempted:
            found.append(
                (
                    NEW_EXEMPTION,
                    "cyan",
                    _plural(exempted, "new exemption"),
                    ": a rule is silenced for a resource; read the reason"
                    if exempted == 1
                    else ": rules are silenced for resources; read the reasons",
                )
            )
        resolved = policies["resolved"]
        if resolved:
            found.append((RESOLVED, "green", _plural(len(resolved), "violation") + " resolved", ""))
    cost = review.get("cost")
    unpriced = _unpriced(cost) if cost else None
    if cost and cost.get("over_budget"):
        currency = _currency(cost)
        found.append(
            (
                OVER_BUDGET,
                "red",
                "over budget at peak",
                f": {'at least ' if unpriced else ''}{money(cost['after']['peak'], currency)} a month against "
                f"a budget of {money(cost['budget'], currency)}",
            )
        )
    if unpriced:
        # No marker: the set stays small, and a lower bound is a caveat on the cost, not a finding.
        found.append(
            ("", "yellow", "cost estimate incomplete", f": {unpriced}, so the totals are lower bounds")
        )
    return found


def _attention_item(resource: Mapping[str, Any]) -> str:
    protected = ", protected" if resource.get("protected") else ""
    lines = [
        f"- **{_md(resource['action'])}** {_code(resource['name'])} ({_code(resource['type'])} in "
        f"{_code(resource['component'])}{protected}): {_md(resource['risk'])}"
    ]
    why = why_it_matters(resource)
    if why:
        lines.append(f"  - {_md(why)}")
    lines += [f"  - {_md_change(change)}" for change in attention_changes(resource)]
    return "\n".join(lines)


def _violation_row(is_new: bool, finding: Mapping[str, Any], remediation: Mapping[str, str]) -> str:
    status = "**new**" if is_new else "already present"
    fix = remediation.get(finding["policy"], "")
    return (
        f"| {status} | {_code(finding['policy'], cell=True)} | {_code(short_urn(finding['urn']), cell=True)} "
        f"| {_md(finding['message'], cell=True)} | {_md(fix, cell=True)} |"
    )


def _finding_item(finding: Mapping[str, Any], *, reason: bool = False) -> str:
    new = "**new** " if finding.get("new") else ""
    text = (
        f"- {new}{_code(finding['policy'])} ({_md(finding['level'])}) on {_code(short_urn(finding['urn']))}: "
        f"{_md(finding['message'])}"
    )
    return text + (f"; reason: {_md(finding.get('reason') or '(none given)')}" if reason else "")


def _money_or_na(amounts: Mapping[str, float] | None, key: str, currency: str) -> str:
    return money(amounts[key], currency) if amounts is not None else "n/a"


def _component_change(cost: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
    """A component's change at peak: a new component's whole cost, a removed one's negated; n/a with no base."""
    if cost.get("before") is None:
        return "n/a"
    was, now = entry.get("before") or {}, entry.get("after") or {}
    return signed_money(now.get("peak", 0.0) - was.get("peak", 0.0), _currency(cost))


def _cost_parts(cost: Mapping[str, Any] | None) -> tuple[list[str], list[str], list[str]]:
    """(summary lines, per-component rows, notes)."""
    if cost is None:
        return ["#### Monthly cost", "", "The plan has no cost estimate.", ""], [], []
    currency = _currency(cost)
    lines = [
        "#### Monthly cost",
        "",
        "| | before | after | change | budget | share of budget |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in ("idle", "peak"):
        before, after, change, budget, share = _scenario_cells(cost, scenario)
        over = f"{OVER_BUDGET} " if scenario == "peak" and cost.get("over_budget") else ""
        lines.append(f"| {scenario} | {before} | {after} | {change} | {budget} | {over}{share} |")
    lines.append("")
    note = _bounds_note(cost)
    if note:
        # The notes list the head's unpriced resources only: the base's are in its own plan.
        which = " The cost notes say which." if _unpriced(cost) else ""
        lines += [f"**{note}.**{which}", ""]
    lines += [_md(_cost_basis(cost)), ""]
    rows = [
        f"| {_code(entry['component'], cell=True)} | {_money_or_na(entry.get('before'), 'idle', currency)} "
        f"| {_money_or_na(entry.get('after'), 'idle', currency)} "
        f"| {_money_or_na(entry.get('before'), 'peak', currency)} "
        f"| {_money_or_na(entry.get('after'), 'peak', currency)} | {_component_change(cost, entry)} |"
        for entry in cost["components"]
    ]
    return lines, rows, [f"- {_md(note)}" for note in cost.get("notes") or []]


def _detail_block(component: str, resources: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        f"<details><summary><code>{_html(component)}</code>: "
        f"{html.escape(counts_phrase(_action_counts(resources)))}</summary>",
        "",
    ]
    for resource in resources:
        protected = ", protected" if resource.get("protected") else ""
        lines.append(
            f"- **{_md(resource['action'])}** {_code(resource['name'])} ({_code(resource['type'])}{protected})"
        )
        lines += [f"  - {_md_change(change)}" for change in resource.get("changes") or []]
    return "\n".join([*lines, "", "</details>"])


def _parts(review: Mapping[str, Any]) -> _Parts:
    environment = _environment(review)
    header = ["#### Policies", ""]
    if review.get("policies") is None:
        header += ["Not evaluated: the plan was made without the policy pack.", ""]
    else:
        header += [f"Config {_code(_clip(str(review['policies']['config']), LABEL_WIDTH))}.", ""]
        if not any(review["policies"][key] for key in _FINDING_LISTS):
            header += ["No violations.", ""]
    policies: Mapping[str, Any] = review.get("policies") or {key: [] for key in _FINDING_LISTS}
    remediation: Mapping[str, str] = policies.get("remediation") or {}
    summary, rows, notes = _cost_parts(review.get("cost"))
    details = [(c, _detail_block(c, resources)) for c, resources in _by_component(review).items()]
    return _Parts(
        environment=environment,
        head=_headline(review, environment),
        attention=[_attention_item(r) for r in _risky(review)],
        policies_header=header,
        mandatory=[_violation_row(new, f, remediation) for new, f in _violations(policies, "mandatory")],
        advisory=[_violation_row(new, f, remediation) for new, f in _violations(policies, "advisory")],
        resolved=[_finding_item(f) for f in policies["resolved"]],
        exemptions=[_finding_item(f, reason=True) for f in _exemptions(policies)],
        new_exemptions=_new_exemptions(policies),
        undecided=[_finding_item(f) for f in policies["undecided"]],
        cost_summary=summary,
        cost_rows=rows,
        cost_notes=notes,
        details=details,
        detail_order=sorted(range(len(details)), key=lambda i: (len(details[i][1]), i)),
        warnings=[f"- {_md(w)}" for w in review.get("warnings") or []],
    )


def _capped(items: Sequence[str], keep: int, table_head: Sequence[str] = ()) -> list[str]:
    """The first ``keep`` items (list items, or table rows under ``table_head``), then a count of the rest."""
    rest = len(items) - keep
    shown = [*table_head, *items[:keep], ""] if keep else []
    count = f"*…{rest:,} more not shown.*" if keep else f"*{rest:,} not shown.*"
    return [*shown, *([count, ""] if rest > 0 else [])]


def _section(title: str, items: Sequence[str], keep: int, table_head: Sequence[str] = ()) -> list[str]:
    return [title, "", *_capped(items, keep, table_head)] if items else []


_VIOLATION_TABLE = ("| status | rule | resource | message | fix |", "|---|---|---|---|---|")
_COMPONENT_TABLE = (
    "| component | idle before | idle after | peak before | peak after | peak change |",
    "|---|---:|---:|---:|---:|---:|",
)


def _notice(parts: _Parts, keep: _Keep, limit: int) -> list[str]:
    left_out = []
    dropped = [parts.details[i][0] for i in sorted(parts.detail_order[keep.components :])]
    if dropped:
        named = ", ".join(_code(_clip(name, 40)) for name in dropped[:5])
        more = f" and {len(dropped) - 5:,} more" if len(dropped) > 5 else ""
        left_out.append(
            f"the per-resource detail of {len(dropped):,} of {len(parts.details):,} components ({named}{more})"
        )
    if keep.cost_rows < len(parts.cost_rows):
        left_out.append(
            f"{len(parts.cost_rows) - keep.cost_rows:,} of {len(parts.cost_rows):,} rows of the cost per component"
        )
    full = parts.everything()
    if keep.secondary < full.secondary or keep.primary < full.primary:
        left_out.append("the ends of long lists, where marked")
    if not left_out:
        return []
    return [
        f"> {SHORTENED} **Shortened to fit a GitHub comment ({limit:,} characters).** Left out: "
        f"{'; '.join(left_out)}. See the whole review with `keel diff {parts.environment} --base <ref>` "
        f"locally, or as JSON in the workflow run's `keel-review-{parts.environment}` artifact.",
        "",
    ]


def _compose(parts: _Parts, keep: _Keep, limit: int) -> str:
    lines = [*parts.head, *_notice(parts, keep, limit), f"> {REVIEW_NOTE}", ""]
    lines += _section(f"#### {RISK} Needs attention", parts.attention, keep.primary)
    lines += parts.policies_header
    lines += _section(
        f"{MANDATORY} **Mandatory violations: {len(parts.mandatory):,}**",
        parts.mandatory,
        keep.primary,
        _VIOLATION_TABLE,
    )
    lines += _section(
        f"{ADVISORY} **Advisory violations: {len(parts.advisory):,}**",
        parts.advisory,
        keep.primary,
        _VIOLATION_TABLE,
    )
    lines += _section(f"{RESOLVED} **Resolved: {len(parts.resolved):,}**", parts.resolved, keep.secondary)
    exemptions = f"**Exemptions: {len(parts.exemptions):,}**"
    if parts.new_exemptions:
        exemptions = f"{NEW_EXEMPTION} {exemptions} ({parts.new_exemptions:,} new)"
    lines += _section(exemptions, parts.exemptions, keep.secondary)
    lines += _section(
        f"**Undecided (values unknown at plan time): {len(parts.undecided):,}**",
        parts.undecided,
        keep.secondary,
    )
    lines += parts.cost_summary
    if parts.cost_rows:
        lines += [
            f"<details><summary>Cost per component ({len(parts.cost_rows):,})</summary>",
            "",
            *_capped(parts.cost_rows, keep.cost_rows, _COMPONENT_TABLE),
            "</details>",
            "",
        ]
    if parts.cost_notes:
        lines += [
            f"<details><summary>Cost notes ({len(parts.cost_notes):,})</summary>",
            "",
            *_capped(parts.cost_notes, keep.secondary),
            "</details>",
            "",
        ]
    kept = set(parts.detail_order[: keep.components])
    if parts.details:
        lines += ["#### Changes by component", ""]
        lines += [f"{block}\n" for i, (_, block) in enumerate(parts.details) if i in kept]
        if len(kept) < len(parts.details):
            lines += [
                f"*Detail of {len(parts.details) - len(kept):,} components left out (see the notice).*",
                "",
            ]
    lines += _section("#### Warnings", parts.warnings, keep.secondary)
    return "\n".join(lines).rstrip("\n") + "\n"


def _most(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The largest ``k`` in ``[low, high]`` with ``fits(k)``, else ``low`` (``fits`` true up to a point)."""
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def render_review_markdown(review: Mapping[str, Any], *, limit: int = DEFAULT_LIMIT) -> str:
    """One GitHub PR comment for a review, at most ``limit`` characters (shortened as the module says).

    Raises ``ValueError`` for a ``limit`` under ``MIN_LIMIT`` or an environment name unfit for the marker.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit {limit:,} is too small for a review comment: at least {MIN_LIMIT:,}")
    parts = _parts(review)
    full = parts.everything()
    # Each stage shrinks its part only as far as needed (largest fitting size), so as much as fits is kept.
    stages: list[tuple[Callable[[_Keep, int], _Keep], int, int]] = [
        (lambda keep, k: replace(keep, components=k), 0, full.components),
        (lambda keep, k: replace(keep, cost_rows=k), 0, full.cost_rows),
        (lambda keep, k: replace(keep, secondary=k), min(SECONDARY_FLOOR, full.secondary), full.secondary),
        (
            lambda keep, k: replace(keep, primary=k, secondary=min(keep.secondary, k)),
            0,
            max(full.primary, full.secondary),
        ),
    ]

    def fits(keep: _Keep) -> bool:
        return len(_compose(parts, keep, limit)) <= limit

    keep = full
    for shrink, low, high in stages:
        if fits(keep):
            break
        base = keep
        keep = shrink(base, _most(lambda k, base=base, shrink=shrink: fits(shrink(base, k)), low, high))
    text = _compose(parts, keep, limit)
    if len(text) > limit:  # the kept parts are bounded (clipped strings), so this is a bug, not bad input
        raise AssertionError(f"review comment of {len(text):,} characters exceeds its limit of {limit:,}")
    return text


# ------------------------------------------------------------------------------------------------ terminal


def _text_change(change: Mapping[str, Any]) -> str:
    before, after = format_change(change)
    forces = " [red](forces replacement)[/red]" if change.get("replaces") else ""
    return f"[bold]{escape(change['path'])}[/bold]: {escape(before)} → {escape(after)}{forces}"


def _text_action(action: str) -> str:
    colour = ACTION_COLOURS.get(action, "white")
    return f"[{colour}]{escape(action)}[/{colour}]"


def _render_policies_review(policies: Mapping[str, Any] | None, console: Console) -> None:
    if policies is None:
        console.print("[bold]Policies[/bold]: not evaluated (the plan was made without the policy pack)")
        return
    console.print(f"[bold]Policies[/bold] [dim](config {escape(str(policies['config']))})[/dim]")
    remediation = policies.get("remediation") or {}
    if not any(policies[key] for key in _FINDING_LISTS):
        console.print("  [green]no violations[/green]")
    for level, colour in (("mandatory", "red"), ("advisory", "yellow")):
        found = _violations(policies, level)
        if found:
            console.print(f"  [{colour}]{level} violations: {len(found)}[/{colour}]")
        for is_new, f in found:
            status = "[bold]new[/bold]" if is_new else "already present"
            console.print(
                f"    {status} [{colour}]{escape(f['policy'])}[/{colour}] {escape(short_urn(f['urn']))}: "
                f"{escape(f['message'])}"
            )
            if remediation.get(f["policy"]):
                console.print(f"      [dim]fix: {escape(remediation[f['policy']])}[/dim]")
    for f in policies["resolved"]:
        console.print(
            f"  [green]resolved[/green] {escape(f['policy'])} ({escape(f['level'])}) "
            f"{escape(short_urn(f['urn']))}: {escape(f['message'])}"
        )
    for f in _exemptions(policies):
        new = "[bold]new[/bold] " if f.get("new") else ""
        console.print(
            f"  {new}[cyan]exempted[/cyan] {escape(f['policy'])} ({escape(f['level'])}) "
            f"{escape(short_urn(f['urn']))}: {escape(f['message'])}; [cyan]reason:[/cyan] "
            f"{escape(f.get('reason') or '(none given)')}"
        )
    for f in policies["undecided"]:
        console.print(
            f"  [magenta]undecided[/magenta] {escape(f['policy'])} {escape(short_urn(f['urn']))}: "
            f"{escape(f['message'])}"
        )


def _render_cost_review(cost: Mapping[str, Any] | None, console: Console) -> None:
    if cost is None:
        console.print("[bold]Monthly cost[/bold]: the plan has no cost estimate")
        return
    currency = _currency(cost)
    table = Table(title="Monthly cost", show_edge=False)
    for column in ("", "before", "after", "change", "budget", "share of budget"):
        table.add_column(column, justify="right" if column else "left")
    for scenario in ("idle", "peak"):
        *figures, share = _scenario_cells(cost, scenario)
        over = scenario == "peak" and cost.get("over_budget")
        # Escaped: the amounts carry the currency, which comes from the price table.
        table.add_row(scenario, *map(escape, figures), f"[red]OVER BUDGET {share}[/red]" if over else share)
    console.print(table)
    note = _bounds_note(cost)
    if note:
        console.print(f"  [yellow]{escape(note)}[/yellow]")
    components = Table(title="Cost per component", show_edge=False)
    for column in ("component", "idle before", "idle after", "peak before", "peak after", "peak change"):
        components.add_column(column, justify="left" if column == "component" else "right")
    for entry in cost["components"]:
        was, now = entry.get("before"), entry.get("after")
        components.add_row(
            escape(entry["component"]),
            _money_or_na(was, "idle", currency),
            _money_or_na(now, "idle", currency),
            _money_or_na(was, "peak", currency),
            _money_or_na(now, "peak", currency),
            _component_change(cost, entry),
        )
    console.print(components)
    console.print(f"  [dim]{escape(_cost_basis(cost))}[/dim]")
    for note in cost.get("notes") or []:
        console.print(f"  [dim]{escape(note)}[/dim]")


def render_review_text(review: Mapping[str, Any], console: Console) -> None:
    """The terminal view of a review: the same content as the PR comment, in colour, never shortened."""
    base, head = _labels(review)
    unchanged = review["counts"].get("unchanged")
    console.print(
        f"[bold]Review {escape(str(review['environment']))}: {escape(base)} → {escape(head)}: "
        f"{counts_phrase(review['counts'])}[/bold]{f' [dim]({unchanged:,} unchanged)[/dim]' if unchanged else ''}"
    )
    for _, colour, headline, rest in _summary(review):
        console.print(f"  [bold {colour}]{escape(headline)}[/bold {colour}]{escape(rest)}")
    console.print(f"[dim]{escape(REVIEW_NOTE)}[/dim]")
    risky = _risky(review)
    if risky:
        console.print(f"[bold red]Needs attention ({len(risky)})[/bold red]")
    for resource in risky:
        protected = ", protected" if resource.get("protected") else ""
        console.print(
            f"  {_text_action(resource['action'])} [bold]{escape(resource['name'])}[/bold] "
            f"[dim]({escape(resource['type'])} in {escape(resource['component'])}{protected})[/dim]: "
            f"[red]{escape(resource['risk'])}[/red]"
        )
        why = why_it_matters(resource)
        if why:
            console.print(f"    {escape(why)}")
        for change in attention_changes(resource):
            console.print(f"    {_text_change(change)}")
    _render_policies_review(review.get("policies"), console)
    _render_cost_review(review.get("cost"), console)
    if review["resources"]:
        tree = Tree("[bold]Changes by component[/bold]")
        for component, resources in _by_component(review).items():
            node = tree.add(
                f"[bold]{escape(component)}[/bold] [dim]{counts_phrase(_action_counts(resources))}[/dim]"
            )
            for resource in resources:
                protected = " [yellow]\\[protected][/yellow]" if resource.get("protected") else ""
                child = node.add(
                    f"{_text_action(resource['action'])} {escape(resource['name'])} "
                    f"[dim]{escape(resource['type'])}[/dim]{protected}"
                )
                for change in resource.get("changes") or []:
                    child.add(_text_change(change))
        console.print(tree)
    for message in review.get("warnings") or []:
        console.print(f"[yellow]warning:[/yellow] {escape(message)}")
