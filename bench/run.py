"""facekit benchmarks: indexing throughput (dlib vs MobileFaceNet, workers vs onnxruntime threads, against a
bare dlib loop), store latency, import/evaluate.

Run: `make bench` (or `python bench/run.py --data ../shared/datasets/lfw`). Writes bench/results/indexing.md
and .json, then re-assembles bench/RESULTS.md. Timings are medians over --repeats runs; the machine is stated
in the results.
"""

from __future__ import annotations

import argparse
import json
import os
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
from facekit.embedding.mobilefacenet import load_mobilefacenet  # noqa: E402
from facekit.indexing import index_batch  # noqa: E402
from facekit.store import FaceStore  # noqa: E402
from facekit.types import FaceRecord  # noqa: E402


def sample_photos(data: Path, n: int) -> list[Path]:
    """The first n photos by path: a fixed, reproducible sample."""
    return sorted(data.glob("*/*.jpg"))[:n]


def bare_dlib_loop(paths: list[Path]) -> tuple[float, int]:
    """The dlib calls facekit makes for a photo whose face HOG finds at once, with nothing around them (no hashing,
    checks or store; facekit's detector also places its 68 points in each face, ~1-2 ms)."""
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


def onnx_batch_cost(threads: int, batch: int, models_dir: Path, faces: int = 64, repeats: int = 5) -> float:
    """Median ms a face for MobileFaceNet on `faces` crops embedded `batch` at a time."""
    model = load_mobilefacenet(models_dir, threads=threads)
    crops = [np.random.default_rng(i).integers(0, 255, (112, 112, 3), dtype=np.uint8) for i in range(faces)]
    model.recognizer.embed(crops[:batch])
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for s in range(0, faces, batch):
            model.recognizer.embed(crops[s : s + batch])
        runs.append(1000 * (time.perf_counter() - t) / faces)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "lfw")
    ap.add_argument("--models-dir", type=Path, default=HERE.parent.parent / "shared" / "models")
    ap.add_argument("--photos", type=int, default=500)
    ap.add_argument("--large", type=int, default=2000, help="photos of the one-run, 2-worker comparison at scale")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--store-sizes", type=int, nargs="*", default=[10_000, 100_000])
    args = ap.parse_args()
    os.environ["FACEKIT_MODELS_DIR"] = str(args.models_dir)  # the worker processes load the model by name

    paths = sample_photos(args.data, args.photos)
    dlib_model = DlibEmbedder()
    mfn = load_mobilefacenet(args.models_dir)  # onnxruntime's default threads (one a core)
    mfn_one_thread = load_mobilefacenet(args.models_dir, threads=1)
    plan = {
        "bare dlib loop (same calls, nothing else)": lambda: bare_dlib_loop(paths),
        "dlib, 1 worker": lambda: facekit_index(paths, 1, dlib_model),
        "dlib, 2 workers": lambda: facekit_index(paths, 2, dlib_model),
        "mobilefacenet, 1 worker, onnxruntime threads = cores": lambda: facekit_index(paths, 1, mfn),
        "mobilefacenet, 1 worker, 1 onnxruntime thread": lambda: facekit_index(paths, 1, mfn_one_thread),
        "mobilefacenet, 2 workers, 1 onnxruntime thread each (facekit's default)": lambda: facekit_index(paths, 2, mfn),
    }
    runs: dict[str, list[float]] = {k: [] for k in plan}
    faces: dict[str, int] = {}
    for r in range(args.repeats):
        for key, fn in plan.items():
            secs, n = fn()
            runs[key].append(secs)
            faces[key] = n
            print(f"repeat {r}: {key} {secs:.1f} s, {n} faces", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    tput = {k: len(paths) / v for k, v in med.items()}
    # Worker start-up (imports + model load, ~4 s) weighs on 500 photos; one run each on more photos shows the
    # steady state users see when they index a collection.
    large = sample_photos(args.data, args.large)
    at_scale = {}
    for name, model in (("dlib", dlib_model), ("mobilefacenet", mfn)):
        secs, n = facekit_index(large, 2, model)
        at_scale[name] = {"seconds": secs, "faces": n, "photos_per_s": len(large) / secs}
        print(f"{len(large)} photos, 2 workers: {name} {secs:.1f} s, {n} faces", flush=True)
    batch_cost = {
        f"{t} thread(s), batch {b}": onnx_batch_cost(t, b, args.models_dir) for t in (1, 2) for b in (1, 8, 32)
    }
    indexing = {
        "photos": len(paths),
        "faces": faces,
        "median_s": med,
        "photos_per_s": tput,
        "mobilefacenet_vs_dlib_1_worker": tput["mobilefacenet, 1 worker, 1 onnxruntime thread"]
        / tput["dlib, 1 worker"],
        "mobilefacenet_vs_dlib_2_workers": tput[
            "mobilefacenet, 2 workers, 1 onnxruntime thread each (facekit's default)"
        ]
        / tput["dlib, 2 workers"],
        "onnx_ms_per_face": batch_cost,
        "at_scale_2_workers": {"photos": len(large), **at_scale},
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
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
    dlib_rate, mfn_rate = at_scale["dlib"]["photos_per_s"], at_scale["mobilefacenet"]["photos_per_s"]
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "indexing.json").write_text(json.dumps(results, indent=1))
    lines = [
        "## Indexing and store",
        "",
        f"Command: `make bench` (= `python bench/run.py --data {args.data} --photos {args.photos} "
        f"--repeats {args.repeats}`). Machine: {results['machine']}. Date: {results['date']}. "
        "Medians over the repeats; the machine is shared, so expect some noise.",
        "",
        f"### Indexing {len(paths)} LFW photos (first {len(paths)} by path), dlib vs MobileFaceNet",
        "",
        f"Load average at the end: {' '.join(indexing['load_average'])}. MobileFaceNet / dlib throughput: "
        f"{indexing['mobilefacenet_vs_dlib_1_worker']:.2f}× at 1 worker, "
        f"{indexing['mobilefacenet_vs_dlib_2_workers']:.2f}× at 2 workers.",
        "",
        "| run | median s | photos/s | faces | × bare dlib loop |",
        "|---|---|---|---|---|",
        *[f"| {k} | {med[k]:.1f} | {tput[k]:.2f} | {faces[k]} | {tput[k] / tput[next(iter(tput))]:.2f} |" for k in med],
        "",
        f"At scale, one run each, 2 workers, first {len(large):,} photos: dlib {dlib_rate:.1f} photos/s, "
        f"MobileFaceNet {mfn_rate:.1f} photos/s ({mfn_rate / dlib_rate:.2f}×).",
        "",
        "MobileFaceNet alone (random 112 × 112 crops), ms a face: "
        + ", ".join(f"{k}: {v:.1f}" for k, v in batch_cost.items())
        + ".",
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
