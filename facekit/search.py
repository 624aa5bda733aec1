"""Search the store with a photo: every face in it, with its most similar stored faces."""

from __future__ import annotations

import os
from dataclasses import dataclass

from facekit.embedding import Embedder
from facekit.errors import FacekitError
from facekit.images import load_image
from facekit.store import FaceStore
from facekit.types import DetectedFace, SearchHit


@dataclass(frozen=True)
class FaceMatches:
    """One face found in the query photo and its nearest stored faces."""

    face: DetectedFace
    hits: list[SearchHit]


def search_image(
    store: FaceStore, image: str | os.PathLike[str], embedder: Embedder, *, top_k: int = 10
) -> list[FaceMatches]:
    """Detect the faces in `image` and search the store for each (the subject first)."""
    if embedder.model_id != store.model_id:
        raise FacekitError(
            f"the store holds {store.model_id} embeddings; search it with that model, not {embedder.model_id}"
        )
    loaded = load_image(image)
    faces = embedder.detect_and_embed(loaded.pixels)
    if not faces:
        raise FacekitError(f"no face detected in {image}")
    return [FaceMatches(f, store.search(f.embedding, top_k=top_k)) for f in faces]
