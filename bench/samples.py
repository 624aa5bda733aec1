"""facekit's defaults on seeded samples of three face sets' shapes: how far one sample's figure can be trusted.

The issue's held-out set (~2K photos of 90 people) is one draw of its shape. Here that shape (people with >= 15 photos,
22 each) is drawn from LFW 8 times. The samples are not independent: each holds the same people, those with at most 22
photos bring all of them every time, and only the others bring another 22 of theirs, so a borderline case among the
first counts in every sample. A family's photo library has another shape, which none of bench/spaces.py's sets has: a
few people in hundreds of photos, and many faces seen once (guests, passers-by). Each sample draws its family, 10 of
LFW's people with >= 30 photos, with all their photos, and 1,000 people seen once; the families overlap (10 of the same
few dozen each time). A user's first import is small: each sample draws 25 of LFW's people with >= 8 photos, 8 photos of
each, and 100 people seen once (300 faces). Each sample is scored as bench/spaces.py scores a set: facekit calibrates
its cut from the data and clusters with its defaults; the peers (Chinese Whispers, median of 3 visiting orders;
connected components) are swept over 13 cuts around facekit's, in steps of a twentieth of the room above it (more where
a clusterer's best lies at an end, as bench/spaces.py sweeps), and the best peer is taken at its best cut on that
sample. That best is chosen after the fact, sample by sample: an upper bound no fixed setting reaches on every sample,
where facekit runs once per sample with no choice made. The last columns compare facekit's mean F with the best peer's
at the one cut that serves all 8 samples best (each sample's F interpolated between its swept cuts), also chosen after
the fact. dlib with a little noise (sd 0.01 a dimension) stands in for the held-out set itself, where dlib's best fixed
cut is 0.93.

Run: `make bench-samples` (= `python bench/samples.py --data ../shared/datasets/lfw`, ~2.5 min on 2 cores once LFW's
embeddings are cached by `make bench-clustering`). Writes bench/results/samples.md and .json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import _at_most, lfw_parser, photos_per_person  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.spaces import DLIB_POORER, aligned, one_set, result_cells, spaces  # noqa: E402

SAMPLES = 8
HELD_OUT = "the held-out set's shape (people with >= 15 photos, 22 each)"
ALBUM = "a family album's shape (10 people with >= 30 photos, all their photos, and 1,000 people seen once)"
ALBUM_PEOPLE, ALBUM_MIN_PHOTOS, ALBUM_SINGLES = 10, 30, 1_000
FIRST_IMPORT = "a first import's shape (25 people with >= 8 photos, 8 each, and 100 people seen once)"
FIRST_PEOPLE, FIRST_PHOTOS, FIRST_SINGLES = 25, 8, 100
SHAPES = (HELD_OUT, ALBUM, FIRST_IMPORT)


def draw(shape: str, truth: np.ndarray, seed: int) -> np.ndarray:
    """The rows of one seeded sample of `shape` (one of `SHAPES`)."""
    if shape == HELD_OUT:
        return _at_most(truth, photos_per_person(truth) >= 15, 22, seed=seed)
    if shape == ALBUM:
        return people_and_singles(truth, ALBUM_PEOPLE, ALBUM_MIN_PHOTOS, ALBUM_SINGLES, seed, all_photos=True)
    return people_and_singles(truth, FIRST_PEOPLE, FIRST_PHOTOS, FIRST_SINGLES, seed)


def people_and_singles(
    truth: np.ndarray, people: int, photos: int, singles: int, seed: int, *, all_photos: bool = False
) -> np.ndarray:
    """The rows of `people` seeded people with at least `photos` photos (`photos` of each, or `all_photos`) and of
    `singles` people seen once."""
    rng = np.random.default_rng(seed)
    names, counts = np.unique(truth, return_counts=True)
    chosen = rng.choice(names[counts >= photos], people, replace=False)
    if all_photos:
        keep = np.isin(truth, chosen)
    else:
        keep = np.zeros(len(truth), bool)
        for person in chosen:
            keep[rng.choice(np.flatnonzero(truth == person), photos, replace=False)] = True
    keep[rng.choice(np.flatnonzero(photos_per_person(truth) == 1), singles, replace=False)] = True
    return keep


def models(xd: np.ndarray, xm: np.ndarray) -> dict[str, np.ndarray]:
    return {"dlib": xd, "MobileFaceNet": xm, DLIB_POORER: spaces(xd, xm)[DLIB_POORER]()}


def summary(rows: list[dict]) -> dict:
    """facekit's F less the best peer's over the samples (median, range, how many behind), the cuts, and facekit's
    mean F against the best peer's at the one cut that serves all the samples best (`best_common_cut`)."""
    gaps = [r["facekit_f"] - r["best_peer_f"] for r in rows]
    common = {name: best_common_cut(rows, name) for name in rows[0]["curves"] if name != "facekit"}
    peer = max(common, key=lambda name: common[name][1])
    return {
        "median_gap": float(np.median(gaps)),
        "min_gap": min(gaps),
        "max_gap": max(gaps),
        "behind": sum(g < 0 for g in gaps),
        "cuts": [r["calibration"]["threshold"] for r in rows],
        "best_peer_cuts": [r["best_peer_cut"] for r in rows],
        "facekit_best_cuts": [r["facekit_best_cut"] for r in rows],
        "facekit_mean_f": float(np.mean([r["facekit_f"] for r in rows])),
        "common_peer": peer,
        "common_cut": common[peer][0],
        "common_peer_mean_f": common[peer][1],
    }


def best_common_cut(rows: list[dict], name: str) -> tuple[float, float]:
    """The one cut at which clusterer `name`'s F, averaged over the samples, is highest, and that mean F: each
    sample's F interpolated between its swept cuts, on 200 cuts across the range every sample swept (NaN where no cut
    was swept in every sample)."""
    low, high = max(r["cuts"][0] for r in rows), min(r["cuts"][-1] for r in rows)
    if low > high:
        return float("nan"), float("nan")
    grid = np.linspace(low, high, 200)
    mean = np.mean([np.interp(grid, r["cuts"], r["curves"][name]) for r in rows], axis=0)
    return float(grid[int(np.argmax(mean))]), float(mean.max())


def population(truth: np.ndarray) -> dict:
    """How many people (and faces) the shapes draw from in this collection of main faces."""
    photos = photos_per_person(truth)
    held_out = photos >= 15
    return {
        "held_out_people": len(set(truth[held_out])),
        "held_out_whole_people": len(set(truth[held_out & (photos <= 22)])),
        "held_out_whole_faces": int((held_out & (photos <= 22)).sum()),
        "album_people": len(set(truth[photos >= ALBUM_MIN_PHOTOS])),
        "first_import_people": len(set(truth[photos >= FIRST_PHOTOS])),
        "seen_once": int((photos == 1).sum()),
    }


def markdown(res: dict) -> str:
    p = res["population"]
    out = [
        *heading("Samples of three face sets' shapes", res),
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        f"In this collection the held-out shape's samples hold the same {p['held_out_people']} people, "
        f"{p['held_out_whole_people']} of whom bring all their photos every time ({p['held_out_whole_faces']:,} "
        f"faces); families are drawn from {p['album_people']} people with >= {ALBUM_MIN_PHOTOS} photos, first imports "
        f"from {p['first_import_people']} with >= {FIRST_PHOTOS}, and people seen once from {p['seen_once']:,}.",
    ]
    return "\n".join(out + shape_sections(res)) + "\n"


def shape_sections(res: dict) -> list[str]:
    """Markdown lines for each shape in `res` ("rows" and "summary", by shape and model): every sample's row, then
    each model's summary."""
    out = []
    for shape, by_model in res["rows"].items():
        out += [
            "",
            f"### {shape[0].upper()}{shape[1:]}",
            "",
            "| model | sample | faces | facekit's cut | facekit | best peer at its best cut | facekit at its best cut "
            "| facekit − best peer |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for model, rows in by_model.items():
            for seed, r in enumerate(rows):
                out.append(f"| {model} | {seed} | {r['faces']:,} | {result_cells(r)} |")
        out += [
            "",
            "| model | facekit − best peer, median (range) | samples behind | facekit, mean F "
            "| best peer at one cut for all samples: mean F | difference |",
            "|---|---|---|---|---|---|",
        ]
        for model, s in res["summary"][shape].items():
            out.append(f"| {model} | {summary_cells(s, len(by_model[model]))} |")
    return out


def summary_cells(s: dict, samples: int) -> str:
    """`summary`'s figures as table cells: facekit − best peer (median, range), how many of the `samples` behind,
    facekit's mean F, the best peer at the one cut that serves all samples best, and the difference."""
    common, difference = "no cut swept in every sample", "—"
    if not np.isnan(s["common_cut"]):
        common = f"{s['common_peer']}, {s['common_cut']:.4f}: {s['common_peer_mean_f']:.4f}"
        difference = f"{s['facekit_mean_f'] - s['common_peer_mean_f']:+.4f}"
    return (
        f"{s['median_gap']:+.4f} ({s['min_gap']:+.4f} to {s['max_gap']:+.4f}) | {s['behind']} of {samples} "
        f"| {s['facekit_mean_f']:.4f} | {common} | {difference}"
    )


def scored_sample(name: str, x: np.ndarray, truth: np.ndarray, images: np.ndarray) -> dict:
    """`one_set`'s result for one sample (`name`, as printed), which must calibrate."""
    result = one_set(x, truth, images)
    if result["calibration"] is None:
        raise SystemExit(f"{name}: no two modes to calibrate from, even weakly")
    print(name, "|", {k: v for k, v in result.items() if k not in ("curves", "cuts")}, flush=True)
    return result


def main() -> None:
    ap = lfw_parser(__doc__)
    ap.add_argument("--samples", type=int, default=SAMPLES)
    args = ap.parse_args()
    xd, xm, truth, images = aligned(args.data, args.cache_dir)
    rows: dict[str, dict[str, list[dict]]] = {}
    for shape in SHAPES:
        for model, x in models(xd, xm).items():
            for seed in range(args.samples):
                keep = draw(shape, truth, seed)
                result = scored_sample(f"{shape} | {model} | sample {seed}", x[keep], truth[keep], images[keep])
                rows.setdefault(shape, {}).setdefault(model, []).append(result)
    res = {
        **provenance(),
        "population": population(truth),
        "rows": rows,
        "summary": {shape: {model: summary(r) for model, r in by_model.items()} for shape, by_model in rows.items()},
    }
    write_suite("samples", res, markdown(res))


if __name__ == "__main__":
    main()
