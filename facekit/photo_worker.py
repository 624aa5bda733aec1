"""Indexing's worker processes: the work on one photo (read it, detect and embed its faces) and the
pool that runs it.

A worker imports only this module and its model. Spawned processes would also re-run the parent's main
module (the `facekit` script, a benchmark, a kernel launcher) and with it the store client and
scikit-learn, before their first photo; `worker_pool` starts them without it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.pool import Pool

from facekit.embedding import Embedder, load_embedder
from facekit.errors import ImageError
from facekit.images import DEFAULT_MAX_PIXELS, load_image
from facekit.types import DetectedFace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoResult:
    """A photo's faces, or why it has none (`faces` is None: skipped, for `reason`)."""

    path: str
    sha256: str
    faces: list[DetectedFace] | None
    reason: str | None = None


def process_photo(embedder: Embedder, path: str, max_pixels: int) -> PhotoResult:
    """Read, detect and embed one photo; a bad file or a model failure is a skipped photo, never fatal."""
    try:
        image = load_image(path, max_pixels=max_pixels)
    except ImageError as exc:
        return PhotoResult(path, "", None, exc.reason)
    try:
        faces = embedder.detect_and_embed(image.pixels)
    except Exception as exc:  # a model failing on one odd image must not stop the batch
        log.exception("embedding failed for %s", path)
        return PhotoResult(path, image.sha256, None, f"face model failed: {type(exc).__name__}: {exc}")
    if not faces:
        return PhotoResult(path, image.sha256, None, "no face detected")
    return PhotoResult(path, image.sha256, faces)


# Worker-process state: each worker loads the model once.
_worker_embedder: Embedder | None = None
_worker_max_pixels = DEFAULT_MAX_PIXELS


def worker_init(model_name: str, max_pixels: int, threads: int) -> None:
    """A worker process's start: load the model by name (once)."""
    global _worker_embedder, _worker_max_pixels
    # N workers share the cores: each ONNX session gets its share, not one thread a core each
    os.environ.setdefault("FACEKIT_ONNX_THREADS", str(threads))
    _worker_embedder = load_embedder(model_name)
    _worker_max_pixels = max_pixels


def worker_run(path: str) -> PhotoResult:
    """A worker process's task: one photo."""
    assert _worker_embedder is not None
    return process_photo(_worker_embedder, path, _worker_max_pixels)


@contextlib.contextmanager
def worker_pool(workers: int, model_name: str, max_pixels: int) -> Iterator[Pool]:
    """`workers` spawned processes, each with the model loaded and its share of the cores."""
    ctx = mp.get_context("spawn")  # fork would copy a live store client and model into each worker
    threads = max(1, (os.cpu_count() or 1) // workers)
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")  # nothing for the workers to re-run
    try:
        pool = ctx.Pool(workers, initializer=worker_init, initargs=(model_name, max_pixels, threads))
    finally:
        sys.modules["__main__"] = main
    with pool:
        yield pool
