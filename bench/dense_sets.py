"""facekit's defaults on small dense collections: a few people, many photos each, no one seen once.

A family's first photos, or a photo shoot's, hold a few people in tens of photos each and no strangers at all, often
with bursts of near-copies of one shot. None of bench-samples' shapes is like that: each holds people seen once, or
(the held-out shape) 90 people. Here each sample draws 10 of LFW's people with >= 30 photos, 30 of each (300 faces),
or 5 with >= 50, 50 of each (250 faces), 8 seeded samples of each shape, for four real models: dlib and MobileFaceNet
(the two the defaults were fitted on) and bench-third-models' MobileFace and HSE FaceRes. Each sample is scored as
bench/samples.py scores one: facekit calibrates its cut from the data and clusters with its defaults, against Chinese
Whispers and connected components at their best cut on that sample, chosen after the fact. Every face's 10 nearest
neighbours here are its own person, and a set where a person's near-copies sit above the rest of their photos shows
two modes there, both one person's: a cut between them splits everyone.

Run: `make bench-dense-sets` (= `python bench/dense_sets.py --data ../shared/datasets/lfw`, ~6 min on 2 cores once
bench-clustering and bench-third-models have cached LFW's embeddings). Writes bench/results/dense_sets.md and .json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import lfw_parser, photos_per_person  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.samples import SAMPLES, scored_sample, shape_sections, summary  # noqa: E402
from bench.spaces import aligned  # noqa: E402
from bench.third_models import embedded  # noqa: E402

SHAPES = {"10 people with 30 photos each": (10, 30), "5 people with 50 photos each": (5, 50)}


def dense_draw(truth: np.ndarray, people: int, photos: int, seed: int) -> np.ndarray:
    """The rows of `people` seeded people with at least `photos` photos, `photos` of each."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.unique(truth[photos_per_person(truth) >= photos]), people, replace=False)
    keep = np.zeros(len(truth), bool)
    for person in chosen:
        keep[rng.choice(np.flatnonzero(truth == person), photos, replace=False)] = True
    return keep


def models(args) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each model's LFW embeddings, truth and photo paths."""
    xd, xm, truth, images = aligned(args.data, args.cache_dir)
    out = {"dlib": (xd, truth, images), "MobileFaceNet": (xm, truth, images)}
    for m, x, t, i in embedded(args.data, args.cache_dir):
        out[m.name] = (x, t, i)
    return out


def markdown(res: dict) -> str:
    out = [*heading("Small dense collections", res), "", (__doc__ or "").split("\n\n")[1].replace("\n", " ")]
    return "\n".join(out + shape_sections(res)) + "\n"


def main() -> None:
    ap = lfw_parser(__doc__)
    ap.add_argument("--samples", type=int, default=SAMPLES)
    args = ap.parse_args()
    rows: dict[str, dict[str, list[dict]]] = {}
    for model, (x, truth, images) in models(args).items():
        for shape, (people, photos) in SHAPES.items():
            for seed in range(args.samples):
                keep = dense_draw(truth, people, photos, seed)
                result = scored_sample(f"{shape} | {model} | sample {seed}", x[keep], truth[keep], images[keep])
                rows.setdefault(shape, {}).setdefault(model, []).append(result)
    res = {
        **provenance(),
        "rows": rows,
        "summary": {shape: {model: summary(r) for model, r in by_model.items()} for shape, by_model in rows.items()},
    }
    write_suite("dense_sets", res, markdown(res))


if __name__ == "__main__":
    main()
