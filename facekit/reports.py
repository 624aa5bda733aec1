"""Reports: run a parameterized notebook with papermill into `reports/<run_id>/`, sweep a grid of
parameters over several kernels, and compare the runs in `reports/index.html`.

Each run folder holds the executed `notebook.ipynb`, a self-contained `report.html` (plotly.js
inlined once, nothing from a CDN), the `metrics.json` the notebook saved with `save_metrics`, the
`params.yaml` it ran with, and `run.json` (notebook, status, seconds).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from traitlets import default

from facekit.errors import ReportError
from facekit.report_index import read_runs, write_index

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"  # the repository's, in a source checkout
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
OUTPUT_DIR_PARAMETER = "output_dir"  # every notebook declares it; the runner sets it to the run folder


@dataclass(frozen=True)
class ReportRun:
    """One executed notebook and where its outputs are."""

    run_id: str
    folder: Path
    html: Path
    metrics: dict[str, Any]
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "html": str(self.html), "metrics": self.metrics, "seconds": self.seconds}


def find_notebook(notebook: str | os.PathLike[str]) -> Path:
    """A notebook by path, or by name in `./notebooks` or the repository's notebooks folder
    ("02_threshold_sweep" finds notebooks/02_threshold_sweep.ipynb)."""
    given = Path(notebook)
    names = [given] if given.suffix == ".ipynb" else [given.with_suffix(".ipynb"), given]
    for folder in (Path.cwd(), Path.cwd() / "notebooks", NOTEBOOKS_DIR):
        for name in names:
            candidate = name if name.is_absolute() else folder / name
            if candidate.is_file():
                return candidate
    known = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))
    raise ReportError(f"no notebook {str(notebook)!r}; give a path, or one of: {', '.join(known) or 'none found'}")


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares (its cell tagged `parameters`), name → default."""
    import papermill

    declared = papermill.inspect_notebook(str(path))
    if not declared:
        raise ReportError(f"{path.name} has no cell tagged 'parameters': papermill cannot set its parameters")
    return {name: info.get("default") for name, info in declared.items()}


def check_parameters(path: Path, parameters: Mapping[str, Any]) -> None:
    """Unknown parameters are an error (papermill only warns), naming the ones the notebook has."""
    declared = notebook_parameters(path)
    if OUTPUT_DIR_PARAMETER not in declared:
        raise ReportError(f"{path.name} must declare `{OUTPUT_DIR_PARAMETER}` in its parameters cell")
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        choices = ", ".join(sorted(n for n in declared if n != OUTPUT_DIR_PARAMETER))
        raise ReportError(f"{path.name} has no parameter {', '.join(unknown)}; it takes: {choices}")


def save_metrics(metrics: Mapping[str, Any], output_dir: str | os.PathLike[str]) -> Path:
    """Write a notebook's metrics to `output_dir/metrics.json` (atomically); notebooks end with this."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "metrics.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(metrics, indent=1, default=_jsonable))
    tmp.replace(path)
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"metrics must be JSON data; got {type(value).__name__}")


def export_html(ipynb: Path, out: Path) -> Path:
    """The executed notebook as one self-contained HTML page, code cells hidden."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="facekit_report", extra_template_basedirs=[str(TEMPLATES_DIR)])
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    notebook = nbformat.read(ipynb, as_version=4)
    notebook.metadata.pop("widgets", None)  # live widget state would pull the widget manager from a CDN
    body, _ = exporter.from_notebook_node(notebook)
    out.write_text(body, encoding="utf-8")
    return out


def _kernel_manager_class() -> type:
    """The kernel talks to papermill over Unix sockets, not TCP: nothing listens on a port, and the
    kernel's warning about unencrypted TCP (six times a sweep) does not apply. TCP where IPC is missing."""
    from jupyter_client.manager import AsyncKernelManager

    if os.name != "posix":
        return AsyncKernelManager

    class LocalSocketKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(
            self,
        ) -> str:  # jupyter_client's default, "kernel-ipc" in the cwd, is shared by a sweep's kernels
            return os.path.join(tempfile.gettempdir(), f"facekit-kernel-{uuid.uuid4().hex[:12]}-ipc")

    return LocalSocketKernelManager


def _new_run_id(stem: str, parameters: Mapping[str, Any]) -> str:
    tag = hashlib.sha256(f"{sorted(parameters.items())!r}{time.time_ns()}{os.getpid()}".encode()).hexdigest()[:6]
    return f"{stem}-{datetime.now():%Y%m%d-%H%M%S}-{tag}"


def run_notebook(
    notebook: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    reports_dir: str | os.PathLike[str] = "reports",
    run_id: str | None = None,
    kernel_name: str | None = None,
    progress: bool = False,
    update_index: bool = True,
) -> ReportRun:
    """Execute `notebook` with `parameters` into `reports_dir/<run_id>/` and export its HTML report.

    A notebook that fails still leaves its executed .ipynb and HTML (with the traceback) in the run
    folder; `ReportError` says where. Returns the run, with the metrics the notebook saved.
    """
    import papermill

    path = find_notebook(notebook)
    params = dict(parameters or {})
    check_parameters(path, params)
    run_id = run_id or _new_run_id(path.stem, params)
    folder = Path(reports_dir) / run_id
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=True))
    ipynb, page = folder / "notebook.ipynb", folder / "report.html"
    start = time.perf_counter()
    record = {"notebook": path.stem, "source": str(path), "started": datetime.now().isoformat(timespec="seconds")}
    error: str | None = None
    try:
        papermill.execute_notebook(
            str(path),
            str(ipynb),
            parameters={**params, OUTPUT_DIR_PARAMETER: str(folder.resolve())},
            kernel_name=kernel_name,
            progress_bar=progress,
            cwd=os.getcwd(),
            kernel_manager_class=_kernel_manager_class(),
        )
    except papermill.PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    seconds = round(time.perf_counter() - start, 2)
    if ipynb.exists():
        export_html(ipynb, page)
    metrics_file = folder / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    if error is None and not metrics_file.exists():
        error = "the notebook ran but saved no metrics (its last cell should call facekit.reports.save_metrics)"
    record.update({"status": "failed" if error else "ok", "error": error, "seconds": seconds})
    (folder / "run.json").write_text(json.dumps(record, indent=1))
    if update_index:
        write_index(reports_dir)
    if error:
        raise ReportError(f"{path.name} failed in run {run_id}: {error}. See {page if page.exists() else ipynb}")
    return ReportRun(run_id, folder, page, metrics, seconds)


def parse_grid(specs: Sequence[str]) -> dict[str, list[Any]]:
    """CLI grid specs "NAME=V1,V2" → {NAME: [V1, V2]}, each value read as YAML (numbers, true, null)."""
    grid: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise ReportError(f"grid spec {spec!r} must look like NAME=V1,V2")
        grid[name.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    return grid


def _sweep_one(args: tuple[str, dict[str, Any], str]) -> dict[str, Any]:
    notebook, params, reports_dir = args
    try:
        run = run_notebook(notebook, params, reports_dir=reports_dir, update_index=False)
        return {"params": params, **run.summary(), "status": "ok"}
    except ReportError as exc:
        return {"params": params, "status": "failed", "error": str(exc)}


def sweep(
    notebook: str | os.PathLike[str],
    grid: Mapping[str, Sequence[Any]],
    *,
    parameters: Mapping[str, Any] | None = None,
    processes: int = 2,
    reports_dir: str | os.PathLike[str] = "reports",
) -> dict[str, Any]:
    """Run `notebook` once per point of `grid` (the product of its value lists, on top of
    `parameters`), `processes` kernels at a time, then write `reports_dir/index.html`.

    Returns {"runs": [...], "index_html": path}; a failed point is reported in its run, not raised.
    """
    path = find_notebook(notebook)
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ReportError("a sweep needs a grid with at least one value per parameter, e.g. --grid NAME=V1,V2")
    base = dict(parameters or {})
    check_parameters(path, {**base, **grid})
    points = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    jobs = [(str(path), {**base, **point}, str(reports_dir)) for point in points]
    Path(reports_dir).mkdir(parents=True, exist_ok=True)
    if processes <= 1:
        runs = [_sweep_one(job) for job in jobs]
    else:
        import multiprocessing

        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(pool.map(_sweep_one, jobs))
    return {"runs": runs, "index_html": str(write_index(reports_dir))}


def prune_runs(
    reports_dir: str | os.PathLike[str] = "reports", *, keep: int, notebook: str | None = None, dry_run: bool = False
) -> list[Path]:
    """Delete all but the newest `keep` runs of each notebook (or of `notebook` only) and rewrite the
    index; only folders with a run.json (facekit's own run folders) are touched. Returns what went."""
    if keep < 0:
        raise ReportError(f"--keep must be 0 or more, got {keep}")
    root = Path(reports_dir)
    by_notebook: dict[str, list[dict[str, Any]]] = {}
    for run in read_runs(root):
        if notebook is None or run["notebook"] == notebook:
            by_notebook.setdefault(run["notebook"], []).append(run)
    doomed = [root / r["run_id"] for runs in by_notebook.values() for r in runs[: max(len(runs) - keep, 0)]]
    if not dry_run:
        for folder in doomed:
            shutil.rmtree(folder)
        write_index(root)
    return doomed
