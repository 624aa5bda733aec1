"""Photos → faces in the store: index(image), index_batch(images), index_directory(dir).

Worker processes detect and embed; only the calling process writes to the store, whole images at a
time, each face carrying how many faces its image holds, so a run cut short is completed by the next.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from facekit.embedding import Embedder, PrecomputedEmbeddings, load_embedder, model_name_for
from facekit.errors import FacekitError
from facekit.images import DEFAULT_MAX_PIXELS, iter_image_files, sha256_file
from facekit.photo_worker import PhotoResult, process_photo, worker_pool, worker_run
from facekit.store import FaceStore
from facekit.store.schema import face_point_id
from facekit.types import FaceRecord, IndexSummary, SkippedImage

log = logging.getLogger(__name__)
AUTO_INDEX_MIN = 20_000  # after a bulk add, the engine's search index is built when this many faces are new

WRITE_BATCH_IMAGES = 64


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled)


def _records(result: PhotoResult, model_id: str) -> list[FaceRecord]:
    assert result.faces is not None
    return [
        FaceRecord(
            face_id=face_point_id(result.sha256, i, model_id),
            image_id=result.sha256,
            image_path=str(Path(result.path).resolve()),
            face_index=i,
            bbox=tuple(round(c, 1) for c in f.bbox),  # type: ignore[arg-type]
            det_score=round(f.det_score, 4),
            quality=f.quality,
            model_id=model_id,
            embedding=f.embedding,
        )
        for i, f in enumerate(result.faces)
    ]


def index_batch(
    store: FaceStore,
    images: Iterable[str | os.PathLike[str]],
    *,
    embedder: Embedder | None = None,
    workers: int = 1,
    progress: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    on_progress: Callable[[int, int], None] | None = None,
) -> IndexSummary:
    """Index image files into `store`; bad files are skipped and reported, never fatal.

    `on_progress(done, total)` is called after each photo processed (a background job's progress).

    Images already complete in the store are not processed again (a re-run adds nothing).
    `workers` > 1 embeds in that many processes; each loads the model by name with the current
    settings (a model object with custom arguments is used as is only with one worker).
    """
    start = time.perf_counter()
    paths = [str(p) for p in images]
    if workers < 1:
        raise FacekitError(f"workers must be at least 1, got {workers}")
    embedder = embedder or load_embedder()
    if embedder.model_id != store.model_id or embedder.dim != store.dim:
        raise FacekitError(
            f"embedder {embedder.model_id} ({embedder.dim}-d) does not match the store's collection "
            f"{store.model_id} ({store.dim}-d); open the store with the embedder's model"
        )
    complete = {k for k, (stored, expected) in store.image_face_counts().items() if stored >= expected > 0}
    skipped: list[SkippedImage] = []
    todo: list[str] = []
    already = 0
    for p in paths:
        try:
            digest = sha256_file(p)
        except OSError:
            todo.append(p)  # load_image reports the precise reason
            continue
        if digest in complete:
            already += 1
        else:
            todo.append(p)
            complete.add(digest)  # the same bytes twice in one run are embedded once
    added = 0
    pending: list[PhotoResult] = []

    def flush() -> None:
        nonlocal added
        records = [r for res in pending for r in _records(res, store.model_id)]
        counts = {res.sha256: len(res.faces or []) for res in pending}
        added += store.add_faces(records, image_face_counts=counts)
        pending.clear()

    with _progress(len(todo), f"indexing ({store.model_id})", progress) as bar:
        for done, result in enumerate(_results(todo, embedder, workers, max_pixels), start=1):
            bar.update(1)
            if on_progress is not None:
                on_progress(done, len(todo))
            if result.faces is None:
                skipped.append(SkippedImage(result.path, result.reason or "unknown error"))
                log.info("skipped %s: %s", result.path, result.reason)
                continue
            pending.append(result)
            if len(pending) >= WRITE_BATCH_IMAGES:
                flush()
        flush()
    store.build_search_index(min_unindexed=AUTO_INDEX_MIN)
    return IndexSummary(
        images=len(paths),
        faces_added=added,
        faces_total=store.count(),
        skipped=skipped,
        seconds=time.perf_counter() - start,
        already_indexed=already,
    )


def _results(paths: list[str], embedder: Embedder, workers: int, max_pixels: int) -> Iterator[PhotoResult]:
    if workers == 1 or len(paths) < 2:
        for p in paths:
            yield process_photo(embedder, p, max_pixels)
        return
    with worker_pool(workers, model_name_for(embedder.model_id), max_pixels) as pool:
        yield from pool.imap(worker_run, paths, chunksize=4)


def index(store: FaceStore, image: str | os.PathLike[str], **kwargs) -> IndexSummary:
    """Index one image (see `index_batch`)."""
    return index_batch(store, [image], **kwargs)


def index_directory(
    store: FaceStore, directory: str | os.PathLike[str], *, recursive: bool = True, **kwargs
) -> IndexSummary:
    """Index every file in a folder (and its subfolders when `recursive`); see `index_batch`."""
    if not Path(directory).is_dir():
        raise FacekitError(f"{directory} is not a folder")
    return index_batch(store, iter_image_files([directory], recursive=recursive), **kwargs)


def import_embeddings(store: FaceStore, data: PrecomputedEmbeddings) -> int:
    """Store embeddings computed elsewhere, one face per row; returns how many faces were new.

    Rows of the same path are that photo's faces in order. The image id is the photo's content hash
    when the file is here, else a hash of its path (feature-only datasets).
    """
    if data.model_id != store.model_id or data.embeddings.shape[1] != store.dim:
        raise FacekitError(
            f"embeddings of {data.model_id} ({data.embeddings.shape[1]}-d) do not fit the store's collection "
            f"{store.model_id} ({store.dim}-d)"
        )
    per_path: Counter[str] = Counter()
    image_ids: dict[str, str] = {}
    records = []
    for i, path in enumerate(data.paths):
        if path not in image_ids:
            p = Path(path)
            image_ids[path] = sha256_file(p) if p.is_file() else "path:" + hashlib.sha256(path.encode()).hexdigest()
        face_index = per_path[path]
        per_path[path] += 1
        bbox = tuple(float(c) for c in data.bboxes[i]) if data.bboxes is not None else None
        records.append(
            FaceRecord(
                face_id=face_point_id(image_ids[path], face_index, data.model_id),
                image_id=image_ids[path],
                image_path=path,
                face_index=face_index,
                bbox=bbox,  # type: ignore[arg-type]
                det_score=None,
                quality=None,
                model_id=data.model_id,
                embedding=data.embeddings[i],
            )
        )
    added = store.add_faces(records, image_face_counts={image_ids[p]: n for p, n in per_path.items()})
    store.build_search_index(min_unindexed=AUTO_INDEX_MIN)
    return added
