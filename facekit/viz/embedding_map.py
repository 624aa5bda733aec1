"""The points of a UMAP map of face embeddings: 2-D coordinates, groups, hover text, thumbnails."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from facekit.store import StoredFaces
from facekit.store import schema as S
from facekit.viz.sprite import Sprite, face_sprite

KNOWN, UNKNOWN, NOISE = "known person", "unknown cluster", "noise"


def umap_coordinates(
    embeddings: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, random_state: int = 0
) -> np.ndarray:
    """(N, 2) UMAP coordinates of L2-normalised embeddings (cosine metric), seeded."""
    try:
        import umap
    except ImportError:
        raise ImportError("UMAP maps need umap-learn: pip install 'facekit[notebooks]'") from None
    x = np.asarray(embeddings, dtype=np.float32)
    if len(x) < 3:
        raise ValueError(f"a UMAP map needs at least 3 faces, got {len(x)}")
    reducer = umap.UMAP(
        n_neighbors=min(n_neighbors, len(x) - 1),
        min_dist=min_dist,
        metric="cosine",
        random_state=random_state,
        n_jobs=1,  # seeded UMAP runs on one thread anyway; saying so silences its warning
    )
    return reducer.fit_transform(x).astype(np.float32)


@dataclass
class MapData:
    """One row per face: where it lies, which group it is in, what the hover shows."""

    x: np.ndarray
    y: np.ndarray
    face_ids: list[str]
    kinds: list[str]  # KNOWN, UNKNOWN or NOISE
    groups: list[str]  # person name, cluster id, or "noise"
    group_sizes: list[int]
    hover: list[str]
    sprite: Sprite | None = None  # the faces' thumbnails (face i: sprite.tiles[i]), None when not asked for

    def __len__(self) -> int:
        return len(self.face_ids)

    def counts(self) -> dict[str, int]:
        """Faces per kind."""
        return dict(Counter(self.kinds))


def embedding_map_data(
    faces: StoredFaces,
    person_names: dict[str, str],
    *,
    coordinates: np.ndarray | None = None,
    max_faces: int = 5000,
    thumbnails: bool = True,
    thumbnail_size: int = 40,
    random_state: int = 0,
) -> MapData:
    """The map of `faces` (with embeddings and person/cluster payloads) coloured by person or cluster.

    Above `max_faces`, a seeded random sample is drawn (UMAP of 10K faces takes ~50 s on 2 cores).
    `coordinates` skips UMAP (e.g. to reuse one layout across iterations). Thumbnails go into one
    sprite sheet of at most `thumbnail_size` px tiles (`facekit.viz.sprite`).
    """
    n = len(faces.ids)
    rows = np.arange(n)
    if coordinates is None and n > max_faces:
        rows = np.sort(np.random.default_rng(random_state).choice(n, max_faces, replace=False))
    xy = coordinates if coordinates is not None else umap_coordinates(faces.embeddings[rows], random_state=random_state)
    if len(xy) != len(rows):
        raise ValueError(f"{len(xy)} coordinates for {len(rows)} faces")
    kinds, groups = [], []
    for i in rows:
        p = faces.payloads[i]
        person, cluster = p.get(S.PERSON_ID), p.get(S.CLUSTER_ID)
        if person:
            kinds.append(KNOWN)
            groups.append(person_names.get(person, person))
        elif S.is_group(cluster):
            kinds.append(UNKNOWN)
            groups.append(str(cluster))
        else:
            kinds.append(NOISE)
            groups.append(NOISE)
    sizes = Counter(groups)
    hover = []
    for i, kind, group in zip(rows, kinds, groups, strict=True):
        p = faces.payloads[i]
        source = p.get(S.ASSIGNMENT_SOURCE) or "-"
        hover.append(
            f"<b>{group}</b> ({kind}, {sizes[group]} faces)<br>face {faces.ids[i][:8]} · {source}<br>"
            f"{str(p.get(S.IMAGE_PATH, '')).rsplit('/', 1)[-1]}"
        )
    sprite = None
    if thumbnails:
        sprite = face_sprite(
            [(faces.payloads[i].get(S.IMAGE_PATH, ""), faces.payloads[i].get(S.BBOX)) for i in rows],
            tile=thumbnail_size,
        )
    return MapData(
        x=xy[:, 0],
        y=xy[:, 1],
        face_ids=[faces.ids[i] for i in rows],
        kinds=kinds,
        groups=groups,
        group_sizes=[sizes[g] for g in groups],
        hover=hover,
        sprite=sprite,
    )
