"""Automatic assignments that the collection's own groups contradict are taken back."""

from __future__ import annotations

import numpy as np
import pytest

from facekit.dual import DualModeClusterer
from facekit.store import FaceStore
from facekit.store import schema as S

from .test_calibration import fill, space


def with_look_alike(seed: int, photos: int = 16, closeness: float = 0.9) -> tuple[np.ndarray, np.ndarray, int, int]:
    """`space`'s people plus one nobody labels, whose photos centre at cosine `closeness` to a person P's
    (with 12 photos) and lie close together (~0.97). Returns the faces, who is who, P and the look-alike."""
    x, who = space(0.95, 0.85, seed=seed)
    rng = np.random.default_rng(seed)
    person = np.flatnonzero(np.bincount(who) == 12)[0]
    centre = x[who == person].mean(axis=0)
    centre /= np.linalg.norm(centre)
    away = rng.standard_normal(x.shape[1])
    away -= (away @ centre) * centre
    away /= np.linalg.norm(away)
    look_alike = closeness * centre + np.sqrt(1 - closeness**2) * away
    spread = np.sqrt((1 / 0.97 - 1) / x.shape[1])
    extra = look_alike + spread * rng.standard_normal((photos, x.shape[1]))
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.vstack([x, extra.astype(np.float32)]), np.r_[who, np.full(photos, who.max() + 1)], person, who.max() + 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_look_alike_nobody_labeled_keeps_its_photos_together(tmp_path, seed):
    """Without the check, one of the look-alike's photos clears the assigner's threshold for P (each seed)
    and is taken from its own group. A clustering of every face puts it with its own photos, where P has no
    labeled face, so the assignment is revoked; P's own photos stay assigned."""
    x, who, person, look_alike = with_look_alike(seed)
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(x))]
    other = np.flatnonzero(np.bincount(who) == 12)[1]
    with FaceStore(tmp_path / "s", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        named = {}
        for p in (person, other):
            named[p] = store.create_person(f"person {p}").person_id
            store.label_faces([ids[i] for i in np.flatnonzero(who == p)[:3]], named[p])
        summary = DualModeClusterer(store).cluster_all_faces()
        faces = store.scroll_all(with_embeddings=False)
    payload = dict(zip(faces.ids, faces.payloads, strict=True))
    theirs = [payload[ids[i]] for i in np.flatnonzero(who == look_alike)]
    assert all(p.get(S.PERSON_ID) is None for p in theirs)
    assert len({p[S.CLUSTER_ID] for p in theirs}) == 1 and S.is_group(theirs[0][S.CLUSTER_ID])
    assert all(payload[ids[i]].get(S.PERSON_ID) == named[person] for i in np.flatnonzero(who == person))
    assert summary["person_calibration"]["revoked_by_groups"] >= 1
