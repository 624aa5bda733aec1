"""The same LFW pass on both embedded engines: Qdrant Edge and qdrant-client's local mode must agree.

MobileFaceNet embeddings of every LFW face (the bench-clustering cache), one `cluster_all_faces` each,
scored with `facekit evaluate` against folder names.

    python bench/lfw_engines.py [--cache ~/.cache/facekit/lfw_mobilefacenet.npz]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.clustering import fill_store
from facekit.dual import DualModeClusterer
from facekit.evaluation import evaluate
from facekit.store import FaceStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache/facekit/lfw_mobilefacenet.npz")
    data = np.load(ap.parse_args().cache, allow_pickle=True)
    x, paths = data["embeddings"].astype(np.float32), [str(p) for p in data["paths"]]
    rows = {}
    for engine in ("edge", "local"):
        with tempfile.TemporaryDirectory() as tmp:
            if engine == "local":
                QdrantClient(path=tmp).close()  # a folder in the old format stays on local mode
            with FaceStore(tmp, model_id="mobilefacenet_sirius_192", dim=x.shape[1]) as store:
                fill_store(store, x, paths)
                start = time.perf_counter()
                summary = DualModeClusterer(store).cluster_all_faces()
                seconds = time.perf_counter() - start
                scores = evaluate(store)
        rows[engine] = {"faces": len(paths), "unknown_threshold": summary["unknown_threshold"],
                        "clusters": summary["unknown_clusters"], "bcubed_f": scores["clustering"]["bcubed_f"],
                        "cluster_all_faces_s": round(seconds, 1)}  # fmt: skip
        print(engine, rows[engine], flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
