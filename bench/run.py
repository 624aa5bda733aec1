"""facekit benchmarks: indexing throughput vs a bare dlib loop, worker scaling, store latency, import/evaluate.

Run: `make bench` (or `python bench/run.py --data ../shared/datasets/lfw`). Writes bench/results/indexing.md
and .json, then re-assembles bench/RESULTS.md. Timings are medians over --repeats runs; the machine is stated
in the results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.report import assemble, machine  # noqa: E402
from facekit.embedding.dlib_resnet import DlibEmbedder  # noqa: E402
from facekit.embedding.landmarks import dlib_model_dir  # noqa: E402
from facekit.indexing import index_batch  # noqa: E402
from facekit.store import FaceStore  # noqa: E402
from facekit.types import FaceRecord  # noqa: E402


def sample_photos(data: Path, n: int) -> list[Path]:
    """The first n photos by path: a fixed, reproducible sample."""
    return sorted(data.glob("*/*.jpg"))[:n]


def bare_dlib_loop(paths: list[Path]) -> tuple[float, int]:
    """The same dlib calls facekit makes, with nothing around them (no hashing, checks or store)."""
    import dlib

    folder = dlib_model_dir()
    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
    start, faces = time.perf_counter(), 0
    for p in paths:
        img = dlib.load_rgb_image(str(p))
        dets = detector(img, 1)
        if not dets:
            continue
        objs = dlib.full_object_detections()
        for d in dets:
            objs.append(shapes(img, d))
        faces += len(rec.compute_face_descriptor(img, objs, 0, 0.25))
    return time.perf_counter() - start, faces


def facekit_index(paths: list[Path], workers: int, embedder: DlibEmbedder) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp, FaceStore(tmp, model_id=embedder.model_id, dim=embedder.dim) as store:
        start = time.perf_counter()
        summary = index_batch(store, paths, embedder=embedder, workers=workers, progress=False)
        return time.perf_counter() - start, summary.faces_added


def store_latency(n: int, dim: int, queries: int = 30) -> dict[str, float]:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    records = [
        FaceRecord(str(uuid.UUID(int=i + 1)), f"img{i}", f"/p/{i}.jpg", 0, (0, 0, 1, 1), 1.0, 0.5, "bench", embedding=e)
        for i, e in enumerate(emb)
    ]
    with tempfile.TemporaryDirectory() as tmp, FaceStore(tmp, model_id="bench", dim=dim) as store:
        start = time.perf_counter()
        for s in range(0, n, 1000):
            store.add_faces(records[s : s + 1000])
        add_s = time.perf_counter() - start
        lat = []
        for q in rng.normal(size=(queries, dim)).astype(np.float32):
            t = time.perf_counter()
            store.search(q, top_k=10)
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.scroll_all()
        scroll_s = time.perf_counter() - t
    return {
        "faces": n,
        "dim": dim,
        "add_total_s": add_s,
        "add_ms_per_face": 1000 * add_s / n,
        "search_ms_median": 1000 * statistics.median(lat),
        "scroll_all_s": scroll_s,
    }


def import_and_evaluate(data: Path) -> dict[str, float]:
    """`facekit import-embeddings` of LFW-sized embeddings (one per LFW photo), then `facekit evaluate`."""
    paths = [str(p) for p in sorted(data.glob("*/*.jpg"))]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "lfw.npz"
        np.savez(npz, embeddings=rng.normal(size=(len(paths), 128)).astype(np.float32), paths=np.array(paths))
        out = {"faces": len(paths)}
        for cmd in (["import-embeddings", str(npz)], ["evaluate"]):
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "facekit.cli", *cmd, "--store", str(Path(tmp) / "s"), "--json"],
                check=True,
                capture_output=True,
            )
            out[f"{cmd[0]}_s"] = time.perf_counter() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--store-sizes", type=int, nargs="*", default=[10_000, 100_000])
    args = ap.parse_args()

    paths = sample_photos(args.data, args.photos)
    embedder = DlibEmbedder()
    runs: dict[str, list[float]] = {"bare": [], "facekit_1": [], "facekit_2": []}
    faces: dict[str, int] = {}
    for r in range(args.repeats):
        for key, fn in (
            ("bare", lambda: bare_dlib_loop(paths)),
            ("facekit_1", lambda: facekit_index(paths, 1, embedder)),
            ("facekit_2", lambda: facekit_index(paths, 2, embedder)),
        ):
            secs, n = fn()
            runs[key].append(secs)
            faces[key] = n
            print(f"repeat {r}: {key} {secs:.1f} s, {n} faces", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    tput = {k: len(paths) / v for k, v in med.items()}
    indexing = {
        "photos": len(paths),
        "faces": faces,
        "median_s": med,
        "photos_per_s": tput,
        "facekit_vs_bare": tput["facekit_1"] / tput["bare"],
        "two_vs_one_worker": tput["facekit_2"] / tput["facekit_1"],
        "runs_s": runs,
    }
    print(json.dumps(indexing, indent=1), flush=True)
    store = [store_latency(n, 512) for n in args.store_sizes]
    print(json.dumps(store, indent=1), flush=True)
    imp = import_and_evaluate(args.data)
    print(json.dumps(imp, indent=1), flush=True)

    results = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "indexing": indexing,
        "store": store,
        "import_evaluate": imp,
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "indexing.json").write_text(json.dumps(results, indent=1))
    lines = [
        "## Indexing and store",
        "",
        f"Command: `make bench` (= `python bench/run.py --data {args.data} --photos {args.photos} "
        f"--repeats {args.repeats}`). Machine: {results['machine']}. Date: {results['date']}. "
        "Medians over the repeats; the machine is shared, so expect some noise.",
        "",
        f"### Indexing {len(paths)} LFW photos (first {len(paths)} by path), dlib model",
        "",
        "| run | median s | photos/s | faces | ratio |",
        "|---|---|---|---|---|",
        f"| bare dlib loop (same calls, nothing else) | {med['bare']:.1f} | {tput['bare']:.2f} | "
        f"{faces['bare']} | 1.00 |",
        f"| facekit index, 1 worker (hash, checks, store writes) | {med['facekit_1']:.1f} | {tput['facekit_1']:.2f} | "
        f"{faces['facekit_1']} | {indexing['facekit_vs_bare']:.2f}× bare |",
        f"| facekit index, 2 workers | {med['facekit_2']:.1f} | {tput['facekit_2']:.2f} | {faces['facekit_2']} | "
        f"{indexing['two_vs_one_worker']:.2f}× 1 worker |",
        "",
        "### Embedded store (qdrant-client local mode), synthetic 512-d faces",
        "",
        "| faces | add (batches of 1000) | per face | search top-10, median | scroll_all |",
        "|---|---|---|---|---|",
        *[
            f"| {s['faces']:,} | {s['add_total_s']:.1f} s | {s['add_ms_per_face']:.2f} ms | "
            f"{s['search_ms_median']:.1f} ms | {s['scroll_all_s']:.1f} s |"
            for s in store
        ],
        "",
        f"### import-embeddings + evaluate, {imp['faces']:,} LFW-sized embeddings (128-d, one per LFW photo)",
        "",
        f"`facekit import-embeddings`: {imp['import-embeddings_s']:.1f} s; "
        f"`facekit evaluate`: {imp['evaluate_s']:.1f} s (each a fresh process, start-up included).",
        "",
    ]
    (HERE / "results" / "indexing.md").write_text("\n".join(lines))
    print(f"wrote {assemble()}")


if __name__ == "__main__":
    main()
