"""Where a relative path in a notebook parameter points: the project root, not the kernel's folder.

JupyterLab and nbconvert start a notebook's kernel in the notebook's folder (`notebooks/`), papermill and
`facekit report` wherever they are run; the parameters (`.facekit/demo-store`, `../shared/datasets/lfw`)
are written relative to the project root. `resolve_path` makes them mean the same thing everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

# Markers of a project root, looked for from the working folder upwards.
ROOT_MARKERS = ("pyproject.toml", ".facekit")


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """FACEKIT_HOME if set; else the nearest folder, from `start` (default: the working folder) upwards,
    holding a pyproject.toml or a .facekit folder; else `start` itself."""
    home = os.environ.get("FACEKIT_HOME")
    if home:
        return Path(home).expanduser().resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return here


def resolve_path(path: str | os.PathLike[str], start: str | os.PathLike[str] | None = None) -> str:
    """`path` made absolute against `project_root` (absolute and ~ paths as they are). Glob patterns
    stay patterns; ":memory:" and URLs are returned unchanged.

    >>> resolve_path("/data/lfw/B*")
    '/data/lfw/B*'
    """
    text = os.fspath(path)
    if text == ":memory:" or "://" in text:
        return text
    expanded = Path(text).expanduser()
    if expanded.is_absolute():
        return str(expanded)
    return os.path.normpath(project_root(start) / expanded)
