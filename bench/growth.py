"""A collection that grows: a first import clustered by a pass, then new photos placed one by one.

A user's first import is small, and the photos that follow come in batches: `facekit index --cluster` (and the index
job) places up to 1,000 new faces one by one, each in the group its nearest neighbours at or above the link threshold
vote for, without a pass. Here each of 3 first-import draws of LFW (bench/samples.py: 25 people with >= 8 photos, 8
each, and 100 people seen once: 300 faces) is clustered by a pass, and the rest of LFW is then added in batches of
1,000 in a seeded order, each placed by a new `DualModeClusterer` (a new process) through an embedded store, until it
holds all of LFW's main faces. BCubed F is scored on all of them (truth: the photo's folder) at the end:
- "placed at the first cut": every batch placed one by one at the first pass's threshold, as before 2026-12-05
  (`RECLUSTER_GROWTH` set to infinity);
- "a pass at each doubling": facekit's default, a full pass once the store holds twice the faces of its last;
- "placed at the full pass's cut": every batch placed one by one (and the first pass run) at the cut a pass on all of
  LFW calibrates, fixed: how well placing faces one by one does at the right cut;
- "a pass at the end": `cluster-dual` on the grown collection.

One more collection starts from a tiny first import of a model with no measured value: every 8th face of dlib's draw 0
(38 faces), imported with no model id: so few faces show two weakly separated modes or none (then a pass takes the
generic cut 0.5), and every face after them is placed at that first cut unless a pass runs again.

Run: `make bench-growth` (= `python bench/growth.py --data ../shared/datasets/lfw`, ~8 min on 2 cores once LFW's
embeddings are cached by `make bench-clustering`). Writes bench/results/growth.md and .json.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import fill_store, lfw_parser  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.samples import FIRST_IMPORT, draw  # noqa: E402
from bench.spaces import aligned  # noqa: E402
from facekit import dual  # noqa: E402
from facekit.dual import DualModeClusterer  # noqa: E402
from facekit.evaluation import evaluate  # noqa: E402
from facekit.store import FaceStore  # noqa: E402

SEEDS = (0, 1, 2)
TINY = "dlib with no model id, from a 38-face first import"
BATCH = 1_000
MODELS = {"dlib": "dlib_resnet_v1", "MobileFaceNet": "mobilefacenet_sirius_192"}
KEPT, DOUBLING, FIXED = "placed at the first cut", "a pass at each doubling", "placed at the full pass's cut"


def _scores(clustering: dict) -> dict:
    return {k: round(clustering[k], 4) for k in ("bcubed_f", "bcubed_p", "bcubed_r")}


def grow(
    x: np.ndarray,
    paths: list[str],
    model_id: str,
    first: np.ndarray,
    order: np.ndarray,
    cut: float | None,
    *,
    end_pass: bool = False,
) -> tuple[dict, dict | None]:
    """The scores once every face is in, with the first pass's threshold and each batch's (`cuts`) and how many
    batches ran a full pass (`cut`: fixed throughout); with `end_pass`, also a pass's scores and threshold on the
    grown collection."""
    fixed = {"unknown_threshold": cut} if cut is not None else {}
    with tempfile.TemporaryDirectory() as tmp, FaceStore(tmp, model_id=model_id, dim=x.shape[1]) as store:
        fill_store(store, x[first], [paths[i] for i in first])
        cuts, passes = [DualModeClusterer(store, **fixed).cluster_all_faces()["unknown_threshold"]], 0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            fill_store(store, x[batch], [paths[i] for i in batch])
            placed = DualModeClusterer(store, **fixed).cluster_new_faces()
            cuts.append(placed["unknown_threshold"])
            passes += "full_pass" in placed
        grown = {**_scores(evaluate(store)["clustering"]), "passes": passes, "cuts": cuts}
        if not end_pass:
            return grown, None
        full = DualModeClusterer(store).cluster_all_faces()["unknown_threshold"]
        return grown, {**_scores(evaluate(store)["clustering"]), "cut": full}


def markdown(res: dict) -> str:
    paragraphs = (__doc__ or "").split("\n\n")
    about = re.sub(r"\n(?!- )\s*", " ", paragraphs[1]).replace(":\n- ", ":\n\n- ", 1)
    out = [*heading("A collection that grows", res), "", about, "", paragraphs[2].replace("\n", " "), ""]
    out += [
        "| model | first import | grown: BCubed F (P, R) | passes while growing | thresholds (first pass, then each "
        "batch's) |",
        "|---|---|---|---|---|",
    ]
    for model, rows in res["rows"].items():
        for row in rows:
            for name in (KEPT, DOUBLING, FIXED):
                r = row[name]
                cuts = sorted(set(r["cuts"]), key=r["cuts"].index)
                out.append(
                    f"| {model} | draw {row['seed']} | {name}: **{r['bcubed_f']:.4f}** ({r['bcubed_p']:.4f}, "
                    f"{r['bcubed_r']:.4f}) | {r['passes']} | {' → '.join(f'{c:.4f}' for c in cuts)} |"
                )
            p = row["pass"]
            out.append(
                f"| {model} | draw {row['seed']} | a pass at the end: **{p['bcubed_f']:.4f}** ({p['bcubed_p']:.4f}, "
                f"{p['bcubed_r']:.4f}) | | {p['cut']:.4f} |"
            )
    out += ["", f"| model | mean F of | {KEPT} | {DOUBLING} | {FIXED} | a pass at the end |"]
    out.append("|---|---|---|---|---|---|")
    for model, rows in res["rows"].items():
        means = [np.mean([row[name]["bcubed_f"] for row in rows]) for name in (KEPT, DOUBLING, FIXED, "pass")]
        draws = f"{len(rows)} draw" + ("s" if len(rows) > 1 else "")
        out.append(f"| {model} | {draws} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    return "\n".join(out) + "\n"


def main() -> None:
    args = lfw_parser(__doc__).parse_args()
    xd, xm, truth, images = aligned(args.data, args.cache_dir)
    paths = [str(p) for p in images]
    rows: dict[str, list[dict]] = {}
    runs = [(model, x, MODELS[model], seed, 1) for model, x in (("dlib", xd), ("MobileFaceNet", xm)) for seed in SEEDS]
    for model, x, model_id, seed, every in [*runs, (TINY, xd, "precomputed_unknown", 0, 8)]:
        first = np.flatnonzero(draw(FIRST_IMPORT, truth, seed))[::every]
        order = np.random.default_rng(seed).permutation(np.setdiff1d(np.arange(len(x)), first))
        row: dict = {"seed": seed}
        with mock.patch.object(dual, "RECLUSTER_GROWTH", math.inf):
            row[KEPT], row["pass"] = grow(x, paths, model_id, first, order, None, end_pass=True)
            row[FIXED], _ = grow(x, paths, model_id, first, order, row["pass"]["cut"])
        row[DOUBLING], _ = grow(x, paths, model_id, first, order, None)
        print(model, row, flush=True)
        rows.setdefault(model, []).append(row)
    res = {**provenance(), "rows": rows}
    write_suite("growth", res, markdown(res))


if __name__ == "__main__":
    main()
