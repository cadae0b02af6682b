"""``keel diff``: compare two offline plans of one environment and say what a change would do.

``compare(base, head)`` is a pure function over two plan documents as ``keel plan ENV --format json`` prints
them (``Plan.to_json()``). Resources are matched by URN; a matched resource is updated when its declared
inputs or its protect/retainOnDelete/ignoreChanges options differ, and replaced when a changed input is one
the provider can only change by replacing the resource (``keel.replacements``). Cost and policy findings are
compared too. The result is the review document that ``keel.report`` renders (JSON-able, sorted).

Like a plan, a review compares declared inputs under the mock runtime: values only the cloud knows (and secret
values, masked in both plans) cannot show a change. Paths such as ``source`` or the price table's location
differ between checkouts and are never compared.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from keel.cost import component_of
from keel.engine import PlannedResource
from keel.replacements import replacement_paths, stateful_reason

KIND = "offline review of declared inputs (Pulumi mock runtime); not a diff against the cloud"
#: The stack's root resource: it is never created, replaced or deleted by a change, so it is not counted.
STACK_TYPE = "pulumi:pulumi:Stack"
#: Resource options compared besides inputs, with the path a change to them is reported at.
OPTIONS = {"protect": "(protect)", "retainOnDelete": "(retainOnDelete)", "ignoreChanges": "(ignoreChanges)"}
ACTIONS = ("create", "update", "replace", "delete", "unchanged")
_LEVEL_ORDER = {"mandatory": 0, "advisory": 1}
#: Standalone figures ("42 GPUs", "$27,306/month"), not digits inside names ("g6.8xlarge", "us-east-1").
_FIGURES = re.compile(r"(?<![\w.-])\$?\d[\d,]*(?:\.\d+)?(?![\w-])")


# ------------------------------------------------------------------------------------------- resources


def _equal(a: Any, b: Any) -> bool:
    """JSON equality that keeps ``True`` apart from ``1`` (Python's ``==`` does not) and ``2`` equal to ``2.0``
    (the engine records numbers as floats; a saved plan may hold either)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return all(_equal(a.get(k), b.get(k)) for k in {*a, *b})
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def changed_paths(before: Any, after: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(path, before, after)`` for every difference between two input values, mapping keys in sorted order.

    Mapping keys are joined with ``.`` and list items are ``[i]``; a missing key counts as ``null`` (as it does
    to Pulumi). Lists are compared item by item only when both have the same length and hold only mappings;
    otherwise a differing list is reported whole at its own path, so one inserted item is one change instead of
    a change at every later index.
    """
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted({*before, *after}, key=str):
            yield from changed_paths(before.get(key), after.get(key), _join(path, key))
    elif (
        isinstance(before, list)
        and isinstance(after, list)
        and len(before) == len(after)
        and all(isinstance(item, Mapping) for item in (*before, *after))
    ):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from changed_paths(old, new, f"{path}[{index}]")
    elif not _equal(before, after):
        yield path, before, after


def _changes(type_: str, base: Mapping[str, Any], head: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = list(changed_paths(base.get("inputs") or {}, head.get("inputs") or {}))
    replacing = set(replacement_paths(type_, [path for path, _, _ in found]))
    changes = [
        {"path": path, "before": old, "after": new, "replaces": path in replacing} for path, old, new in found
    ]
    for option, label in OPTIONS.items():
        old, new = base.get(option), head.get(option)
        if option == "ignoreChanges":
            old, new = sorted(old or []), sorted(new or [])
        else:
            old, new = bool(old), bool(new)
        if not _equal(old, new):
            # Options change how Pulumi treats the resource, never the resource itself: no replacement.
            changes.append({"path": label, "before": old, "after": new, "replaces": False})
    return changes


#: Inputs whose change never touches what a resource holds or does (AWS applies tags in place).
_METADATA_ONLY = ("tags", "tagsAll")


def _mentions(text: str, reference: str) -> bool:
    """Whether ``reference`` (an id or ARN) stands alone in ``text``: ``keel-prod-vault`` is not in the ARN of
    ``keel-prod-vault-us-west-2``."""
    return re.search(rf"(?<![\w.-]){re.escape(reference)}(?![\w.-])", text) is not None


def _references(resource: Mapping[str, Any]) -> tuple[str, ...]:
    """The strings other resources hold when they refer to ``resource`` (its id, ARN and other computed
    values, as ``Plan.to_json`` lists them)."""
    return tuple(ref for ref in resource.get("references") or () if isinstance(ref, str) and ref)


def _holding(value: Any, path: str, needles: frozenset[str]) -> list[tuple[str, Any]]:
    """``(path, value)`` of every string inside ``value`` that mentions one of ``needles`` (ids, ARNs)."""
    if isinstance(value, Mapping):
        return [
            found
            for key in sorted(value, key=str)
            for found in _holding(value[key], _join(path, key), needles)
        ]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _holding(item, f"{path}[{i}]", needles)]
    if isinstance(value, str) and any(_mentions(value, needle) for needle in needles):
        return [(path, value)]
    return []


def _overlap(path: str, other: str) -> bool:
    """Whether one path lies in the other (``resources[0]`` in ``resources``): one change already covers it."""
    shorter, longer = sorted((path, other), key=len)
    return longer == shorter or (longer.startswith(shorter) and longer[len(shorter)] in ".[")


def _knock_on(
    resource: Mapping[str, Any], replaced: Mapping[str, Mapping[str, Any]], already: set[str]
) -> list[dict[str, Any]]:
    """Inputs that take a value from a replaced resource: the replacement gives it a new id and ARN, so every
    place this resource holds them changes to a value no plan can show (``after`` unknown, ``known_after``
    naming the replaced resources). Where such a place forces replacement (``launchTemplate.id``, ``vpcId``),
    this resource is replaced too; an ARN in an annotation under ``metadata`` does not replace it."""
    knock_on: list[dict[str, Any]] = []
    inputs = resource.get("inputs") or {}
    for key, sources in sorted((resource.get("propertyDependencies") or {}).items()):
        hit = [replaced[urn] for urn in sources if urn in replaced]
        if not hit:
            continue
        references = {r["name"]: _references(r) for r in hit}
        needles = frozenset(ref for refs in references.values() for ref in refs)
        # Only where a reference sits: an input that merely waited for the resource keeps its value. A plan
        # without ids (from an older Keel) cannot say where, so the whole input counts, to be safe.
        places = _holding(inputs.get(key), key, needles) if needles else [(key, inputs.get(key))]
        for path, before in places:
            if any(_overlap(path, changed) for changed in already):
                continue
            names = sorted(
                name
                for name, refs in references.items()
                if not refs or any(_mentions(str(before), ref) for ref in refs)
            )
            knock_on.append(
                {
                    "path": path,
                    "before": before,
                    "after": None,
                    "known_after": names,
                    "replaces": bool(replacement_paths(resource["type"], [path], whole_blocks=False)),
                }
            )
    return knock_on


def _risk(
    action: str,
    stateful: str | None,
    base: Mapping[str, Any] | None,
    head: Mapping[str, Any] | None,
    changes: Sequence[Mapping[str, Any]] = (),
) -> str | None:
    """Why a reviewer must look twice, or ``None``. Pulumi refuses to replace or delete a protected resource;
    an update of a protected resource that only retags it is not worth a reviewer's attention."""
    was_protected = bool(base and base.get("protect"))
    is_protected = bool(head and head.get("protect"))
    reasons: list[str] = []
    if action == "replace":
        if stateful:
            reasons.append(f"replaces a stateful resource: {stateful.rstrip('.')}")
        if was_protected or is_protected:
            reasons.append("replaces a protected resource: pulumi up fails until protect is lifted")
    elif action == "delete":
        if stateful and base and base.get("retainOnDelete"):
            reasons.append(
                "removes a stateful resource from the stack: retainOnDelete leaves it in the cloud, unmanaged"
            )
        elif stateful:
            reasons.append(f"deletes a stateful resource: {stateful.rstrip('.')}")
        if was_protected:
            reasons.append("deletes a protected resource: pulumi up fails until protect is lifted")
    elif action == "update":
        if was_protected and not is_protected:
            reasons.append("lifts protect: a later change can delete or replace the resource")
        elif is_protected and any(
            str(c["path"]).split(".", 1)[0].split("[", 1)[0] not in _METADATA_ONLY for c in changes
        ):
            reasons.append("updates a protected resource")
        if base and head and base.get("retainOnDelete") and not head.get("retainOnDelete"):
            reasons.append("no longer retained on delete: deleting it later destroys it in the cloud")
    return "; ".join(reasons) or None


def _planned(resource: Mapping[str, Any]) -> PlannedResource:
    """A plan document's resource as the engine's record (only what it declares; no outputs are known)."""
    return PlannedResource(
        urn=resource["urn"],
        type=resource["type"],
        name=resource["name"],
        parent=resource.get("parent"),
        provider=resource.get("provider"),
        custom=bool(resource.get("custom", True)),
        inputs=resource.get("inputs") or {},
        protect=bool(resource.get("protect")),
        retain_on_delete=bool(resource.get("retainOnDelete")),
        ignore_changes=tuple(resource.get("ignoreChanges") or ()),
        depends_on=(),
        outputs={},
    )


def _components(resources: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """URN -> the top-level ``keel:*`` component a resource belongs to (a top-level component is its own)."""
    planned = {r["urn"]: _planned(r) for r in resources}
    found: dict[str, str] = {}
    for urn, resource in planned.items():
        component = component_of(resource, planned)
        if component == "(stack)" and resource.type.startswith("keel:"):
            component = resource.name
        found[urn] = component
    return found


def _entry(
    resource: Mapping[str, Any],
    *,
    action: str,
    changes: list[dict[str, Any]],
    component: str,
    base: Mapping[str, Any] | None,
    head: Mapping[str, Any] | None,
) -> dict[str, Any]:
    stateful = stateful_reason(resource["type"])
    return {
        "urn": resource["urn"],
        "type": resource["type"],
        "name": resource["name"],
        "component": component,
        "action": action,
        "changes": changes,
        "protected": bool(resource.get("protect")),
        "stateful": stateful,
        "risk": _risk(action, stateful, base, head, changes),
    }


def _resources(
    base: Sequence[Mapping[str, Any]], head: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    base = [r for r in base if r["type"] != STACK_TYPE]
    head = [r for r in head if r["type"] != STACK_TYPE]
    before = {r["urn"]: r for r in base}
    after = {r["urn"]: r for r in head}
    head_components, base_components = _components(head), _components(base)
    counts: dict[str, int] = dict.fromkeys(ACTIONS, 0)
    entries: list[dict[str, Any]] = []
    changes = {r["urn"]: _changes(r["type"], before[r["urn"]], r) for r in head if r["urn"] in before}
    # A replacement gives the replaced resource new ids, and every input taken from it changes too, which may
    # replace that resource in turn: repeat until nothing more is replaced (plans list resources by URN, not
    # in dependency order).
    replaced: dict[str, Mapping[str, Any]] = {}
    while True:
        newly = {
            r["urn"]: r
            for r in head
            if r["urn"] in changes
            and r["urn"] not in replaced
            and any(c["replaces"] for c in changes[r["urn"]])
        }
        if not newly:
            break
        replaced |= newly
        for resource in head:
            found = changes.get(resource["urn"])
            if found is not None:
                # Recomputed from the whole set each round, so a resource fed by several names them all.
                direct = [c for c in found if "known_after" not in c]
                found[:] = direct + _knock_on(resource, replaced, {c["path"] for c in direct})
    for resource in head:
        old = before.get(resource["urn"])
        found = changes.get(resource["urn"], [])
        if old is None:
            action = "create"
        else:
            action = (
                "unchanged" if not found else "replace" if any(c["replaces"] for c in found) else "update"
            )
        counts[action] += 1
        if action != "unchanged":
            entries.append(
                _entry(
                    resource,
                    action=action,
                    changes=found,
                    component=head_components[resource["urn"]],
                    base=old,
                    head=resource,
                )
            )
    for resource in base:
        if resource["urn"] not in after:
            counts["delete"] += 1
            entries.append(
                _entry(
                    resource,
                    action="delete",
                    changes=[],
                    component=base_components[resource["urn"]],
                    base=resource,
                    head=None,
                )
            )
    return counts, entries


# ------------------------------------------------------------------------------------------------ cost


def _totals(cost: Mapping[str, Any]) -> dict[str, float]:
    return {"idle": cost["idle"]["total"], "peak": cost["peak"]["total"]}


def _by_component(cost: Mapping[str, Any], component: str) -> dict[str, float]:
    return {s: cost[s]["by_component"].get(component, 0.0) for s in ("idle", "peak")}


def _cost_notes(base: Mapping[str, Any] | None, head: Mapping[str, Any]) -> list[str]:
    notes = [f"list prices as of {head['prices_as_of']} ({head['region']}); spot is an estimate"]
    if base is not None and base.get("prices_as_of") != head["prices_as_of"]:
        notes.append(
            f"the base was priced with list prices as of {base.get('prices_as_of')}: part of the delta may be "
            "price changes"
        )
    notes += [
        f"unpriced: {u['type']} ({len(u['resources'])}): {u['reason']}" for u in head.get("unpriced") or []
    ]
    # Estimated prices are summed up by the first note; the rest say what usage was assumed.
    notes += [f"assumed: {a}" for a in head.get("assumptions") or [] if " is an estimate: " not in a]
    return notes


def _cost(
    base: Mapping[str, Any] | None, head: Mapping[str, Any] | None, *, new_environment: bool = False
) -> dict[str, Any] | None:
    """The cost section; a ``new_environment`` costs nothing before the change (its whole cost is the delta)."""
    if head is None:
        return None
    after = _totals(head)
    before = _totals(base) if base is not None else None
    if before is None and new_environment:
        before = {"idle": 0.0, "peak": 0.0}
    budget = (head.get("budget") or {}).get("monthly_limit")
    names = {
        *head["idle"]["by_component"],
        *head["peak"]["by_component"],
        *(base["idle"]["by_component"] if base else ()),
        *(base["peak"]["by_component"] if base else ()),
    }
    components = [
        {
            "component": name,
            "before": _by_component(base, name)
            if base is not None
            else ({"idle": 0.0, "peak": 0.0} if new_environment else None),
            "after": _by_component(head, name),
        }
        for name in names
    ]
    components.sort(key=lambda c: (-c["after"]["peak"], -c["after"]["idle"], c["component"]))
    return {
        "currency": head["currency"],
        "prices_as_of": head["prices_as_of"],
        "budget": budget,
        "before": before,
        "after": after,
        "delta": {k: round(after[k] - before[k], 2) for k in after} if before is not None else None,
        "over_budget": budget is not None and after["peak"] > budget,
        "complete": not head.get("unpriced"),
        "before_complete": not base.get("unpriced") if base is not None else True,
        "unpriced": sum(len(u.get("resources") or []) for u in head.get("unpriced") or []),
        "components": components,
        "notes": _cost_notes(base, head),
    }


# -------------------------------------------------------------------------------------------- policies


def _finding(raw: Mapping[str, Any], *extra: str) -> dict[str, Any]:
    keys = ("policy", "level", "urn", "message", *extra)
    return {key: raw.get(key) for key in keys}


def _identity(finding: Mapping[str, Any]) -> tuple[Any, ...]:
    return (finding["policy"], finding["level"], finding["urn"], finding["message"])


def _order(finding: Mapping[str, Any]) -> tuple[Any, ...]:
    level = finding["level"]
    return (
        _LEVEL_ORDER.get(level, len(_LEVEL_ORDER)),
        level,
        finding["policy"],
        finding["urn"] or "",
        finding["message"],
    )


def _sorted_unique(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    unique = {_identity(f): f for f in findings}
    return sorted(unique.values(), key=_order)


def _shape(message: str) -> str:
    """A message with its figures blanked: what stays the same when only a number changes."""
    return _FIGURES.sub("#", message)


def _match(
    was: list[dict[str, Any]], now: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """``(added, remaining, resolved)``. A finding is the same one when its rule, level and resource are: a
    message that only states a new figure (a peak in dollars, a GPU count) does not make it new and resolved.
    Within one rule, level and resource, equal messages pair first, then messages equal but for numbers."""
    groups: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for side, findings in enumerate((was, now)):
        for finding in findings:
            groups.setdefault((finding["policy"], finding["level"], finding["urn"]), ([], []))[side].append(
                finding
            )
    added: list[dict[str, Any]] = []
    remaining: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    for old, new in groups.values():
        unmatched = list(old)
        rest: list[dict[str, Any]] = []
        for finding in new:
            same = next((f for f in unmatched if f["message"] == finding["message"]), None)
            if same is None:
                rest.append(finding)
            else:
                unmatched.remove(same)
                remaining.append(finding)
        # Then messages that differ only in their figures: "peak $31,000" is the old "peak $27,306"; a message
        # about another container is another finding.
        for finding in rest:
            same = next((f for f in unmatched if _shape(f["message"]) == _shape(finding["message"])), None)
            if same is None:
                added.append(finding)
            else:
                unmatched.remove(same)
                remaining.append(finding)
        resolved += unmatched
    return sorted(added, key=_order), sorted(remaining, key=_order), sorted(resolved, key=_order)


def _policies(base: Mapping[str, Any] | None, head: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if head is None:
        return None
    now = _sorted_unique([_finding(v) for v in head.get("violations") or []])
    was = _sorted_unique([_finding(v) for v in (base or {}).get("violations") or []])
    added, remaining, resolved = _match(was, now)
    # An exemption that now covers another finding (another message, not just another figure) is new too.
    exempt_before = {
        (e.get("policy"), e.get("urn"), _shape(str(e.get("message"))))
        for e in (base or {}).get("exemptions") or []
    }
    exemptions = [
        {
            **e,
            "new": base is not None
            and (e["policy"], e["urn"], _shape(str(e["message"]))) not in exempt_before,
        }
        for e in _sorted_unique([_finding(e, "reason") for e in head.get("exemptions") or []])
    ]
    # A violation an exemption now silences is not resolved: the new exemption says so instead.
    silenced = {(e["policy"], e["urn"]) for e in exemptions}
    return {
        "config": head.get("config"),
        "added": added,
        "remaining": remaining,
        "resolved": [f for f in resolved if (f["policy"], f["urn"]) not in silenced],
        "exemptions": exemptions,
        "undecided": _sorted_unique([_finding(u) for u in head.get("undecided") or []]),
        "remediation": dict(
            sorted({**((base or {}).get("remediation") or {}), **(head.get("remediation") or {})}.items())
        ),
    }


# --------------------------------------------------------------------------------------------- review


def compare(
    base: Mapping[str, Any] | None, head: Mapping[str, Any], *, base_label: str | None, head_label: str
) -> dict[str, Any]:
    """The review of ``head`` against ``base``: counts, changed resources, cost and policy deltas, warnings.

    ``base=None`` means nothing exists yet: every resource is created and every violation is new. With
    ``base=None`` and a ``base_label`` (an environment that a git revision does not have yet), ``base`` in the
    review is ``{"label": base_label, "source": None}``; without a label it is ``None`` (a plain plan).
    """
    base_section: dict[str, Any] | None = None
    if base is not None:
        base_section = {"label": base_label, "source": base.get("source")}
    elif base_label is not None:
        base_section = {"label": base_label, "source": None}
    counts, resources = _resources(base["resources"] if base else [], head["resources"])
    return {
        "environment": head["environment"],
        "kind": KIND,
        "base": base_section,
        "head": {"label": head_label, "source": head.get("source")},
        "counts": counts,
        "resources": resources,
        "cost": _cost(
            base.get("cost") if base else None,
            head.get("cost"),
            new_environment=base is None and base_label is not None,
        ),
        "policies": _policies(base.get("policies") if base else None, head.get("policies")),
        "warnings": list(head.get("warnings") or []),
    }


# ----------------------------------------------------------------------------------------- saved plans


class PlanFileError(Exception):
    """A saved plan that cannot be a base: names the file and what is wrong with it."""


def _bad_section(plan: Mapping[str, Any]) -> str | None:
    """What is wrong with the parts of a plan document ``compare`` reads, or ``None``."""
    for index, resource in enumerate(plan["resources"]):
        if not (
            isinstance(resource, Mapping)
            and all(isinstance(resource.get(key), str) for key in ("urn", "type", "name"))
            and isinstance(resource.get("inputs", {}), Mapping)
        ):
            return f"resources[{index}] must be an object with urn, type, name and inputs"
    cost = plan.get("cost")
    if cost is not None and not (
        isinstance(cost, Mapping)
        and all(
            isinstance(cost.get(s), Mapping)
            and isinstance(cost[s].get("total"), int | float)
            and isinstance(cost[s].get("by_component"), Mapping)
            for s in ("idle", "peak")
        )
    ):
        return "cost must have idle and peak, each with a total and by_component"
    policies = plan.get("policies")
    if policies is not None and not (
        isinstance(policies, Mapping) and isinstance(policies.get("violations", []), list)
    ):
        return "policies must be an object with a violations list"
    return None


def load_plan_file(path: Path, environment: str) -> dict[str, Any]:
    """A saved ``keel plan ENV --format json`` of ``environment``; ``PlanFileError`` if it cannot be one."""
    expected = f"expected the output of `keel plan {environment} --format json`"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlanFileError(f"{path}: cannot read the saved plan: {error.strerror}") from None
    except UnicodeDecodeError:
        raise PlanFileError(f"{path}: not a text file; {expected}") from None
    except json.JSONDecodeError as error:
        raise PlanFileError(f"{path}: not JSON ({error}); {expected}") from None
    if not (
        isinstance(plan, dict)
        and isinstance(plan.get("environment"), str)
        and isinstance(plan.get("resources"), list)
    ):
        raise PlanFileError(f"{path}: not a keel plan (it needs environment and resources); {expected}")
    problem = _bad_section(plan)
    if problem is not None:
        raise PlanFileError(f"{path}: not a keel plan: {problem}; {expected}")
    if plan["environment"] != environment:
        raise PlanFileError(
            f"{path}: environment = {plan['environment']!r}: this is a plan of {plan['environment']}, "
            f"not {environment}"
        )
    return plan
