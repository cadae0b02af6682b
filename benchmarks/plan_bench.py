"""How fast ``keel plan`` is: wall time and peak memory of planning each environment, against a floor.

What it measures, per case (dev, staging, prod from ``environments/``; prod scaled to 10 and 50 GPU pools; prod
with 1, 10 and 50 models, each a copy of prod's first model):

* **plan** - the ``plan_environment(path)`` call itself: read and validate the stack file, run the real stack
  program under Pulumi's mock runtime (``keel.engine.run_program``), record the graph.
* **floor** - the same number of custom resources (one of them a provider), registered as plain
  ``pulumi.CustomResource`` objects of a dummy type with a handful of string inputs, under the same
  ``run_program`` engine (same mocks, same ``RecordingMonitor``) and no Keel logic: no config, no spec, no
  components, no typed provider SDK classes. The floor's process imports exactly what the plan's does, so
  both start from the same heap. ``ratio`` = plan / floor: what Keel costs on top of Pulumi's runtime.
* **import** - from process spawn until Python, ``pulumi``, ``pulumi_aws`` and Keel are imported, including the
  ``pulumi_aws`` submodules the case uses (the SDK loads them lazily; a warm-up run discovers which), so that
  plan time is not import time.
* **peak MiB** - the child process's peak resident set (``ru_maxrss``), imports included (identical imports
  for plan and floor, so the difference is what planning allocates).

Every measurement runs in a fresh subprocess (``plan_bench.py --one CASE``), sequentially, ``--repeat`` times;
the table shows the median and the min. The target applies to prod: plan within 1.5x the floor and under 5 s.
Figures are printed, never asserted: timings depend on the machine.

Model scaling: with two or more of the ``prod-models-N`` cases, a second table gives the cost of each model added
(ms per model, between consecutive N) for the plan, the floor and their difference (what Keel's components add
per model), and says whether the plan's per-model slope stays roughly flat (linear) as N grows.

Bytecode: if the environment sets ``PYTHONDONTWRITEBYTECODE`` (and the venv has no ``.pyc`` files), every
process compiles ``pulumi_aws`` from source, seconds per run. By default the children therefore write and read
bytecode under a private ``PYTHONPYCACHEPREFIX`` in the temp directory (nothing is written into the repository
or the venv), as on a normal install; ``--inherit-bytecode`` keeps the environment as it is.

Run from the repository root::

    .venv/bin/python benchmarks/plan_bench.py                 # the table (about two minutes on 2 cores)
    .venv/bin/python benchmarks/plan_bench.py --json          # the same, machine-readable
    .venv/bin/python benchmarks/plan_bench.py --profile prod  # cProfile of one prod plan: where time goes
    .venv/bin/python benchmarks/plan_bench.py --cases prod-models-1,prod-models-10,prod-models-50  # per model

Other sessions running on the machine skew the figures; the header prints the load average.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib
import itertools
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_CASES = ("dev", "staging", "prod", "prod-10", "prod-50")
#: Scaled cases: GPU pools in prod's config, all copies of its first pool.
SCALED = {"prod-10": 10, "prod-50": 50}
#: Model cases: models in prod's config, all copies of its first model (run on request: ``--cases``).
MODEL_SCALED = {"prod-models-1": 1, "prod-models-10": 10, "prod-models-50": 50}
CASES = (*DEFAULT_CASES, *MODEL_SCALED)
#: Per-model slope growth (later slope / earlier slope) still called roughly linear.
LINEAR_TOLERANCE = 1.5
TARGET_CASE = "prod"
TARGET_RATIO = 1.5
TARGET_SECONDS = 5.0
FLOOR_TYPE = "bench:index:Dummy"
KEEL_CODE = r"/(keel|stacks|components)/"
_SPAWN_ENV = "KEEL_BENCH_SPAWN_NS"
_GC_FREEZE_ENV = "KEEL_BENCH_GC_FREEZE"
_RESULT_PREFIX = "KEEL_BENCH_RESULT "


# ------------------------------------------------------------------------------------- one measurement


def _peak_mib() -> float:
    """Peak RSS of this process so far (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _provider_modules() -> list[str]:
    """The ``pulumi_aws`` service modules executed so far.

    The SDK puts every service module (``pulumi_aws.ec2``, ...) into ``sys.modules`` as a lazy module when it
    is imported and executes it on first attribute access; an executed one is a plain ``ModuleType`` again.
    """
    return sorted(
        name.removeprefix("pulumi_aws.")
        for name, module in list(sys.modules.items())
        if name.startswith("pulumi_aws.") and name.count(".") == 1 and type(module) is types.ModuleType
    )


def _load_provider_module(name: str) -> None:
    """Import and execute a ``pulumi_aws`` service module (``import_module`` alone leaves it lazy)."""
    module = importlib.import_module(f"pulumi_aws.{name}")
    getattr(module, "__all__", None)  # any non-introspection attribute access runs the module


def case_path(case: str, directory: Path) -> Path:
    """The stack file a case plans; scaled cases are written to ``directory`` as ``Pulumi.prod.yaml``."""
    from keel.plan import environment_file  # noqa: PLC0415 (imported after the import phase is timed)

    if case not in SCALED and case not in MODEL_SCALED:
        return environment_file(case)
    import yaml  # noqa: PLC0415

    # The raw document, not ``read_stack_file``: that masks secure values, which must be copied verbatim.
    document = yaml.safe_load(environment_file("prod").read_text(encoding="utf-8"))
    config = document["config"]
    if case in SCALED:
        # The shipped pools stay (the models run on them); copies of the first make up the count.
        pools = config["keel:gpuPools"]
        template = pools[0]
        pools += [
            {**template, "name": f"pool-{index:02d}"} for index in range(len(pools) + 1, SCALED[case] + 1)
        ]
    else:
        count = MODEL_SCALED[case]
        model = config["keel:models"][0]
        config["keel:models"] = [
            {**model, "name": f"{model['name']}-{index:02d}"} for index in range(1, count + 1)
        ]
        # Room for every copy at maxReplicas (a replica needs at most one node), so the spec validates.
        for pool in config["keel:gpuPools"]:
            if pool["name"] == model["pool"]:
                pool["maxSize"] = max(pool["maxSize"], count * model["maxReplicas"])
    # Same file name, so the environment (stack) is still ``prod``; no siblings, so no isolation check reads.
    path = directory / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def floor_program(count: int) -> Callable[[], Mapping[str, Any]]:
    """A program registering ``count`` plain custom resources with a few string inputs, nothing else.

    One of them is an explicit provider, as in Keel's plans: the engine rejects custom resources without one.
    """
    import pulumi  # noqa: PLC0415

    class Dummy(pulumi.CustomResource):
        # A subclass, like every provider SDK resource: the SDK then records the constructor's call stack as
        # the resource's source position, a per-resource cost a bare ``pulumi.CustomResource(...)`` skips.
        def __init__(self, name: str, props: Mapping[str, Any], opts: pulumi.ResourceOptions) -> None:
            super().__init__(FLOOR_TYPE, name, dict(props), opts)

    def program() -> Mapping[str, Any]:
        provider = pulumi.ProviderResource("bench", "bench", {})
        options = pulumi.ResourceOptions(provider=provider)
        for index in range(count - 1):
            name = f"dummy-{index:04d}"
            Dummy(
                name,
                {
                    "name": name,
                    "description": "a plain resource for the planning floor",
                    "environment": "bench",
                    "owner": "ml-platform",
                    "costCentre": "CC-0000",
                },
                opts=options,
            )
        return {}

    return program


def measure_one(case: str, floor: int | None, preload: list[str]) -> dict[str, Any]:
    """Child side: import, then time one plan (or one floor run of ``floor`` resources) in this process.

    Plan and floor children import exactly the same modules, so both start from the same heap: the first
    full garbage collection during a run scans everything imported, and that cost must not count as Keel's.
    """
    spawned = int(os.environ.get(_SPAWN_ENV, "0")) or time.time_ns()
    import pulumi  # noqa: PLC0415, F401
    import pulumi_aws  # noqa: PLC0415, F401

    from keel.engine import run_program  # noqa: PLC0415
    from keel.plan import plan_environment  # noqa: PLC0415

    for module in preload:
        _load_provider_module(module)
    if os.environ.get(_GC_FREEZE_ENV):
        gc.freeze()  # what-if: the import-time heap is never rescanned by the collector
    import_s = (time.time_ns() - spawned) / 1e9
    import_mib = _peak_mib()
    with tempfile.TemporaryDirectory(prefix="keel-bench-") as directory:
        if floor is None:
            path = case_path(case, Path(directory))
            start = time.perf_counter()
            plan = plan_environment(path)
            seconds = time.perf_counter() - start
            resources = [r for r in plan.resources if r.custom]
        else:
            program = floor_program(floor)
            start = time.perf_counter()
            graph = run_program(program, project="keel", stack=case.partition("-")[0])
            seconds = time.perf_counter() - start
            resources = [r for r in graph.resources if r.custom]
    return {
        "case": case,
        "kind": "plan" if floor is None else "floor",
        "resources": len(resources),
        "import_s": import_s,
        "plan_s": seconds,
        "import_mib": import_mib,
        "peak_mib": _peak_mib(),
        "provider_modules": _provider_modules(),
    }


# ------------------------------------------------------------------------------------- the driver


def child_env(inherit_bytecode: bool, gc_freeze: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(_GC_FREEZE_ENV, None)
    if gc_freeze:
        env[_GC_FREEZE_ENV] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if not inherit_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(
            Path(tempfile.gettempdir()) / f"keel-plan-bench-pycache-{os.getuid()}"
        )
    return env


def run_child(
    case: str, env: dict[str, str], *, floor: int | None = None, preload: list[str] | None = None
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its result (plus the process's wall time)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--one", case]
    if floor is not None:
        command += ["--floor", str(floor)]
    if preload:
        command += ["--preload", ",".join(preload)]
    start = time.perf_counter()
    completed = subprocess.run(
        command,
        cwd=ROOT,
        env={**env, _SPAWN_ENV: str(time.time_ns())},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise SystemExit(
            f"plan_bench: {' '.join(command[2:])} failed (exit {completed.returncode})\n{completed.stderr}"
        )
    result = json.loads(lines[-1].removeprefix(_RESULT_PREFIX))
    result["process_s"] = wall
    return result


@dataclass
class CaseResult:
    case: str
    resources: int
    plans: list[dict[str, Any]]
    floors: list[dict[str, Any]]

    @staticmethod
    def _median(samples: list[dict[str, Any]], key: str) -> float:
        return statistics.median(s[key] for s in samples)

    @property
    def plan_median(self) -> float:
        return self._median(self.plans, "plan_s")

    @property
    def plan_min(self) -> float:
        return min(s["plan_s"] for s in self.plans)

    @property
    def floor_median(self) -> float:
        return self._median(self.floors, "plan_s")

    @property
    def ratio(self) -> float:
        return self.plan_median / self.floor_median

    def target(self) -> str:
        if self.case != TARGET_CASE:
            return "-"
        ok = self.ratio <= TARGET_RATIO and self.plan_median < TARGET_SECONDS
        return "PASS" if ok else "MISS"

    def summary(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "resources": self.resources,
            "import_s_median": self._median(self.plans, "import_s"),
            "plan_s_median": self.plan_median,
            "plan_s_min": self.plan_min,
            "floor_s_median": self.floor_median,
            "floor_s_min": min(s["plan_s"] for s in self.floors),
            "ratio": self.ratio,
            "process_s_median": self._median(self.plans, "process_s"),
            "peak_mib_median": self._median(self.plans, "peak_mib"),
            "floor_peak_mib_median": self._median(self.floors, "peak_mib"),
            "target": self.target(),
            "plans": self.plans,
            "floors": self.floors,
        }


def bench_case(case: str, repeat: int, env: dict[str, str]) -> CaseResult:
    # Warm-up (not counted): fills the bytecode cache, counts resources, finds the lazily loaded SDK modules.
    warm = run_child(case, env)
    count, preload = warm["resources"], warm["provider_modules"]
    plans: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    for _ in range(repeat):  # interleaved, so drift on the machine hits both sides alike
        plans.append(run_child(case, env, preload=preload))
        floors.append(run_child(case, env, floor=count, preload=preload))
    return CaseResult(case=case, resources=count, plans=plans, floors=floors)


def _load() -> list[float]:
    """1-, 5- and 15-minute load averages: other work on the machine makes the figures noisy."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []


def machine(inherit_bytecode: bool, gc_freeze: bool, repeat: int) -> dict[str, Any]:
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "nproc": len(affinity(0)) if affinity else os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "pulumi": metadata.version("pulumi"),
        "pulumi_aws": metadata.version("pulumi-aws"),
        "bytecode": "inherited from environment" if inherit_bytecode else "cached (private pycache prefix)",
        "gc_freeze": gc_freeze,
        "repeat": repeat,
        "load_before": _load(),
    }


def render_table(results: list[CaseResult]) -> str:
    target = f"target (<={TARGET_RATIO:g}x floor, <{TARGET_SECONDS:g} s)"
    header = [
        "case",
        "resources",
        "import s",
        "plan s med",
        "plan s min",
        "floor s",
        "ratio",
        "plan MiB",
        "floor MiB",
        target,
    ]
    rows = [header]
    for r in results:
        s = r.summary()
        rows.append(
            [
                r.case,
                str(r.resources),
                f"{s['import_s_median']:.2f}",
                f"{r.plan_median:.3f}",
                f"{r.plan_min:.3f}",
                f"{r.floor_median:.3f}",
                f"{r.ratio:.2f}x",
                f"{s['peak_mib_median']:.0f}",
                f"{s['floor_peak_mib_median']:.0f}",
                r.target(),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def model_scaling(results: list[CaseResult]) -> dict[str, Any] | None:
    """Cost per model added between consecutive ``prod-models-N`` cases; ``None`` with fewer than two."""
    by_count = sorted(
        ((MODEL_SCALED[r.case], r) for r in results if r.case in MODEL_SCALED), key=lambda pair: pair[0]
    )
    if len(by_count) < 2:
        return None
    steps = []
    for (low, a), (high, b) in itertools.pairwise(by_count):
        added = high - low
        plan_ms = (b.plan_median - a.plan_median) * 1000 / added
        floor_ms = (b.floor_median - a.floor_median) * 1000 / added
        steps.append(
            {
                "from": low,
                "to": high,
                "resources_per_model": (b.resources - a.resources) / added,
                "plan_ms_per_model": plan_ms,
                "floor_ms_per_model": floor_ms,
                "keel_ms_per_model": plan_ms - floor_ms,
            }
        )

    def growth(key: str) -> float:
        first, last = steps[0][key], steps[-1][key]
        return last / first if first > 0 else float("inf")

    return {
        "steps": steps,
        "slope_growth": growth("plan_ms_per_model"),
        "keel_slope_growth": growth("keel_ms_per_model"),
        "linear": growth("plan_ms_per_model") <= LINEAR_TOLERANCE,
        "tolerance": LINEAR_TOLERANCE,
    }


def render_model_scaling(scaling: Mapping[str, Any]) -> str:
    header = ["models", "resources/model", "plan ms/model", "floor ms/model", "Keel ms/model"]
    rows = [header] + [
        [
            f"{s['from']} -> {s['to']}",
            f"{s['resources_per_model']:.1f}",
            f"{s['plan_ms_per_model']:.1f}",
            f"{s['floor_ms_per_model']:.1f}",
            f"{s['keel_ms_per_model']:.1f}",
        ]
        for s in scaling["steps"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdict = (
        "roughly linear" if scaling["linear"] else "NOT linear: each model costs more as models are added"
    )
    lines.append(
        f"per-model plan slope, last step / first step = {scaling['slope_growth']:.2f} "
        f"(<= {scaling['tolerance']:g} reads as linear): {verdict}"
    )
    lines.append(
        f"the same for Keel ms/model = {scaling['keel_slope_growth']:.2f} (noisier: the floor's own cost per "
        "resource is not constant, so plan minus floor moves with it)"
    )
    return "\n".join(lines)


LEGEND = """\
resources  custom resources registered (components not counted); the floor registers as many
import s   process spawn -> Python, pulumi, pulumi_aws, Keel and the SDK modules the case uses imported (median)
plan s     the plan_environment() call: validate config, run the stack program under mocks, record (med/min)
floor s    the same number of plain CustomResources under the same run_program engine, no Keel logic (median)
ratio      plan s med / floor s;  MiB = peak RSS of the child process (ru_maxrss), imports included"""


def run_all(cases: list[str], repeat: int, inherit_bytecode: bool, gc_freeze: bool, as_json: bool) -> None:
    env = child_env(inherit_bytecode, gc_freeze)
    info = machine(inherit_bytecode, gc_freeze, repeat)
    results = []
    for case in cases:
        print(f"plan_bench: {case} ...", file=sys.stderr, flush=True)
        results.append(bench_case(case, repeat, env))
    info["load_after"] = _load()
    scaling = model_scaling(results)
    if as_json:
        output: dict[str, Any] = {"machine": info, "cases": [r.summary() for r in results]}
        if scaling is not None:
            output["model_scaling"] = scaling
        print(json.dumps(output, indent=2))
        return
    print(
        f"machine: {info['nproc']} CPUs, {info['implementation']} {info['python']}, {info['platform']}; "
        f"pulumi {info['pulumi']}, pulumi-aws {info['pulumi_aws']}; bytecode {info['bytecode']}; "
        f"{'gc.freeze() after imports (what-if); ' if gc_freeze else ''}{repeat} fresh process(es) per figure"
    )
    print(
        f"load average (1/5/15 min): {info['load_before']} before, {info['load_after']} after "
        "(a load near or above the CPU count means other work competed: trust the mins)"
    )
    print()
    print(render_table(results))
    print()
    print(LEGEND)
    if scaling is not None:
        print()
        print("cost of each model added (prod-models-N: copies of prod's first model; medians):")
        print(render_model_scaling(scaling))


def profile(
    case: str, inherit_bytecode: bool, gc_freeze: bool = False, out: Path | None = None, top: int = 25
) -> None:
    """cProfile one plan of ``case`` in this process, imports (including lazy SDK modules) done beforehand.

    Pulumi calls the resource monitor from executor threads, which a main-thread profiler does not see; each
    ``RecordingMonitor.RegisterResource`` call is therefore profiled on its own and merged into the report.
    """
    warm = run_child(case, child_env(inherit_bytecode))
    for module in warm["provider_modules"]:
        _load_provider_module(module)
    from keel.engine import RecordingMonitor  # noqa: PLC0415
    from keel.plan import plan_environment  # noqa: PLC0415

    if gc_freeze:
        gc.freeze()
    monitor_profiles: list[cProfile.Profile] = []
    monitor_seconds: list[float] = []
    register = RecordingMonitor.RegisterResource

    def profiled_register(self: RecordingMonitor, request: Any) -> Any:
        call_profiler = cProfile.Profile()
        start = time.perf_counter()
        try:
            return call_profiler.runcall(register, self, request)
        finally:
            monitor_seconds.append(time.perf_counter() - start)
            monitor_profiles.append(call_profiler)

    with tempfile.TemporaryDirectory(prefix="keel-bench-") as directory:
        path = case_path(case, Path(directory))
        profiler = cProfile.Profile()
        RecordingMonitor.RegisterResource = profiled_register  # this process only
        try:
            start = time.perf_counter()
            profiler.enable()
            plan = plan_environment(path)
            profiler.disable()
            wall = time.perf_counter() - start
        finally:
            RecordingMonitor.RegisterResource = register
    print(
        f"profile of one `{case}` plan: {len(plan.resources)} resources, {wall:.2f} s under the profiler "
        f"(imports excluded); {len(monitor_seconds)} RegisterResource calls in executor threads took "
        f"{sum(monitor_seconds):.2f} s in all (merged below)"
    )
    stats = pstats.Stats(profiler, *monitor_profiles, stream=sys.stdout)
    if out is not None:
        stats.dump_stats(out)
        print(f"merged profile written to {out} (open with pstats or snakeviz)")
    stats.sort_stats(pstats.SortKey.CUMULATIVE)
    print(f"\n=== top {top} by cumulative time ===")
    stats.print_stats(top)
    print(f"=== top {top} inside Keel (keel/, stacks/, components/) by cumulative time ===")
    stats.print_stats(KEEL_CODE, top)
    print(f"=== top {top} by own time ===")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per figure (default 3)")
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT_CASES),
        help=f"comma-separated, from {','.join(CASES)} (default {','.join(DEFAULT_CASES)})",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable results instead")
    parser.add_argument("--profile", metavar="CASE", choices=CASES, help="cProfile one plan of CASE")
    parser.add_argument("--profile-out", type=Path, metavar="FILE", help="with --profile: save the stats")
    parser.add_argument(
        "--inherit-bytecode",
        action="store_true",
        help="do not give children a private bytecode cache (measure the environment as it is)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="what-if: call gc.freeze() after imports in plan and floor children (Keel does not, yet)",
    )
    parser.add_argument("--one", metavar="CASE", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--preload", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        preload = [m for m in args.preload.split(",") if m]
        print(_RESULT_PREFIX + json.dumps(measure_one(args.one, args.floor, preload)))
        return
    if args.profile:
        profile(args.profile, args.inherit_bytecode, args.gc_freeze, args.profile_out)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown or args.repeat < 1:
        parser.error(f"unknown case {', '.join(unknown)}" if unknown else "--repeat must be at least 1")
    run_all(cases, args.repeat, args.inherit_bytecode, args.gc_freeze, args.json)


if __name__ == "__main__":
    main()
