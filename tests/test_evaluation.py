"""Scoring helpers on real faces: the person-threshold grid follows each model's own similarity scale."""

from __future__ import annotations

import pytest

from facekit.evaluation import label_from_folders, read_faces, threshold_grid
from facekit.indexing import index_batch
from facekit.store import FaceStore

from .conftest import DUAL_PEOPLE, DUAL_PER_PERSON


def test_threshold_grid_is_read_off_each_model(store, tmp_path, lfw, mobilefacenet):
    with pytest.raises(ValueError, match="hand-labeled faces of at least 2 people, found 0"):
        threshold_grid(read_faces(store))
    label_from_folders(store, min_photos=5, per_person=2)
    dlib_grid = threshold_grid(read_faces(store))
    photos = [p for name in DUAL_PEOPLE for p in sorted((lfw / name).glob("*.jpg"))[:DUAL_PER_PERSON]]
    with FaceStore(tmp_path / "mfn", model_id=mobilefacenet.model_id, dim=mobilefacenet.dim) as mfn_store:
        index_batch(mfn_store, photos, embedder=mobilefacenet, progress=False)
        label_from_folders(mfn_store, min_photos=5, per_person=2)
        mfn_grid = threshold_grid(read_faces(mfn_store))
    for grid in (dlib_grid, mfn_grid):
        assert len(grid) >= 5 and grid == sorted(grid) and len(set(grid)) == len(grid)
    # dlib's same-person cosines sit near 0.95, MobileFaceNet's near 0.8: the grids do not even overlap
    assert dlib_grid[0] > 0.9 and mfn_grid[-1] < dlib_grid[0]
