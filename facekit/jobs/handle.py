"""A job seen from Python or Jupyter: `submit(...)` enqueues, `.wait()` shows a live progress bar."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from facekit.jobs import queue


def store_location(store: str | os.PathLike[str] | None = None, url: str | None = None) -> dict[str, Any]:
    """Where the worker finds the store: a folder (made absolute), a server URL, or, with neither given
    and no FACEKIT_QDRANT_URL, the worker's own store (`facekit worker --store`, else its FACEKIT_STORE)."""
    from facekit.config import get_settings

    server = url or ("" if store else get_settings().qdrant_url)
    if server:
        return {"path": None, "url": server}
    return {"path": str(os.path.abspath(os.path.expanduser(store))) if store else None, "url": ""}


@dataclass(frozen=True)
class JobHandle:
    """An enqueued job: `.status()` (the public view), `.wait()` (blocks, with a progress bar)."""

    job_id: str

    def status(self) -> dict[str, Any]:
        return queue.show(self.job_id)

    def cancel(self) -> dict[str, Any]:
        return queue.cancel(self.job_id)

    def wait(self, timeout: float | None = None, *, progress: bool = True) -> Any:
        """Block until the job ends; its result, or `JobError` with the job's error."""
        from tqdm.auto import tqdm

        with tqdm(total=0, desc=self.job_id[:8], disable=not progress) as bar:

            def show(state: dict[str, Any]) -> None:
                p = state.get("progress") or {}
                if p.get("total") and bar.total != p["total"]:
                    bar.reset(total=p["total"])
                bar.n = p.get("done", 0)
                bar.set_postfix_str(f"{state['status']} {p.get('stage', '')}".strip(), refresh=True)

            state = queue.wait(self.job_id, timeout=timeout, on_progress=show)
        if state["status"] != "finished":
            raise queue.JobError(f"job {self.job_id} {state['status']}: {state['error'] or 'no result'}")
        return state["result"]

    def _repr_html_(self) -> str:
        state = self.status()
        return f"<code>job {self.job_id}</code>: {state['status']} {state.get('progress') or ''}"


def submit(
    name: str, *args: Any, store: str | os.PathLike[str] | None = None, url: str | None = None, **kwargs: Any
) -> JobHandle:
    """Enqueue facekit job `name` (index, cluster-dual, train-matching, reassign, train-iteration) on the
    store; keyword arguments are the command's options (e.g. paths=[...] for index). Needs a worker:
    `facekit worker` (with `make redis` for a local Redis)."""
    return JobHandle(queue.enqueue(name, store_location(store, url), *args, **kwargs))
