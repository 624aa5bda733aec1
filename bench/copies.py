"""Copies of photos in a collection: the link calibration on all of LFW with a tenth of its photos there twice.

Real libraries hold the same photo more than once: a file imported twice (its faces at cosine 1), or re-saved,
resized or forwarded (a little less). A copy says nothing about how one person's photos spread, but its pair sits
far above the same-person mode of the neighbours' similarities that `calibrate_link_threshold` reads. Here a seeded
tenth of LFW's photos is added again, as the same file and re-saved (JPEG quality 95 and 75; 0.6 times the
size at quality 40), indexed by `facekit index` like any photo, and each collection is calibrated and clustered with
facekit's defaults. BCubed F is scored on the original photos only, so every row scores the same faces; "at the clean
cut" clusters the same collection at the cut calibrated without copies, to show how much of a change is the cut.

Run: `make bench-copies` (= `python bench/copies.py --data ../shared/datasets/lfw`, ~13 min on 2 cores once LFW's
embeddings are cached by `make bench-clustering`). Writes bench/results/copies.md and .json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import CACHE_DIR, lfw_embeddings, truth_of  # noqa: E402
from bench.report import heading, machine, write_suite  # noqa: E402
from facekit.cluster import ChineseWhispers, KnnGraph, knn_graph  # noqa: E402
from facekit.cluster.calibration import LinkThreshold, calibrate_link_threshold, sampled_neighbours  # noqa: E402
from facekit.metrics import clustering_scores  # noqa: E402

SEEDS = (0, 1, 2)
SHARE = 0.1
# How the copies are re-saved: (what the rows call it, size, JPEG quality)
RESAVED = (
    ("re-saved (JPEG quality 95)", 1.0, 95),
    ("re-saved (JPEG quality 75)", 1.0, 75),
    ("re-saved smaller (0.6 times the size, JPEG quality 40)", 0.6, 40),
)


def resave(paths: list[str], data: Path, out: Path, scale: float, quality: int) -> None:
    """Each photo re-saved under `out` (the same folders): `scale` times the size, JPEG `quality`."""
    for p in paths:
        target = out / Path(p).relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(p) as img:
            size = (round(img.width * scale), round(img.height * scale))
            img.convert("RGB").resize(size, Image.LANCZOS).save(target, quality=quality)


def calibrated(x: np.ndarray, images: list[str]) -> tuple[KnnGraph, LinkThreshold | None]:
    """The faces' 30-nearest-neighbour graph and the link calibrated on it, as a pass calibrates."""
    graph = knn_graph(x, 30)
    return graph, calibrate_link_threshold(graph, deeper=sampled_neighbours(x, np.array(images, dtype=object)))


def median_f(x: np.ndarray, graph: KnnGraph, link: LinkThreshold, truth: np.ndarray) -> float:
    """facekit's BCubed F at `link` on the first len(truth) faces, the median over SEEDS."""
    scores = sorted(
        clustering_scores(
            truth,
            ChineseWhispers(link.threshold, seed=seed, **link.strangers).fit_predict(x, graph=graph)[: len(truth)],
        )["bcubed_f"]
        for seed in SEEDS
    )
    return scores[len(scores) // 2]


def run_model(model: str, data: Path, cache_dir: Path) -> dict:
    x, paths = lfw_embeddings(data, cache_dir / f"lfw_{model}.npz", model)
    truth = truth_of(paths)
    twice = np.sort(np.random.default_rng(0).choice(len(x), int(SHARE * len(x)), replace=False))
    collections = {
        "all of LFW": (x, paths),
        f"+ {len(twice):,} photos imported twice (cosine 1)": (
            np.vstack([x, x[twice]]),
            paths + [f"{paths[i]}#copy" for i in twice],
        ),
    }
    similarity, row_of = {}, {p: i for i, p in enumerate(paths)}
    for kind, scale, quality in RESAVED:
        with tempfile.TemporaryDirectory() as tmp:
            resaved_dir = Path(tmp) / "lfw"
            resave([paths[i] for i in twice], data, resaved_dir, scale, quality)
            xr, pr = lfw_embeddings(resaved_dir, Path(tmp) / f"resaved_{model}.npz", model)
        originals = np.array([row_of[str(data / Path(p).relative_to(resaved_dir))] for p in pr])
        cosines = np.einsum("ij,ij->i", xr, x[originals])
        similarity[kind] = np.quantile(cosines, [0.01, 0.1, 0.5, 0.9]).round(4).tolist()
        collections[f"+ {len(xr):,} photos {kind} (cosine {np.median(cosines):.4f}, median)"] = (
            np.vstack([x, xr]),
            paths + pr,
        )
    rows, clean = [], None
    for name, (xs, images) in collections.items():
        t0 = time.perf_counter()
        graph, link = calibrated(xs, images)  # None: no two modes, and a pass falls back to the model's value
        clean = clean or link
        rows.append(
            {
                "collection": name,
                "faces": len(xs),
                "cut": link and round(link.threshold, 4),
                "method": link.method if link else "no two modes",
                "f": link and round(median_f(xs, graph, link, truth), 4),
                "f_at_clean_cut": round(median_f(xs, graph, clean, truth), 4),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(model, rows[-1], flush=True)
    return {"model": model, "photos": len(x), "copy_similarity_quantiles_1_10_50_90": similarity, "rows": rows}


def markdown(results: dict) -> str:
    lines = [
        *heading("Copies of photos", results),
        "",
        __doc__.split("\n\nRun:")[0].split("\n\n", 1)[1].replace("\n", " "),
        "",
    ]
    for r in results["models"]:
        lines += [f"### {r['model']}", ""]
        for kind, q in r["copy_similarity_quantiles_1_10_50_90"].items():
            lines.append(
                f"- {kind}: a copy's cosine to its original {q[2]} (median; 1%, 10%, 90%: {q[0]}, {q[1]}, {q[3]})"
            )
        lines += [
            "",
            "| collection | faces | facekit's cut | BCubed F of LFW's photos | at the clean cut |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {row['collection']} | {row['faces']:,} | {row['cut']} ({row['method']}) | **{row['f']}** | "
            f"{row['f_at_clean_cut']} |"
            for row in r["rows"]
        ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="LFW's folder (one folder of photos a person)")
    parser.add_argument("--models", nargs="+", default=["dlib", "mobilefacenet"])
    parser.add_argument("--cache", type=Path, default=CACHE_DIR)
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"{args.data} is not a folder: give LFW's folder, e.g. ../shared/datasets/lfw")
    data = args.data.resolve()
    results = {
        "command": f"python bench/copies.py --data {args.data} --models {' '.join(args.models)}",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "models": [run_model(m, data, args.cache) for m in args.models],
    }
    print(write_suite("copies", results, markdown(results)))


if __name__ == "__main__":
    main()
