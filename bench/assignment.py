"""Full passes' automatic assignments: how often a pass gives a stranger to a labeled person.

A family's photo library holds a few people in hundreds of photos and many faces seen once (guests, passers-by). Each
of 8 samples draws bench/samples.py's album: 10 of LFW's people with >= 30 photos, with all their photos, and 1,000
people seen once. The first 3, 8 or 20 photos of each family member (by file name) are labeled by hand, and one full
pass (`DualModeClusterer.cluster_all_faces`, defaults) assigns the rest. The labels' impostor tests meet only the
other 9 family members, never the strangers who look like one of them: where a model compresses a demographic (dlib),
a family member of it attracts strangers seen once. All of LFW is passed too, with the first 3, 8 or 20 photos of each
person with >= 5, 10 or 40 photos labeled (423, 158 and 19 people). Precision and false accepts are the pass's
automatic assignments against the photos' folders; recall is over the labeled people's faces not labeled. "The rule
alone" is the calibrated person rule on the same faces before the pass's checks (`revoked_by_groups`: the face's own
group holds no label of the person; `revoked_unlinked`: the face links to none of the person's faces at the unknown
faces' link threshold), and the same pass is run without its link check too. After the pass, pseudo-labels are made
from the hand labels, as `train-iteration` makes them, with and without the link check. Each album is passed again as
its family's own photos alone (its people seen once left out): a library of one's own family, where no stranger
competes with the labeled people and the unknown share read off the data should come out near 0.

Run: `make bench-assignment` (= `python bench/assignment.py --data ../shared/datasets/lfw`, ~9 min on 2 cores once
LFW's embeddings are cached by `make bench-clustering`). Writes bench/results/assignment.md and .json.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import fill_store, lfw_parser, photos_per_person  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.samples import ALBUM, ALBUM_MIN_PHOTOS, SAMPLES, draw, models  # noqa: E402
from bench.spaces import aligned  # noqa: E402
from facekit.assign import UNASSIGNED  # noqa: E402
from facekit.assign.pseudo_labels import update_pseudo_labels  # noqa: E402
from facekit.dual import DualModeClusterer  # noqa: E402
from facekit.embedding import model_id_for  # noqa: E402
from facekit.evaluation import label_from_folders  # noqa: E402
from facekit.store import FaceStore  # noqa: E402
from facekit.store import schema as S  # noqa: E402

BUDGETS = (3, 8, 20)
LFW_BUDGETS = ((3, 5), (8, 10), (20, 40))  # labels a person, for the people with at least this many photos
MODEL_IDS = {"dlib": model_id_for("dlib"), "MobileFaceNet": model_id_for("mobilefacenet")}


def without_link_check() -> mock._patch:
    """The pass with its link check (`unlinked_assignments`) left out: what it takes back, measured."""
    return mock.patch("facekit.dual.unlinked_assignments", lambda *args: np.array([], dtype=int))


def one_pass(
    x: np.ndarray,
    paths: list[str],
    truth: np.ndarray,
    model_id: str,
    per_person: int,
    min_photos: int,
    link_check: bool = True,
) -> dict:
    """One pass with the first `per_person` photos of each person with >= `min_photos` labeled (`link_check`: or
    without it): the rule alone's and the pass's right and wrong automatic assignments, the labeled people's faces left
    to assign, and the pass's revocations."""
    checks = nullcontext() if link_check else without_link_check()
    with checks, tempfile.TemporaryDirectory() as tmp, FaceStore(tmp, model_id=model_id, dim=x.shape[1]) as store:
        ids = fill_store(store, x, paths)
        label_from_folders(store, min_photos=min_photos, per_person=per_person)
        d = DualModeClusterer(store)
        summary = d.cluster_all_faces()
        faces = store.scroll_all(with_embeddings=False)
        folder = {p.person_id: p.name for p in store.list_persons()}
        truth_of = dict(zip(ids, truth, strict=True))
        pseudo = pseudo_labels(store, folder, truth_of, d.link_threshold()) if link_check else {}
    payload = dict(zip(faces.ids, faces.payloads, strict=True))
    hand = np.array([payload[f].get(S.ASSIGNMENT_SOURCE) == S.SOURCE_MANUAL for f in ids])
    auto = np.array([payload[f].get(S.ASSIGNMENT_SOURCE) == S.SOURCE_AUTO for f in ids])
    given = np.array([folder.get(payload[f].get(S.PERSON_ID), "") for f in ids], dtype=object)
    rule = d.assigner_.predict(x[~hand])
    rule_given = np.array([folder[p] if p != UNASSIGNED else "" for p in rule], dtype=object)
    known = np.isin(truth, list(folder.values())) & ~hand
    calibration = summary["person_calibration"]
    return {
        "rule_right": int(np.sum(rule_given == truth[~hand])),
        "rule_wrong": int(np.sum((rule_given != "") & (rule_given != truth[~hand]))),
        "right": int(np.sum(auto & (given == truth))),
        "wrong": int(np.sum(auto & (given != truth))),
        "known": int(known.sum()),
        "revoked_by_groups": calibration["revoked_by_groups"],
        "revoked_unlinked": calibration["revoked_unlinked"],
        **pseudo,
    }


def pseudo_labels(store: FaceStore, folder: dict[str, str], truth: dict[str, str], link: float) -> dict:
    """How many pseudo-labels `update_pseudo_labels` makes in `store`, and how many are wrong, without the link check
    and with it (at `link`, the pass's)."""
    out = {}
    for name, threshold in (("pseudo_unchecked", None), ("pseudo", link)):
        update_pseudo_labels(store, link_threshold=threshold)
        faces = store.scroll_all(with_embeddings=False, fields=[S.PSEUDO_PERSON_ID])
        made = {
            f: p[S.PSEUDO_PERSON_ID]
            for f, p in zip(faces.ids, faces.payloads, strict=True)
            if p.get(S.PSEUDO_PERSON_ID)
        }
        out[name] = len(made)
        out[f"{name}_wrong"] = sum(folder[person] != truth[f] for f, person in made.items())
    return out


def both_passes(*args: object) -> dict:
    """`one_pass` with its link check, and the right and wrong assignments of the same pass without it."""
    unchecked = one_pass(*args, link_check=False)
    return {**one_pass(*args), "unchecked_right": unchecked["right"], "unchecked_wrong": unchecked["wrong"]}


STAGES = (
    ("rule", "the rule alone", "rule_right", "rule_wrong"),
    ("unchecked", "the pass without the link check", "unchecked_right", "unchecked_wrong"),
    ("pass", "the pass", "right", "wrong"),
)


PSEUDO = ("pseudo_unchecked", "pseudo_unchecked_wrong", "pseudo", "pseudo_wrong")


def summary(runs: list[dict]) -> dict:
    """Mean and lowest precision, mean and range of recall, over the samples, at each of `STAGES`."""
    out = {}
    for name, _, right, wrong in STAGES:
        precision = [r[right] / max(r[right] + r[wrong], 1) for r in runs]
        recall = [r[right] / r["known"] for r in runs]
        out[name] = {
            "precision": float(np.mean(precision)),
            "lowest_precision": min(precision),
            "recall": float(np.mean(recall)),
            "recall_range": [min(recall), max(recall)],
            "false_accepts": [r[wrong] for r in runs],
        }
    for key in ("revoked_by_groups", "revoked_unlinked", *PSEUDO):
        out[key] = [r[key] for r in runs]
    return out


def markdown(res: dict) -> str:
    intro = (__doc__ or "").split("\n\n")[1].replace("\n", " ")
    out = [*heading("Full passes' automatic assignments", res), "", intro]
    sections = (
        ("8 family albums", res["albums"]),
        ("The same 8 families' own photos (each album less its people seen once)", res["families"]),
        ("All of LFW (one draw: the first photos by name)", res["lfw"]),
    )
    for title, rows in sections:
        out += [
            "",
            f"### {title}",
            "",
            "| model | labels a person | | precision: mean (lowest) | recall: mean (range) | wrong, each draw |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            for name, label, _, _ in STAGES:
                r = row[name]
                low, high = r["recall_range"]
                precision = f"{r['precision']:.4f} ({r['lowest_precision']:.4f})"
                out.append(
                    f"| {row['model']} | {row['per_person']} | {label} | {precision} "
                    f"| {r['recall']:.4f} ({low:.4f}-{high:.4f}) | {', '.join(map(str, r['false_accepts']))} |"
                )
        out += ["", "Revoked by the pass, each draw: `revoked_by_groups`; `revoked_unlinked`.", ""]
        for row in rows:
            groups, unlinked = (", ".join(map(str, row[k])) for k in ("revoked_by_groups", "revoked_unlinked"))
            out.append(f"- {row['model']}, {row['per_person']} labels a person: {groups}; {unlinked}")
        out += [
            "",
            "Pseudo-labels (`update_pseudo_labels` after the pass, as `train-iteration` makes them), without the link "
            "check → with it: how many, and how many wrong (summed over the draws).",
            "",
            "| model | labels a person | pseudo-labels | wrong |",
            "|---|---|---|---|",
        ]
        for row in rows:
            made, wrong = (f"{sum(row[a])} → {sum(row[b])}" for a, b in (PSEUDO[::2], PSEUDO[1::2]))
            out.append(f"| {row['model']} | {row['per_person']} | {made} | {wrong} |")
    return "\n".join(out) + "\n"


def main() -> None:
    args = lfw_parser(__doc__).parse_args()
    xd, xm, truth, images = aligned(args.data, args.cache_dir)
    family = photos_per_person(truth) >= ALBUM_MIN_PHOTOS  # an album's people seen once have 1 photo
    albums, families, lfw = [], [], []
    for model, x in models(xd, xm).items():
        model_id = MODEL_IDS.get(model, MODEL_IDS["dlib"])  # dlib on poorer photos is dlib's space
        for per_person in BUDGETS:
            for rows, only_family in ((albums, False), (families, True)):
                runs = []
                for seed in range(SAMPLES):
                    keep = draw(ALBUM, truth, seed) & (family if only_family else True)
                    runs.append(
                        both_passes(x[keep], list(images[keep]), truth[keep], model_id, per_person, ALBUM_MIN_PHOTOS)
                    )
                rows.append({"model": model, "per_person": per_person, **summary(runs)})
                print(rows[-1], flush=True)
        if model in MODEL_IDS:
            for per_person, min_photos in LFW_BUDGETS:
                run = both_passes(x, list(images), truth, model_id, per_person, min_photos)
                lfw.append({"model": model, "per_person": per_person, "min_photos": min_photos, **summary([run])})
                print(lfw[-1], flush=True)
    res = {**provenance(), "shape": ALBUM, "albums": albums, "families": families, "lfw": lfw}
    write_suite("assignment", res, markdown(res))


if __name__ == "__main__":
    main()
