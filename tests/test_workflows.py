"""The GitHub Actions workflows: linted (actionlint with shellcheck, zizmor), pinned, least-privileged, and in
step with the CLI, the environments, the locked Pulumi version and the README; and their shell scripts."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.core
import typer.main
import yaml

from keel import report
from keel.cli import app
from keel.config import environment_name
from keel.plan import ENVIRONMENTS_DIR

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
SCRIPTS_DIR = WORKFLOWS_DIR / "scripts"
REVIEW = WORKFLOWS_DIR / "review.yml"
#: The venv's console scripts: actionlint, zizmor and shellcheck come from the locked dev dependencies.
BIN = Path(sysconfig.get_path("scripts"))
#: A tool that never answers should fail the test, not hang the suite.
TOOL_TIMEOUT_S = 300


def workflow_files() -> list[Path]:
    """Every workflow GitHub would run."""
    return sorted(p for p in WORKFLOWS_DIR.iterdir() if p.suffix in {".yml", ".yaml"})


def load(path: Path) -> dict[str, Any]:
    """A workflow as data; YAML 1.1 reads the ``on`` key as ``True``, so it is put back."""
    document = yaml.safe_load(path.read_text())
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(job id, step)`` for every step of every job."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def run_tool(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command and capture its output as text."""
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
    )


def actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """actionlint with the locked shellcheck checking every ``run:`` script (no Python scripts to check)."""
    return run_tool(
        BIN / "actionlint", "-no-color", "-shellcheck", BIN / "shellcheck", "-pyflakes=", *files, cwd=cwd
    )


def zizmor(directory: Path) -> subprocess.CompletedProcess[str]:
    """zizmor offline at the pedantic persona: every finding but the auditor persona's likely false positives."""
    return run_tool(
        BIN / "zizmor", "--offline", "--persona=pedantic", "--no-progress", "--color=never", directory
    )


# --- linters ---------------------------------------------------------------------------------------------


def test_there_is_a_workflow_to_lint() -> None:
    assert REVIEW in workflow_files()


def test_actionlint_and_shellcheck_pass() -> None:
    result = actionlint(*workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_pedantic_finds_nothing() -> None:
    result = zizmor(WORKFLOWS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_scripts_pass_shellcheck() -> None:
    scripts = sorted(SCRIPTS_DIR.iterdir())
    assert scripts
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script} is not executable"
    result = run_tool(BIN / "shellcheck", "--shell=bash", *scripts)
    assert result.returncode == 0, result.stdout + result.stderr


BAD_WORKFLOW = """\
on: pull_request
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-24.04
    steps:
      - run: echo ${{ github.event.pull_request.title }} $GREETING
"""


@pytest.mark.parametrize(
    ("lint", "expected"),
    [
        (lambda d: actionlint(d / "bad.yml", cwd=d.parent.parent), "potentially untrusted"),
        (lambda d: actionlint(d / "bad.yml", cwd=d.parent.parent), "SC2086"),
        (zizmor, "template-injection"),
    ],
    ids=["actionlint", "shellcheck", "zizmor"],
)
def test_the_linters_reject_a_script_injection(
    tmp_path: Path, lint: Callable[[Path], subprocess.CompletedProcess[str]], expected: str
) -> None:
    """The lint tests above pass because the workflows are clean, not because a linter checked nothing."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(BAD_WORKFLOW)
    result = lint(workflows)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


# --- pinning and privileges ------------------------------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_version_beside_it() -> None:
    for path in workflow_files():
        used = [step["uses"] for _, step in steps(load(path)) if "uses" in step]
        lines = [line for line in path.read_text().splitlines() if re.match(r"\s*(- )?uses:", line)]
        assert len(lines) == len(used), path
        for line in lines:
            assert re.fullmatch(
                r"\s*(- )?uses: [\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40} # v\d+\.\d+\.\d+", line
            ), f"{path.name}: pin the action to a full commit SHA with '# vX.Y.Z' after it: {line.strip()}"


def test_pull_requests_run_with_least_privilege() -> None:
    workflow = load(REVIEW)
    # Never pull_request_target: it runs with a write token and secrets, also for forks.
    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["permissions"] == {}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    for job_id, job in workflow["jobs"].items():
        assert "timeout-minutes" in job, job_id
        permissions = job["permissions"]
        comments = any("upsert-comment" in step.get("run", "") for step in job["steps"])
        assert (permissions.get("pull-requests") == "write") == comments, job_id
        assert (permissions.get("id-token") == "write") == (job_id == "preview"), job_id
        assert not ({"pull-requests", "id-token"} <= set(permissions)), f"{job_id}: cloud and PR write"
        assert set(permissions.values()) <= {"read", "write"}, job_id
    for job_id, step in steps(workflow):
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, job_id
        assert "${{" not in step.get("run", ""), f"{job_id}: pass context values to run: through env:"


# --- in step with the project ----------------------------------------------------------------------------


def test_the_review_covers_every_environment() -> None:
    matrix = load(REVIEW)["jobs"]["review"]["strategy"]["matrix"]["environment"]
    shipped = sorted(environment_name(p) for p in ENVIRONMENTS_DIR.glob("Pulumi.*.yaml"))
    assert sorted(matrix) == shipped, (
        "the review job's matrix must list every environments/Pulumi.<ENV>.yaml: "
        f"matrix {sorted(matrix)}, environments {shipped}"
    )


def commands(script: str, program: str) -> list[list[str]]:
    """The invocations of ``program`` in a shell script, backslash-continued lines joined, split as the shell
    would (up to the first redirection or ``||``)."""
    joined = script.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip().startswith(f"{program} "):
            found.append(list(_until_redirection(shlex.split(line.strip(), comments=True)[1:])))
    return found


def _until_redirection(words: list[str]) -> Iterator[str]:
    for word in words:
        if word in {"||", "&&", "|"} or word.startswith((">", "2>")):
            return
        yield word


def test_the_review_calls_keel_diff_with_options_the_cli_has() -> None:
    review = load(REVIEW)["jobs"]["review"]
    script = next(step["run"] for step in review["steps"] if step.get("id") == "diff")
    calls = commands(script, ".venv/bin/keel")
    assert calls, "the review step no longer runs .venv/bin/keel"
    keel = typer.main.get_command(app)
    assert isinstance(keel, typer.core.TyperGroup)
    formats = set()
    for call in calls:
        # The shell values stand in as the runner would see them.
        args = [a.replace("$KEEL_ENV", "prod").replace("$BASE_SHA", "0" * 40) for a in call]
        assert args[0] == "diff"
        assert "--base" in args
        with keel.make_context("keel", list(args)) as root:
            command = keel.get_command(root, "diff")
            assert command is not None
            params = command.make_context("diff", args[1:], parent=root).params  # raises on unknown options
        assert params["base"] == "0" * 40
        formats.add(str(params["output_format"]))
    assert formats == {"markdown", "json"}


def test_the_preview_runs_the_readme_command_for_each_environment() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running for real", 1)[1].split("\n## ", 1)[0]
    documented = next(c for c in commands(section, "pulumi") if c[0] == "preview")
    preview = load(REVIEW)["jobs"]["preview"]
    script = next(step["run"] for step in preview["steps"] if step.get("id") == "preview")
    (ours,) = [c for c in commands(script, "pulumi") if c[0] == "preview"]
    ours = [a.replace("$KEEL_ENV", "prod") for a in ours]
    # The README's command for prod, plus the stack to use and plain output for the comment.
    assert ours == [*documented[:1], "--stack", "$PULUMI_STACK", *documented[1:], "--color", "never"]


def test_the_preview_installs_the_pulumi_cli_of_the_locked_sdk() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (sdk,) = [p["version"] for p in lock["package"] if p["name"] == "pulumi"]
    preview = load(REVIEW)["jobs"]["preview"]
    (install,) = [s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert str(install["with"]["pulumi-version"]) == sdk


# --- the scripts -----------------------------------------------------------------------------------------

MARKER = "<!-- keel-review:prod -->"
FAKE_GH = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
call = {{"args": args, "stdin": sys.stdin.read() if "--input" in args else None}}
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(call) + "\\n")
if "--paginate" in args:
    # gh prints each page's array as it comes.
    for page in json.loads(open(os.environ["FAKE_GH_PAGES"]).read()):
        sys.stdout.write(json.dumps(page))
"""


def comment(id_: int, body: str, login: str = "github-actions[bot]") -> dict[str, Any]:
    """A comment as the GitHub API lists it."""
    return {"id": id_, "body": body, "user": {"login": login, "type": "Bot" if "[bot]" in login else "User"}}


@pytest.fixture
def upsert(tmp_path: Path) -> Callable[..., tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]]:
    """Run upsert-comment against a fake ``gh`` that serves the given pages and records every call."""

    def run(
        pages: list[list[dict[str, Any]]], body: str = f"{MARKER}\nthe review\n"
    ) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        gh = bin_dir / "gh"
        gh.write_text(FAKE_GH.format(python=sys.executable))
        gh.chmod(0o755)
        (tmp_path / "pages.json").write_text(json.dumps(pages))
        (tmp_path / "body.md").write_text(body)
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_GH_LOG": str(tmp_path / "calls.jsonl"),
            "FAKE_GH_PAGES": str(tmp_path / "pages.json"),
            "GH_REPO": "acme/keel",
            "PR_NUMBER": "7",
        }
        result = subprocess.run(
            [SCRIPTS_DIR / "upsert-comment", MARKER, tmp_path / "body.md"],
            env=env,
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        log = tmp_path / "calls.jsonl"
        calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return result, calls

    return run


def writes(calls: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """``(method, endpoint, body)`` of every call that changes something."""
    found = []
    for call in calls:
        args = call["args"]
        if "--method" in args:
            body = json.loads(call["stdin"])["body"] if call["stdin"] else None
            found.append((args[args.index("--method") + 1], args[args.index("--method") + 2], body))
    return found


def test_upsert_creates_the_comment_when_only_others_exist(upsert: Callable[..., Any]) -> None:
    pages = [
        [comment(1, f"{MARKER}\nquoted by a person", login="octocat")],
        [comment(2, "<!-- keel-review:prod2 -->\nanother environment"), comment(3, f"see {MARKER}")],
    ]
    result, calls = upsert(pages)
    assert result.returncode == 0, result.stderr
    assert calls[0]["args"][:2] == ["api", "--paginate"]
    assert calls[0]["args"][2] == "repos/acme/keel/issues/7/comments?per_page=100"
    assert writes(calls) == [("POST", "repos/acme/keel/issues/7/comments", f"{MARKER}\nthe review\n")]


def test_upsert_updates_the_bots_comment_found_on_a_later_page(upsert: Callable[..., Any]) -> None:
    pages = [[comment(1, "lgtm", login="octocat")], [comment(42, f"{MARKER}\r\nan old review")]]
    result, calls = upsert(pages)
    assert result.returncode == 0, result.stderr
    assert writes(calls) == [("PATCH", "repos/acme/keel/issues/comments/42", f"{MARKER}\nthe review\n")]


def test_upsert_keeps_one_comment_when_runs_raced(upsert: Callable[..., Any]) -> None:
    pages = [
        [comment(5, f"{MARKER}\nfirst"), comment(6, f"{MARKER}\nsecond"), comment(9, f"{MARKER}\nthird")]
    ]
    result, calls = upsert(pages)
    assert result.returncode == 0, result.stderr
    assert writes(calls) == [
        ("PATCH", "repos/acme/keel/issues/comments/5", f"{MARKER}\nthe review\n"),
        ("DELETE", "repos/acme/keel/issues/comments/6", None),
        ("DELETE", "repos/acme/keel/issues/comments/9", None),
    ]


def test_upsert_refuses_a_body_without_its_marker(upsert: Callable[..., Any]) -> None:
    result, calls = upsert([[]], body="### a review without its marker\n")
    assert result.returncode == 2
    assert f"is not {MARKER}" in result.stderr
    assert calls == []


def fence(tmp_path: Path, content: bytes, max_bytes: int) -> str:
    """What the fence script prints for a file holding ``content``."""
    source = tmp_path / "output.txt"
    source.write_bytes(content)
    result = run_tool(SCRIPTS_DIR / "fence", source, str(max_bytes))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fence_is_longer_than_any_backtick_run_in_the_text(tmp_path: Path) -> None:
    text = "resource name: ```` four\nand ``` three\n"
    out = fence(tmp_path, text.encode(), 10_000)
    assert out == f"`````\n{text}`````\n"
    assert fence(tmp_path, b"plain\n", 10_000) == "```\nplain\n```\n"


def test_fence_keeps_the_end_of_long_output_as_valid_utf8(tmp_path: Path) -> None:
    lines = [f"line {i}: ünïcödé ✓" for i in range(2_000)]
    out = fence(tmp_path, ("\n".join(lines) + "\nResources: 3 to create\n").encode(), 5_000)
    notice, block = out.split("\n\n", 1)
    assert notice.startswith("_Shortened: only the end of the output is shown (at most 5000 of its")
    body = block.removeprefix("```\n").removesuffix("```\n").splitlines()
    assert body[-1] == "Resources: 3 to create"
    assert body[0] in lines  # whole lines only: the cut one is dropped
    assert body[-2] == lines[-1]
    assert len("\n".join(body).encode()) <= 5_000


# --- the reviewer's guide --------------------------------------------------------------------------------


def test_the_guide_names_every_setting_the_workflow_reads() -> None:
    guide = (ROOT / "docs" / "reviewing.md").read_text()
    settings = set(re.findall(r"\b(?:vars|secrets)\.([A-Z][A-Z0-9_]*)", REVIEW.read_text()))
    assert settings
    assert not {s for s in settings if f"`{s}`" not in guide}, "docs/reviewing.md must explain each setting"


def test_the_guide_explains_every_marker_of_the_comment() -> None:
    guide = (ROOT / "docs" / "reviewing.md").read_text()
    markers = (
        report.RISK,
        report.MANDATORY,
        report.ADVISORY,
        report.RESOLVED,
        report.OVER_BUDGET,
        report.SHORTENED,
    )
    for marker in markers:
        assert f"| {marker} `{marker}` |" in guide, f"docs/reviewing.md's marker table lacks {marker}"
