"""Background jobs: enqueue latency, and a job's overhead over running the same work directly.

A synthetic store (5,000 512-d faces, 30 people labeled); `cluster_all_faces` run directly in this process
against the same pass as a `cluster-dual` job on an idle `facekit worker` (enqueue → finished, polled every
100 ms; `facekit jobs wait` polls every 500 ms). Needs redis-server (`make redis-server`); it is started on a
free loopback port.

    python bench/jobs.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import write_suite
from bench.scale import MODEL, records, synthetic
from facekit.dual import DualModeClusterer
from facekit.jobs import queue
from facekit.store import FaceStore
from tests.services import facekit, kill_group, redis_server

FACES = 5_000
RUNS = 5
ENQUEUES = 200


def make_store(folder: Path) -> None:
    x, who = synthetic(FACES)
    with FaceStore(folder, model_id=MODEL, dim=512) as store:
        store.add_faces(records(x, who, 0))
        first: dict[int, list[int]] = {}
        for i, p in enumerate(who):
            first.setdefault(int(p), []).append(i)
        for p in [p for p, rows in first.items() if len(rows) >= 4][:30]:
            person = store.create_person(f"person {p}")
            store.label_faces(
                [records(x[i : i + 1], who[i : i + 1], i)[0].face_id for i in first[p][:3]], person.person_id
            )


def direct(folder: Path) -> list[float]:
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        with FaceStore(folder, model_id=MODEL, dim=512) as store:  # a job opens and closes the store too
            DualModeClusterer(store).cluster_all_faces()
        times.append(time.perf_counter() - t)
    return times


def as_jobs(folder: Path, conn) -> list[float]:
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        job_id = queue.enqueue("cluster-dual", {"path": str(folder), "url": ""}, conn=conn)
        while queue.show(job_id, conn)["status"] not in ("finished", "failed", "canceled"):
            time.sleep(0.1)
        times.append(time.perf_counter() - t)
        assert queue.show(job_id, conn)["status"] == "finished", queue.show(job_id, conn)
    return times


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    load_before = round(os.getloadavg()[0], 2)
    try:
        folder = tmp / "store"
        make_store(folder)
        direct_s = direct(folder)
        with redis_server(tmp) as url:
            os.environ["FACEKIT_REDIS_URL"] = url
            conn = queue.connect(url)
            latencies = []
            for _ in range(ENQUEUES):
                t = time.perf_counter()
                queue.enqueue("cluster-dual", {"path": str(folder), "url": ""}, conn=conn)
                latencies.append(1000 * (time.perf_counter() - t))
            conn.flushdb()
            worker = facekit("worker", env={"FACEKIT_REDIS_URL": url}, log=tmp / "worker.log")
            try:
                time.sleep(3)  # the worker's start (imports) is not a job's cost
                job_s = as_jobs(folder, conn)
            finally:
                kill_group(worker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    row = {
        "faces": FACES,
        "enqueue_ms_p50": round(float(np.percentile(latencies, 50)), 2),
        "enqueue_ms_p99": round(float(np.percentile(latencies, 99)), 2),
        "direct_s_median": round(statistics.median(direct_s), 2),
        "job_s_median": round(statistics.median(job_s), 2),
        "overhead_s_median": round(statistics.median(job_s) - statistics.median(direct_s), 2),
        "runs": RUNS,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": round(os.getloadavg()[0], 2),
    }
    md = (
        "## Background jobs (`make bench-jobs`)\n\n"
        f"{row['cpus']} cores, load {row['load_before']} before and {row['load_after']} after. Enqueue: "
        f"{ENQUEUES} `cluster-dual` jobs, p50 {row['enqueue_ms_p50']} ms, p99 {row['enqueue_ms_p99']} ms. "
        f"`cluster_all_faces` on {FACES:,} synthetic 512-d faces (store opened and closed each time), median of "
        f"{RUNS}: directly {row['direct_s_median']} s, as a job on an idle worker (enqueue → finished) "
        f"{row['job_s_median']} s: **overhead {row['overhead_s_median']} s**.\n"
    )
    write_suite("jobs", row, md)
    print(md)


if __name__ == "__main__":
    main()
