"""The job functions an RQ worker runs (the seed's names). Each opens the store for the length of the
job only (an embedded store is one process at a time), reports progress in the job's meta, and returns
the same JSON object as the command it stands for.

Store locations travel as {"path", "url"}; a server's API key never goes into Redis: the worker reads
FACEKIT_QDRANT_API_KEY from its own environment.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from pathlib import Path
from typing import Any

from facekit.config import get_settings
from facekit.store import FaceStore, open_store


def preload() -> None:
    """Load what jobs need once, in the worker: each job's forked work-horse inherits it instead of paying
    for it again (~2 s a clustering job: faiss, sklearn's mixtures, numba and its cached whisper pass).
    Nothing here starts a thread pool: OpenMP used before a fork hangs the child."""
    import facekit.dual
    import facekit.indexing  # noqa: F401
    from facekit.cluster.whisper_pass import warm_up

    warm_up()
    for module in ("faiss", "sklearn.mixture", "sklearn.cluster", "torch"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


def report_progress(done: int, total: int, stage: str = "") -> None:
    """Record progress in the current job's meta (a no-op outside a job: the CLI runs the same functions)."""
    try:
        from rq import get_current_job
    except ImportError:  # rq comes with the `server` extra: without it nothing runs as a job
        return
    job = get_current_job()
    if job is None:
        return
    job.meta["progress"] = {"done": int(done), "total": int(total), "stage": stage}
    job.meta["runner"] = {"host": socket.gethostname(), "pid": os.getpid()}  # the work-horse: alive = running
    job.save_meta()


def _api_key() -> str | None:
    key = get_settings().qdrant_api_key
    return key.get_secret_value() if key else None


def _path(location: dict[str, Any]) -> Any:
    """The job's store folder; none named (and no server): the worker's own (`facekit worker --store`)."""
    return location.get("path") or (None if location.get("url") else get_settings().store)


def _store_models(location: dict[str, Any]) -> dict[str, int]:
    from facekit.store.face_store import stored_models

    return stored_models(_path(location), url=location.get("url") or "", api_key=_api_key())


def _open(location: dict[str, Any], model: str | None) -> FaceStore:
    from facekit.embedding import model_id_for

    return open_store(
        _path(location),
        url=location.get("url") or "",
        api_key=_api_key(),
        model_id=model_id_for(model) if model else None,
    )


def index_job(
    location: dict[str, Any],
    paths: list[str],
    *,
    recursive: bool = False,
    workers: int = 1,
    model: str | None = None,
    cluster: bool = False,
) -> dict[str, Any]:
    """`facekit index`: detect, embed and store every face in the photos (already indexed ones skipped).
    With no model named, a store that holds one model's faces is indexed with that model."""
    from facekit.dual import DualModeClusterer
    from facekit.embedding import load_embedder, model_name_for, resolve_model_name
    from facekit.images import iter_image_files
    from facekit.indexing import index_batch

    report_progress(0, len(paths), "index")
    settings = get_settings()
    if model is None:
        found = _store_models(location)
        model = model_name_for(next(iter(found))) if len(found) == 1 else None
    embedder = load_embedder(model or resolve_model_name(settings), settings)
    with FaceStore(
        _path(location),
        url=location.get("url") or "",
        api_key=_api_key(),
        model_id=embedder.model_id,
        dim=embedder.dim,
    ) as store:
        summary = index_batch(
            store,
            iter_image_files([Path(p) for p in paths], recursive=recursive),
            embedder=embedder,
            workers=workers,
            progress=False,
            max_pixels=settings.max_image_pixels,
            on_progress=lambda done, total: report_progress(done, total, "index"),
        )
        result = summary.to_dict()
        if cluster:
            report_progress(0, 1, "cluster")
            result["clustering"] = DualModeClusterer(store).cluster_new_faces()
    report_progress(1, 1, "done")
    return result


def cluster_dual_job(
    location: dict[str, Any],
    *,
    model: str | None = None,
    person_threshold: float | None = None,
    unknown_method: str | None = None,
    unknown_min_size: int | None = None,
    unknown_threshold: float | None = None,
    max_faces: int | None = None,
) -> dict[str, Any]:
    """`facekit cluster-dual`: assign faces to labeled people, cluster the rest."""
    from facekit.dual import DualModeClusterer

    report_progress(0, 1, "cluster-dual")
    with _open(location, model) as store:
        clusterer = DualModeClusterer(
            store,
            person_threshold=person_threshold,
            unknown_method=unknown_method,
            unknown_min_size=unknown_min_size,
            unknown_threshold=unknown_threshold,
        )
        result = clusterer.cluster_all_faces(max_faces=max_faces)
        # faces new since the last index build (labels never move a face out): `facekit store optimize` indexes them
        result["faces_outside_search_index"] = store.faces_outside_search_index()
    report_progress(1, 1, "done")
    return result


def _trainer(options: dict[str, Any]) -> Any:
    from facekit.training import trainer_from_settings

    return trainer_from_settings(**options)


def train_person_matching_job(
    location: dict[str, Any], *, model: str | None = None, out: str | None = None, **trainer_options: Any
) -> dict[str, Any]:
    """`facekit train-matching`: train the person-matching head on the hand labels."""
    from facekit.training import fine_tune_for_person_clustering

    report_progress(0, 1, "train")
    with _open(location, model) as store:
        result = fine_tune_for_person_clustering(
            store, trainer=_trainer(trainer_options), out=Path(out) if out else None
        )
    report_progress(1, 1, "done")
    return result


def reassign_faces_job(
    location: dict[str, Any], *, model: str | None = None, checkpoint: str | None = None
) -> dict[str, Any]:
    """`facekit reassign`: re-assign faces not labeled by hand in the trained space."""
    from facekit.projection import load_projection
    from facekit.training import latest_checkpoint, reassign

    report_progress(0, 1, "reassign")
    with _open(location, model) as store:
        path = Path(checkpoint) if checkpoint else latest_checkpoint(store)
        result = {"checkpoint": str(path), **reassign(store, load_projection(path, model_id=store.model_id))}
    report_progress(1, 1, "done")
    return result


def train_iteration_job(
    location: dict[str, Any],
    *,
    log: str = "reports/iterations.json",
    model: str | None = None,
    head: bool = False,
    **trainer_options: Any,
) -> dict[str, Any]:
    """`facekit train-iteration`: one turn of the loop, scored at each stage, logged."""
    from facekit.training import training_iteration

    report_progress(0, 1, "train-iteration")
    with _open(location, model) as store:
        record = training_iteration(store, log=Path(log), trainer=_trainer(trainer_options), use_head=head)
    report_progress(1, 1, "done")
    return {"log": log, **record}


JOBS = {
    "index": index_job,
    "cluster-dual": cluster_dual_job,
    "train-matching": train_person_matching_job,
    "reassign": reassign_faces_job,
    "train-iteration": train_iteration_job,
}
