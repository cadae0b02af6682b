"""Plans an environment as a git revision has it: in a temporary worktree, in a process of its own.

The base side of ``keel diff ENV --base REF``. The revision's own code plans it (its ``keel``, ``stacks``,
``components`` and ``policies``), not the code that is running: the plan process starts in the worktree with
the worktree first on ``PYTHONPATH``, ahead of the editable install. The worktree is always removed, also when
planning fails or is interrupted.

The revision's code runs with this checkout's installed dependencies (``uv.lock`` as it is now): a change that
bumps a provider SDK is reviewed with the new SDK on both sides, so what the bump itself changes shows only in
``pulumi preview``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from keel.cost import PRICES_ENV
from keel.paths import PROJECT_ROOT
from keel.plan import ENVIRONMENTS_DIR, environment_file

#: Lines of the base process's stderr shown when it fails.
STDERR_TAIL_LINES = 20


class RevisionError(Exception):
    """The revision cannot be used: no git, not a repository, or an unknown ref (``keel`` exits 2)."""


class BasePlanError(Exception):
    """The revision's own program could not plan the environment (``keel`` exits 3)."""


@dataclass(frozen=True)
class Revision:
    """A ref resolved to its commit."""

    ref: str
    commit: str
    short: str

    @property
    def label(self) -> str:
        """How a review names the revision: ``HEAD~1 (3f2a9c1)``, or just the short commit for a commit id."""
        if self.commit.startswith(self.ref.lower()) and len(self.ref) >= len(self.short):
            return self.short
        return f"{self.ref} ({self.short})"


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise RevisionError("--base needs git, and git is not installed (or not on PATH)") from None


def _toplevel(root: Path) -> Path:
    found = _git(root, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise RevisionError(
            f"{root} is not a git repository, so --base has no history to read; save a plan with "
            "`keel plan ENV --format json > base.json` and use --base-plan base.json instead"
        )
    return Path(found.stdout.strip()).resolve()


def resolve_revision(ref: str, root: Path = PROJECT_ROOT) -> Revision:
    """The commit ``ref`` names in the project's repository; ``RevisionError`` if it names none."""
    _toplevel(root)
    commit = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if commit.returncode != 0 or not commit.stdout.strip():
        raise RevisionError(
            f"--base {ref}: no such commit in {root} (a branch, tag, commit or HEAD~N, e.g. origin/main)"
        )
    sha = commit.stdout.strip()
    short = _git(root, "rev-parse", "--short", sha).stdout.strip() or sha[:7]
    return Revision(ref, sha, short)


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cancelled CI job) unwinds like Ctrl-C while the block runs, so cleanup still happens."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def detached_worktree(commit: str, root: Path = PROJECT_ROOT) -> Iterator[Path]:
    """A temporary, detached worktree of ``commit``, removed (and pruned) however the block ends: an error,
    Ctrl-C or SIGTERM."""
    scratch = Path(tempfile.mkdtemp(prefix="keel-diff-"))
    tree = scratch / "base"
    try:
        with _terminate_as_interrupt():
            added = _git(root, "worktree", "add", "--detach", "--quiet", str(tree), commit)
            if added.returncode != 0:
                raise RevisionError(
                    f"cannot check out {commit} in a temporary worktree: {added.stderr.strip()}"
                )
            yield tree
    finally:
        _git(root, "worktree", "remove", "--force", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)
        _git(root, "worktree", "prune")


def _tail(text: str) -> str:
    lines = text.strip().splitlines()[-STDERR_TAIL_LINES:]
    return "\n".join(lines) or "(nothing on stderr)"


@dataclass
class RevisionPlan:
    """A base plan that is being computed; ``result()`` waits for it."""

    environment: str
    revision: Revision
    label: str
    """The base's label in a review (says so when the environment does not exist at the revision)."""
    process: subprocess.Popen[bytes] | None
    """``None`` when the revision has no such environment: the base is nothing."""
    stdout: IO[Any] | None = None
    stderr: IO[Any] | None = None

    def result(self) -> dict[str, Any] | None:
        """The revision's plan document, or ``None`` if the environment does not exist there.

        Raises ``BasePlanError`` when the plan process fails (exit 2 or 3) or prints no plan. Exit 1
        (mandatory policy violations at the revision) still printed the plan.
        """
        if self.process is None or self.stdout is None or self.stderr is None:
            return None
        code = self.process.wait()
        self.stdout.seek(0)
        self.stderr.seek(0)
        out = self.stdout.read().decode("utf-8", errors="replace")
        err = self.stderr.read().decode("utf-8", errors="replace")
        where = f"planning {self.environment} at {self.label}"
        if code not in (0, 1):
            raise BasePlanError(f"{where} failed (exit {code}); its stderr ends with:\n{_tail(err)}")
        try:
            plan = json.loads(out)
        except json.JSONDecodeError as error:
            raise BasePlanError(
                f"{where} printed no plan JSON ({error}); its stderr ends with:\n{_tail(err)}"
            ) from None
        if not isinstance(plan, dict) or not isinstance(plan.get("resources"), list):
            raise BasePlanError(f"{where} printed JSON that is not a plan (no resources list)")
        return plan


@contextmanager
def revision_plan(
    environment: str, ref: str, *, root: Path = PROJECT_ROOT, policy_config: Path | None = None
) -> Iterator[RevisionPlan]:
    """Start planning ``environment`` as revision ``ref`` has it; the plan runs while the block runs.

    The plan process is ``python -m keel.cli plan ENV --format json`` in a detached worktree of the revision,
    with the worktree first on ``PYTHONPATH``. If the revision has no ``environments/Pulumi.ENV.yaml`` the base
    is nothing (``result()`` is ``None``) and the label says the environment is new. ``policy_config`` (made
    absolute) is passed to the revision's plan so both sides are checked with the same settings. Raises
    ``RevisionError`` for an unusable ref. The process is stopped and the worktree removed on leaving.
    """
    root = root.resolve()
    revision = resolve_revision(ref, root)
    top = _toplevel(root)
    env_path = environment_file(environment, root / ENVIRONMENTS_DIR.name).relative_to(top).as_posix()
    if _git(root, "cat-file", "-e", f"{revision.commit}:{env_path}").returncode != 0:
        yield RevisionPlan(environment, revision, f"{revision.label}: no {environment} environment yet", None)
        return
    with (
        detached_worktree(revision.commit, root) as tree,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        project = tree / root.relative_to(top)
        command = [sys.executable, "-m", "keel.cli", "plan", environment, "--format", "json"]
        if policy_config is not None:
            command += ["--policy-config", str(policy_config.resolve())]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(project), env.get("PYTHONPATH")) if p)
        prices = env.get(PRICES_ENV)
        if prices and not (project / prices).is_file():
            # The revision lacks the price file (the change adds it): price both sides with the working tree's.
            env[PRICES_ENV] = str(root / prices)
        # Output goes to files, not pipes: the plan JSON is larger than a pipe buffer and nobody reads it early.
        process = subprocess.Popen(command, cwd=project, env=env, stdout=out, stderr=err)
        try:
            yield RevisionPlan(environment, revision, revision.label, process, out, err)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def plan_revision(
    environment: str, ref: str, *, root: Path = PROJECT_ROOT, policy_config: Path | None = None
) -> tuple[str, dict[str, Any] | None]:
    """``(label, plan)`` of ``environment`` at ``ref`` (see ``revision_plan``), waiting for it."""
    with revision_plan(environment, ref, root=root, policy_config=policy_config) as pending:
        return pending.label, pending.result()
