"""The HTTP API for real: `facekit serve` (uvicorn on loopback) and a `facekit worker` on redis-server,
driven with httpx: jobs to their results, 200 concurrent reads, bad requests refused with nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from facekit.evaluation import label_from_folders
from facekit.store import FaceStore

from .conftest import DLIB, DUAL_PEOPLE, SHARED_MODELS
from .services import facekit, free_port, kill_group, redis_server, wait_for_port

pytestmark = pytest.mark.slow
KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def api(dual_indexed, lfw, tmp_path_factory):
    """A labeled store, redis-server, one worker and the API (with an API key), for the module."""
    tmp = tmp_path_factory.mktemp("api")
    store = tmp / "store"
    shutil.copytree(dual_indexed, store)
    with FaceStore(store, model_id=DLIB, dim=128) as fs:
        label_from_folders(fs, min_photos=5, per_person=3, only=DUAL_PEOPLE[:4])
    with redis_server(tmp) as redis_url:
        # MobileFaceNet installed too: an index job with no model must keep to the store's (dlib)
        env = {"FACEKIT_REDIS_URL": redis_url, "FACEKIT_API_KEY": KEY, "FACEKIT_STORE_LOCK_WAIT": "60",
               "FACEKIT_MODELS_DIR": str(SHARED_MODELS), "FACE_MODEL_NAME": ""}  # fmt: skip
        port = free_port()
        server = facekit("serve", "--port", str(port), "--store", str(store), env=env, log=tmp / "api.log")
        worker = facekit("worker", env=env, log=tmp / "worker.log")
        try:
            wait_for_port(port, timeout=60)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": KEY}, timeout=60) as client:
                yield {"client": client, "store": store, "lfw": lfw, "env": env}
        finally:
            kill_group(server)
            kill_group(worker)


def run_job(client: httpx.Client, path: str, body: dict) -> dict:
    accepted = client.post(path, json=body)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    deadline = time.monotonic() + 600
    while True:
        state = client.get(f"/jobs/{job_id}").json()
        if state["status"] in ("finished", "failed", "canceled"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.3)


def test_each_job_enqueued_over_http_runs_to_its_result(api):
    client = api["client"]
    photo = sorted((api["lfw"] / "Tony_Blair").glob("*.jpg"))[8]
    jobs = {
        "index": run_job(client, "/faces/index", {"paths": [str(photo)]}),
        "cluster": run_job(client, "/faces/cluster/dual", {"unknown_min_size": 2}),
        "train": run_job(client, "/faces/train", {"epochs": 2}),
        "reassign": run_job(client, "/faces/reassign", {}),
    }
    for name, state in jobs.items():
        assert state["status"] == "finished" and state["error"] is None, (name, state)
        assert set(state) == {"job_id", "name", "status", "progress", "result", "error"}
    assert jobs["index"]["result"]["faces_added"] == 1
    assert jobs["cluster"]["result"]["total_processed"] == 44 and jobs["cluster"]["result"]["unknown_clusters"] >= 1
    assert jobs["train"]["result"]["checkpoint"].endswith(".safetensors")
    assert "newly_assigned" in jobs["reassign"]["result"]
    stats = client.get("/stats").json()
    assert stats["faces"] == 44 and stats["labeled_faces"] == 12 and stats["people"] == 4
    people = client.get("/persons").json()
    assert sorted(p["name"] for p in people) == sorted(DUAL_PEOPLE[:4]) and all(p["face_count"] >= 3 for p in people)
    assert sum(client.get("/clusters").json().values()) >= 2
    shown = subprocess.run([sys.executable, "-m", "facekit.cli", "jobs", "show", jobs["cluster"]["job_id"], "--json"],
                           capture_output=True, text=True, env={**os.environ, **api["env"]})  # fmt: skip
    assert json.loads(shown.stdout) == client.get(f"/jobs/{jobs['cluster']['job_id']}").json()


def test_two_hundred_concurrent_reads_all_answer(api):
    """50 clients at once, 4 reads each. Each thread has its own httpx client: one pool shared by 50 threads
    races on the idle connections the server has closed (httpx.ReadError, EBADF) before any request is sent."""
    client = api["client"]
    local, opened = threading.local(), []

    def stats(_: int) -> int:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=client.base_url, headers=client.headers, timeout=60)
            opened.append(local.client)
        return local.client.get("/stats").status_code

    try:
        with ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(stats, range(200)))
    finally:
        for each in opened:
            each.close()
    assert codes == [200] * 200


def test_search_with_an_uploaded_photo(api):
    photo = sorted((api["lfw"] / "Colin_Powell").glob("*.jpg"))[0]
    found = api["client"].post("/search", files={"image": ("q.jpg", photo.read_bytes(), "image/jpeg")}).json()
    assert found[0]["hits"][0]["image_path"].endswith(photo.name) and found[0]["hits"][0]["score"] > 0.99


def test_bad_requests_are_refused_with_json_and_nothing_written(api):
    client = api["client"]
    before = client.get("/stats").json()
    url = str(client.base_url)
    cases = [
        (httpx.post(f"{url}/faces/cluster/dual", json={}), 401),  # no key
        (httpx.post(f"{url}/faces/cluster/dual", json={}, headers={"X-API-Key": "wrong"}), 401),
        (client.post("/faces/cluster/dual", json={"unknown_min_size": "many"}), 422),  # wrong type
        (client.post("/faces/cluster/dual", json={"unknown_min_size": 2, "oops": 1}), 422),  # unknown field
        (client.post("/faces/train", json={"epochs": 0}), 422),
        (client.post("/faces/index", json={"paths": ["/no/such/photo.jpg"]}), 422),
        (client.post("/search", files={"image": ("big.jpg", b"\0" * (10 * 1024 * 1024 + 1), "image/jpeg")}), 413),
        (client.post("/search", files={"image": ("x.jpg", b"not a photo", "image/jpeg")}), 400),
        (client.get("/jobs/no-such-job"), 404),
    ]
    for response, code in cases:
        assert response.status_code == code, (response.request.url, response.text)
        body = response.json()
        assert set(body) == {"error", "type"} and body["error"], body
    assert "oops" in cases[3][0].json()["error"] and "unknown_min_size" in cases[2][0].json()["error"]
    bearer = httpx.get(f"{url}/stats", headers={"Authorization": f"Bearer {KEY}"})
    assert bearer.status_code == 200 and bearer.json() == before  # nothing was written
    assert client.get("/openapi.json").json()["paths"].keys() >= {
        "/faces/cluster/dual",
        "/faces/train",
        "/jobs/{job_id}",
    }


def test_serving_beyond_loopback_needs_a_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "facekit.cli", "serve", "--host", "0.0.0.0", "--store", str(tmp_path)],
                         capture_output=True, text=True, env={**os.environ, "FACEKIT_API_KEY": ""})  # fmt: skip
    assert out.returncode == 1 and "refusing to serve on 0.0.0.0 without FACEKIT_API_KEY" in out.stderr
