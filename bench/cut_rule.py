"""How the link calibration's two constants fare on the face sets they were not fitted on.

The calibration cuts between the strangers' mode and the same person's at a ratio of standard deviations, BASE_RATIO +
DECISIVE_RATIO x the chance that a stranger link decides a face's group (2 + 3 x chance, fitted on LFW's 14 sets of dlib
and MobileFaceNet). bench/spaces.py and bench/samples.py store facekit's F over 13 or more cuts around its calibrated
one on 92 other sets: LFW's 4 sets in 5 made spaces (a stronger, weaker, noisier model, dlib on poorer photos), and 8
samples each of three shapes (the held-out set's, a family album's, a first import's) for dlib, MobileFaceNet and dlib
on poorer photos. The made spaces are models the constants never saw (on LFW's shapes), the album and the first import
shapes they never saw (on LFW's faces); the held-out shape was one of the 7 they were fitted on, drawn again. Each set's
calibration is run again here, which gives its modes and chance (`LinkThreshold.modes`, `.decisive_chance`); any pair of
constants then gives the set a cut, and the cut a loss: the set's best F over the swept cuts less its F at that cut
(interpolated between swept cuts; a cut beyond them counts at the nearest one's F, which understates the loss, and the
table says how many did). Each made space's set weighs 1 and each shape's 8 samples of one model weigh 1 together (their
mean), 29 in all. The grid shows whether a refit on these sets would move the constants, and how flat the optimum is. A
last table puts each shape's 8 samples of one model at one ratio, and at one cosine, for all 8: how much of what is left
is the rule's form, and how much the draws' modes moving from sample to sample. The cut scored is the rule's own, before
the pass moves it where every face's nearest similarity shows one mode or two (`_moved_by_nearest_modes`); where the
pass does, the loss a user sees is bench/left_alone.py's at facekit's cut (MobileFace's people with >= 15 photos: the
rule's 0.432 loses 0.0485 here, and the pass loosens it to 0.348, the set's best swept cut).

Three more parts score the same grid apart: LFW's 4 sets for the two models the constants were fitted on (dlib and
MobileFaceNet, swept here as bench/spaces.py sweeps a set: 8 weights), the 56 sets bench/third_models.py stores for
two real models facekit was never tuned on (MobileFace and HSE FaceRes: LFW's 4 sets and 8 samples of each shape, 14
weights), and the 56 bench/learned_metric.py stores for two learned metrics' spaces (14 weights). A refit that helps
the 92 sets but not the models no constant saw, or costs the sets they were fitted on, is no reason to move them. The
same holds for the rule's form: a table refits other forms (the cut placed in one pooled unit between the means, or
lowered where the modes overlap) on the 92 sets and scores them on every part, and a last one scores the room the rule
leaves for the strangers' upper tail (`TAIL_SPREAD`, `TAIL_POWER`).

Run: `make bench-cut-rule` (= `python bench/cut_rule.py --data ../shared/datasets/lfw`, ~5 min on 2 cores once
`make bench-spaces`, `make bench-samples` and `make bench-third-models` have written their results and cached their
embeddings). Writes bench/results/cut_rule.md and .json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import lfw_parser  # noqa: E402
from bench.learned_metric import stored_sets as learned_metric_sets  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.samples import SHAPES, draw, models  # noqa: E402
from bench.spaces import aligned, face_sets, one_set, recalibrate, spaces  # noqa: E402
from bench.third_models import stored_sets as third_model_sets  # noqa: E402
from facekit.cluster.calibration import (  # noqa: E402
    BASE_RATIO,
    DECISIVE_RATIO,
    MIN_RATIO,
    TAIL_POWER,
    TAIL_SPREAD,
    Modes,
    cut_between_modes,
    cut_ratio,
    modes_separation,
    modes_width,
)

BASES = (1.0, 1.5, 2.0, 2.5, 3.0)
PER_CHANCE = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
RATIOS = np.round(np.arange(0.5, 10.01, 0.1), 1)  # the one ratio for all of a shape's samples
# Other forms of the rule: its ratio times a factor of the set's modes ((mean, standard deviation) each, the strangers'
# first). facekit's counts each side of the cut in its own mode's standard deviations; times the upper mode's width
# over the lower's, the cut is a fixed share of the way between the means whatever the widths; the square root goes
# halfway; the separation factor lowers the cut where the modes overlap. Each is refitted on a finer grid.
FORMS: dict[str, Callable[[Modes], float]] = {
    "each side in its own mode's standard deviations (facekit's)": lambda modes: 1.0,
    "x (upper width / lower width) ^ 0.5": lambda modes: (modes[1][1] / modes[0][1]) ** 0.5,
    "x upper width / lower width (a share of the way between the means)": lambda modes: modes[1][1] / modes[0][1],
    "x min(1, Ashman's D / 3)": lambda modes: min(1.0, modes_separation(modes) / 3),
}
FORM_BASES = np.arange(0.25, 4.01, 0.25)
FORM_PER_CHANCE = np.arange(0.0, 6.01, 0.5)
# the parts whose sets are scored apart: the sets the constants were fitted on, the other sets of those models and of
# spaces made from them, two real models they never saw, and two learned metrics' spaces
FITTED, OTHER, HELD_OUT, LEARNED = (
    "LFW's sets, dlib and MobileFaceNet",
    "bench-spaces and bench-samples",
    "two models never tuned on",
    "learned metrics' spaces",
)
PARTS = (FITTED, OTHER, HELD_OUT, LEARNED)
# the wide strangers' modes' room (`TAIL_SPREAD`, `TAIL_POWER`) on a grid, None: no room taken
TAIL_SPREADS = (None, 0.4, 0.45, 0.5, 0.55, 0.6)
TAIL_POWERS = (2.0, 4.0, 6.0)


def stored_sets(data: Path, cache_dir: Path) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, dict]]:
    """(group, set, embeddings, photo paths, stored result) for every set bench/spaces.py and bench/samples.py
    stored; the group is the made space and set, or the shape and model (8 samples)."""
    xd, xm, truth, images = aligned(data, cache_dir)
    made, sets = spaces(xd, xm), face_sets(truth)
    for row in json.loads((HERE / "results" / "spaces.json").read_text())["rows"]:
        keep = sets[row["set"]]
        yield f"{row['space']}, {row['set']}", row["set"], made[row["space"]]()[keep], images[keep], row["result"]
    samples = json.loads((HERE / "results" / "samples.json").read_text())["rows"]
    for shape in SHAPES:
        for model, x in models(xd, xm).items():
            for seed, result in enumerate(samples[shape][model]):
                keep = draw(shape, truth, seed)
                yield f"{shape}, {model}", f"sample {seed}", x[keep], images[keep], result


def fitted_sets(data: Path, cache_dir: Path) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, dict]]:
    """(group, set, embeddings, photo paths, result) for LFW's 4 sets of dlib and MobileFaceNet, the models the
    constants were fitted on, swept here as bench/spaces.py sweeps a set."""
    xd, xm, truth, images = aligned(data, cache_dir)
    for model, x in (("dlib", xd), ("MobileFaceNet", xm)):
        for name, keep in face_sets(truth).items():
            yield f"{model}, {name}", name, x[keep], images[keep], one_set(x[keep], truth[keep], images[keep])


def loss(result: dict, cut: float) -> tuple[float, bool]:
    """The set's best F over its swept cuts less its F at `cut`, and whether `cut` lies beyond them."""
    cuts, f = result["cuts"], result["curves"]["facekit"]
    return max(f) - float(np.interp(cut, cuts, f)), not cuts[0] <= cut <= cuts[-1]


def group_losses(rows: list[dict], ratio_of: Callable[[dict], float]) -> tuple[dict[str, float], int]:
    """Each group's mean loss at the cut each row's ratio (`ratio_of(row)`) gives, and how many of those cuts fell
    beyond the sweep."""
    by_group: dict[str, list[float]] = {}
    beyond = 0
    for row in rows:
        value, outside = loss(row["result"], cut_between_modes(row["modes"], ratio_of(row)))
        by_group.setdefault(row["group"], []).append(value)
        beyond += outside
    return {group: float(np.mean(v)) for group, v in by_group.items()}, beyond


def rule_ratio(row: dict, base: float = BASE_RATIO, per_chance: float = DECISIVE_RATIO, **tail: float) -> float:
    """The ratio the rule gives a row at these constants (`tail`: `cut_ratio`'s `tail_spread` and `tail_power`)."""
    return cut_ratio(row["decisive_chance"], base, per_chance, row["stranger_spread"], **tail)


def tails(rows: list[dict]) -> list[dict]:
    """Each part's summed loss for each room the rule leaves for wide strangers' modes (`TAIL_SPREADS` x
    `TAIL_POWERS`; a spread of None: none) at facekit's constants."""
    out = []
    parts = {part: [row for row in rows if row["part"] == part] for part in PARTS}
    for spread in TAIL_SPREADS:
        for power in TAIL_POWERS if spread is not None else TAIL_POWERS[:1]:
            tail = {"tail_spread": np.inf if spread is None else spread, "tail_power": power}
            losses = {
                part: summed_loss(part_rows, lambda row, t=tail: rule_ratio(row, **t))
                for part, part_rows in parts.items()
            }
            out.append({"spread": spread, "power": None if spread is None else power, "loss": losses})
    return out


def landscape(rows: list[dict]) -> list[dict]:
    """Each pair of constants' summed loss (each group's mean), by group, and how many cuts fell beyond the sweep."""
    out = []
    for base in BASES:
        for per_chance in PER_CHANCE:
            groups, beyond = group_losses(rows, lambda row, b=base, c=per_chance: rule_ratio(row, b, c))
            total = sum(groups.values())
            out.append({"base": base, "per_chance": per_chance, "loss": total, "groups": groups, "beyond": beyond})
    return out


def summed_loss(rows: list[dict], ratio_of: Callable[[dict], float]) -> float:
    """The rows' loss at the cut each row's ratio (`ratio_of(row)`) gives, summed over groups (each group's mean)."""
    return sum(group_losses(rows, ratio_of)[0].values())


def forms(rows: list[dict]) -> list[dict]:
    """Each of `FORMS` refitted on the other sets (the constants of `FORM_BASES` x `FORM_PER_CHANCE` that lose least
    there), and its summed loss on each part at those constants."""
    parts = {part: [row for row in rows if row["part"] == part] for part in PARTS}
    out = []
    for name, factor in FORMS.items():

        def ratio_of(
            base: float, per_chance: float, factor: Callable[[Modes], float] = factor
        ) -> Callable[[dict], float]:
            return lambda row: rule_ratio(row, base, per_chance) * factor(row["modes"])

        fits = {(b, c): summed_loss(parts[OTHER], ratio_of(b, c)) for b in FORM_BASES for c in FORM_PER_CHANCE}
        base, per_chance = min(fits, key=fits.get)
        at = ratio_of(base, per_chance)
        out.append(
            {
                "form": name,
                "base": float(base),
                "per_chance": float(per_chance),
                "loss": {part: summed_loss(part_rows, at) for part, part_rows in parts.items()},
            }
        )
    return out


def one_setting(rows: list[dict]) -> list[dict]:
    """For each shape's samples of one model: the mean loss at facekit's cut, at the one ratio and at the one cosine
    that serve all its samples best (each chosen after the fact). Where one cosine beats any one ratio, the samples'
    modes move more from draw to draw than their best cuts do."""
    by_group: dict[str, list[dict]] = {}
    for row in rows:
        if row["set"].startswith("sample"):
            by_group.setdefault(row["group"], []).append(row)
    out = []
    for group, samples in by_group.items():

        def mean_loss(cut_of: Callable[[dict], float], samples: list[dict] = samples) -> float:
            return float(np.mean([loss(row["result"], cut_of(row))[0] for row in samples]))

        rule = mean_loss(lambda row: cut_between_modes(row["modes"], rule_ratio(row)))
        by_ratio = {q: mean_loss(lambda row, q=q: cut_between_modes(row["modes"], q)) for q in RATIOS}
        swept = [c for row in samples for c in row["result"]["cuts"]]
        cosines = np.linspace(min(swept), max(swept), 200)
        by_cosine = {float(c): mean_loss(lambda row, c=c: c) for c in cosines}
        ratio, cosine = min(by_ratio, key=by_ratio.get), min(by_cosine, key=by_cosine.get)
        out.append(
            {
                "group": group,
                "rule": rule,
                "ratio": float(ratio),
                "ratio_loss": by_ratio[ratio],
                "cosine": cosine,
                "cosine_loss": by_cosine[cosine],
            }
        )
    return out


def by_part(res: dict, best: dict) -> list[str]:
    """The grid's summed loss on each part: at facekit's constants, at the other sets' best, at the fitted and the
    other sets' best together, and at each part's own best; then the held-out models' groups at the first three."""
    grids = {OTHER: res["landscape"], **res["parts"]}
    at = {part: {(p["base"], p["per_chance"]): p for p in grid} for part, grid in grids.items()}
    sets = {part: sum(row["part"] == part for row in res["sets"]) for part in grids}
    together = min(at[OTHER], key=lambda key: at[OTHER][key]["loss"] + at[FITTED][key]["loss"])
    chosen = {
        (BASE_RATIO, DECISIVE_RATIO): "facekit's",
        (best["base"], best["per_chance"]): f"best for {OTHER}",
        together: f"best for {FITTED} and {OTHER} together",
    }
    for part in (FITTED, HELD_OUT, LEARNED):
        key = min(at[part], key=lambda key, part=part: at[part][key]["loss"])
        chosen[key] = f"{chosen[key]}, and best for {part}" if key in chosen else f"best for {part}"
    out = [
        "",
        (__doc__ or "").split("\n\n")[2].replace("\n", " "),
        "",
        "The same grid on each part, summed loss in F:",
        "",
        "| constants | "
        + " | ".join(f"{p} ({sets[p]} sets, {len(at[p][together]['groups'])} weights)" for p in PARTS)
        + " |",
        "|---|" + "---|" * len(PARTS),
    ]
    for key, name in chosen.items():
        out.append(
            f"| ({key[0]:g}, {key[1]:g}): {name} | " + " | ".join(f"{at[p][key]['loss']:.4f}" for p in PARTS) + " |"
        )
    shown = [(BASE_RATIO, DECISIVE_RATIO), (best["base"], best["per_chance"]), together]
    for part, what in ((HELD_OUT, "The held-out models"), (LEARNED, "The learned metrics' spaces")):
        out += [
            "",
            f"{what} by group, at facekit's constants, at the best for {OTHER} and at the best for {FITTED} and "
            f"{OTHER} together:",
            "",
            "| group | " + " | ".join(f"({key[0]:g}, {key[1]:g})" for key in shown) + " |",
            "|---|" + "---|" * len(shown),
            *[
                f"| {group} | " + " | ".join(f"{at[part][key]['groups'][group]:.4f}" for key in shown) + " |"
                for group in at[part][shown[0]]["groups"]
            ],
        ]
    return out


def markdown(res: dict) -> str:
    grid = {(p["base"], p["per_chance"]): p for p in res["landscape"]}
    best = min(res["landscape"], key=lambda p: p["loss"])
    now = grid[(BASE_RATIO, DECISIVE_RATIO)]
    others = sum(row["part"] == OTHER for row in res["sets"])
    out = [
        *heading("The link calibration's constants on other sets", res),
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        f"Summed loss in F ({len(now['groups'])} weights) by BASE_RATIO (rows) and DECISIVE_RATIO (columns); facekit's "
        f"({BASE_RATIO:g}, {DECISIVE_RATIO:g}) in bold:",
        "",
        "| BASE_RATIO | " + " | ".join(f"{c:g}" for c in PER_CHANCE) + " |",
        "|---|" + "---|" * len(PER_CHANCE),
    ]
    for base in BASES:
        cells = []
        for c in PER_CHANCE:
            text = f"{grid[(base, c)]['loss']:.4f}"
            cells.append(f"**{text}**" if (base, c) == (BASE_RATIO, DECISIVE_RATIO) else text)
        out.append(f"| {base:g} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"Loss by group at facekit's constants and at the grid's best ({best['base']:g}, {best['per_chance']:g}); "
        f"cuts beyond the sweep: {now['beyond']} and {best['beyond']} of {others}:",
        "",
        f"| group | ({BASE_RATIO:g}, {DECISIVE_RATIO:g}) | ({best['base']:g}, {best['per_chance']:g}) |",
        "|---|---|---|",
    ]
    for group, value in now["groups"].items():
        out.append(f"| {group} | {value:.4f} | {best['groups'][group]:.4f} |")
    out.append(f"| **all** | **{now['loss']:.4f}** | **{best['loss']:.4f}** |")
    out += by_part(res, best)
    out += [
        "",
        "Each shape's 8 samples of one model at one setting for all 8, chosen after the fact: their mean loss at "
        "facekit's cut, at the best one ratio between the modes, and at the best one cosine. Where one cosine does "
        "better than any one ratio, the draws' modes move more than their best cuts do: which people a small set "
        "holds moves the modes' spreads, and the cut with them, while the cut that serves it best stays put.",
        "",
        "| shape and model | facekit's cut | best one ratio | best one cosine |",
        "|---|---|---|---|",
    ]
    for g in res["one_setting"]:
        out.append(
            f"| {g['group']} | {g['rule']:.4f} | {g['ratio']:.1f}: {g['ratio_loss']:.4f} | "
            f"{g['cosine']:.4f}: {g['cosine_loss']:.4f} |"
        )
    out += [
        "",
        f"Other forms of the rule (`FORMS`), each refitted on {OTHER} over a finer grid (base {FORM_BASES[0]:g}-"
        f"{FORM_BASES[-1]:g}, per chance {FORM_PER_CHANCE[0]:g}-{FORM_PER_CHANCE[-1]:g}), summed loss in F on each "
        "part at those constants. A form that gains only on the sets it was refitted on does not carry to others:",
        "",
        "| form | refitted (base, per chance) | " + " | ".join(PARTS) + " |",
        "|---|---|" + "---|" * len(PARTS),
    ]
    for f in res["forms"]:
        losses = " | ".join(f"{f['loss'][part]:.4f}" for part in PARTS)
        out.append(f"| {f['form']} | ({f['base']:g}, {f['per_chance']:g}) | {losses} |")
    out += [
        "",
        "The room the rule leaves for the strangers' upper tail where a clean read's strangers' mode is wide: its "
        "ratio shrinks by (TAIL_SPREAD / the strangers' width over the same person's)^TAIL_POWER beyond TAIL_SPREAD, "
        f"to no less than {MIN_RATIO:g}; facekit's ({TAIL_SPREAD:g}, {TAIL_POWER:g}) in bold, summed loss in F on each "
        "part at facekit's constants:",
        "",
        "| TAIL_SPREAD, TAIL_POWER | " + " | ".join(PARTS) + " |",
        "|---|" + "---|" * len(PARTS),
    ]
    for t in res["tails"]:
        name = "none" if t["spread"] is None else f"{t['spread']:g}, {t['power']:g}"
        if (t["spread"], t["power"]) == (TAIL_SPREAD, TAIL_POWER):
            name = f"**{name}**"
        out.append(f"| {name} | " + " | ".join(f"{t['loss'][part]:.4f}" for part in PARTS) + " |")
    return "\n".join(out) + "\n"


def calibrated_row(part: str, group: str, name: str, x: np.ndarray, images: np.ndarray, result: dict) -> dict:
    """The set's row: its modes and chance as the calibration reads them again, checked against its stored cut."""
    link = recalibrate(x, images, result, f"{group}, {name}")[1]
    print(part, "|", group, "|", name, "|", link.as_dict(), flush=True)
    return {
        "part": part,
        "group": group,
        "set": name,
        "modes": link.modes,
        "decisive_chance": link.decisive_chance,
        "stranger_spread": modes_width(link.modes) if link.look_alike_strangers else None,
        "result": result,
    }


def main() -> None:
    ap = lfw_parser(__doc__)
    args = ap.parse_args()
    rows = [calibrated_row(OTHER, *stored) for stored in stored_sets(args.data, args.cache_dir)]
    rows += [calibrated_row(FITTED, *fitted) for fitted in fitted_sets(args.data, args.cache_dir)]
    for group, name, x, _, images, result in third_model_sets(args.data, args.cache_dir):
        if (result.get("calibration") or {}).get("modes"):  # a cut calibrated from the data: one to move
            rows.append(calibrated_row(HELD_OUT, group, name, x, images, result))
    for group, name, x, _, images, result in learned_metric_sets(args.data, args.cache_dir):
        rows.append(calibrated_row(LEARNED, group, name, x, images, result))
    other = [row for row in rows if row["part"] == OTHER]
    res = {
        **provenance(),
        "sets": [{k: v for k, v in row.items() if k != "result"} for row in rows],
        "landscape": landscape(other),
        "parts": {part: landscape([row for row in rows if row["part"] == part]) for part in PARTS if part != OTHER},
        "tails": tails(rows),
        "one_setting": one_setting(other),
        "forms": forms(rows),
    }
    write_suite("cut_rule", res, markdown(res))


if __name__ == "__main__":
    main()
