"""Training data: the hand-labeled faces of a store, grouped by person, and the dataset that feeds
P×K batches (pytorch-metric-learning's MPerClassSampler draws from its labels)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from facekit.assign.pseudo_labels import PSEUDO_FIELDS, stored_pseudo_labels
from facekit.store import FaceStore
from facekit.store import schema as S


@dataclass(frozen=True)
class LabeledFaces:
    """Hand-labeled faces: ids, (N, d) base embeddings, and each face's person id."""

    face_ids: list[str]
    embeddings: np.ndarray
    person_ids: list[str]

    @property
    def snapshot_hash(self) -> str:
        """sha256 of the sorted (face, person) pairs: which labels a head was trained on."""
        h = hashlib.sha256()
        for face_id, person in sorted(zip(self.face_ids, self.person_ids, strict=True)):
            h.update(f"{face_id}\t{person}\n".encode())
        return h.hexdigest()

    def by_person(self) -> dict[str, list[str]]:
        """Face ids per person id."""
        out: dict[str, list[str]] = {}
        for face_id, person in zip(self.face_ids, self.person_ids, strict=True):
            out.setdefault(person, []).append(face_id)
        return out


def get_labeled_faces_by_person(store: FaceStore) -> LabeledFaces:
    """Every face labeled with a person by hand, with its embedding (the spec's name)."""
    faces = store.scroll_labeled()
    return LabeledFaces(list(faces.ids), faces.embeddings, [str(p[S.PERSON_ID]) for p in faces.payloads])


def get_pseudo_labeled_faces(store: FaceStore) -> LabeledFaces:
    """Every face whose pseudo-label counts (`facekit.assign.pseudo_labels`), with its embedding."""
    faces = store.scroll_all(fields=PSEUDO_FIELDS)
    rows = stored_pseudo_labels(faces)
    return LabeledFaces(
        [faces.ids[i] for i in rows],
        faces.embeddings[rows],
        [str(faces.payloads[i][S.PSEUDO_PERSON_ID]) for i in rows],
    )


class TripletFaceDataset:
    """Map-style dataset of (embedding, person code) for a torch DataLoader.

    `labels` holds the integer code of each face's person, for `MPerClassSampler`; the triplets
    themselves are mined in each batch.

    >>> ds = TripletFaceDataset(np.eye(3, dtype=np.float32), ["a", "b", "a"])
    >>> len(ds), ds.labels.tolist(), ds.people
    (3, [0, 1, 0], ['a', 'b'])
    """

    def __init__(self, embeddings: np.ndarray, person_ids: list[str]) -> None:
        if len(embeddings) != len(person_ids):
            raise ValueError(f"{len(embeddings)} embeddings but {len(person_ids)} person ids")
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        people, codes = np.unique(np.asarray(person_ids, dtype=object).astype(str), return_inverse=True)
        self.people: list[str] = people.tolist()
        self.labels = codes.astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.embeddings[i], int(self.labels[i])
