"""kNN graph routes for clustering at scale, on synthetic 512-d identities: facekit's inverted lists joined
by matrix products (`ivf_knn_graph`), faiss IVF-Flat searched query by query over the same kind of lists,
faiss HNSW, and (with --edge) Qdrant Edge's own HNSW through `query_batch`.

For each: time, recall@k against the exact graph, recall of the exact neighbours above cosine 0.3 (the
edges clustering can use), and BCubed F of Chinese Whispers at the threshold calibrated on that graph.

    python bench/knn.py --faces 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import heading, provenance, write_suite
from bench.scale import MODEL, records, synthetic
from facekit.cluster.calibration import calibrate_link_threshold
from facekit.cluster.graph import ChineseWhispers
from facekit.cluster.knn import KnnGraph, _search, exact_knn_graph, ivf_knn_graph
from facekit.metrics import clustering_scores
from facekit.store import FaceStore

K = 30
CLOSE = 0.3


def faiss_ivf_flat(x: np.ndarray, k: int) -> KnnGraph:
    """faiss IVF-Flat, 4*sqrt(N) lists, nprobe 16, searched query by query (facekit's route until 2026-12)."""
    import faiss

    n, dim = x.shape
    nlist = max(1, min(int(4 * np.sqrt(n)), n // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.train(x[np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)])
    index.add(x)
    index.nprobe = 16
    return _search(index, x, k)


def faiss_hnsw(x: np.ndarray, k: int) -> KnnGraph:
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    index.add(x)
    index.hnsw.efSearch = 64
    return _search(index, x, k)


def edge_hnsw(x: np.ndarray, who: np.ndarray, k: int) -> KnnGraph:
    """The store's own HNSW (built by `optimize`), queried 256 faces at a time."""
    with tempfile.TemporaryDirectory() as tmp, FaceStore(tmp, model_id=MODEL, dim=512) as store:
        recs = records(x, who, 0)
        for start in range(0, len(recs), 1000):
            store.add_faces(recs[start : start + 1000])
        store.client.optimize(store.collection)
        row = {r.face_id: i for i, r in enumerate(recs)}
        indices, sims = np.full((len(x), k), -1), np.full((len(x), k), -np.inf, dtype=np.float32)
        for start in range(0, len(x), 256):
            for i, hits in enumerate(store.client.query_batch_points(store.collection, x[start : start + 256], k + 1)):
                kept = [h for h in hits if row[h.id] != start + i][:k]
                indices[start + i, : len(kept)] = [row[h.id] for h in kept]
                sims[start + i, : len(kept)] = [h.score for h in kept]
        return KnnGraph(indices, sims)


def measure(build: Callable[[], KnnGraph], exact: KnnGraph, who: np.ndarray, x: np.ndarray) -> dict:
    t = time.perf_counter()
    graph = build()
    seconds = time.perf_counter() - t
    close = exact.sims >= CLOSE
    hits = [len(set(e[c]) & set(a)) for e, c, a in zip(exact.indices, close, graph.indices, strict=True)]
    link = calibrate_link_threshold(graph)
    labels = ChineseWhispers(link.threshold, min_cluster_size=2).fit(x, graph=graph).labels_
    labels = np.where(labels < 0, -1 - np.arange(len(x)), labels)  # each unclustered face on its own
    exact_sets = zip(graph.indices, exact.indices, strict=True)
    return {
        "s": round(seconds, 1),
        "recall_at_k": round(float(np.mean([len(set(a) & set(b)) / K for a, b in exact_sets])), 4),
        "recall_close": round(sum(hits) / max(1, int(close.sum())), 4),
        "threshold": round(link.threshold, 4),
        "bcubed_f": round(clustering_scores(who, labels)["bcubed_f"], 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--edge", action="store_true", help="also Qdrant Edge's HNSW (slow: ~100 s at 20K faces)")
    args = ap.parse_args()
    x, who = synthetic(args.faces)
    load_before = round(os.getloadavg()[0], 2)
    t = time.perf_counter()
    exact = exact_knn_graph(x, K)
    results = {**provenance(), "faces": args.faces, "k": K, "exact_s": round(time.perf_counter() - t, 1)}
    routes = {"inverted lists (facekit)": lambda: ivf_knn_graph(x, K), "faiss IVF-Flat": lambda: faiss_ivf_flat(x, K),
              "faiss HNSW": lambda: faiss_hnsw(x, K)}  # fmt: skip
    if args.edge:
        routes["Qdrant Edge HNSW"] = lambda: edge_hnsw(x, who, K)
    results["exact"] = measure(lambda: exact, exact, who, x) | {"s": results["exact_s"]}
    for name, build in routes.items():
        results[name] = measure(build, exact, who, x)
        print(name, results[name], flush=True)
    results["load"] = [load_before, round(os.getloadavg()[0], 2)]
    lines = [
        *heading("kNN graph routes", results),
        "",
        f"{args.faces:,} synthetic 512-d faces, k={K}, load {load_before} before and {results['load'][1]} after. "
        f"Recall against the exact graph; 'close' counts the exact neighbours above cosine {CLOSE}; F is BCubed F of "
        "Chinese Whispers at the threshold the kNN similarity mixture (`calibrate_link_threshold`, the pass's first "
        "step) reads on each graph.\n",
        "| route | time | recall@k | recall (close) | threshold | F |",
        "|---|---|---|---|---|---|",
    ]
    for name in ["exact", *routes]:
        r = results[name]
        lines.append(f"| {name} | {r['s']} s | {r['recall_at_k']} | {r['recall_close']} | {r['threshold']} | "
                     f"{r['bcubed_f']} |")  # fmt: skip
    write_suite("knn", results, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
