"""Embeddings computed elsewhere (research datasets ship features), read from an .npz file."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from facekit.embedding.base import l2_normalize
from facekit.errors import FacekitError


@dataclass(frozen=True)
class PrecomputedEmbeddings:
    """Validated contents of an embeddings file: unit-length float32 rows, one image path each."""

    embeddings: np.ndarray
    paths: list[str]
    bboxes: np.ndarray | None
    model_id: str


def _model_id_for(dim: int) -> str:
    return f"precomputed_{dim}d"


def read_embeddings_npz(path: str | os.PathLike[str], *, model_id: str | None = None) -> PrecomputedEmbeddings:
    """Read `embeddings` (N x d) and `paths` (N), optional `bboxes` (N x 4) and `model_id`.

    Rows are L2-normalised. Raises `FacekitError` saying which key is missing or misshapen.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FacekitError(f"cannot read embeddings file {path}: {exc}. Save it with numpy.savez.") from None
    for key in ("embeddings", "paths"):
        if key not in data:
            raise FacekitError(f"{path}: key {key!r} missing; expected embeddings (N x d) and paths (N)")
    emb = np.asarray(data["embeddings"])
    paths = [str(p) for p in np.asarray(data["paths"]).tolist()]
    if emb.ndim != 2 or emb.shape[0] != len(paths) or emb.shape[1] < 2:
        raise FacekitError(f"{path}: embeddings must be N x d with N = len(paths); got {emb.shape} and {len(paths)}")
    if not np.isfinite(emb).all():
        raise FacekitError(f"{path}: embeddings hold NaN or infinite values")
    zero = np.flatnonzero(~np.any(emb != 0, axis=1))
    if len(zero):
        raise FacekitError(
            f"{path}: {len(zero)} embedding row(s) are all zeros (e.g. row {zero[0]}, {paths[zero[0]]}): a zero vector "
            "has no direction to compare; drop those rows or recompute them"
        )
    bboxes = None
    if "bboxes" in data:
        bboxes = np.asarray(data["bboxes"], dtype=np.float32)
        if bboxes.shape != (len(paths), 4):
            raise FacekitError(f"{path}: bboxes must be N x 4, got {bboxes.shape}")
    if model_id is None:
        model_id = str(data["model_id"]) if "model_id" in data else _model_id_for(emb.shape[1])
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", model_id):
        raise FacekitError(f"model_id {model_id!r} may only hold letters, digits, '_', '.', '-'")
    return PrecomputedEmbeddings(l2_normalize(emb), paths, bboxes, model_id)
