"""Store scale: synthetic 512-d faces (clustered identities) on Qdrant Edge and on qdrant-client's local
mode, side by side: import, index build, search p50/p99, full scroll, cluster_all_faces, incremental
add, reopen, peak RSS. Each size and engine runs in its own process (peak memory is its own).

    python bench/scale.py --sizes 10000 100000 1000000 --local-up-to 100000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clustering import peak_rss_mb, proc_pss_mb, proc_status_mb, synthetic
from bench.report import machine, write_suite
from facekit.dual import READ_FIELDS, DualModeClusterer
from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.types import FaceRecord

MODEL = "synthetic512"
IMPORT_BATCH = 1000
SEARCHES = 200
INCREMENTAL = 20
LABELED_PEOPLE = 30
STEP = re.compile(r'"step": "([^"]+)"')  # a progress line's step, as `progress` prints it


def records(x: np.ndarray, who: np.ndarray, start: int, prefix: str = "p") -> list[FaceRecord]:
    """Faces as indexing writes them (one a photo), numbered from `start`."""
    out = []
    for i, (v, p) in enumerate(zip(x, who, strict=True), start=start):
        image = f"{prefix}{i:08d}"
        out.append(FaceRecord(S.face_point_id(image, 0, MODEL), image, f"/synthetic/{p}/{i}.jpg", 0, (0, 0, 112, 112),
                              0.99, 1.0, MODEL, embedding=v))  # fmt: skip
    return out


def one_face_each(faces: list[FaceRecord]) -> dict[str, int]:
    """Faces a photo, as indexing stores them (`image_face_count`): one for every synthetic photo."""
    return {f.image_id: 1 for f in faces}


def progress(step: str, **figures: object) -> None:
    print(json.dumps({"step": step, **figures}), file=sys.stderr, flush=True)


def run_one(engine: str, n: int, folder: Path, build_index: bool = True, rebuild: bool = True) -> dict:
    """Every measurement of one engine at one size (searches brute-force when the index is not built; no
    rebuild after the pass unless `rebuild`)."""
    x, who = synthetic(n + INCREMENTAL)
    # what the bench needs of its input after the import, copied out: the input itself (2 GB at 1M) is let go
    x_new, queries = x[n:].copy(), x[np.random.default_rng(1).choice(n, SEARCHES, replace=False)]
    if engine == "local":
        from qdrant_client import QdrantClient

        QdrantClient(path=str(folder)).close()  # a local-mode folder: FaceStore keeps it on that engine
    row: dict = {"engine": engine, "faces": n, "peak_mb_after": {"input": peak_rss_mb()}}
    t = time.perf_counter()
    with FaceStore(folder, model_id=MODEL, dim=512) as store:
        assert store.engine == engine
        for start in range(0, n, IMPORT_BATCH):
            batch = records(x[start : start + IMPORT_BATCH], who[start : start + IMPORT_BATCH], start)
            store.add_faces(batch, image_face_counts=one_face_each(batch))
            if start % (50 * IMPORT_BATCH) == 0:
                progress("import", engine=engine, n=n, done=start, s=round(time.perf_counter() - t, 1))
        row["import_s"] = round(time.perf_counter() - t, 1)
        row["peak_mb_after"]["import"] = peak_rss_mb()
        row["searchable_after_import"] = store.count() == n and store.search(x[0], top_k=1)[0].score > 0.99
        del x, batch  # the last batch's records are views of x: they would keep all of it
        if engine == "edge" and build_index:
            progress("index build")
            t = time.perf_counter()
            store.client.optimize(store.collection)
            row["index_build_s"] = round(time.perf_counter() - t, 1)
            row["indexed_vectors"] = store.engine_info()["indexed_vectors"]
        latencies = []
        for q in queries:
            t = time.perf_counter()
            store.search(q, top_k=10)
            latencies.append(1000 * (time.perf_counter() - t))
        row["search_p50_ms"] = round(float(np.percentile(latencies, 50)), 2)
        row["search_p99_ms"] = round(float(np.percentile(latencies, 99)), 2)
        progress("search", engine=engine, n=n, p50=row["search_p50_ms"])
        progress("scroll_all")
        t = time.perf_counter()
        everything = store.scroll_all(fields=READ_FIELDS)  # what a clustering pass reads
        row["scroll_all_s"] = round(time.perf_counter() - t, 1)
        row["peak_mb_after"]["scroll_all"] = peak_rss_mb()
        assert everything.embeddings.shape == (n, 512)
        del everything
        t = time.perf_counter()
        row["stats_s"], stats = None, store.stats()
        row["stats_s"] = round(time.perf_counter() - t, 2)
        first: dict[int, list[int]] = {}
        for i, p in enumerate(who[:n]):
            first.setdefault(int(p), []).append(i)
        labeled = [p for p, rows in first.items() if len(rows) >= 4][:LABELED_PEOPLE]
        ids = [S.face_point_id(f"p{i:08d}", 0, MODEL) for i in range(n)]
        for p in labeled:
            person = store.create_person(f"person {p}")
            store.label_faces([ids[i] for i in first[p][:3]], person.person_id)
        clusterer = DualModeClusterer(store)
        progress("cluster_all_faces")
        t = time.perf_counter()
        summary = clusterer.cluster_all_faces()
        row["cluster_all_faces_s"] = round(time.perf_counter() - t, 1)
        row["peak_mb_after"]["cluster_all_faces"] = peak_rss_mb()
        row["clusters"] = summary["unknown_clusters"]
        progress("cluster", engine=engine, n=n, s=row["cluster_all_faces_s"])
        new = records(x_new, who[n:], n, prefix="new")
        half = INCREMENTAL // 2
        row["incremental_add_ms"] = incremental_add_ms(store, clusterer, new[:half])
        # faces whose points the pass rewrote left Edge's HNSW segment (labels alone no longer do): rebuild, add again
        row["outside_index_after_pass"] = store.faces_outside_search_index()
        if engine == "edge" and build_index and rebuild:
            progress("rebuild")
            t = time.perf_counter()
            store.build_search_index()
            row["reindex_s"] = round(time.perf_counter() - t, 1)
            row["incremental_add_reindexed_ms"] = incremental_add_ms(store, clusterer, new[half:])
        else:  # the rest all the same: the reopened store must hold n + INCREMENTAL faces
            incremental_add_ms(store, clusterer, new[half:])
        row["stats_faces"] = stats["faces"]
    progress("reopen")
    t = time.perf_counter()
    with FaceStore(folder, model_id=MODEL, dim=512) as store:
        reopened = store.count()
        row["reopen_s"] = round(time.perf_counter() - t, 2)
        # a later process's first add: a new clusterer, which must not recalibrate on every stored face
        later = records(x_new[:1], who[n : n + 1], n, prefix="later")
        row["first_add_after_reopen_ms"] = incremental_add_ms(store, DualModeClusterer(store), later, skip_first=False)
    assert reopened == n + INCREMENTAL
    row["peak_rss_mb"] = peak_rss_mb()
    return row


def incremental_add_ms(
    store: FaceStore, clusterer: DualModeClusterer, new: list[FaceRecord], *, skip_first: bool = True
) -> float:
    """Median ms to add one face and place it (`add_faces` + `add_faces_incrementally`), the first left out
    unless `skip_first` is False."""
    latency = []
    for rec in new:
        t = time.perf_counter()
        store.add_faces([rec], image_face_counts=one_face_each([rec]))
        clusterer.add_faces_incrementally([rec.face_id])
        latency.append(1000 * (time.perf_counter() - t))
    return round(statistics.median(latency[1:] if skip_first else latency), 1)


def run_sampled(cmd: list[str], every: float = 0.5) -> tuple[int, str, str, dict[str, int]]:
    """Run `cmd`, sampling its memory every `every` s from here (a thread inside would stall while the
    engine holds the GIL); returns its exit status, stdout, stderr and the peaks (MB) of its RssAnon (heap, not
    mapped files) and of its PSS (every resident page once), and the PSS peak within each step the child's
    progress lines name (`peak_pss_by_step_mb`)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        peaks: dict = {"peak_anon_mb": 0, "peak_pss_mb": 0, "peak_pss_by_step_mb": {}}
        step, read = "input", 0
        while proc.poll() is None:
            err.seek(read)
            step = ([m.group(1) for m in STEP.finditer(err.read())] or [step])[-1]
            read = err.tell()
            pss = proc_pss_mb(proc.pid) or 0
            peaks["peak_anon_mb"] = max(peaks["peak_anon_mb"], proc_status_mb("RssAnon", proc.pid) or 0)
            peaks["peak_pss_mb"] = max(peaks["peak_pss_mb"], pss)
            peaks["peak_pss_by_step_mb"][step] = max(peaks["peak_pss_by_step_mb"].get(step, 0), pss)
            time.sleep(every)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), peaks


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "## Store scale (`make bench-scale`): synthetic 512-d faces, Qdrant Edge vs qdrant-client local mode",
        "",
        f"{meta.get('machine', str(meta['cpus']) + ' cores')}; load (1 min) {meta['load_before']} before, "
        f"{meta['load_after']} after. One run per "
        "row, each in a fresh process. Import: `add_faces` in batches of 1,000 (acknowledged and searchable "
        "when it returns); the HNSW build follows (Edge `optimize`). Search: top-10, 200 queries. Incremental add: "
        "`add_faces` + `add_faces_incrementally` of one face, median of 9, right after the pass and after the HNSW "
        "build that follows it (for the faces the pass moved out of Edge's indexed segment, if any); first "
        "add in a later process: one face added through a new `DualModeClusterer` on the reopened store. "
        "scroll_all: every face with the payload fields a clustering pass reads. Peak RSS: VmHWM, which counts "
        "the pages of Edge's memory-mapped segment files (page cache the kernel can evict), and counts them twice: "
        "Edge maps each segment file twice. In brackets, sampled every 0.5 s: the peak PSS (every resident page "
        "once) and the peak of the anonymous part (RssAnon).",
        "",
        "| engine | faces | import | HNSW build | search p50 / p99 | scroll_all | stats | cluster_all_faces | "
        "HNSW rebuild after it | incremental add (after the pass / rebuilt) | reopen | first add in a later process | "
        "peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['engine']} | {r['faces']:,} | {r['error']} |||||||||||")
            continue
        build = f"{r['index_build_s']} s" if "index_build_s" in r else "not built" if r["engine"] == "edge" else "–"
        rebuild = f"{r['reindex_s']} s" if "reindex_s" in r else "–"
        add = f"{r['incremental_add_ms']} / {r.get('incremental_add_reindexed_ms', '–')} ms"
        pss = f"PSS {r['peak_pss_mb']:,} MB, " if "peak_pss_mb" in r else ""
        anon = f" ({pss}{r['peak_anon_mb']:,} MB anonymous)" if "peak_anon_mb" in r else ""
        lines.append(
            f"| {r['engine']} | {r['faces']:,} | {r['import_s']} s | {build} | "
            f"{r['search_p50_ms']} / {r['search_p99_ms']} ms | {r['scroll_all_s']} s | {r['stats_s']} s | "
            f"{r['cluster_all_faces_s']} s | {rebuild} | {add} | {r['reopen_s']} s | "
            f"{r.get('first_add_after_reopen_ms', '–')} ms | {r['peak_rss_mb']:,} MB{anon} |"
        )
    stages = [r for r in rows if "peak_mb_after" in r]
    if stages:
        lines.append("\nPeak RSS (VmHWM) after each step, MB:\n")
        for r in stages:
            steps = ", ".join(f"{step} {mb:,}" for step, mb in r["peak_mb_after"].items())
            lines.append(f"- {r['engine']} {r['faces']:,}: {steps}")
    by_step = [r for r in rows if r.get("peak_pss_by_step_mb")]
    if by_step:
        lines.append("\nPeak PSS within each step (sampled every 0.5 s), MB:\n")
        for r in by_step:
            steps = ", ".join(f"{step} {mb:,}" for step, mb in r["peak_pss_by_step_mb"].items())
            lines.append(f"- {r['engine']} {r['faces']:,}: {steps}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--local-up-to", type=int, default=100_000, help="local mode only up to this size")
    ap.add_argument("--engines", nargs="*", default=["edge", "local"])
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--dir", default=None, help="where the stores go (default: a temporary folder)")
    ap.add_argument("--no-index-build", action="store_true", help="skip Edge's HNSW build (46 min at 1M faces)")
    ap.add_argument("--no-rebuild", action="store_true", help="skip the HNSW rebuild after the pass (45 min at 1M)")
    ap.add_argument("--suite", default="scale", help="results name: bench/results/SUITE.md")
    args = ap.parse_args()
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    if args.one:
        engine, n = args.one[0], int(args.one[1])
        folder = Path(tempfile.mkdtemp(prefix=f"scale-{engine}-{n}-", dir=args.dir))
        try:
            row = run_one(engine, n, folder / "store", not args.no_index_build, not args.no_rebuild)
            print(json.dumps(row), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    meta = {"cpus": os.cpu_count(), "machine": machine(), "load_before": round(os.getloadavg()[0], 2)}
    rows = []
    for n in args.sizes:
        for engine in args.engines:
            if engine == "local" and n > args.local_up_to:
                continue
            cmd = [sys.executable, __file__, "--one", engine, str(n)] + (["--dir", args.dir] if args.dir else [])
            cmd += ["--no-index-build"] if args.no_index_build else []
            cmd += ["--no-rebuild"] if args.no_rebuild else []
            returncode, stdout, stderr, peaks = run_sampled(cmd)
            if returncode != 0:
                rows.append({"engine": engine, "faces": n, "error": stderr.strip().splitlines()[-1][:200]})
            else:
                rows.append({**json.loads(stdout.strip().splitlines()[-1]), **peaks})
            print(rows[-1], flush=True)
    meta["load_after"] = round(os.getloadavg()[0], 2)
    write_suite(args.suite, {"machine": meta, "rows": rows}, markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
