"""Background jobs for real: redis-server, `facekit worker` processes, the CLI's --queue and `jobs`
commands, `facekit.jobs.submit` from Python, and a worker SIGKILLed mid-job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facekit.evaluation import label_from_folders
from facekit.indexing import WRITE_BATCH_IMAGES
from facekit.store import FaceStore, open_store

from .conftest import DLIB, DUAL_PEOPLE
from .services import facekit, kill_group, redis_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def env(redis_url, tmp_path, monkeypatch):
    """A clean queue for each test, and settings that point at it (the CLI, the worker, this process)."""
    from redis import Redis

    Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv("FACEKIT_REDIS_URL", redis_url)
    return {"FACEKIT_REDIS_URL": redis_url, "FACEKIT_STORE_LOCK_WAIT": "30"}


@pytest.fixture
def labeled_store(dual_indexed, tmp_path) -> Path:
    folder = tmp_path / "store"
    shutil.copytree(dual_indexed, folder)
    with FaceStore(folder, model_id=DLIB, dim=128) as store:
        label_from_folders(store, min_photos=5, per_person=3, only=DUAL_PEOPLE[:4])
    return folder


def cli(*args: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-m", "facekit.cli", *args, "--json"], capture_output=True, text=True,
                         env={**os.environ, **env})  # fmt: skip
    assert out.stdout, out.stderr
    return {"rc": out.returncode, **json.loads(out.stdout)}


def test_each_job_enqueued_through_the_cli_runs_to_its_result(labeled_store, lfw, env, tmp_path):
    worker = facekit("worker", env=env, log=tmp_path / "worker.log")
    try:
        store = ["--store", str(labeled_store)]
        photos = [str(p) for p in sorted((lfw / "Colin_Powell").glob("*.jpg"))[7:10]]
        queued = {
            "index": cli("index", *photos, *store, "--model", "dlib", "--queue", env=env),
            "cluster-dual": cli("cluster-dual", *store, "--queue", env=env),
            "train-matching": cli("train-matching", *store, "--epochs", "2", "--queue", env=env),
            "reassign": cli("reassign", *store, "--queue", env=env),
            "train-iteration": cli(
                "train-iteration", *store, "--epochs", "2", "--log", str(tmp_path / "it.json"), "--queue", env=env
            ),
        }
        assert all(q["rc"] == 0 and len(q["job_id"]) > 8 for q in queued.values())
        done = {name: cli("jobs", "wait", q["job_id"], "--timeout", "600", env=env) for name, q in queued.items()}
        for name, state in done.items():
            assert state["status"] == "finished" and state["error"] is None, (name, state)
            assert set(state) == {"job_id", "name", "status", "progress", "result", "error", "rc"} and state["rc"] == 0
            assert state["name"] == name and state["progress"]["stage"] == "done"
        assert done["index"]["result"]["images"] == 3 and done["index"]["result"]["faces_added"] == 3
        assert done["cluster-dual"]["result"]["total_processed"] == 46  # after the index job: one queue, in order
        assert done["train-matching"]["result"]["checkpoint"].endswith(".safetensors")
        assert {"checkpoint", "newly_assigned", "changed", "clustering"} <= set(done["reassign"]["result"])
        assert "assignment" in done["train-iteration"]["result"]["before"]
        assert len(json.loads((tmp_path / "it.json").read_text())) == 1
        listed = cli("jobs", "list", env=env)["jobs"]
        assert {j["job_id"] for j in listed} == {q["job_id"] for q in queued.values()}
        missing = cli("jobs", "show", "no-such-job", env=env)
        assert missing["rc"] == 1 and "no job 'no-such-job'" in missing["error"]
    finally:
        kill_group(worker)


def test_submit_from_python_waits_with_progress_and_returns_the_result(labeled_store, env, tmp_path):
    from facekit.jobs import JobError, submit

    worker = facekit("worker", "--store", str(labeled_store), env=env, log=tmp_path / "worker.log")
    try:
        handle = submit("cluster-dual")  # no store named: the worker's own (--store)
        result = handle.wait(timeout=300, progress=False)
        assert result["total_processed"] == 43 and result["unknown_clusters"] >= 1
        assert handle.status()["status"] == "finished"
        bad = submit("cluster-dual", store=str(tmp_path / "nowhere"))
        with pytest.raises(JobError, match=r"failed: .*no store at"):
            bad.wait(timeout=300, progress=False)
    finally:
        kill_group(worker)


def test_a_sigkilled_workers_job_is_failed_as_abandoned_and_rerun_loses_nothing(lfw, env, tmp_path):
    from facekit.jobs import show
    from facekit.jobs.queue import _pid_alive, connect, fetch

    photos = [str(p) for name in DUAL_PEOPLE for p in sorted((lfw / name).glob("*.jpg"))[:30]]
    store = tmp_path / "store"
    worker = facekit("worker", env=env, log=tmp_path / "worker.log")
    job = cli("index", *photos, "--store", str(store), "--model", "dlib", "--queue", env=env)["job_id"]
    deadline = time.monotonic() + 300
    while True:  # kill it once its first batch of photos is stored, most still to do
        state = show(job)
        if (state["progress"] or {}).get("done", 0) >= WRITE_BATCH_IMAGES + 6:
            state["runner_pid"] = fetch(job, connect()).meta["runner"]["pid"]
            break
        assert state["status"] in ("queued", "started") and time.monotonic() < deadline, state
        time.sleep(0.05)
    kill_group(worker)
    assert show(job)["status"] == "started"  # RQ's work-horse has its own process group: it is still working
    os.kill(state["runner_pid"], signal.SIGKILL)  # now nothing runs the job
    while _pid_alive(state["runner_pid"]):
        time.sleep(0.05)
    state = cli("jobs", "show", job, env=env)
    assert state.get("status") == "failed" and "abandoned" in state["error"], state
    again = cli("jobs", "requeue", job, env=env)
    assert again["status"] == "queued"
    worker = facekit("worker", env=env, log=tmp_path / "worker2.log")
    try:
        state = cli("jobs", "wait", job, "--timeout", "600", env=env)
    finally:
        kill_group(worker)
    assert state["status"] == "finished", state
    assert state["result"]["already_indexed"] >= 1  # the killed run's photos were kept, not redone
    with open_store(store) as fs:
        stats = fs.stats()
    assert stats["images"] == len(photos) and stats["faces"] == state["result"]["faces_total"]


def test_a_job_that_ends_while_it_is_looked_at_is_not_called_abandoned(env, monkeypatch):
    """The horse writes the job's end and exits between view's status read and its process check."""
    from rq.job import JobStatus

    from facekit.jobs import queue

    gone = subprocess.Popen(["true"])
    gone.wait()
    job = queue.fetch(queue.enqueue("cluster-dual"), queue.connect())
    job.set_status(JobStatus.STARTED)
    job.meta["runner"] = {"host": socket.gethostname(), "pid": gone.pid}
    job.save_meta()
    still_running = queue._still_running

    def ends_then_exits(job, conn):
        queue.fetch(job.id, conn).set_status(JobStatus.FINISHED)
        return still_running(job, conn)

    with monkeypatch.context() as patch:
        patch.setattr(queue, "_still_running", ends_then_exits)
        assert queue.show(job.id)["status"] == "finished"
    job.set_status(JobStatus.STARTED)  # a horse that died without writing its end is abandoned
    state = queue.show(job.id)
    assert state["status"] == "failed" and state["error"] == queue.ABANDONED


def test_without_redis_the_queue_is_a_clear_error(tmp_path):
    out = cli("cluster-dual", "--store", str(tmp_path), "--queue", env={"FACEKIT_REDIS_URL": "redis://127.0.0.1:9/0"})
    assert out["rc"] == 1 and "cannot reach Redis at redis://127.0.0.1:9/0" in out["error"]


def test_a_queued_job_can_be_canceled_and_run_again(env, tmp_path):
    job = cli("cluster-dual", "--store", str(tmp_path / "store"), "--queue", env=env)["job_id"]  # no worker yet
    assert cli("jobs", "show", job, env=env)["status"] == "queued"
    assert cli("jobs", "cancel", job, env=env)["status"] == "canceled"
    again = cli("jobs", "cancel", job, env=env)
    assert again["rc"] == 1 and "canceled already" in again["error"]
    assert cli("jobs", "requeue", job, env=env)["status"] == "queued"
    worker = facekit("worker", "--burst", env=env, log=tmp_path / "worker.log")
    try:
        state = cli("jobs", "wait", job, "--timeout", "300", env=env)
    finally:
        kill_group(worker)
    assert state["status"] == "failed" and "no store at" in state["error"]  # the store was never made: said so
