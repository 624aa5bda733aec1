"""Small collections of a model facekit has no measured value for: the pass's calibrated link against the generic one.

Below 100 faces a pass links unknown faces at the model's measured value. A model with none (embeddings imported
without a model id, an ONNX model facekit never measured) is calibrated from the data down to ~20 faces (200
neighbour similarities): its alternative is the generic 0.5, which links everyone in a space like dlib's. Here LFW's
dlib and MobileFaceNet embeddings are imported with no model id in 8 seeded draws each of 4 small shapes (a few
people with 6-8 photos, and a third as many people seen once), and clustered by a full pass (store, DualModeClusterer,
evaluate): with its defaults, at the generic 0.5, and at the model's measured value (what a pass with the model id
takes for so few faces). Two more shapes have no one twice: 40 and 1,000 people seen once; and 30 seeded samples of
120-400 of any of LFW's faces have few people twice.

Run: `make bench-small-sets` (= `python bench/small_sets.py --data ../shared/datasets/lfw`, ~12 min on 2 cores once
LFW's embeddings are cached by `make bench-clustering`). Writes bench/results/small_sets.md and .json.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import fill_store, lfw_parser  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.samples import people_and_singles  # noqa: E402
from bench.spaces import aligned  # noqa: E402
from facekit.dual import GENERIC_LINK_THRESHOLD, DualModeClusterer  # noqa: E402
from facekit.embedding import defaults_for, model_id_for  # noqa: E402
from facekit.evaluation import evaluate  # noqa: E402
from facekit.store import FaceStore  # noqa: E402

SAMPLES = 8
# people, photos each, people seen once; the last two: no one twice (a pass links only copies where its cut's links
# do not close, facekit/cluster/calibration.py's MIN_LINK_CLOSURE)
SHAPES = ((2, 6, 8), (3, 8, 10), (5, 8, 20), (8, 8, 30), (0, 1, 40), (0, 1, 1000))
RANDOM = "random"  # seeded samples of any of LFW's faces: few people twice
RANDOM_FACES = (120, 401)
RANDOM_SAMPLES = 30
NO_MODEL_ID = "precomputed"


def one_pass(x: np.ndarray, paths: list[str], threshold: float | None) -> tuple[float, dict]:
    """BCubed F of a full pass over `x` imported with no model id (`threshold`: given, else its own), and the link."""
    with tempfile.TemporaryDirectory() as tmp, FaceStore(tmp, model_id=NO_MODEL_ID, dim=x.shape[1]) as store:
        fill_store(store, x, paths)
        summary = DualModeClusterer(store, unknown_threshold=threshold).cluster_all_faces()
        return evaluate(store)["clustering"]["bcubed_f"], summary["unknown_threshold_source"]


def markdown(res: dict) -> str:
    out = [
        *heading("Small collections of a model with no measured value", res),
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        "",
        "Mean BCubed F over the draws (the lowest draw's; the pass's cut: its range, how many draws it calibrated "
        "and in how many of those a cut's links did not close, and only copies were linked):",
        "",
        "| model | faces | pass's defaults (lowest) | calibrated (only copies) | its cut | generic 0.5 "
        "| measured value |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        out.append(
            f"| {r['model']} | {r['faces']} | **{r['defaults']:.4f}** ({r['lowest']:.4f}) | {r['calibrated']} of "
            f"{r['draws']} ({r['only_copies']}) | {r['cuts'][0]:.3f}-{r['cuts'][1]:.3f} | {r['generic']:.4f} | "
            f"{r['prior']:.4f} ({r['prior_cut']:.3f}) |"
        )
    return "\n".join(out) + "\n"


def faces_label(shape: tuple[int, int, int] | str, faces: int) -> str:
    """The table's faces column: the count, and what is special about the shape."""
    if shape == RANDOM:
        return f"{RANDOM_FACES[0]}-{RANDOM_FACES[1] - 1} (random)"
    return f"{faces} (no one twice)" if shape[0] == 0 else str(faces)


def draws(shape: tuple[int, int, int] | str, truth: np.ndarray) -> list[np.ndarray]:
    """The rows of each seeded draw of `shape`: (people, photos each, people seen once), or `RANDOM` faces."""
    if shape == RANDOM:
        rngs = [np.random.default_rng(seed) for seed in range(RANDOM_SAMPLES)]
        return [np.sort(rng.choice(len(truth), int(rng.integers(*RANDOM_FACES)), replace=False)) for rng in rngs]
    return [np.flatnonzero(people_and_singles(truth, *shape, seed)) for seed in range(SAMPLES)]


def main() -> None:
    ap = lfw_parser(__doc__)
    args = ap.parse_args()
    xd, xm, truth, images = aligned(args.data, args.cache_dir)
    rows = []
    for model, x in (("dlib", xd), ("mobilefacenet", xm)):
        prior = 1.0 - defaults_for(model_id_for(model)).unknown_eps
        for shape in (*SHAPES, RANDOM):
            scores: dict[str, list[float]] = {"defaults": [], "generic": [], "prior": []}
            cuts, methods = [], []
            for keep in draws(shape, truth):
                paths = [str(p) for p in images[keep]]
                f, source = one_pass(x[keep], paths, None)
                scores["defaults"].append(f)
                cuts.append(source["threshold"])
                methods.append(source["method"])
                scores["generic"].append(one_pass(x[keep], paths, GENERIC_LINK_THRESHOLD)[0])
                scores["prior"].append(one_pass(x[keep], paths, prior)[0])
            rows.append(
                {
                    "model": model,
                    "faces": faces_label(shape, len(keep)),
                    **{name: float(np.mean(v)) for name, v in scores.items()},
                    "lowest": float(min(scores["defaults"])),
                    "draws": len(methods),
                    "calibrated": sum(m.startswith("kNN similarity mixture") for m in methods),
                    "only_copies": sum(m.endswith("links do not close") for m in methods),
                    "cuts": [min(cuts), max(cuts)],
                    "prior_cut": prior,
                }
            )
            print(rows[-1], flush=True)
    res = {
        **provenance(),
        "rows": rows,
    }
    write_suite("small_sets", res, markdown(res))


if __name__ == "__main__":
    main()
