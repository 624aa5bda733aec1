"""Relative notebook parameters count from the project root; reading a store never creates one."""

from __future__ import annotations

import pytest

from facekit.errors import StoreError
from facekit.paths import project_root, resolve_path
from facekit.store import open_store


def test_relative_paths_resolve_against_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEKIT_HOME", raising=False)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where JupyterLab starts a notebook's kernel
    assert project_root() == tmp_path
    assert resolve_path(".facekit/demo-store") == str(tmp_path / ".facekit" / "demo-store")
    assert resolve_path("../shared/datasets/lfw/B*") == str(tmp_path.parent / "shared" / "datasets" / "lfw" / "B*")
    assert resolve_path("/abs/store") == "/abs/store" and resolve_path(":memory:") == ":memory:"
    monkeypatch.setenv("FACEKIT_HOME", str(tmp_path / "elsewhere"))
    assert resolve_path("reports/manual") == str(tmp_path / "elsewhere" / "reports" / "manual")


def test_reading_a_missing_store_names_the_path_and_creates_nothing(tmp_path):
    missing = tmp_path / "no-store"
    with pytest.raises(StoreError, match=f"no store at {missing} \\(does not exist"):
        open_store(missing)
    assert not missing.exists()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="is a file, not a store folder"):
        open_store(a_file)
