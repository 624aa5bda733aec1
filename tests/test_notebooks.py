"""Every notebook run by papermill on tiny real data (in its own kernel, as `facekit report` runs it),
its metrics.json checked; the labeling panel driven in the kernel; a sweep and its index page; the HTML
report opened in headless Chromium (screenshot, plots drawn, no console errors)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from facekit.dual import DualModeClusterer
from facekit.errors import ReportError
from facekit.evaluation import label_from_folders
from facekit.reports import run_notebook, sweep
from facekit.store import FaceStore
from facekit.store import schema as S

from .browser import open_report
from .conftest import DLIB, DUAL_PEOPLE, make_bad_inputs
from .test_dual import state

pytestmark = pytest.mark.slow
THRESHOLDS = [0.94, 0.95, 0.96, 0.97]
KNOWN = DUAL_PEOPLE[:4]  # the last two people stay unknown: false accepts and unknown-people F are measured


@pytest.fixture(autouse=True)
def _numba_cache(monkeypatch, tmp_path_factory):
    """UMAP's numba code compiles once per test session, not once per kernel."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "numba-cache"))


def copy_store(
    dual_indexed: Path, tmp_path: Path, *, labels: int = 0, known: list[str] | None = None, cluster: bool = False
) -> Path:
    """A closed copy of the six-person store (the notebook's kernel opens it), labeled (all six people, or
    the `known` ones: the others stay unknown) and clustered."""
    folder = tmp_path / "store"
    shutil.copytree(dual_indexed, folder)
    with FaceStore(folder, model_id=DLIB, dim=128) as store:
        if labels:
            label_from_folders(store, min_photos=5, per_person=labels, only=known)
        if cluster:
            DualModeClusterer(store).cluster_all_faces()
    return folder


def test_01_index_reports_counts_skips_and_a_sample(lfw, tmp_path):
    bad = tmp_path / "bad"
    expected = make_bad_inputs(bad, next((lfw / "Art_Howe").glob("*.jpg")))
    run = run_notebook(
        "01_index",
        {"photos": [str(lfw / "Art_Howe"), str(bad)], "store": str(tmp_path / "new-store"), "workers": 1},
        reports_dir=tmp_path / "reports",
    )
    m = run.metrics
    photos = len(list((lfw / "Art_Howe").glob("*.jpg")))
    assert m["images"] == photos + len(expected) and m["skipped"] == len(expected)
    assert m["faces_in_store"] == m["faces_total"] >= photos
    assert sum(m["skipped_reasons"].values()) == len(expected) and "not an image" in "".join(m["skipped_reasons"])
    page = run.html.read_text()
    assert "no face detected" in page and page.count('class="facekit-face"') >= photos
    assert yaml.safe_load((run.folder / "params.yaml").read_text())["workers"] == 1
    assert (run.folder / "notebook.ipynb").exists()


def test_02_threshold_sweep_recommends_a_threshold(dual_indexed, tmp_path):
    store = copy_store(dual_indexed, tmp_path, labels=3, known=KNOWN)
    run = run_notebook(
        "02_threshold_sweep", {"store": str(store), "thresholds": THRESHOLDS}, reports_dir=tmp_path / "reports"
    )
    m = run.metrics
    assert len(m["rows"]) == len(THRESHOLDS) + 1 and m["calibrated"]["calibrated"] is True
    assert [r["person_threshold"] for r in m["rows"][1:]] == THRESHOLDS
    # 42 faces: too few to calibrate the unknown link, so dlib's measured prior, reported as such
    assert m["unknown_threshold_method"] == "model prior" and m["unknown_threshold"] == 0.945
    assert m["unknown_threshold_precision"] is None  # a prior, not a mixture: nothing to estimate it from
    assert m["unknown_link_precision"] is None and "among the faces left unknown" not in run.html.read_text()
    said = "linked at cosine 0.945 (model prior; estimated pairwise precision not estimated): measured for dlib"
    assert said in run.html.read_text() and "not calibrated: 4" in run.html.read_text()  # 42 or so faces
    recalls = [r["recall"] for r in m["rows"][1:]]
    assert recalls == sorted(recalls, reverse=True) and recalls[0] > recalls[-1]  # a real sweep, not constant
    best = m["recommended"]
    assert best is not None and best["precision"] >= 0.995 and best["person_threshold"] == m["recommended_threshold"]
    assert "Recommended person threshold" in run.html.read_text()
    # two people nobody labeled: their faces are the false accepts' denominator and are clustered
    assert all(r["false_accept"] is not None for r in m["rows"]) and m["best_unknown_bcubed_f"] > 0.5
    assert all(r["revoked_by_groups"] >= 0 for r in m["rows"]) and "revoked_by_groups" in run.html.read_text()
    # only the calibrated rule needs a link to the person's faces: a fixed threshold is the user's rule
    assert all(r["revoked_unlinked"] == 0 for r in m["rows"] if not r["calibrated"])
    assert "revoked_unlinked" in run.html.read_text()


def test_unknown_parameters_and_failures_are_clear_errors(dual_indexed, tmp_path):
    with pytest.raises(ReportError, match=r"no parameter threshold; it takes: .*thresholds"):
        run_notebook("02_threshold_sweep", {"threshold": 0.9}, reports_dir=tmp_path / "reports")
    with pytest.raises(ReportError, match="no notebook"):
        run_notebook("99_nothing", {}, reports_dir=tmp_path / "reports")
    store = copy_store(dual_indexed, tmp_path)  # no labels: the notebook fails, and says why
    with pytest.raises(ReportError, match=r"failed in run .*at least 2 people.*report.html"):
        run_notebook("02_threshold_sweep", {"store": str(store)}, reports_dir=tmp_path / "reports")
    (failed,) = [json.loads(p.read_text()) for p in (tmp_path / "reports").glob("*/run.json")]
    assert failed["status"] == "failed" and "label some" in failed["error"]


def test_03_umap_map_of_known_and_unknown_faces(dual_indexed, tmp_path):
    store = copy_store(dual_indexed, tmp_path, labels=2, known=KNOWN)
    run = run_notebook("03_clusters_umap", {"store": str(store), "recluster": True}, reports_dir=tmp_path / "r")
    m = run.metrics
    assert m["mapped"] == m["faces"] == sum(m.get(k, 0) for k in ("known person", "unknown cluster", "noise"))
    assert m["people"] == len(KNOWN) and m["known person"] > 12
    assert m.get("unknown cluster", 0) >= 5  # the two unknown people (7 photos each) are clustered, not noise


def test_04_label_panel_driven_in_a_kernel_writes_exactly_its_edits(dual_indexed, tmp_path):
    store = copy_store(dual_indexed, tmp_path, cluster=True)
    with FaceStore(store, model_id=DLIB, dim=128) as fs:
        before = state(fs)
    actions = [["name", "Alice"], ["select", 0], ["reject"], ["next"], ["merge"], ["undo"]]
    run = run_notebook("04_label_panel", {"store": str(store), "actions": actions}, reports_dir=tmp_path / "r")
    m = run.metrics
    assert m["errors"] == [] and m["actions"] == len(actions)
    assert [d.split()[0] for d in m["done"]] == ["named", "1", "merged", "undid"]
    with FaceStore(store, model_id=DLIB, dim=128) as fs:
        after = state(fs)
        (alice,) = fs.list_persons()
    assert alice.name == "Alice"
    moved = {f for f in after if any(after[f].get(k) != before[f].get(k) for k in (S.PERSON_ID, S.REJECTED_PERSONS))}
    named = {f for f in after if after[f].get(S.PERSON_ID) == alice.person_id}
    rejected = {f for f in after if after[f].get(S.REJECTED_PERSONS)}
    assert len(rejected) == 1 and moved == named | rejected  # the name and the reject, nothing else
    assert after[next(iter(rejected))][S.REJECTED_PERSONS] == [alice.person_id]
    assert all(after[f][S.ASSIGNMENT_SOURCE] == S.SOURCE_MANUAL for f in named)
    untouched = set(after) - named - rejected
    assert all(after[f].get(S.CLUSTER_ID) == before[f].get(S.CLUSTER_ID) for f in untouched)  # the merge undone


@pytest.fixture(scope="module")
def train_report(dual_indexed, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train-report")
    store = copy_store(dual_indexed, tmp)
    params = {"store": str(store), "labels_per_person": [2, 3], "epochs": 3, "thresholds": THRESHOLDS}
    return run_notebook("05_train_report", params, reports_dir=tmp / "reports")


def test_05_train_report_records_each_iteration(train_report):
    m = train_report.metrics
    assert [it["labels_per_person"] for it in m["iterations"]] == [2, 3]
    for it in m["iterations"]:
        assert set(it["before"]) == set(it["after"]) >= {"precision", "recall", "false_accept", "unknown_bcubed_f"}
        assert 1 <= it["epochs_run"] <= 3 and set(it["moved"]) == {"newly_assigned", "changed", "unassigned"}
        # pseudo-labels are kept only where the hand labels' estimate says they lift recall; on a 43-face store
        # that estimate can be a face off (LFW's figures: bench/results/training.md)
        assert it["with_pseudo_labels"]["recall"] >= it["before"]["recall"] - 0.05
        assert not it["head_used"]  # off by default: a dry run at most
    assert m["iterations"][1]["before"]["recall"] >= 0.5
    assert sum(m["map"].values()) == m["faces"]
    (log,) = train_report.folder.glob("iterations.json")
    assert len(json.loads(log.read_text())) == 2
    assert len(list((train_report.folder / "checkpoints").glob("*.safetensors"))) >= 1
    assert [(it["hand_labeled"], it["max_per_person"]) for it in m["iterations"]] == [(12, 2), (18, 3)]


def test_a_second_train_report_states_the_labels_the_store_holds(train_report):
    """As a second `make demo`: the store keeps the 3 labels a person of the first run; asked for 2, the
    report counts the 18 it holds (and says so), not 12."""
    store = yaml.safe_load((train_report.folder / "params.yaml").read_text())["store"]
    params = {"store": store, "labels_per_person": [2], "epochs": 1, "thresholds": THRESHOLDS}
    again = run_notebook("05_train_report", params, reports_dir=train_report.folder.parent)
    (it,) = again.metrics["iterations"]
    assert (it["labels_per_person"], it["hand_labeled"], it["max_per_person"]) == (2, 18, 3)
    assert "already held more hand labels than 2 a person" in again.html.read_text()


def test_html_report_renders_in_headless_chromium(train_report, tmp_path):
    shot = tmp_path / "report.png"
    info = open_report(train_report.html, shot)
    assert train_report.html.stat().st_size < 3_000_000  # plotly.js gzipped once, thumbnails in one sprite
    assert info["console_errors"] == []
    assert info["plotly"] == "object" and info["plots"] == 4  # iteration curves, 2 threshold sweeps, the map
    assert all(n > 0 for n in info["points_per_plot"]), info["points_per_plot"]
    assert info["hover_face"] and info["broken_images"] == 0
    assert "Each iteration, stage by stage" in info["text"] and "UMAP" in info["text"]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 60  # plot lines and markers, not grey text
    assert pixels.shape[0] > 1500 and colourful.mean() > 0.002


def test_sweep_compares_runs_in_the_index(dual_indexed, tmp_path):
    store = copy_store(dual_indexed, tmp_path, labels=3)
    grid = {"unknown_method": ["chinese_whispers", "connected_components"], "unknown_min_size": [2, 3]}
    result = sweep("02_threshold_sweep", grid, parameters={"store": str(store), "thresholds": THRESHOLDS},
                   processes=2, reports_dir=tmp_path / "reports")  # fmt: skip
    assert [r["status"] for r in result["runs"]] == ["ok"] * 4
    page = Path(result["index_html"]).read_text()
    assert page.count("report.html'") == 4 and "unknown_method" in page and "connected_components" in page
    assert "recommended_threshold" in page or "calibrated.recall" in page


def test_cli_report_and_sweep(dual_indexed, tmp_path):
    store = copy_store(dual_indexed, tmp_path, labels=3)
    facekit = [sys.executable, "-m", "facekit.cli"]
    common = ["-p", "store", str(store), "-p", "thresholds", "[0.95, 0.96]", "--reports-dir", str(tmp_path / "r")]
    out = subprocess.run([*facekit, "report", "02_threshold_sweep", *common, "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "without encryption" not in out.stderr  # the kernel talks over Unix sockets, not TCP
    report = json.loads(out.stdout)
    assert set(report) >= {"run_id", "html", "metrics"} and Path(report["html"]).exists()
    out = subprocess.run(
        [*facekit, "sweep", "02_threshold_sweep", "--grid", "unknown_min_size=2,3", *common, "--json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    swept = json.loads(out.stdout)
    assert len(swept["runs"]) == 2 and Path(swept["index_html"]).exists()
    bad = subprocess.run([*facekit, "report", "02_threshold_sweep", "-p", "nope", "1"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no parameter nope" in bad.stderr


def test_notebooks_run_from_their_own_folder_with_default_parameters(dual_indexed, lfw, tmp_path, monkeypatch):
    """As JupyterLab and nbconvert run them: the kernel in notebooks/, the default (relative) parameters.
    The project root is FACEKIT_HOME here (a demo store and ../shared beside it); nothing is created
    under notebooks/, and every notebook writes its metrics under the root's reports/manual."""
    import papermill

    from facekit.reports import NOTEBOOKS_DIR

    project = tmp_path / "project"
    copy_store(dual_indexed, project / ".facekit", labels=3, cluster=True).rename(project / ".facekit" / "demo-store")
    (tmp_path / "shared").symlink_to(lfw.parent.parent)  # the default photos: ../shared/datasets/lfw/B*
    monkeypatch.setenv("FACEKIT_HOME", str(project))
    before = sorted(p.name for p in NOTEBOOKS_DIR.iterdir())
    runs = [
        ("02_threshold_sweep", {}),
        ("03_clusters_umap", {}),
        ("04_label_panel", {}),
        ("05_train_report", {}),
        ("01_index", {"limit": 4, "model": "dlib"}),  # the test store holds dlib faces; all of B* takes minutes
    ]
    for name, params in runs:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"), parameters=params, cwd=NOTEBOOKS_DIR
        )
        metrics = json.loads((project / "reports" / "manual" / "metrics.json").read_text())
        assert metrics, name
    assert metrics["faces_in_store"] > 43  # the six-person store plus the B* photos indexed
    assert sorted(p.name for p in NOTEBOOKS_DIR.iterdir()) == before  # no notebooks/.facekit, no reports
