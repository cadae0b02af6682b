"""Where the project lives, and how reports name files in it."""

from __future__ import annotations

from pathlib import Path

#: The checkout Keel runs from: the directory above the ``keel`` package (``Pulumi.yaml`` is there).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def display_path(path: Path) -> str:
    """A path as reports show it: relative to the working directory, else to the project, else absolute.

    Relative names keep plans of two checkouts (``keel diff``) equal and keep machine paths out of PR comments.
    """
    resolved = path.resolve()
    for root in (Path.cwd().resolve(), PROJECT_ROOT):
        try:
            return str(resolved.relative_to(root))
        except ValueError:
            continue
    return str(path)
