"""Training benchmark: does the triplet-trained head lift person matching on LFW, and what does it cost?

Protocol (issue 4): LFW main faces with dlib embeddings in an embedded store; people with >= 5 photos
are known, their first N photos (by file name) labeled; everyone else is unknown. For N = 3, 5, 8
(three labeling iterations): a dual-mode pass in the base space, `facekit evaluate`; then train,
reassign in the trained space, evaluate again. Each trainer configuration runs the whole curve.
Also: training time and peak memory for 10 people x 20 faces x 20 epochs on CPU, and the cost of
projecting embeddings on the fly.

Run: `make bench-training` (= `python bench/training.py --data ../shared/datasets/lfw`).
Writes bench/results/training.md and .json, then re-assembles bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import CACHE, DLIB, fill_store, lfw_embeddings, peak_rss_mb, recall_at_precision, truth_of  # noqa: E402
from bench.report import machine, write_suite  # noqa: E402
from facekit.assign import PersonAssigner  # noqa: E402
from facekit.config import get_settings  # noqa: E402
from facekit.dual import DualModeClusterer  # noqa: E402
from facekit.evaluation import label_from_folders  # noqa: E402
from facekit.projection import Projection, load_projection  # noqa: E402
from facekit.store import FaceStore  # noqa: E402
from facekit.store import schema as S  # noqa: E402
from facekit.training import FaceTrainer, training_iteration  # noqa: E402

BUDGETS = (3, 5, 8)
CONFIGS = {
    "settings defaults (margin 0.2, lr 1e-4, batch 32, 20 epochs, semi-hard)": {},
    "margin 0.05, all triplets, lr 1e-3": {"margin": 0.05, "miner": "all", "learning_rate": 1e-3},
    "the same without early stopping (20 epochs)": {
        "margin": 0.05,
        "miner": "all",
        "learning_rate": 1e-3,
        "val_fraction": 0,
    },
}


def scores(report: dict) -> dict:
    a, u = report["assignment"], report["unknown_people_clustering"]
    return {
        "precision": round(a["precision"], 4),
        "recall": round(a["recall"], 4),
        "false_accept": round(a["false_accept"], 4),
        "unknown_people_bcubed_f": round(u["bcubed_f"], 4) if u else None,
    }


def best_recall(store: FaceStore, x: np.ndarray, paths: list[str], projection: Projection | None) -> dict:
    """Recall at >= 99.5% precision over every threshold (facekit's rule at its calibrated margin)."""
    truth = truth_of(paths)
    faces = store.scroll_all(with_embeddings=False, fields=[S.IMAGE_PATH, S.ASSIGNMENT_SOURCE, S.PERSON_ID])
    manual_paths = {p[S.IMAGE_PATH] for p in faces.payloads if S.is_hand_labeled(p)}
    manual = np.array([p in manual_paths for p in paths])
    z = x if projection is None else projection.transform(x)
    assigner = PersonAssigner().fit(z[manual], truth[manual])
    test = ~manual
    known = np.isin(truth, truth[manual]) & test
    predicted, s1, lead = assigner.best_match(z[test])
    score = np.where(lead >= assigner.margin_, s1, -np.inf)
    return recall_at_precision(truth[test], predicted, score, known[test], ~np.isin(truth[test], truth[manual]))


def curve(x: np.ndarray, paths: list[str], trainer_args: dict) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, FaceStore(Path(tmp) / "store", model_id=DLIB, dim=128) as store:
        fill_store(store, x, paths)
        settings = get_settings(checkpoint_dir=Path(tmp) / "ckpt")
        for per_person in BUDGETS:
            labeled = label_from_folders(store, min_photos=5, per_person=per_person)
            DualModeClusterer(store, settings=settings).cluster_all_faces()  # base space, no head
            base_oracle = best_recall(store, x, paths, None)
            record = training_iteration(
                store, log=Path(tmp) / "iterations.json", trainer=FaceTrainer(**trainer_args), settings=settings
            )
            projection = load_projection(record["train"]["checkpoint"])
            rows.append(
                {
                    "per_person": per_person,
                    "labeled": labeled,
                    "before": scores(record["before"]) | {"best_recall_at_99_5": base_oracle},
                    "after": scores(record["after"])
                    | {"best_recall_at_99_5": best_recall(store, x, paths, projection)},
                    "train": {
                        k: record["train"][k]
                        for k in ("epochs_run", "best_epoch", "train_loss", "val_metrics", "seconds")
                    },
                    "moved": {k: record["reassign"][k] for k in ("newly_assigned", "changed", "unassigned")},
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def speed_one(cache: Path) -> dict:
    """10 people x 20 real LFW faces, 20 epochs, no early stopping; median of 3 fits."""
    x, paths = lfw_embeddings(Path(), cache)
    truth = truth_of(paths)
    names, counts = np.unique(truth, return_counts=True)
    people = names[counts >= 20][:10]
    rows = np.concatenate([np.flatnonzero(truth == p)[:20] for p in people])
    trainer = FaceTrainer(epochs=20, val_fraction=0)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        result = trainer.fit(x[rows], truth[rows])
        times.append(time.perf_counter() - t)
    return {
        "faces": len(rows),
        "people": len(people),
        "epochs": result.epochs_run,
        "median_s": round(statistics.median(times), 2),
        "runs_s": [round(t, 2) for t in times],
        "device": result.device,
        "peak_rss_mb": peak_rss_mb(),
    }


def projection_cost() -> list[dict]:
    """Projecting on the fly: numpy transform time at 100K faces (median of 3)."""
    out = []
    for dim in (128, 512):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((100_000, dim)).astype(np.float32)
        p = Projection.identity("bench", dim=dim, hidden=256)
        w = {k: rng.standard_normal(v.shape).astype(np.float32) * 0.05 for k, v in p.weights.items()}
        p = Projection(w, p.meta)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            p.transform(x)
            times.append(time.perf_counter() - t)
        out.append({"faces": 100_000, "dim": dim, "hidden": 256, "median_s": round(statistics.median(times), 3)})
    return out


def markdown(res: dict) -> str:
    lines = [
        "## Training (triplet head)",
        "",
        f"Command: `{res['command']}`. Machine: {res['machine']}. Date: {res['date']}.",
        "",
        "### LFW protocol, before vs after training (main faces, dlib; people with >= 5 photos known)",
        "",
        "before = dual-mode pass in the base space; after = train, `reassign` in the trained space. P / R / FA "
        "are facekit's calibrated defaults (`facekit evaluate`); best R@99.5 sweeps the threshold with the truth "
        "(an upper bound the calibration aims for); unknown F = BCubed F on the faces of people nobody labeled.",
        "",
    ]
    for name, rows in res["curves"].items():
        lines += [
            f"**{name}**",
            "",
            "| labeled per person | | precision | recall | false accept | best R@99.5 | unknown F "
            "| epochs run / kept | train s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            for when in ("before", "after"):
                s = r[when]
                t = r["train"]
                extra = f"{t['epochs_run']} / {t['best_epoch']} | {t['seconds']}" if when == "after" else " | "
                cells = [
                    f"{r['per_person']} ({r['labeled']['people']} people)",
                    when,
                    s["precision"],
                    s["recall"],
                    s["false_accept"],
                    s["best_recall_at_99_5"]["recall"],
                    s["unknown_people_bcubed_f"],
                    extra,
                ]
                lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    sp = res["speed"]
    lines += [
        "### Cost",
        "",
        f"Training {sp['people']} people x {sp['faces'] // sp['people']} faces for {sp['epochs']} epochs on "
        f"{sp['device']}: median {sp['median_s']} s (runs {sp['runs_s']}), peak RSS {sp['peak_rss_mb']} MB "
        "(whole process, torch included).",
        "",
        "Projecting on the fly (numpy, no torch): "
        + "; ".join(f"{c['faces']:,} x {c['dim']}-d in {c['median_s']} s" for c in res["projection_cost"])
        + ". Keeping projected vectors in a named vector would instead rewrite every point after each training "
        "(~1.2 ms a face in the embedded store, bench/results/indexing.md: ~2 minutes at 100K).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--cache", type=Path, default=CACHE)
    ap.add_argument("--speed-one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.speed_one:
        print(json.dumps(speed_one(args.cache)))
        return
    x, paths = lfw_embeddings(args.data, args.cache)
    speed = subprocess.run(
        [sys.executable, __file__, "--speed-one", "--cache", str(args.cache)],
        check=True,
        capture_output=True,
        text=True,
    )
    res = {
        "command": "python bench/training.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "speed": json.loads(speed.stdout.strip().splitlines()[-1]),
        "projection_cost": projection_cost(),
        "curves": {name: curve(x, paths, cfg) for name, cfg in CONFIGS.items()},
    }
    write_suite("training", res, markdown(res))


if __name__ == "__main__":
    main()
