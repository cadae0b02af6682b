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
from keel.cost import PRICES_FILE, load_prices
from keel.paths import display_path
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


def job_runs(condition: str, contexts: dict[str, str]) -> bool:
    """A job's ``if:`` made of ``==``/``!=`` comparisons joined by ``&&``, evaluated as GitHub does (strings
    compare case-insensitively) with ``contexts`` giving each context value; anything else fails the test."""
    condition = condition.strip().removeprefix("${{").removesuffix("}}")
    runs = True
    for clause in condition.split("&&"):
        match = re.fullmatch(r"\s*(\S+)\s*(==|!=)\s*(\S+)\s*", clause)
        assert match, f"not a comparison this test can evaluate: {clause.strip()!r}"
        left, right = (w[1:-1] if w.startswith("'") else contexts[w] for w in (match[1], match[3]))
        runs = runs and ((left.casefold() == right.casefold()) == (match[2] == "=="))
    return runs


#: A pull request from a branch of acme/keel, opened and pushed by a person, with previews turned on.
SAME_REPOSITORY = {
    "vars.KEEL_PREVIEW_ENVIRONMENTS": '["prod"]',
    "github.repository": "acme/keel",
    "github.event.pull_request.head.repo.full_name": "acme/keel",
    "github.event.pull_request.user.login": "octocat",
    "github.actor": "octocat",
    "github.triggering_actor": "octocat",
}
DEPENDABOT = "dependabot[bot]"


@pytest.mark.parametrize(
    ("event", "previewed"),
    [
        ({}, True),
        ({"vars.KEEL_PREVIEW_ENVIRONMENTS": ""}, False),
        ({"github.event.pull_request.head.repo.full_name": "mallory/keel"}, False),
        # Dependabot's runs get no Actions secrets and a read-only token (no OIDC), also when a person re-runs
        # them; a person's push to a Dependabot branch starts a run of their own, with both.
        (
            {
                "github.event.pull_request.user.login": DEPENDABOT,
                "github.actor": DEPENDABOT,
                "github.triggering_actor": DEPENDABOT,
            },
            False,
        ),
        ({"github.event.pull_request.user.login": DEPENDABOT, "github.actor": DEPENDABOT}, False),
        ({"github.event.pull_request.user.login": DEPENDABOT}, True),
    ],
    ids=[
        "same-repository",
        "not-turned-on",
        "fork",
        "dependabot",
        "dependabot-re-run",
        "push-to-dependabot-pr",
    ],
)
def test_the_preview_runs_only_where_it_gets_secrets_and_oidc(event: dict[str, str], previewed: bool) -> None:
    jobs = load(REVIEW)["jobs"]
    assert job_runs(jobs["preview"]["if"], {**SAME_REPOSITORY, **event}) is previewed
    # A skipped preview skips its comments too (no job to fail for want of artifacts).
    assert "needs.preview.result != 'skipped'" in jobs["preview-comment"]["if"]


def test_every_step_that_prices_a_plan_gets_keel_prices() -> None:
    """keel diff and the policy pack under pulumi preview price plans with the file KEEL_PRICES names."""
    workflow = load(REVIEW)
    pricing = []
    for job_id, step in steps(workflow):
        script = step.get("run", "")
        if commands(script, ".venv/bin/keel") or any(c[0] == "preview" for c in commands(script, "pulumi")):
            env = {**workflow["jobs"][job_id].get("env", {}), **step.get("env", {})}
            assert env.get("KEEL_PRICES") == "${{ vars.KEEL_PRICES }}", f"{job_id}: {step['name']}"
            pricing.append(job_id)
    assert sorted(pricing) == ["preview", "review"]


def test_keel_ignores_an_empty_keel_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset repository variable reaches the steps as an empty KEEL_PRICES."""
    monkeypatch.setenv("KEEL_PRICES", "")
    assert load_prices().sources == (display_path(PRICES_FILE),)


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
#: A stand-in for ``gh api``: records every call, serves the pages of FAKE_GH_PAGES to ``--paginate`` and, when
#: FAKE_GH_FAIL is "METHOD STATUS MESSAGE", fails the calls of that method as gh reports an HTTP error.
FAKE_GH = """\
import json, os, sys
args = sys.argv[1:]
call = {"args": args, "stdin": sys.stdin.read() if "--input" in args else None}
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(call) + "\\n")
method = args[args.index("--method") + 1] if "--method" in args else "GET"
failure = os.environ.get("FAKE_GH_FAIL")
if failure and failure.split(" ", 1)[0] == method:
    _, status, message = failure.split(" ", 2)
    sys.stdout.write(json.dumps({"message": message, "status": status}))
    sys.stderr.write(f"gh: {message} (HTTP {status})\\n")
    sys.exit(1)
if "--paginate" in args:
    # gh prints each page's array as it comes.
    for page in json.loads(open(os.environ["FAKE_GH_PAGES"]).read()):
        sys.stdout.write(json.dumps(page))
"""
READ_ONLY = "Resource not accessible by integration"


def comment(id_: int, body: str, login: str = "github-actions[bot]") -> dict[str, Any]:
    """A comment as the GitHub API lists it."""
    return {"id": id_, "body": body, "user": {"login": login, "type": "Bot" if "[bot]" in login else "User"}}


class FakeGh:
    """A fake ``gh`` on PATH for pull request 7 of acme/keel, and the calls it received."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        bin_dir = directory / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        gh = bin_dir / "gh"
        gh.write_text(f"#!{sys.executable}\n{FAKE_GH}")
        gh.chmod(0o755)
        self.log = directory / "calls.jsonl"
        self.env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_GH_LOG": str(self.log),
            "FAKE_GH_PAGES": str(directory / "pages.json"),
            "GH_REPO": "acme/keel",
            "PR_NUMBER": "7",
        }
        self.serve([[]])

    def serve(self, pages: list[list[dict[str, Any]]], fail: str | None = None) -> None:
        """List ``pages`` of comments; fail the calls that ``fail`` ("METHOD STATUS MESSAGE") names."""
        (self.directory / "pages.json").write_text(json.dumps(pages))
        self.env.pop("FAKE_GH_FAIL", None)
        if fail is not None:
            self.env["FAKE_GH_FAIL"] = fail

    def calls(self) -> list[dict[str, Any]]:
        """Every call so far, in order."""
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture
def fake_gh(tmp_path: Path) -> FakeGh:
    """A fake ``gh`` in its own directory."""
    return FakeGh(tmp_path / "gh")


@pytest.fixture
def upsert(
    tmp_path: Path, fake_gh: FakeGh
) -> Callable[..., tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]]:
    """Run upsert-comment against the fake ``gh``, serving the given pages."""

    def run(
        pages: list[list[dict[str, Any]]], body: str = f"{MARKER}\nthe review\n", fail: str | None = None
    ) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        fake_gh.serve(pages, fail)
        (tmp_path / "body.md").write_text(body)
        result = subprocess.run(
            [SCRIPTS_DIR / "upsert-comment", MARKER, tmp_path / "body.md"],
            env={**os.environ, **fake_gh.env},
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        return result, fake_gh.calls()

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


def test_upsert_warns_instead_of_failing_when_the_token_is_read_only(upsert: Callable[..., Any]) -> None:
    """Dependabot's pull requests (among others) run with a token that may not comment: GitHub answers 403."""
    result, calls = upsert([[]], fail=f"POST 403 {READ_ONLY}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("::warning title=No pull-request comment::")
    assert "pull request #7" in result.stdout
    assert MARKER in result.stdout
    assert "job summary" in result.stdout
    assert f"{READ_ONLY} (HTTP 403)" in result.stderr  # gh's own message stays in the log
    assert [w[0] for w in writes(calls)] == ["POST"]


@pytest.mark.parametrize(
    "fail",
    [
        "PATCH 500 Server Error",
        "PATCH 403 You have exceeded a secondary rate limit",  # a 403 that is not about the token's rights
        "GET 404 Not Found",
    ],
)
def test_upsert_fails_on_any_other_error(upsert: Callable[..., Any], fail: str) -> None:
    result, _ = upsert([[comment(42, f"{MARKER}\nan old review")]], fail=fail)
    assert result.returncode == 1
    assert "::warning" not in result.stdout
    _, status, message = fail.split(" ", 2)
    assert f"gh: {message} (HTTP {status})" in result.stderr


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


# --- the workflow's steps, run as the runner runs them -----------------------------------------------------


def job_step(job_id: str, name: str) -> dict[str, Any]:
    """The step of review.yml's job ``job_id`` called ``name``."""
    (found,) = [s for s in load(REVIEW)["jobs"][job_id]["steps"] if s.get("name") == name]
    return found


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A runner's checkout as far as the steps use it: the workflow scripts at their path."""
    root = tmp_path / "workspace"
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "scripts").symlink_to(SCRIPTS_DIR)
    return root


def run_step(job_id: str, name: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A step's ``run:`` script as the runner runs a step without ``shell:`` (``bash -e``), with ``env`` standing
    in for the step's ``env:`` and the runner's variables."""
    script = cwd.parent / "step.sh"
    script.write_text(job_step(job_id, name)["run"])
    return subprocess.run(
        ["bash", "-e", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def outputs(path: Path) -> dict[str, str]:
    """The ``name=value`` lines a step wrote to ``$GITHUB_OUTPUT``."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


#: keel diff ENV --base SHA --format FORMAT, exiting as FAKE_KEEL_MARKDOWN / FAKE_KEEL_JSON say.
FAKE_KEEL = """\
#!/usr/bin/env bash
format=${*: -1}
echo "$format" >>"$FAKE_KEEL_LOG"
echo "the $format review of $2"
echo "$format: keel's message" >&2
status=FAKE_KEEL_${format^^}
exit "${!status}"
"""


@pytest.fixture
def review(
    workspace: Path,
) -> Callable[..., tuple[subprocess.CompletedProcess[str], dict[str, str], list[str]]]:
    """Run the review job's keel diff step with a fake keel exiting as told: (result, outputs, formats run)."""
    keel = workspace / ".venv" / "bin" / "keel"
    keel.parent.mkdir(parents=True)
    keel.write_text(FAKE_KEEL)
    keel.chmod(0o755)

    def run(markdown: int, json_: int) -> tuple[subprocess.CompletedProcess[str], dict[str, str], list[str]]:
        output = workspace.parent / "output.txt"
        output.write_text("")
        log = workspace.parent / "keel.log"
        log.write_text("")
        env = {
            "KEEL_ENV": "prod",
            "BASE_SHA": "0" * 40,
            "GITHUB_OUTPUT": str(output),
            "FAKE_KEEL_LOG": str(log),
            "FAKE_KEEL_MARKDOWN": str(markdown),
            "FAKE_KEEL_JSON": str(json_),
        }
        result = run_step("review", "Review the change offline (keel diff)", workspace, env)
        return result, outputs(output), log.read_text().split()

    return run


def write_review_comment(workspace: Path, status: str) -> str:
    """The review comment the job writes after keel diff ended with ``status`` ("" when it did not run)."""
    summary = workspace.parent / "summary.md"
    env = {"KEEL_ENV": "prod", "STATUS": status, "RUN_URL": "https://example.test/run/1"}
    result = run_step(
        "review",
        "Write the comment and the job summary",
        workspace,
        {**env, "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 0, result.stderr
    text = (workspace / "comment.md").read_text()
    assert summary.read_text() == text
    return text


@pytest.mark.parametrize(
    ("markdown", "json_", "status"),
    [(0, 0, "0"), (1, 1, "1"), (0, 3, "3"), (1, 2, "2")],
)
def test_the_review_step_records_the_status_of_both_runs(
    review: Callable[..., Any], markdown: int, json_: int, status: str
) -> None:
    result, out, formats = review(markdown, json_)
    assert result.returncode == 0, result.stderr  # the steps after it run, whatever keel did
    assert out == {"status": status}
    assert formats == ["markdown", "json"]


@pytest.mark.parametrize("markdown", [2, 3])
def test_a_failed_review_is_not_run_again_as_json(review: Callable[..., Any], markdown: int) -> None:
    result, out, formats = review(markdown, 0)
    assert result.returncode == 0, result.stderr
    assert out == {"status": str(markdown)}
    assert formats == ["markdown"]


def test_a_failed_json_run_replaces_the_comment_with_its_messages(
    workspace: Path, review: Callable[..., Any]
) -> None:
    _, out, _ = review(0, 3)
    messages = (workspace / "review-prod.stderr.txt").read_text()
    assert messages == (
        "markdown: keel's message\n"
        "keel diff --format json exited 3 (the Markdown run before it exited 0):\n"
        "json: keel's message\n"
    )
    text = write_review_comment(workspace, out["status"])
    assert text.startswith(f"{MARKER}\n### :x: Keel review of `prod` failed\n")
    assert "`keel diff` exited 3" in text
    assert "keel diff --format json exited 3" in text
    assert "json: keel's message" in text


def test_a_successful_review_is_the_comment(workspace: Path, review: Callable[..., Any]) -> None:
    _, out, _ = review(1, 1)
    text = write_review_comment(workspace, out["status"])
    assert text.startswith("the markdown review of prod\n")
    assert "artifact `keel-review-prod` holds this review as Markdown and JSON" in text


def test_a_review_that_did_not_run_still_replaces_the_comment(workspace: Path) -> None:
    text = write_review_comment(workspace, "")
    assert text.startswith(f"{MARKER}\n### :x: Keel review of `prod` did not run\n")
    assert "[Workflow run](https://example.test/run/1)." in text


def test_the_comment_steps_run_after_a_failed_step() -> None:
    """Without ``!cancelled()`` a step is skipped once one before it failed, and the old comment would stand."""
    for name in (
        "Write the comment and the job summary",
        "Upload the review",
        "Create or update this environment's comment",
        "No comment on a pull request from a fork",
    ):
        assert "!cancelled()" in job_step("review", name).get("if", ""), name


# The preview job's settings: (variables and secrets of preview-prod, the problem named or None when valid).
ROLE = {"AWS_ROLE_ARN": "arn:aws:iam::111111111111:role/keel-preview"}
SETTINGS = [
    ({**ROLE, "PULUMI_ACCESS_TOKEN": "pul-x"}, None),
    ({**ROLE, "BACKEND_URL_VARIABLE": "s3://keel-state"}, None),
    ({**ROLE, "BACKEND_URL_SECRET": "gs://keel-state"}, None),
    ({**ROLE, "BACKEND_URL_VARIABLE": "https://api.pulumi.acme.test", "PULUMI_ACCESS_TOKEN": "pul-x"}, None),
    ({"PULUMI_ACCESS_TOKEN": "pul-x"}, "it lacks the variable AWS_ROLE_ARN"),
    (ROLE, "it has no way to log in to Pulumi"),
    ({**ROLE, "BACKEND_URL_VARIABLE": "s3://keel-state", "PULUMI_ACCESS_TOKEN": "pul-x"}, "it has both"),
    (
        {**ROLE, "BACKEND_URL_VARIABLE": "s3://a", "BACKEND_URL_SECRET": "s3://b"},
        "it sets PULUMI_BACKEND_URL both as a variable and as a secret",
    ),
    (
        {**ROLE, "BACKEND_URL_SECRET": "https://api.pulumi.acme.test"},
        "PULUMI_BACKEND_URL names a Pulumi Cloud (http(s)://), which needs",
    ),
]


@pytest.mark.parametrize(("settings", "problem"), SETTINGS)
def test_the_preview_needs_exactly_one_way_to_log_in(
    workspace: Path, settings: dict[str, str], problem: str | None
) -> None:
    unset = dict.fromkeys(
        ("AWS_ROLE_ARN", "PULUMI_ACCESS_TOKEN", "BACKEND_URL_VARIABLE", "BACKEND_URL_SECRET"), ""
    )
    result = run_step(
        "preview", "Check the environment's settings", workspace, {**unset, **settings, "KEEL_ENV": "prod"}
    )
    if problem is None:
        assert result.returncode == 0, result.stdout
        assert result.stdout == ""
    else:
        assert result.returncode == 2
        prefix = "::error title=pulumi preview is not configured for prod::GitHub environment preview-prod: "
        assert result.stdout.startswith(prefix + problem), result.stdout


def test_the_settings_check_reads_what_the_preview_logs_in_with() -> None:
    check = job_step("preview", "Check the environment's settings")["env"]
    preview = next(s for s in load(REVIEW)["jobs"]["preview"]["steps"] if s.get("id") == "preview")["env"]
    assert (
        check["PULUMI_ACCESS_TOKEN"] == preview["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    )
    assert check["BACKEND_URL_VARIABLE"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert check["BACKEND_URL_SECRET"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    # The check rejects both at once, so the preview may take whichever is set.
    assert preview["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL || secrets.PULUMI_BACKEND_URL }}"
    assert preview["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


#: pulumi, recording its arguments and which Pulumi settings it was given; `preview` exits FAKE_PULUMI_STATUS.
FAKE_PULUMI = """\
import json, os, sys
names = ("PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE")
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps({"args": sys.argv[1:], "env": {n: os.environ[n] for n in names if n in os.environ}}))
    log.write("\\n")
if sys.argv[1] == "preview":
    print("Resources: 3 to create")
    sys.exit(int(os.environ["FAKE_PULUMI_STATUS"]))
"""


@pytest.mark.parametrize(
    ("settings", "login", "given"),
    [
        ({"PULUMI_ACCESS_TOKEN": "pul-x"}, [], {"PULUMI_ACCESS_TOKEN": "pul-x"}),
        (
            {"PULUMI_BACKEND_URL": "s3://keel-state", "PULUMI_CONFIG_PASSPHRASE": "correct horse"},
            ["s3://keel-state"],
            {"PULUMI_BACKEND_URL": "s3://keel-state", "PULUMI_CONFIG_PASSPHRASE": "correct horse"},
        ),
        # No passphrase (a KMS secrets provider, say): none at all rather than an empty one.
        (
            {"PULUMI_BACKEND_URL": "s3://keel-state"},
            ["s3://keel-state"],
            {"PULUMI_BACKEND_URL": "s3://keel-state"},
        ),
    ],
    ids=["pulumi-cloud", "self-managed-passphrase", "self-managed"],
)
def test_the_preview_logs_in_to_the_configured_backend(
    workspace: Path, settings: dict[str, str], login: list[str], given: dict[str, str]
) -> None:
    bin_dir = workspace.parent / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text(f"#!{sys.executable}\n{FAKE_PULUMI}")
    (bin_dir / "pulumi").chmod(0o755)
    log, output = workspace.parent / "pulumi.jsonl", workspace.parent / "output.txt"
    unset = dict.fromkeys(("PULUMI_ACCESS_TOKEN", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"), "")
    env = {
        **unset,
        **settings,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "KEEL_ENV": "prod",
        "PULUMI_STACK": "prod",
        "GITHUB_OUTPUT": str(output),
        "FAKE_PULUMI_LOG": str(log),
        "FAKE_PULUMI_STATUS": "255",
    }
    result = run_step("preview", 'pulumi preview (README, "Running for real")', workspace, env)
    assert result.returncode == 0, result.stderr
    assert outputs(output) == {"status": "255"}
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c["args"][0] for c in calls] == ["login", "preview"]
    assert calls[0]["args"][1:] == login
    assert all(c["env"] == given for c in calls)
    assert (workspace / "preview-prod.txt").read_text() == "Resources: 3 to create\n"


def test_the_previews_are_downloaded_into_one_directory() -> None:
    """download-artifact unpacks a single matching artifact into ``path`` but several into a directory each,
    unless merge-multiple: the comment step below expects previews/preview-ENV.md either way."""
    download = job_step("preview-comment", "Download the previews")
    assert download["uses"].startswith("actions/download-artifact@")
    assert download["with"] == {"pattern": "keel-preview-*", "path": "previews", "merge-multiple": True}


def post_previews(
    workspace: Path, fake_gh: FakeGh, previewed: list[str], files: list[str]
) -> subprocess.CompletedProcess[str]:
    """Run the preview comment step with ``files`` downloaded and ``previewed`` as KEEL_PREVIEW_ENVIRONMENTS."""
    previews = workspace / "previews"
    previews.mkdir()
    for name in files:
        (previews / name).write_text(
            f"<!-- keel-preview:{name.split('-', 1)[1].split('.')[0]} -->\npreview\n"
        )
    env = {**fake_gh.env, "GH_TOKEN": "t", "PREVIEWED": json.dumps(previewed)}
    return run_step("preview-comment", "Create or update each environment's preview comment", workspace, env)


@pytest.mark.parametrize(
    "previewed", [["dev"], ["dev", "staging"]], ids=["one-environment", "two-environments"]
)
def test_each_previewed_environment_gets_its_comment(
    workspace: Path, fake_gh: FakeGh, previewed: list[str]
) -> None:
    files = [f"preview-{e}.{ext}" for e in previewed for ext in ("md", "txt")]
    result = post_previews(workspace, fake_gh, previewed, files)
    assert result.returncode == 0, result.stderr
    posted = [body for _, _, body in writes(fake_gh.calls())]
    assert posted == [f"<!-- keel-preview:{e} -->\npreview\n" for e in previewed]


def test_a_missing_preview_fails_the_comment_step(workspace: Path, fake_gh: FakeGh) -> None:
    result = post_previews(
        workspace, fake_gh, ["dev", "staging", "prod"], ["preview-dev.md", "preview-dev.txt"]
    )
    assert result.returncode == 1
    assert "::error title=Preview comments missing::" in result.stdout
    assert "for staging prod:" in result.stdout
    assert [body for _, _, body in writes(fake_gh.calls())] == ["<!-- keel-preview:dev -->\npreview\n"]


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
        report.NEW_EXEMPTION,
        report.OVER_BUDGET,
        report.SHORTENED,
    )
    for marker in markers:
        assert f"| {marker} `{marker}` |" in guide, f"docs/reviewing.md's marker table lacks {marker}"
