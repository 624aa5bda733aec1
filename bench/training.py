"""Training benchmark: do the training iterations lift person matching on LFW, and what do they cost?

Protocol (issues 4 and 13): LFW main faces of one model in an embedded store; people with >= 5 photos
are known, their first N photos (by file name) labeled by hand; everyone else is unknown. For N = 3, 5
and 8, for dlib and MobileFaceNet:

- arrays: the open-set rule alone (today's threshold-and-margin rule with 2 assumed unknown faces per
  known one, against the calibrated score with the ratio read from the data), then each pseudo-label
  round, every row scored against the truth (precision, recall, false accept);
- the store: `training_iteration` (what `facekit train-iteration` runs), scored by `facekit evaluate` at
  each stage: before (a pass on the hand labels alone), with pseudo-labels, with the triplet head (a dry
  run, when it beats the base space on held-out hand labels), plus the first iteration once more on the
  store it left (no drift).

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
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import CACHE_DIR, DIMS, fill_store, lfw_embeddings, peak_rss_mb, truth_of  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from facekit.assign import PersonAssigner  # noqa: E402
from facekit.assign import person_assigner as pa  # noqa: E402
from facekit.assign.pseudo_labels import clear_pseudo_labels, fit_assigner, pseudo_label  # noqa: E402
from facekit.config import get_settings  # noqa: E402
from facekit.dual import DualModeClusterer  # noqa: E402
from facekit.embedding import model_id_for  # noqa: E402
from facekit.evaluation import label_from_folders  # noqa: E402
from facekit.projection import Projection  # noqa: E402
from facekit.store import FaceStore  # noqa: E402
from facekit.training import FaceTrainer, training_iteration  # noqa: E402

BUDGETS = (3, 5, 8)
MIN_PHOTOS = 5


def protocol(paths: list[str], per_person: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, the hand-labeled mask (first `per_person` photos of people with >= 5) and the known mask."""
    truth = truth_of(paths)
    names, counts = np.unique(truth, return_counts=True)
    known = np.isin(truth, names[counts >= MIN_PHOTOS])
    hand = np.zeros(len(paths), bool)
    seen: dict[str, int] = {}
    for i in np.argsort(paths, kind="stable"):
        if known[i] and seen.get(truth[i], 0) < per_person:
            hand[i], seen[truth[i]] = True, seen.get(truth[i], 0) + 1
    return truth, hand, known


def truth_scores(assigner: PersonAssigner, x: np.ndarray, truth: np.ndarray, known: np.ndarray) -> dict:
    """Precision, recall and false accept of the assigner's rule on faces not labeled by hand."""
    best, accepted, _, _ = assigner.decide(x)
    right = accepted & (best == truth)
    return {
        "precision": round(float(right.sum() / max(accepted.sum(), 1)), 4),
        "recall": round(float(right.sum() / known.sum()), 4),
        "false_accept": round(float((accepted & ~known).sum() / (~known).sum()), 4),
        "rule": assigner.calibration_["rule"],
        "unknown_ratio": assigner.calibration_["unknown_ratio"],
    }


def array_rows(x: np.ndarray, paths: list[str], per_person: int) -> list[dict]:
    """The rule alone, old and new, then each pseudo-label round, scored against the truth."""
    truth, hand, known = protocol(paths, per_person)
    pool = ~hand
    rows = []
    with mock.patch.object(pa, "SCORE_WEIGHTS", (0.0,)):
        old = PersonAssigner(unknown_ratio=pa.DEFAULT_UNKNOWN_RATIO).fit(x[hand], truth[hand])
    rows.append(
        {"stage": "w = 0 (threshold and margin), 2 unknown faces assumed"}
        | truth_scores(old, x[pool], truth[pool], known[pool])
    )
    base = PersonAssigner().fit(x[hand], truth[hand], unlabeled=x[pool])
    rows.append(
        {"stage": "calibrated score, unknown ratio from the data"}
        | truth_scores(base, x[pool], truth[pool], known[pool])
    )
    for rounds in (1, 2, 3):
        labels = pseudo_label(x[hand], truth[hand], x[pool], max_rounds=rounds)
        kept = [r for r in labels.rounds if r["kept"]][-1]["round"]
        if kept < rounds:
            why = labels.rounds[-1].get("why_stopped")
            rows.append({"stage": f"pseudo-labels, round {rounds}: none (after round {kept}: {why})"})
            break
        operating = fit_assigner(x[hand], truth[hand], x[pool], labels, target_precision=0.995)
        right = float(np.mean(labels.person_ids == truth[pool][labels.rows])) if len(labels.rows) else None
        rows.append(
            {"stage": f"pseudo-labels, round {rounds}", "pseudo_labels": len(labels.rows), "pseudo_precision": right}
            | truth_scores(operating, x[pool], truth[pool], known[pool])
        )
    return rows


def scores(report: dict | None) -> dict | None:
    if report is None:
        return None
    a, u = report["assignment"], report["unknown_people_clustering"]
    return {
        "precision": round(a["precision"], 4),
        "recall": round(a["recall"], 4),
        "false_accept": round(a["false_accept"], 4),
        "unknown_people_bcubed_f": round(u["bcubed_f"], 4) if u else None,
    }


def store_rows(x: np.ndarray, paths: list[str], model: str) -> list[dict]:
    """`training_iteration` on the store at each budget (twice at the first: unchanged labels)."""
    rows = []
    model_id = model_id_for(model)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FaceStore(Path(tmp) / "store", model_id=model_id, dim=DIMS[model]) as store,
    ):
        fill_store(store, x, paths)
        settings = get_settings(checkpoint_dir=Path(tmp) / "ckpt")
        for per_person in (BUDGETS[0], *BUDGETS):
            labeled = label_from_folders(store, min_photos=MIN_PHOTOS, per_person=per_person)
            if len(rows) != 1:  # "before": these hand labels alone (the second row repeats the first iteration as is)
                clear_pseudo_labels(store)
                DualModeClusterer(store, settings=settings).cluster_all_faces()
            start = time.perf_counter()
            record = training_iteration(
                store, log=Path(tmp) / "iterations.json", trainer=FaceTrainer(), settings=settings
            )
            train = record["train"]
            rows.append(
                {
                    "per_person": per_person,
                    "labeled": labeled,
                    "before": scores(record["before"]),
                    "with_pseudo_labels": scores(record["with_pseudo_labels"]),
                    "with_head": scores(record["with_head"]),
                    "head_used": record["head_used"],
                    "head_note": record["head_note"],
                    "pseudo_labels": record["pseudo_labels"]["pseudo_labels"],
                    "rounds": record["pseudo_labels"]["rounds"],
                    "train": {k: train[k] for k in ("epochs_run", "best_epoch", "val_metrics", "seconds")},
                    "moved": {k: record["reassign"][k] for k in ("newly_assigned", "changed", "unassigned")},
                    "seconds": round(time.perf_counter() - start, 1),
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
        *heading("Training iterations (pseudo-labels, open-set score, triplet head)", res),
        "",
        f"LFW main faces; people with >= {MIN_PHOTOS} photos known, their first N photos labeled by hand; "
        "everyone else unknown. P / R / FA are scored on the faces not labeled by hand against the folder "
        "names, at facekit's calibrated defaults (no threshold from the truth).",
        "",
    ]
    for model, per_model in res["models"].items():
        lines += [
            f"### {model}: the rule and each pseudo-label round (arrays)",
            "",
            "| labels a person | stage | precision | recall | false accept | pseudo-labels (their precision) | rule |",
            "|---|---|---|---|---|---|---|",
        ]
        for per_person, rows in per_model["arrays"].items():
            for r in rows:
                pseudo = f"{r['pseudo_labels']} ({r['pseudo_precision']:.4f})" if "pseudo_labels" in r else ""
                cells = [
                    per_person,
                    r["stage"],
                    r.get("precision", ""),
                    r.get("recall", ""),
                    r.get("false_accept", ""),
                    pseudo,
                    r.get("rule", ""),
                ]
                lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines += [
            "",
            f"### {model}: `facekit train-iteration` on the store (`facekit evaluate` at each stage)",
            "",
            "| labels a person | stage | precision | recall | false accept | unknown-people F | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        seen: set[int] = set()
        for r in per_model["store"]:
            again = r["per_person"] in seen
            seen.add(r["per_person"])
            label = f"{r['per_person']} ({r['labeled']['people']} people)" + (", again" if again else "")
            t = r["train"]
            v = t["val_metrics"] or {}
            head_note = (
                f"dry run: head beat the base on held-out labels (epoch {t['best_epoch']} of {t['epochs_run']})"
                if r["with_head"] is not None
                else f"head not used: DIR@FAR0.1% {v.get('dir_at_far_0_1pct')} (base {v.get('base_dir_at_far_0_1pct')})"
            )
            stages = [
                ("before", ""),
                ("with_pseudo_labels", f"{r['pseudo_labels']} pseudo-labels"),
                ("with_head", head_note),
            ]
            for stage, note in stages:
                s = r[stage]
                if s is None:
                    lines.append(f"| {label} | {stage} | | | | | {note} |")
                    continue
                cells = [
                    label,
                    stage,
                    s["precision"],
                    s["recall"],
                    s["false_accept"],
                    s["unknown_people_bcubed_f"],
                    note + (f"; iteration {r['seconds']} s" if stage == "with_head" else ""),
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
        + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--models", nargs="+", default=["dlib", "mobilefacenet"])
    ap.add_argument("--speed-one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    cache = CACHE_DIR / "lfw_dlib.npz"
    if args.speed_one:
        print(json.dumps(speed_one(cache)))
        return
    models = {}
    for model in args.models:
        x, paths = lfw_embeddings(args.data, CACHE_DIR / f"lfw_{model}.npz", model)
        arrays = {n: array_rows(x, paths, n) for n in BUDGETS}
        print(json.dumps({model: arrays}), flush=True)
        models[model] = {"arrays": arrays, "store": store_rows(x, paths, model)}
    lfw_embeddings(args.data, cache, "dlib")
    speed = subprocess.run([sys.executable, __file__, "--speed-one"], check=True, capture_output=True, text=True)
    res = {
        **provenance(),
        "speed": json.loads(speed.stdout.strip().splitlines()[-1]),
        "projection_cost": projection_cost(),
        "models": models,
    }
    write_suite("training", res, markdown(res))


if __name__ == "__main__":
    main()
