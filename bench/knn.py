"""kNN graph routes for clustering at scale: faiss IVF-Flat (facekit's), faiss HNSW, and Qdrant Edge's own
HNSW through `query_batch`; time and recall@k against the exact graph, synthetic 512-d identities.

    python bench/knn.py --faces 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.scale import MODEL, records, synthetic
from facekit.cluster.knn import exact_knn_graph, ivf_knn_graph
from facekit.store import FaceStore

K = 30


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact, strict=True)]))


def faiss_hnsw(x: np.ndarray, k: int) -> np.ndarray:
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 100
    index.add(x)
    index.hnsw.efSearch = 64
    _, found = index.search(x, k + 1)
    return np.array([[j for j in row if j != i][:k] for i, row in enumerate(found)])


def edge_hnsw(x: np.ndarray, who: np.ndarray, k: int) -> tuple[np.ndarray, float, float]:
    with tempfile.TemporaryDirectory() as tmp, FaceStore(tmp, model_id=MODEL, dim=512) as store:
        recs = records(x, who, 0)
        for start in range(0, len(recs), 1000):
            store.add_faces(recs[start : start + 1000])
        t = time.perf_counter()
        store.client.optimize(store.collection)
        build = time.perf_counter() - t
        row = {r.face_id: i for i, r in enumerate(recs)}
        t = time.perf_counter()
        found = []
        for start in range(0, len(x), 256):
            for i, hits in enumerate(store.client.query_batch_points(store.collection, x[start : start + 256], k + 1)):
                found.append([row[h.id] for h in hits if row[h.id] != start + i][:k])
        return np.array(found), build, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faces", type=int, default=20_000)
    n = ap.parse_args().faces
    x, who = synthetic(n)
    t = time.perf_counter()
    exact = exact_knn_graph(x, K).indices
    rows = {"faces": n, "exact_s": round(time.perf_counter() - t, 1)}
    t = time.perf_counter()
    ivf = ivf_knn_graph(x, K).indices
    rows["faiss_ivf"] = {"s": round(time.perf_counter() - t, 1), "recall": round(recall(ivf, exact), 4)}
    t = time.perf_counter()
    hnsw = faiss_hnsw(x, K)
    rows["faiss_hnsw"] = {"s": round(time.perf_counter() - t, 1), "recall": round(recall(hnsw, exact), 4)}
    edge, build, search = edge_hnsw(x, who, K)
    rows["edge_hnsw_query_batch"] = {"build_s": round(build, 1), "search_s": round(search, 1),
                                     "recall": round(recall(edge, exact), 4)}  # fmt: skip
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
