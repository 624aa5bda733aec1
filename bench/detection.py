"""Detection and alignment for MobileFaceNet and the dlib model: which detector settings find the faces, at what cost.

On the LFW subset of shared/models/README.md (people with >= 2 photos among the first 1,500 folders),
each photo is also cut to the inner 85% of its face box (the square ArcFace's alignment covers, forehead
to chin, as detectors such as SCRFD draw it: a photo that is nothing but a tight face) and
that crop is turned by +20 and -20 degrees. For each detector setting: the share of photos where a
face is found, TAR at FAR 1e-4 (all pairs of the subset; a photo with no face fails its genuine pairs),
Chinese Whispers BCubed F at the model's default threshold (a photo with no face is a singleton), and
milliseconds a photo. The dlib model (dlib's 5-point predictor and descriptor in the boxes found) is scored on the
photos of the first 300 folders with HOG alone at its default threshold (face_recognition's way, and facekit's before)
and with facekit's detector.

Run: `make bench-detection` (= `python bench/detection.py --data ../shared/datasets/lfw --models ../shared/models`).
Writes bench/results/detection.md and .json, then re-assembles bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.report import machine, write_suite  # noqa: E402
from facekit.cluster import ChineseWhispers, knn_graph  # noqa: E402
from facekit.cluster.calibration import calibrate_link_threshold, sampled_neighbours  # noqa: E402
from facekit.embedding.base import ARCFACE_TEMPLATE, main_face_order, similarity_transform  # noqa: E402
from facekit.embedding.dlib_resnet import DlibEmbedder  # noqa: E402
from facekit.embedding.landmarks import FivePointDetector, dlib_model_dir  # noqa: E402
from facekit.embedding.mobilefacenet import DEFAULTS as MOBILEFACENET_DEFAULTS  # noqa: E402
from facekit.embedding.mobilefacenet import load_mobilefacenet  # noqa: E402
from facekit.metrics import clustering_scores  # noqa: E402

# facekit's cascade, one retry more in each row: a row finds what the row above found, the same way, and
# runs its new retry only on the photos the row above missed (so each row's cost is the cascade's cost).
SETTINGS = {
    "HOG, threshold 0 (dlib's default)": {"retry_threshold": 0.0, "pad": 0.0, "retry_angle": 0.0},
    "+ retry at -0.5": {"pad": 0.0, "retry_angle": 0.0},
    "+ retry padded": {"retry_angle": 0.0},
    "+ retry turned ±20° (facekit default)": {},
}


# The dlib model's detection, before and now, on the photos of the first DLIB_FOLDERS folders (a prefix of the subset)
DLIB_FOLDERS = 300
DLIB_SETTINGS = {
    "dlib model: HOG alone at 0 (face_recognition; facekit before)": {
        "retry_threshold": 0.0,
        "pad": 0.0,
        "retry_angle": 0.0,
    },
    "dlib model: facekit's detector (facekit default)": {},
}


def subset(data: Path, folders: int = 1500) -> list[Path]:
    """shared/models/README.md's subset: photos of people with >= 2 photos among the first `folders` folders."""
    people = sorted(p for p in data.iterdir() if p.is_dir())[:folders]
    return [f for p in people if len(photos := sorted(p.glob("*.jpg"))) >= 2 for f in photos]


def tight_crop(pixels: np.ndarray, box: np.ndarray, keep: float = 0.85) -> np.ndarray:
    """The inner `keep` of a face box, as a photo of its own."""
    x1, y1, x2, y2 = box
    cx, cy, hw, hh = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) * keep / 2, (y2 - y1) * keep / 2
    h, w = pixels.shape[:2]
    top, bottom = max(0, round(cy - hh)), min(h, round(cy + hh))
    left, right = max(0, round(cx - hw)), min(w, round(cx + hw))
    return np.ascontiguousarray(pixels[top:bottom, left:right])


def turned(pixels: np.ndarray, angle: float) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).rotate(angle, resample=Image.Resampling.BILINEAR, expand=True))


def face_box(points: np.ndarray) -> np.ndarray:
    """The face box a detector such as SCRFD draws: the square that ArcFace's 112 x 112 alignment of
    these five points covers (forehead to chin), mapped back into the photo."""
    m = similarity_transform(points, ARCFACE_TEMPLATE)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    corners = np.array([[0, 0], [112, 0], [0, 112], [112, 112]], float) @ inv[:, :2].T + inv[:, 2]
    return np.concatenate([corners.min(0), corners.max(0)])


def photo_sets(paths: list[Path]) -> dict[str, list[np.ndarray]]:
    """Originals, tight crops and turned crops; the face box comes from facekit's default detector's
    main face (LFW's centred 112-px box where even that finds nothing)."""
    detector = FivePointDetector()
    sets: dict[str, list[np.ndarray]] = {
        "LFW photos": [],
        "tight crops (inner 85%)": [],
        "crops +20°": [],
        "crops -20°": [],
    }
    for p in paths:
        px = np.asarray(Image.open(p).convert("RGB"))
        boxes, _, points = detector.detect(px)
        box = (
            face_box(points[main_face_order(boxes, px.shape)[0]])
            if len(points)
            else np.array([69.0, 69.0, 181.0, 181.0])
        )
        crop = tight_crop(px, box)
        sets["LFW photos"].append(px)
        sets["tight crops (inner 85%)"].append(crop)
        sets["crops +20°"].append(turned(crop, 20))
        sets["crops -20°"].append(turned(crop, -20))
    return sets


def tar_at_far(x: np.ndarray, found: np.ndarray, truth: np.ndarray, far: float = 1e-4) -> float:
    """TAR at the cosine where `far` of different-person pairs pass; photos with no face fail every pair."""
    sims = x @ x.T
    iu = np.triu_indices(len(x), 1)
    same = truth[iu[0]] == truth[iu[1]]
    both = found[iu[0]] & found[iu[1]]
    s = np.where(both, sims[iu], -np.inf)
    impostor = np.sort(s[~same])
    cut = impostor[min(len(impostor) - 1, int(np.ceil(len(impostor) * (1 - far))))]
    return float((s[same] > cut).mean())


def cnn_rate(photos: list[np.ndarray], n: int) -> tuple[float, float]:
    """dlib's CNN (MMOD) detector on the first n photos: share found, median ms a photo."""
    import dlib

    cnn = dlib.cnn_face_detection_model_v1(str(dlib_model_dir() / "mmod_human_face_detector.dat"))
    found, times = 0, []
    for px in photos[:n]:
        t = time.perf_counter()
        found += len(cnn(px, 1)) > 0
        times.append(time.perf_counter() - t)
    return found / min(n, len(photos)), 1000 * statistics.median(times)


def run_setting(
    setting: dict, photos: list[np.ndarray], model, before: tuple | None = None
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Embeddings of each photo's main face, found or not, and seconds a photo. With `before` (the
    previous cascade row's results), only the photos it missed are run again."""
    detector = FivePointDetector(**setting)
    recognizer = model.recognizer
    x, found, times = (np.zeros((len(photos), model.dim), np.float32), np.zeros(len(photos), bool), [0.0] * len(photos))
    if before is not None:
        x, found, times = before[0].copy(), before[1].copy(), list(before[2])
    for i, px in enumerate(photos):
        if found[i]:
            continue
        t = time.perf_counter()
        boxes, _, points = detector.detect(px)
        if len(boxes):
            main = main_face_order(boxes, px.shape)[0]
            x[i] = recognizer.embed([recognizer.align(px, points[main])])[0]
            found[i] = True
        times[i] += time.perf_counter() - t
    return x, found, times


def run_dlib(setting: dict, photos: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The dlib model's embedding of each photo's main face with `setting`'s detector, found or not, and seconds a
    photo (detection, dlib's 5 points and the descriptor of every face found)."""
    embedder = DlibEmbedder(FivePointDetector(**setting))
    x, found, times = np.zeros((len(photos), embedder.dim), np.float32), np.zeros(len(photos), bool), []
    for i, px in enumerate(photos):
        t = time.perf_counter()
        faces = embedder.detect_and_embed(px)
        times.append(time.perf_counter() - t)
        if faces:
            x[i], found[i] = faces[0].embedding, True
    return x, found, times


def cluster_f(
    x: np.ndarray, found: np.ndarray, truth: np.ndarray, prior: float = 1 - MOBILEFACENET_DEFAULTS.unknown_eps
) -> tuple[float, float]:
    """BCubed F of facekit's Chinese Whispers (the consensus of its visiting orders) on the found faces at
    facekit's default link threshold (calibrated on these faces, `facekit.cluster.calibration`; the
    model's `prior` if that fails: MobileFaceNet's by default), and the threshold."""
    idx = np.flatnonzero(found)
    graph = knn_graph(x[idx], 30)
    link = calibrate_link_threshold(graph, deeper=sampled_neighbours(x[idx]))
    threshold = link.threshold if link else prior
    labels = np.full(len(x), -1)
    clusterer = ChineseWhispers(threshold, min_cluster_size=1, **(link.strangers if link else {}))
    labels[idx] = clusterer.fit_predict(x[idx], graph=graph)
    return clustering_scores(truth, labels)["bcubed_f"], threshold


def scored_row(
    set_name: str,
    detector: str,
    x: np.ndarray,
    found: np.ndarray,
    times: list[float],
    truth: np.ndarray,
    prior: float = 1 - MOBILEFACENET_DEFAULTS.unknown_eps,
) -> dict:
    """One table row: faces found, TAR, clustering F (`cluster_f`, the model's `prior` as its fallback) and time a
    photo (printed as it is made)."""
    f, link = cluster_f(x, found, truth, prior)
    row = {
        "photos": set_name,
        "detector": detector,
        "found": round(float(found.mean()), 4),
        "missed": int((~found).sum()),
        "tar_far_1e-4": round(tar_at_far(x, found, truth), 4),
        "bcubed_f": round(f, 4),
        "link": round(link, 4),
        "ms_median": round(1000 * statistics.median(times), 1),
    }
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/datasets/lfw"))
    ap.add_argument("--models", type=Path, default=Path("../shared/models"))
    ap.add_argument("--folders", type=int, default=1500)
    ap.add_argument("--cnn-photos", type=int, default=50, help="photos a set for dlib's slow CNN detector")
    args = ap.parse_args()
    paths = subset(args.data, args.folders)
    truth = np.array([p.parent.name for p in paths])
    print(f"{len(paths)} photos of {len(set(truth))} people", flush=True)
    model = load_mobilefacenet(args.models, threads=1)
    sets = photo_sets(paths)
    rows = []
    for set_name, photos in sets.items():
        before = None
        for name, setting in SETTINGS.items():
            before = run_setting(setting, photos, model, before)
            rows.append(scored_row(set_name, name, *before, truth))
        if "°" in set_name:  # the turned crops: what levelling a rolled face is worth
            results = run_setting({"level_above": 0.0}, photos, model)
            rows.append(scored_row(set_name, "facekit default without levelling rolled faces", *results, truth))
        rate, ms = cnn_rate(photos, args.cnn_photos)
        cnn = {
            "photos": set_name,
            "detector": f"dlib CNN (MMOD), first {args.cnn_photos} photos",
            "found": round(rate, 4),
            "ms_median": round(ms, 1),
        }
        rows.append(cnn)
        print(cnn, flush=True)
    first = len(subset(args.data, DLIB_FOLDERS))
    for set_name, photos in sets.items():
        for name, setting in DLIB_SETTINGS.items():
            results = run_dlib(setting, photos[:first])
            dlib_prior = 1 - DlibEmbedder.defaults.unknown_eps
            rows.append(
                scored_row(f"{set_name}, first {DLIB_FOLDERS} folders", name, *results, truth[:first], dlib_prior)
            )
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        "## Detection and alignment (MobileFaceNet-192)",
        "",
        f"Command: `make bench-detection`. Machine: {machine()}, load average {' '.join(load)} at the end. "
        f"Date: {time.strftime('%Y-%m-%d')}. {len(paths)} LFW photos of {len(set(truth))} people "
        "(people with >= 2 photos among the first 1,500 folders); crops are the inner 85% of the face box, "
        "turned with the corners filled black. Five points from dlib's 68-point predictor (a face whose eyes lean "
        "by more than 8° is found and landmarked again on the region turned level), ArcFace alignment. "
        "TAR counts a photo with no face as failing; BCubed F (Chinese Whispers at facekit's default link, "
        "calibrated on each set's found faces, the consensus of 9 visiting orders) counts it as a singleton. "
        "ms: median a photo, one thread, detection + alignment + embedding (a row's time includes the retries of "
        "the rows above). The dlib model's rows (its descriptor of the main face, placed by dlib's own 5-point "
        f"predictor in the box found) take the photos of the first {DLIB_FOLDERS} folders; their ms include all of it.",
        "",
        "| photos | detector | found | missed | TAR @ FAR 1e-4 | BCubed F (link) | ms / photo |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        link = f" ({r['link']})" if "link" in r else ""
        lines.append(
            f"| {r['photos']} | {r['detector']} | {r['found']:.2%} | {r.get('missed', '')} | "
            f"{r.get('tar_far_1e-4', '')} | {r.get('bcubed_f', '')}{link} | "
            f"{r['ms_median']} |"
        )
    lines.append("")
    write_suite("detection", {"machine": machine(), "photos": len(paths), "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
