"""facekit's defaults in learned metrics' spaces: a linear projection fitted on some people's labels, applied to others.

A model trained on labels (facekit's own training head, or any metric-learning model) makes a space unlike the raw
models': here Fisher's linear discriminant (LDA, shrinkage 0.1, 128 dimensions) is fitted on the faces of a seeded half
of LFW's people with two photos or more, and the other half's faces are projected and normalised, so no face scored was
fitted on. Of dlib and MobileFaceNet joined, strangers sit near cosine 0.68 and one person's photos near 0.96, a
narrow band far up (LDA of the 320-d joint embedding, its mean shifted); of MobileFaceNet alone, strangers near 0.04
and one person's photos near 0.88, as an ArcFace-style model's. Each space is scored as bench/third_models.py scores a
model: the other half's four sets, and 8 seeded draws of each of bench/samples.py's shapes from them, facekit's
calibrated cut and clusterer against Chinese Whispers and connected components at their best cut, chosen after the
fact. facekit has no measured value for these spaces: every pass calibrates from the data.

Run: `make bench-learned-metric` (= `python bench/learned_metric.py --data ../shared/datasets/lfw`; ~15 min on 2 cores
once LFW's embeddings are cached by `make bench-clustering`). Writes bench/results/learned_metric.md and .json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import lfw_parser, photos_per_person  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.samples import SAMPLES  # noqa: E402
from bench.spaces import aligned  # noqa: E402
from bench.third_models import score, score_tables, scored_sets, verification  # noqa: E402
from facekit.embedding.base import l2_normalize  # noqa: E402

DIMENSIONS = 128
SHRINKAGE = 0.1
SPACES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "LDA of dlib and MobileFaceNet joined": lambda xd, xm: np.hstack([xd, xm]),
    "LDA of MobileFaceNet": lambda xd, xm: xm,
}


def fitted_half(truth: np.ndarray, seed: int = 0) -> np.ndarray:
    """Whether each face's person is in the seeded half of LFW's people the projection is fitted on."""
    people = np.unique(truth)
    half = np.random.default_rng(seed).choice(people, len(people) // 2, replace=False)
    return np.isin(truth, half)


def learned(x: np.ndarray, truth: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """The faces outside `fitted`, projected by LDA fitted on the `fitted` faces of people with >= 2 photos,
    normalised."""
    labeled = fitted & (photos_per_person(truth) >= 2)
    lda = LinearDiscriminantAnalysis(n_components=DIMENSIONS, solver="eigen", shrinkage=SHRINKAGE)
    lda.fit(x[labeled], truth[labeled])
    return l2_normalize(lda.transform(x[~fitted]).astype(np.float32))


def stored_sets(data: Path, cache_dir: Path) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, dict]]:
    """(group, set, embeddings, truth, photo paths, stored result) for every set this bench stored, as
    bench/third_models.py's `stored_sets` gives its own."""
    stored = json.loads((HERE / "results" / "learned_metric.json").read_text())["spaces"]
    xd, xm, truth, images = aligned(data, cache_dir)
    fitted = fitted_half(truth)
    who, paths = truth[~fitted], images[~fitted]
    for name, joined in SPACES.items():
        yield from scored_sets(name, stored[name], learned(joined(xd, xm), truth, fitted), who, paths)


def markdown(res: dict) -> str:
    out = [
        *heading("Learned metrics' spaces", res),
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        "| space | faces | people | same-person cosine, mean | strangers' |",
        "|---|---|---|---|---|",
    ]
    for name, r in res["spaces"].items():
        v = r["verification"]
        out.append(f"| {name} | {r['faces']:,} | {r['people']:,} | {v['same_mean']:.3f} | {v['different_mean']:.3f} |")
    out += score_tables(res["spaces"], "space")
    out += [
        "",
        "Each shape's 8 draws, one by one (facekit's cut and F, the best peer's F at its best cut, the gap):",
        "",
        "| space | shape | draws |",
        "|---|---|---|",
    ]
    for name, r in res["spaces"].items():
        for shape, rows in r["shapes"].items():
            cells = "; ".join(
                f"{row['calibration']['threshold']:.3f}: {row['facekit_f']:.3f} / {row['best_peer_f']:.3f} "
                f"({row['facekit_f'] - row['best_peer_f']:+.3f})"
                for row in rows
            )
            out.append(f"| {name} | {shape} | {cells} |")
    return "\n".join(out) + "\n"


def main() -> None:
    args = lfw_parser(__doc__).parse_args()
    xd, xm, truth, images = aligned(args.data, args.cache_dir)
    fitted = fitted_half(truth)
    who, paths = truth[~fitted], images[~fitted]
    spaces = {}
    for name, joined in SPACES.items():
        x = learned(joined(xd, xm), truth, fitted)
        spaces[name] = {
            "faces": len(x),
            "people": len(set(who)),
            "verification": verification(x, who),
            **score(x, who, paths),
        }
        print(name, spaces[name]["summary"], flush=True)
    res = {**provenance(), "samples": SAMPLES, "spaces": spaces}
    write_suite("learned_metric", res, markdown(res))


if __name__ == "__main__":
    main()
