"""Background jobs on RQ + Redis: enqueue, look at, wait for, cancel and re-run facekit's long commands.

A job's public view is {"job_id", "name", "status", "progress", "result", "error"}; status is one of
queued / started / finished / failed / canceled (RQ's deferred and scheduled read as queued, stopped as
canceled). A started job whose process is gone (its work-horse killed, or the machine restarted) is failed
as abandoned when it is looked at, and `requeue` runs it again: the store's run marker and the idempotent
index finish what it began.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from facekit.config import get_settings
from facekit.errors import FacekitError, NotFoundError

QUEUE = "facekit"
RESULT_TTL = 7 * 24 * 3600  # finished and failed jobs stay a week
JOB_TIMEOUT = 24 * 3600  # a whole-LFW index or a 1M-face pass takes hours on a laptop, not days
ABANDONED = "abandoned: the worker running it stopped (killed or crashed) before it finished"
STATUS = {
    "queued": "queued",
    "deferred": "queued",
    "scheduled": "queued",
    "created": "queued",
    "started": "started",
    "finished": "finished",
    "failed": "failed",
    "stopped": "canceled",
    "canceled": "canceled",
}


class JobError(FacekitError):
    """A job that cannot be found, reached or run."""


def redis_url() -> str:
    return get_settings().redis_url


def connect(url: str | None = None) -> Any:
    """A Redis connection, checked: an unreachable server is a clear error, not a hang."""
    from redis import Redis
    from redis.exceptions import RedisError

    url = url or redis_url()
    conn = Redis.from_url(url, socket_connect_timeout=3)
    try:
        conn.ping()
    except RedisError as exc:
        raise JobError(
            f"cannot reach Redis at {url} ({exc}): start it (`make redis`, or redis-server) or set FACEKIT_REDIS_URL"
        ) from None
    return conn


def queue(conn: Any) -> Any:
    from rq import Queue

    return Queue(QUEUE, connection=conn, default_timeout=JOB_TIMEOUT)


def enqueue(name: str, *args: Any, conn: Any = None, **kwargs: Any) -> str:
    """Put job `name` (a key of `tasks.JOBS`) on the queue; returns its id."""
    from facekit.jobs.tasks import JOBS

    if name not in JOBS:
        raise JobError(f"no job {name!r}; jobs: {', '.join(JOBS)}")
    conn = conn or connect()
    job = queue(conn).enqueue(
        JOBS[name],
        args=args,
        kwargs=kwargs,
        result_ttl=RESULT_TTL,
        failure_ttl=RESULT_TTL,
        meta={
            "facekit_job": name,
            "progress": {"done": 0, "total": 0, "stage": "queued"},
            "enqueued_wall": time.time(),
        },
    )
    return job.id


def fetch(job_id: str, conn: Any) -> Any:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        return Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        raise NotFoundError(f"no job {job_id!r} (ended jobs are kept a week); `facekit jobs list` shows them") from None


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs here (a zombie, killed but not reaped by an init that never waits, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _still_running(job: Any, conn: Any) -> bool:
    """Whether a started job still has a process running it: its work-horse's pid when the horse runs on
    this machine (RQ puts the horse in its own process group, so it outlives a killed worker), else the
    worker's registration in Redis (which a killed worker keeps until its TTL runs out)."""
    from rq import Worker

    runner = (job.get_meta(refresh=False) or {}).get("runner") or {}
    if runner.get("host") == socket.gethostname() and runner.get("pid"):
        return _pid_alive(int(runner["pid"]))
    name = job.worker_name
    if not name:
        return True  # not picked up yet
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=conn)
    if worker is None:
        return False
    if worker.hostname == socket.gethostname() and worker.pid:
        return _pid_alive(worker.pid)
    return True


def _fail_abandoned(job: Any, conn: Any) -> None:
    """Move a started job whose worker died to the failed jobs, saying so (RQ would after its timeout)."""
    from rq.job import JobStatus
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    q = queue(conn)
    with conn.pipeline() as pipe:
        StartedJobRegistry(queue=q).remove_executions(job, pipeline=pipe)
        job.set_status(JobStatus.FAILED, pipeline=pipe)
        FailedJobRegistry(queue=q).add(job, ttl=RESULT_TTL, exc_string=ABANDONED, pipeline=pipe)
        pipe.execute()
    job.meta["abandoned"] = True
    job.save_meta()


def _status(job: Any) -> str:
    """RQ's status of the job as stored now."""
    status = job.get_status(refresh=True)
    return getattr(status, "value", status)


def view(job: Any, conn: Any) -> dict[str, Any]:
    """The public view of a job (the same object `facekit jobs show --json` and GET /jobs/{id} give)."""
    status = _status(job)
    # A work-horse writes its job's end, then exits: read again once it is gone, or a job that ended between
    # the first read and the process check would be failed as abandoned.
    if status == "started" and not _still_running(job, conn) and (status := _status(job)) == "started":
        _fail_abandoned(job, conn)
        status = "failed"
    meta = job.get_meta(refresh=False) or {}
    error = None
    if status == "failed":
        error = ABANDONED if meta.get("abandoned") else _last_line(_exc_string(job)) or "failed (no message)"
    result = job.return_value() if status == "finished" else None
    return {
        "job_id": job.id,
        "name": meta.get("facekit_job", job.func_name),
        "status": STATUS.get(status, status),
        "progress": meta.get("progress"),
        "result": result,
        "error": error,
    }


def _last_line(exc_string: str | None) -> str | None:
    """The exception line of a traceback, short class name: "StoreError: the store at ... is busy"."""
    lines = [line for line in (exc_string or "").strip().splitlines() if line.strip()]
    if not lines:
        return None
    found = re.match(r"^([\w.]+): (.*)$", lines[-1])
    return f"{found.group(1).rsplit('.', 1)[-1]}: {found.group(2)}" if found else lines[-1]


def _exc_string(job: Any) -> str | None:
    latest = job.latest_result()
    return getattr(latest, "exc_string", None) if latest is not None else None


def show(job_id: str, conn: Any = None) -> dict[str, Any]:
    conn = conn or connect()
    return view(fetch(job_id, conn), conn)


def list_jobs(conn: Any = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest jobs of every state, newest first."""
    from rq.registry import CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

    conn = conn or connect()
    q = queue(conn)
    ids = list(q.get_job_ids())
    for registry in (StartedJobRegistry, FinishedJobRegistry, FailedJobRegistry, CanceledJobRegistry):
        ids += registry(queue=q).get_job_ids()
    from rq.job import Job

    jobs = [j for j in Job.fetch_many(list(dict.fromkeys(ids)), connection=conn) if j is not None]
    jobs.sort(key=lambda j: j.enqueued_at or j.created_at, reverse=True)
    return [view(j, conn) for j in jobs[:limit]]


def cancel(job_id: str, conn: Any = None) -> dict[str, Any]:
    """Cancel a queued job, or stop a running one (its worker stops it; the store's run marker lets the
    next run finish what it began)."""
    from rq.command import send_stop_job_command

    conn = conn or connect()
    job = fetch(job_id, conn)
    status = view(job, conn)["status"]
    if status in ("finished", "failed", "canceled"):
        raise JobError(f"job {job_id} is {status} already: nothing to cancel")
    if status == "started":
        send_stop_job_command(conn, job_id)
    else:
        job.cancel()
    return view(fetch(job_id, conn), conn)


def requeue(job_id: str, conn: Any = None) -> dict[str, Any]:
    """Run a failed or canceled job again, same id and arguments."""
    conn = conn or connect()
    job = fetch(job_id, conn)
    status = view(job, conn)["status"]
    if status not in ("failed", "canceled"):
        raise JobError(f"job {job_id} is {status}: only failed or canceled jobs can be run again")
    job.meta.pop("abandoned", None)
    job.meta.pop("runner", None)
    job.meta["progress"] = {"done": 0, "total": 0, "stage": "queued"}
    job.save_meta()
    queue(conn).enqueue_job(job)
    return view(fetch(job_id, conn), conn)


def wait(
    job_id: str,
    conn: Any = None,
    *,
    timeout: float | None = None,
    poll: float = 0.5,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll until the job ends (finished, failed or canceled); returns its view."""
    conn = conn or connect()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = show(job_id, conn)
        if on_progress is not None:
            on_progress(state)
        if state["status"] in ("finished", "failed", "canceled"):
            return state
        if deadline is not None and time.monotonic() > deadline:
            raise JobError(f"job {job_id} is still {state['status']} after {timeout:g} s")
        time.sleep(poll)
