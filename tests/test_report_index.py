"""The sweep index: swept parameters first, constants folded, varying metrics only, a plot of each
metric against each swept parameter; pruning old runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from facekit.errors import ReportError
from facekit.report_index import write_index
from facekit.reports import export_html, prune_runs, save_metrics


def fake_run(root: Path, run_id: str, params: dict, metrics: dict, started: str) -> Path:
    """A run folder as run_notebook leaves it (the notebook itself is exercised in test_notebooks)."""
    folder = root / run_id
    save_metrics(metrics, folder)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    record = {"notebook": run_id.split("-")[0], "status": "ok", "seconds": 1.0, "started": started}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def sweep_runs(root: Path) -> None:
    """A 3 x 2 sweep over unknown_method and unknown_min_size, the store and thresholds fixed; only the
    unknown-clustering F depends on the swept parameters, the person metrics are equal in every run."""
    i = 0
    for method in ("chinese_whispers", "connected_components", "hdbscan"):
        for size in (2, 3):
            unknown_f = 0.9 + 0.01 * i
            metrics = {"faces": 240, "recall": 0.85, "calibrated": {"false_accept": 0.002},
                       "best_unknown_bcubed_f": unknown_f, "unknown_noise": 10 - i, "rows": [1, 2]}  # fmt: skip
            params = {"unknown_method": method, "unknown_min_size": size, "store": "/data/store", "thresholds": []}
            fake_run(root, f"02_threshold_sweep-2026120{i}-x", params, metrics, f"2026-12-0{i + 1}T10:00:00")
            i += 1


def test_index_puts_swept_parameters_first_folds_constants_and_plots_what_varies(tmp_path):
    sweep_runs(tmp_path)
    page = write_index(tmp_path).read_text()
    headers = re.findall(r"<th title='([^']+)'", page)
    assert headers == ["run", "status", "seconds", "unknown_method", "unknown_min_size",
                       "best_unknown_bcubed_f", "unknown_noise"]  # fmt: skip
    folded = page.split("<table>")[0]
    assert "/data/store" in folded and "faces" in folded and "recall" in folded and "calibrated.false_accept" in folded
    assert page.count("report.html'") == 6
    assert "<b>0.9500</b>" in page and "<b>5</b>" in page  # the best F is the highest, the least noise the lowest
    assert page.count("<svg class='plot'") == 4  # 2 varying metrics x 2 swept parameters
    assert page.count("<polyline") == 3 + 2 + 3 + 2  # a line per value of the other swept parameter
    assert "connected_components" in page and "Lines:" in page


def test_a_single_run_folds_everything_and_draws_no_plot(tmp_path):
    fake_run(tmp_path, "03_umap_map-1", {"store": "s"}, {"faces": 10, "known": 4}, "2026-12-01T10:00:00")
    page = write_index(tmp_path).read_text()
    assert re.findall(r"<th title='([^']+)'", page) == ["run", "status", "seconds"]
    assert "<svg" not in page and "known" in page.split("<table>")[0]


def test_prune_keeps_the_newest_runs_of_each_notebook(tmp_path):
    sweep_runs(tmp_path)
    other = fake_run(tmp_path, "03_umap_map-1", {"store": "s"}, {"faces": 10}, "2026-11-01T10:00:00")
    (tmp_path / "notes").mkdir()  # not a run folder: never touched
    assert len(prune_runs(tmp_path, keep=2, dry_run=True)) == 4 and len(list(tmp_path.glob("*/run.json"))) == 7
    gone = prune_runs(tmp_path, keep=2)
    assert sorted(p.name for p in gone) == [f"02_threshold_sweep-2026120{i}-x" for i in range(4)]
    assert other.exists() and (tmp_path / "notes").exists() and not gone[0].exists()
    assert write_index(tmp_path).read_text().count("report.html'") == 3
    with pytest.raises(ReportError, match="--keep"):
        prune_runs(tmp_path, keep=-1)
    out = subprocess.run(
        [sys.executable, "-m", "facekit.cli", "prune-reports", "--keep", "0", "--notebook", "03_umap_map",
         "--reports-dir", str(tmp_path), "--json"], capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["removed"] == [str(other)] and not other.exists()


def test_report_pages_show_log_lines_as_notes_and_errors_as_errors(tmp_path):
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run()")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="a warning by design\n"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="bad input", traceback=["ValueError: bad input"]),
    ]
    notebook.cells = [cell]
    nbformat.write(notebook, tmp_path / "n.ipynb")
    page = export_html(tmp_path / "n.ipynb", tmp_path / "n.html").read_text()
    note = page[: page.index("a warning by design")].rsplit("<div", 1)[-1]
    assert "facekit-note" in note and "stderr" not in note
    error = page[: page.index("ValueError: bad input")].rsplit("<div", 1)[-1]
    assert "application/vnd.jupyter.stderr" in error
