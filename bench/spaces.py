"""facekit's defaults on embedding spaces it has no measurements of: spaces made from LFW's dlib and MobileFaceNet
embeddings (a concatenation, fewer principal components, added noise), each against the peers at its best cut.

facekit was calibrated and tuned on two models; users bring others (a stronger ArcFace, a weaker older one, a
model run on poor photos). These spaces stand in for them: their similarities sit elsewhere and spread otherwise,
and their best cut is unknown to facekit. dlib with a little noise stands in for the held-out set of issue 12,
where dlib's best fixed cut is 0.93 rather than LFW's 0.94-0.95 (on the held-out shape here it moves the peers'
best cut from 0.94 to 0.93). On each set facekit calibrates its cut from the data, as a pass does
(`calibrate_link_threshold` on the set's 30-nearest-neighbour graph, deeper neighbours sampled; where no
neighbourhood shows two clean modes, between weakly separated ones, as a pass does for a model with no measured
value), and clusters with its defaults. The peers (Chinese Whispers, one visiting order, as face_recognition runs
it; connected components, as DBSCAN at min_samples 2 and Immich's core do) are swept over 13 cuts around facekit's,
in steps of a twentieth of the room above it (`1 - cut`), and on by one step at a time, up to 6 more on a side,
while any clusterer's best F lies at that end (a best at an end may lie beyond it); facekit's own clusterer over the
same cuts shows how much of a gap is the cut and how much the clusterer. Chinese Whispers is scored as the median over
3 visiting orders.

Run: `make bench-spaces` (= `python bench/spaces.py --data ../shared/datasets/lfw`, ~12 min on 2 cores once
LFW's embeddings are cached by `make bench-clustering`). Writes bench/results/spaces.md and .json.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import _at_most, lfw_embeddings, lfw_parser, median_run, photos_per_person, truth_of  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from facekit.cluster import ChineseWhispers, ConnectedComponents, KnnGraph, knn_graph  # noqa: E402
from facekit.cluster.calibration import (  # noqa: E402
    MIN_SEPARATION_WEAK,
    LinkThreshold,
    calibrate_link_threshold,
    sampled_neighbours,
)
from facekit.embedding.base import l2_normalize  # noqa: E402

SEEDS = (0, 1, 2)
DLIB_POORER = "dlib with noise (sd 0.01 a dimension: poorer photos)"  # the held-out set's stand-in
STEPS = range(-6, 7)  # the swept cuts: facekit's plus steps of STEP of the room above it
STEP = 1 / 20
MORE_STEPS = 6  # steps swept on beyond an end where a clusterer's best F lies at it, at most, on each side


def aligned(data: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LFW's dlib and MobileFaceNet embeddings of the photos both models found a face in, in one order, with each
    photo's person (its folder) and path."""
    xd, pd = lfw_embeddings(data, cache_dir / "lfw_dlib.npz", "dlib")
    xm, pm = lfw_embeddings(data, cache_dir / "lfw_mobilefacenet.npz", "mobilefacenet")
    row_of = {p: i for i, p in enumerate(pm)}
    pairs = [(i, row_of[p]) for i, p in enumerate(pd) if p in row_of]
    d, m = (np.array(rows) for rows in zip(*pairs, strict=True))
    paths = [pd[i] for i in d]
    return xd[d], xm[m], truth_of(paths), np.array(paths, dtype=object)


def principal(x: np.ndarray, k: int) -> np.ndarray:
    """`x` on its first `k` principal components (of a seeded 5,000-row sample), normalised: a weaker model."""
    centred = x - x.mean(axis=0)
    rows = np.random.default_rng(0).choice(len(x), min(5_000, len(x)), replace=False)
    components = np.linalg.svd(centred[rows], full_matrices=False)[2][:k]
    return l2_normalize((centred @ components.T).astype(np.float32))


def noisy(x: np.ndarray, sd: float) -> np.ndarray:
    """`x` with seeded Gaussian noise of `sd` per dimension, normalised: the same model on poorer photos."""
    return l2_normalize((x + np.random.default_rng(0).normal(0, sd, x.shape)).astype(np.float32))


def spaces(xd: np.ndarray, xm: np.ndarray) -> dict[str, Callable[[], np.ndarray]]:
    return {
        "dlib and MobileFaceNet concatenated (a stronger model)": lambda: l2_normalize(np.hstack([xd, xm])),
        "MobileFaceNet, 24 principal components": lambda: principal(xm, 24),
        "MobileFaceNet with noise (sd 0.045 a dimension)": lambda: noisy(xm, 0.045),
        DLIB_POORER: lambda: noisy(xd, 0.01),
        "dlib, 16 principal components (a weak model)": lambda: principal(xd, 16),
    }


def face_sets(truth: np.ndarray) -> dict[str, np.ndarray]:
    per_person = photos_per_person(truth)
    return {
        "people with >= 15 photos, 22 each (the held-out set's shape)": _at_most(truth, per_person >= 15, 22),
        "people with >= 10 photos": per_person >= 10,
        "people with 2-9 photos": (per_person >= 2) & (per_person < 10),
        "all of LFW": np.ones(len(truth), bool),
    }


def calibrate(x: np.ndarray, images: np.ndarray) -> tuple[KnnGraph, LinkThreshold | None]:
    """The set's 30-nearest-neighbour graph and its link calibration, as a pass runs it for a model with no measured
    value (between weakly separated modes where no two clean ones show)."""
    graph = knn_graph(x, 30)
    deeper = functools.cache(sampled_neighbours(x, images))
    link = calibrate_link_threshold(graph, deeper=deeper) or calibrate_link_threshold(
        graph, deeper=deeper, min_separation=MIN_SEPARATION_WEAK
    )
    return graph, link


def recalibrate(
    x: np.ndarray, images: np.ndarray, result: dict, name: str = "the set"
) -> tuple[KnnGraph, LinkThreshold]:
    """`calibrate` for a set (`name`) whose sweep a bench stored (`result`), checked against the cut stored with it: a
    bench that reads the stored sweep again needs the same cut, from the data's two modes."""
    graph, link = calibrate(x, images)
    stored = result["calibration"]["threshold"]
    if link is None or link.modes is None or abs(link.threshold - stored) > 1e-4:
        found = "no two modes" if link is None or link.modes is None else f"a cut at {link.threshold:.4f}"
        raise SystemExit(
            f"{name}: the calibration finds {found} where the stored result says {stored}: run `make bench-spaces`, "
            "`make bench-samples` and `make bench-third-models` again with this code first"
        )
    return graph, link


def one_set(x: np.ndarray, truth: np.ndarray, images: np.ndarray) -> dict:
    """facekit's calibrated cut and F, and each clusterer's F over the swept cuts."""
    graph, link = calibrate(x, images)
    if link is None:
        return {"faces": len(x), "calibration": None}

    def facekit(cut: float) -> float:
        runs = [ChineseWhispers(cut, seed=s, **link.strangers) for s in SEEDS]
        return median_run(truth, [c.fit_predict(x, graph=graph) for c in runs])["bcubed_f"]

    def whispers(cut: float) -> float:
        one = [ChineseWhispers(cut, orders=1, split_chains=False, min_cluster_size=1, seed=s) for s in SEEDS]
        return median_run(truth, [c.fit_predict(x, graph=graph) for c in one])["bcubed_f"]

    def components(cut: float) -> float:
        return median_run(truth, ConnectedComponents(cut, min_cluster_size=1).fit_predict(x, graph=graph))["bcubed_f"]

    def cut_at(step: int) -> float:
        return link.threshold + step * STEP * (1 - link.threshold)

    clusterers = {"Chinese Whispers": whispers, "connected components": components, "facekit": facekit}
    steps, curves = swept(lambda k: {name: f(cut_at(k)) for name, f in clusterers.items()})
    cuts = [cut_at(k) for k in steps]
    own = curves.pop("facekit")
    best_peer = max(curves, key=lambda name: max(curves[name]))
    at = int(np.argmax(curves[best_peer]))
    return {
        "faces": len(x),
        "people": len(set(truth)),
        "calibration": link.as_dict(),
        "facekit_f": own[steps.index(0)],
        "best_peer": best_peer,
        "best_peer_cut": round(cuts[at], 4),
        "best_peer_f": curves[best_peer][at],
        "facekit_best_cut": round(cuts[int(np.argmax(own))], 4),
        "facekit_best_f": max(own),
        "cuts": [round(c, 4) for c in cuts],
        "curves": {**curves, "facekit": own},
    }


def swept(scores: Callable[[int], dict[str, float]]) -> tuple[list[int], dict[str, list[float]]]:
    """The steps swept and each clusterer's F at them, lowest step first: `STEPS`, then one step further on a side, up
    to `MORE_STEPS` times, while any clusterer's best F lies at that end (`scores(step)`: each clusterer's F there)."""
    steps = list(STEPS)
    at = [scores(k) for k in steps]
    for _ in range(MORE_STEPS):
        names = at[0].keys()
        low = any(at[0][n] > max(a[n] for a in at[1:]) for n in names)
        high = any(at[-1][n] > max(a[n] for a in at[:-1]) for n in names)
        if low:
            steps.insert(0, steps[0] - 1)
            at.insert(0, scores(steps[0]))
        if high:
            steps.append(steps[-1] + 1)
            at.append(scores(steps[-1]))
        if not (low or high):
            break
    return steps, {name: [a[name] for a in at] for name in at[0]}


def markdown(res: dict) -> str:
    out = [
        *heading("Other embedding spaces", res),
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        "| space | face set | faces | facekit's cut | facekit | best peer at its best cut | facekit at its best cut "
        "| facekit − best peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in res["rows"]:
        r = row["result"]
        if r["calibration"] is None:
            out.append(f"| {row['space']} | {row['set']} | {r['faces']:,} | no two modes: generic 0.5 | | | | |")
            continue
        out.append(f"| {row['space']} | {row['set']} | {r['faces']:,} | {result_cells(r)} |")
    return "\n".join(out) + "\n"


def result_cells(r: dict) -> str:
    """`one_set`'s result as table cells: facekit's cut and F, the best peer's, facekit at its best cut, the gap."""
    method = r["calibration"]["method"]
    notes = [
        note
        for key, note in (("weakly", "weakly separated modes"), ("wide", "a wide strangers' mode"))
        if key in method
    ]
    weak = f" ({'; '.join(notes)})" if notes else ""
    return (
        f"{r['calibration']['threshold']:.4f}{weak} | **{r['facekit_f']:.4f}** "
        f"| {r['best_peer']}, {r['best_peer_cut']:.4f}: {r['best_peer_f']:.4f} "
        f"| {r['facekit_best_cut']:.4f}: {r['facekit_best_f']:.4f} | {r['facekit_f'] - r['best_peer_f']:+.4f}"
    )


def main() -> None:
    ap = lfw_parser(__doc__)
    args = ap.parse_args()
    xd, xm, truth, images = aligned(args.data, args.cache_dir)
    rows = []
    for space, make in spaces(xd, xm).items():
        x = make()
        for name, keep in face_sets(truth).items():
            result = one_set(x[keep], truth[keep], images[keep])
            print(space, "|", name, "|", {k: v for k, v in result.items() if k not in ("curves", "cuts")}, flush=True)
            rows.append({"space": space, "set": name, "result": result})
    res = {
        **provenance(),
        "rows": rows,
    }
    write_suite("spaces", res, markdown(res))


if __name__ == "__main__":
    main()
