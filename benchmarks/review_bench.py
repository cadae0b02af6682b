"""How fast a pull-request review is: ``keel diff`` end to end, and its parts, printed as figures.

Per repeat, in fresh processes where it matters:

* **diff prod --base HEAD** - the whole CLI as CI runs it (``keel diff prod --base HEAD --format markdown``): a
  temporary git worktree, the base planned in its own process while the working tree plans in this one,
  compared and rendered. Wall time and the exit status.
* **plan prod** - ``keel plan prod --format json`` in a fresh process: one side of the diff, for comparison.
* **compare** - ``keel.diff.compare`` of two prod plan documents that differ in one pool's maximum (in process).
* **render N** - ``keel.report.render_review_markdown`` of a synthetic review with N changed resources and N/2
  violations (in process), with the comment's length: the shortening must keep it under 60,000 characters.

Run from the repository root::

    .venv/bin/python benchmarks/review_bench.py              # the table (about a minute on 2 cores)
    .venv/bin/python benchmarks/review_bench.py --repeat 5

Figures are printed, never asserted: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEEL = [sys.executable, "-m", "keel.cli"]


def _timed_process(args: list[str]) -> tuple[float, int]:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, result.returncode


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def synthetic_review(changed: int) -> dict[str, Any]:
    """A review with ``changed`` updated resources in 50 components and ``changed // 2`` new violations."""
    resources = [
        {
            "urn": f"urn:pulumi:prod::keel::aws:eks/nodeGroup:NodeGroup::group-{i}",
            "type": "aws:eks/nodeGroup:NodeGroup",
            "name": f"group-{i}",
            "component": f"pool-{i % 50}",
            "action": "update",
            "changes": [{"path": "scalingConfig.maxSize", "before": i, "after": i + 1, "replaces": False}],
            "protected": False,
            "stateful": None,
            "risk": None,
        }
        for i in range(changed)
    ]
    violations = [
        {
            "policy": "gpu-count-cap",
            "level": "mandatory",
            "urn": r["urn"],
            "message": f"too many GPUs in {r['name']}",
        }
        for r in resources[: changed // 2]
    ]
    return {
        "environment": "prod",
        "kind": "offline review",
        "base": {"label": "HEAD~1 (0000000)", "source": "environments/Pulumi.prod.yaml"},
        "head": {"label": "working tree", "source": "environments/Pulumi.prod.yaml"},
        "counts": {"create": 0, "update": changed, "replace": 0, "delete": 0, "unchanged": 0},
        "resources": resources,
        "cost": None,
        "policies": {
            "config": "policies/config/prod.json",
            "added": violations,
            "remaining": [],
            "resolved": [],
            "exemptions": [],
            "undecided": [],
            "remediation": {"gpu-count-cap": "Lower maxSize."},
        },
        "warnings": [],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="How fast a pull-request review is.")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per figure (default 3); the median is shown"
    )
    options = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from keel.diff import compare  # noqa: PLC0415 (after sys.path is set)
    from keel.report import render_review_markdown  # noqa: PLC0415

    rows: list[tuple[str, list[float], str]] = []
    diffs = [
        _timed_process([*KEEL, "diff", "prod", "--base", "HEAD", "--format", "markdown"])
        for _ in range(options.repeat)
    ]
    rows.append(("diff prod --base HEAD (CLI)", [t for t, _ in diffs], f"exit {diffs[-1][1]}"))
    plans = [_timed_process([*KEEL, "plan", "prod", "--format", "json"]) for _ in range(options.repeat)]
    rows.append(("plan prod (CLI)", [t for t, _ in plans], f"exit {plans[-1][1]}"))

    head = json.loads(
        subprocess.run(
            [*KEEL, "plan", "prod", "--format", "json"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    base = copy.deepcopy(head)
    group = next(r for r in base["resources"] if r["type"] == "aws:eks/nodeGroup:NodeGroup")
    group["inputs"]["scalingConfig"]["maxSize"] += 2
    compares = [
        _timed(lambda: compare(base, head, base_label="base", head_label="head"))
        for _ in range(options.repeat)
    ]
    rows.append(
        ("compare prod plans (in process)", [t for t, _ in compares], f"{len(head['resources'])} resources")
    )
    for changed in (200, 5_000):
        review = synthetic_review(changed)
        renders = [
            _timed(lambda review=review: render_review_markdown(review)) for _ in range(options.repeat)
        ]
        rows.append(
            (
                f"render {changed:,} changes (in process)",
                [t for t, _ in renders],
                f"{len(renders[-1][1]):,} chars",
            )
        )

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    print(
        f"review benchmark: {options.repeat} runs each, load average {load[0]:.2f}, Python {sys.version.split()[0]}"
    )
    print(f"{'case':<36} {'median s':>9} {'min s':>7}  note")
    for name, times, note in rows:
        print(f"{name:<36} {statistics.median(times):>9.2f} {min(times):>7.2f}  {note}")


if __name__ == "__main__":
    main()
