"""Faces in large photos: does detection find a face 60-240 px wide in a 12-megapixel photo, and what does it cost?

A phone's photo is 4032 x 3024; in a group photo or a photo taken across a room a face is 60-250 px wide, where an LFW
photo's face is ~107 px of 250. Each photo of the LFW subset of bench/detection.py (people with >= 2 photos among the
first 200 folders) is pasted, scaled so its face is one of `WIDTHS` wide (in turn, seeded order), at a seeded place in
a 4032 x 3024 photo whose background is one of scikit-learn's two sample photos (a temple, a flower: no face), scaled
up. A face counts as found when a box's centre lies within a quarter of the pasted photo's side of its centre (LFW's
subject is centred); its embedding is that box's. For each model and detector setting: the share found (by face
width), TAR at FAR 1e-4 and BCubed F as bench/detection.py scores them (a face not found fails its pairs and is a
singleton; bench/detection.py's `scored_row`), and milliseconds a photo (detection, alignment and embedding of every
face found, one thread; also on the backgrounds alone, where every retry runs). The same faces in their own 250-px
photos give the ceiling.

Run: `make bench-large-photos` (= `python bench/large_photos.py --data ../shared/datasets/lfw --models
../shared/models`, ~17 min). Writes bench/results/large_photos.md and .json, then re-assembles bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.detection import scored_row, subset  # noqa: E402
from bench.report import machine, write_suite  # noqa: E402
from facekit.embedding.dlib_resnet import DlibEmbedder  # noqa: E402
from facekit.embedding.landmarks import FivePointDetector  # noqa: E402
from facekit.embedding.mobilefacenet import load_mobilefacenet  # noqa: E402

SIZE = (4032, 3024)  # a 12-megapixel phone photo
WIDTHS = (60, 80, 100, 130, 170, 240)  # the face's width in the large photo, px
LFW_FACE = 107  # HOG's box on a 250-px LFW photo, px (median)
FOLDERS = 200

# A face finder: pixels -> (centres of the faces found (N, 2), their embeddings (N, d)).
Finder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def backgrounds() -> list[Image.Image]:
    """Two real photos with no face (scikit-learn's samples), at the large photo's size."""
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(im).resize(SIZE, Image.Resampling.BICUBIC) for im in load_sample_images().images]


# A photo to score: a function that makes its pixels (made when run: 247 large photos would take 9 GB), and where the
# face is: (centre x, centre y, side of the pasted photo).
Photo = tuple[Callable[[], np.ndarray], tuple[float, float, float]]


def large_photo(path: Path, width: int, background: Image.Image, rng: np.random.Generator) -> Photo:
    """`path` pasted at a seeded place into `background`, scaled so its face is `width` px wide."""
    side = round(250 * width / LFW_FACE)
    x, y = int(rng.integers(0, SIZE[0] - side)), int(rng.integers(0, SIZE[1] - side))

    def pixels() -> np.ndarray:
        canvas = background.copy()
        canvas.paste(Image.open(path).convert("RGB").resize((side, side), Image.Resampling.LANCZOS), (x, y))
        return np.asarray(canvas)

    return pixels, (x + side / 2, y + side / 2, side)


def own_photo(path: Path) -> Photo:
    """`path` as it is (LFW's 250-px photo, its subject centred)."""
    return (lambda: np.asarray(Image.open(path).convert("RGB"))), (125.0, 125.0, 250.0)


def onnx_finder(model, detector: FivePointDetector) -> Finder:
    """MobileFaceNet's embedder with `detector` in place of its own."""

    def find(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, _, points = detector.detect(pixels)
        if not len(boxes):
            return np.zeros((0, 2)), np.zeros((0, model.dim), np.float32)
        recognizer = model.recognizer
        x = recognizer.embed([recognizer.align(pixels, p) for p in points])
        return (boxes[:, :2] + boxes[:, 2:]) / 2, np.asarray(x)

    return find


def dlib_finder(embedder: DlibEmbedder) -> Finder:
    def find(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faces = embedder.detect_and_embed(pixels)
        if not faces:
            return np.zeros((0, 2)), np.zeros((0, embedder.dim), np.float32)
        centres = np.array([[(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2] for f in faces])
        return centres, np.stack([f.embedding for f in faces])

    return find


def run(find: Finder, photos: list[Photo], dim: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Each pasted face's embedding (zeros where not found), whether it was found, and seconds a photo."""
    x, found, times = np.zeros((len(photos), dim), np.float32), np.zeros(len(photos), bool), []
    for i, (make, (cx, cy, side)) in enumerate(photos):
        pixels = make()
        t = time.perf_counter()
        centres, embeddings = find(pixels)
        times.append(time.perf_counter() - t)
        if len(centres):
            d = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy)
            if d.min() <= side / 4:
                x[i], found[i] = embeddings[int(np.argmin(d))], True
    return x, found, times


def ms_without_faces(find: Finder, photos: list[np.ndarray], repeats: int = 3) -> float:
    """Median milliseconds `find` takes on photos with no face (every retry runs)."""
    times = []
    for pixels in photos * repeats:
        start = time.perf_counter()
        find(pixels)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/lfw"))
    ap.add_argument("--models", type=Path, default=Path("../shared/models"))
    ap.add_argument("--folders", type=int, default=FOLDERS)
    args = ap.parse_args()
    paths = subset(args.data, args.folders)
    truth = np.array([p.parent.name for p in paths])
    rng = np.random.default_rng(0)
    widths = np.array(WIDTHS)[rng.permutation(len(paths)) % len(WIDTHS)]
    grounds = backgrounds()
    photos = [
        large_photo(p, int(w), grounds[i % len(grounds)], rng)
        for i, (p, w) in enumerate(zip(paths, widths, strict=True))
    ]
    native = [own_photo(p) for p in paths]
    print(f"{len(paths)} photos of {len(set(truth))} people", flush=True)
    mobilefacenet = load_mobilefacenet(args.models, threads=1)
    # facekit before: HOG not upsampled in photos over 1000 px; the dlib model ran it alone, with no retries
    models = {
        "MobileFaceNet": (
            mobilefacenet.dim,
            1 - mobilefacenet.defaults.unknown_eps,
            lambda detector: onnx_finder(mobilefacenet, detector),
            FivePointDetector(upsample=0),
        ),
        "dlib": (
            DlibEmbedder.dim,
            1 - DlibEmbedder.defaults.unknown_eps,
            lambda detector: dlib_finder(DlibEmbedder(detector)),
            FivePointDetector(upsample=0, retry_threshold=0.0, pad=0.0, retry_angle=0.0),  # HOG alone, as before
        ),
    }
    large, own = f"{SIZE[0]} x {SIZE[1]}", "their own 250-px photos"
    faceless = [np.asarray(ground) for ground in grounds]
    rows = []
    for model, (dim, prior, finder, before) in models.items():
        for setting, detector in (
            ("first look not upsampled (facekit before)", before),
            ("facekit default (first look upsampled once)", FivePointDetector()),
        ):
            find = finder(detector)
            x, found, times = run(find, photos, dim)
            by_width = {int(w): round(float(found[widths == w].mean()), 4) for w in WIDTHS}
            row = {"model": model, **scored_row(large, setting, x, found, times, truth, prior)}
            rows.append({**row, "found_by_width": by_width, "ms_no_face": ms_without_faces(find, faceless)})
        default = finder(FivePointDetector())
        rows.append({"model": model, **scored_row(own, "facekit default", *run(default, native, dim), truth, prior)})
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        "## Faces in large photos",
        "",
        f"Command: `make bench-large-photos`. Machine: {machine()}, load average {' '.join(load)} at the end. "
        f"Date: {time.strftime('%Y-%m-%d')}. {len(paths)} LFW photos of {len(set(truth))} people (people with >= 2 "
        f"photos among the first {args.folders} folders), each pasted into a {large} photo (a "
        "scikit-learn sample photo with no face, scaled up) with its face one of "
        f"{', '.join(map(str, WIDTHS))} px wide (a sixth of the photos each). Found: a box centred within a quarter "
        "of the pasted photo's side of its centre. TAR at FAR 1e-4 and BCubed F (facekit's calibrated link and "
        "Chinese Whispers, bench/detection.py's `scored_row`) count a face not found as failing its pairs and as a "
        "singleton. ms: median a photo, one thread, detection + alignment + embedding of every face found; with no "
        "face: the two background photos alone, 3 times each (every retry runs).",
        "",
        "| model | photos | detector | found | " + " | ".join(f"{w} px" for w in WIDTHS) + " | TAR @ FAR 1e-4 | "
        "BCubed F (link) | ms / photo | ms / photo with no face |",
        "|---|---|---|---|" + "---|" * len(WIDTHS) + "---|---|---|---|",
    ]
    for r in rows:
        by_width = " | ".join(f"{r['found_by_width'][w]:.0%}" if "found_by_width" in r else "" for w in WIDTHS)
        lines.append(
            f"| {r['model']} | {r['photos']} | {r['detector']} | {r['found']:.1%} | {by_width} | {r['tar_far_1e-4']} | "
            f"{r['bcubed_f']} ({r['link']}) | {r['ms_median']} | {r.get('ms_no_face', '')} |"
        )
    lines.append("")
    write_suite("large_photos", {"machine": machine(), "photos": len(paths), "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
