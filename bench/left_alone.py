"""Where a set's best cut lies: the faces it leaves alone.

A cut leaves a face alone (in no group) where none of its links reach the cut. bench/spaces.py, bench/samples.py and
bench/third_models.py store facekit's F over 13 or more cuts around its calibrated one on 148 sets: LFW's 4 sets in 5
made spaces, 8 samples each of three shapes (the held-out set's, a family album's, a first import's) for dlib,
MobileFaceNet and dlib on poorer photos, and LFW's 4 sets and the same shapes for two real models facekit was never
tuned on (MobileFace and HSE FaceRes). Here facekit's clusterer runs again at each swept cut (one seed) and counts the
faces it leaves alone. Set against it: the share of faces whose nearest neighbour is someone else, by the set's truth,
and the pass's own reading of that share without truth (`LinkThreshold.alone`: the chance that a face's nearest is a
stranger, by the calibration's mixture). A rule then loosens facekit's cut, one swept step at a time, while the cut
leaves more faces alone than that share plus a slack; its loss, like bench/cut_rule.py's, is the set's best swept F less
its F at the chosen cut, each made space's or model's set weighing 1 and each shape's 8 samples of one model 1 together
(43 weights). With the truth's share the rule is an oracle: it shows how much of what the calibration loses a good
estimate of that share would win back; a second oracle also tightens a cut that leaves fewer faces alone than that share
less the slack. With the pass's reading it is what a pass could do today. A second reading reads no depth: two Gaussian
modes fitted to every face's nearest similarity, the share of faces in the lower one, read only where the modes stand
clearly apart (where nearly every face has its own person nearest there is one mode, which a mixture splits); its rule
moves the cut both ways, and not at all where the modes are too close. A third trigger needs no share: the faces the cut
leaves alone that have at least 7 of their 10 nearest neighbours in one group (faces a cut too strict left out of their
own person's group), the rule loosening while they are more than the slack.

Run: `make bench-left-alone` (= `python bench/left_alone.py --data ../shared/datasets/lfw`, ~5 min on 2 cores once
`make bench-spaces`, `make bench-samples` and `make bench-third-models` have written their results and cached their
embeddings). Writes bench/results/left_alone.md and .json.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import lfw_parser, truth_of  # noqa: E402
from bench.cut_rule import stored_sets  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.spaces import SEEDS, recalibrate  # noqa: E402
from bench.third_models import stored_sets as third_model_sets  # noqa: E402
from facekit.cluster import ChineseWhispers, KnnGraph  # noqa: E402
from facekit.cluster.calibration import COPY_SIMILARITY  # noqa: E402
from facekit.cluster.nearest_modes import TWO_MODES  # noqa: E402
from facekit.cluster.nearest_modes import nearest_modes as two_modes  # noqa: E402

SLACKS = (0.01, 0.02, 0.03, 0.05)
SHOWN_SLACK = 0.02
NEIGHBOURS, VOTES = 10, 7
# each rule: the share it moves the cut to (None: the faces alone with a group nearby), and whether it also tightens
RULES = {
    "faces with a stranger nearest (truth)": ("stranger_nearest", False),
    "the same, the cut also tightened to it": ("stranger_nearest", True),
    "the pass's reading of that share": ("read_alone", False),
    f"the nearest similarity's two modes (D >= {TWO_MODES:g}), both ways": ("nearest_modes", True),
    f"none: faces alone with {VOTES} of their {NEIGHBOURS} nearest in one group": (None, False),
}


def all_stored_sets(data: Path, cache_dir: Path) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, dict]]:
    """(group, set, embeddings, truth, photo paths, stored result) for every set bench-spaces, bench-samples and
    bench-third-models stored."""
    for group, name, x, images, result in stored_sets(data, cache_dir):
        yield group, name, x, truth_of(list(images)), images, result
    yield from third_model_sets(data, cache_dir)


def one_set(x: np.ndarray, truth: np.ndarray, images: np.ndarray, result: dict) -> dict:
    """The faces facekit's clusterer leaves alone at each of the set's swept cuts, the share whose nearest neighbour is
    someone else, and the pass's reading of that share."""
    graph, link = recalibrate(x, images, result)
    alone, voted = [], []
    for cut in result["cuts"]:
        labels = ChineseWhispers(cut, seed=SEEDS[0], **link.strangers).fit_predict(x, graph=graph)
        alone.append(float(np.mean(labels < 0)))
        voted.append(one_group_nearby(graph.indices[:, :NEIGHBOURS], labels) / len(x))
    nearest = graph.indices[:, 0]
    return {
        "faces": len(x),
        "stranger_nearest": float(np.mean(truth[nearest] != truth)),
        "read_alone": link.alone,
        **nearest_modes(graph),
        "alone": alone,
        "voted": voted,
    }


def nearest_modes(graph: KnnGraph) -> dict:
    """Two Gaussian modes of every face's nearest similarity (`facekit.cluster.nearest_modes`, copies of one photo left
    out): their Ashman's D and, where it is at least `TWO_MODES`, the share of faces in the lower mode (else
    None)."""
    nearest = graph.sims[:, 0]
    separation, share, _ = two_modes(nearest[np.isfinite(nearest) & (nearest < COPY_SIMILARITY)])
    return {"nearest_separation": separation, "nearest_modes": share if separation >= TWO_MODES else None}


def one_group_nearby(neighbours: np.ndarray, labels: np.ndarray) -> int:
    """How many faces left alone (label -1) have at least `VOTES` of their `neighbours` in one group."""
    count = 0
    for row in labels[neighbours[labels < 0]]:
        grouped = row[row >= 0]
        count += bool(len(grouped)) and np.bincount(grouped).max() >= VOTES
    return count


def moved(row: dict, share: str | None, both: bool, slack: float) -> int:
    """The swept cut's index a rule ends at: from facekit's cut down while it leaves more than the row's `share` +
    `slack` of the faces alone (`share` None: while more than `slack` of them are alone with a group nearby), then,
    with `both`, up while it leaves fewer than `share` - `slack`. Where the row has no reading of `share`, it stays."""
    at = row["at"]
    if share is not None and row[share] is None:
        return at
    if share is None:
        while at > 0 and row["voted"][at] > slack:
            at -= 1
        return at
    while at > 0 and row["alone"][at] > row[share] + slack:
        at -= 1
    while both and at < len(row["alone"]) - 1 and row["alone"][at] < row[share] - slack:
        at += 1
    return at


def losses(rows: list[dict], choose) -> dict[str, float]:
    """Each group's mean loss at the cut `choose(row)` picks (a swept cut's index)."""
    by_group: dict[str, list[float]] = {}
    for row in rows:
        f = row["f"]
        by_group.setdefault(row["group"], []).append(max(f) - f[choose(row)])
    return {group: float(np.mean(v)) for group, v in by_group.items()}


def summarise(rows: list[dict]) -> dict:
    """Each group's loss at facekit's cut and under each rule, by slack."""
    now = losses(rows, lambda row: row["at"])
    rules = {
        f"{name} + {slack:g}": losses(rows, lambda row, r=rule, k=slack: moved(row, *r, k))
        for name, rule in RULES.items()
        for slack in SLACKS
    }
    return {"now": now, "rules": rules}


def markdown(res: dict) -> str:
    s = res["summary"]
    total = sum(s["now"].values())
    shown = [s["rules"][f"{name} + {SHOWN_SLACK:g}"] for name in RULES]
    errors = np.array([r["read_alone"] - r["stranger_nearest"] for r in res["rows"]])
    read = [r for r in res["rows"] if r["nearest_modes"] is not None]
    modes = np.array([r["nearest_modes"] - r["stranger_nearest"] for r in read])
    out = [
        *heading("Where the best cut lies: the faces it leaves alone", res),
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        f"Summed loss in F over {len(s['now'])} weights: facekit's cut {total:.4f}. The rule, by the share it is given "
        "(or the faces alone with a group nearby) and its slack; groups it leaves more than 0.002 worse in brackets:",
        "",
        "| share | " + " | ".join(f"+ {k:g}" for k in SLACKS) + " |",
        "|---|" + "---|" * len(SLACKS),
    ]
    for name in RULES:
        cells = []
        for k in SLACKS:
            rule = s["rules"][f"{name} + {k:g}"]
            worse = sum(rule[g] - s["now"][g] > 0.002 for g in rule)
            cells.append(f"{sum(rule.values()):.4f} ({worse})")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"The pass's reading less the truth's share, over the {len(errors)} sets: median {np.median(errors):+.3f}, "
        f"{np.mean(np.abs(errors) <= 0.01):.0%} within 0.01, from {errors.min():+.3f} to {errors.max():+.3f}. The "
        f"nearest similarity's two modes read {len(modes)} sets (D >= {TWO_MODES:g}; the rest under it): "
        f"less the truth's share, median {np.median(modes):+.3f}, {np.mean(np.abs(modes) <= 0.01):.0%} within 0.01, "
        f"{np.mean(np.abs(modes) <= 0.02):.0%} within 0.02, from {modes.min():+.3f} to {modes.max():+.3f}.",
        "",
        f"By group (sets of one group: their means), at slack {SHOWN_SLACK:g}: the share of faces alone at facekit's "
        "cut and at the set's best swept cut, the share with a stranger nearest, the pass's reading of it and the "
        "nearest similarity's modes' (over the sets they read), and the loss at facekit's cut and under each rule:",
        "",
        "| group | alone at facekit's cut | at the best cut | stranger nearest (truth) | the pass's reading | the "
        "nearest modes' | loss at facekit's cut | rule, truth | both ways | rule, reading | rule, nearest modes "
        "| rule, group nearby |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_group: dict[str, list[dict]] = {}
    for row in res["rows"]:
        by_group.setdefault(row["group"], []).append(row)
    for group, rows in by_group.items():

        def mean(values) -> float:
            return float(np.mean(list(values)))

        readings = [r["nearest_modes"] for r in rows if r["nearest_modes"] is not None]
        modes_read = f"{mean(readings):.3f} ({len(readings)} of {len(rows)})" if readings else "-"

        out.append(
            f"| {group} | {mean(r['alone'][r['at']] for r in rows):.3f} | "
            f"{mean(r['alone'][int(np.argmax(r['f']))] for r in rows):.3f} | "
            f"{mean(r['stranger_nearest'] for r in rows):.3f} | {mean(r['read_alone'] for r in rows):.3f} | "
            f"{modes_read} | {s['now'][group]:.4f} | " + " | ".join(f"{rule[group]:.4f}" for rule in shown) + " |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    args = lfw_parser(__doc__).parse_args()
    rows = []
    for group, name, x, truth, images, result in all_stored_sets(args.data, args.cache_dir):
        if not (result.get("calibration") or {}).get("modes"):
            continue  # no cut calibrated from the data: nothing to loosen
        cuts, f = result["cuts"], result["curves"]["facekit"]
        at = int(np.argmin(np.abs(np.array(cuts) - result["calibration"]["threshold"])))
        rows.append({"group": group, "set": name, "at": at, "f": f, **one_set(x, truth, images, result)})
        print(
            group, "|", name, "|", {k: v for k, v in rows[-1].items() if k not in ("f", "alone", "voted")}, flush=True
        )
    res = {**provenance(), "rows": rows, "summary": summarise(rows)}
    write_suite("left_alone", res, markdown(res))


if __name__ == "__main__":
    main()
