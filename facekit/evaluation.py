"""Scoring a store against folder-name truth (`<root>/<Person_Name>/<photo>`), and the simulated user
who labels a few photos per person: the protocol of the demo and the benchmarks."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from facekit.metrics import assignment_scores, clustering_scores
from facekit.store import FaceStore
from facekit.store import schema as S

_FIELDS = [S.IMAGE_PATH, S.FACE_INDEX, S.PERSON_ID, S.CLUSTER_ID, S.ASSIGNMENT_SOURCE]


def folder_truth(image_path: str) -> str:
    """The true identity of a face: the name of its image's parent folder."""
    return Path(image_path).parent.name


def label_from_folders(store: FaceStore, *, min_photos: int = 5, per_person: int = 3) -> dict[str, int]:
    """Label, by folder name, the main face (largest, face_index 0) of the first `per_person` photos
    (by path) of every folder holding at least `min_photos` photos with a face.

    Persons are created as needed; faces already labeled by hand keep their label.
    """
    if min_photos < 1 or per_person < 1:
        raise ValueError(f"min_photos and per_person must be >= 1, got {min_photos} and {per_person}")
    faces = store.scroll_all(with_embeddings=False, fields=_FIELDS)
    main_faces: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for face_id, pl in zip(faces.ids, faces.payloads, strict=True):
        if int(pl.get(S.FACE_INDEX, 0)) == 0:
            main_faces[folder_truth(pl[S.IMAGE_PATH])].append((pl[S.IMAGE_PATH], face_id, pl))
    people, labeled = 0, 0
    for name in sorted(main_faces):
        photos = sorted(main_faces[name], key=lambda item: item[0])
        if len(photos) < min_photos:
            continue
        person = store.ensure_person(name)
        people += 1
        chosen = [fid for _, fid, pl in photos[:per_person] if pl.get(S.ASSIGNMENT_SOURCE) != S.SOURCE_MANUAL]
        store.label_faces(chosen, person.person_id)
        labeled += min(per_person, len(photos))
    return {"people": people, "faces_labeled": labeled}


def evaluate(store: FaceStore) -> dict[str, Any]:
    """Clustering and assignment scores of the store, truth = each face's image folder.

    A face's predicted identity is its person, else its cluster (noise clusters count as singletons),
    else itself alone. Assignment scores the faces not labeled by hand: precision of automatic person
    assignments, recall over faces of labeled people, false accepts over faces of people nobody labeled.
    A person stands for the folder most of their hand-labeled faces come from.
    """
    faces = store.scroll_all(with_embeddings=False, fields=_FIELDS)
    if not faces.ids:
        raise ValueError("the store holds no faces to evaluate")
    truth = [folder_truth(pl.get(S.IMAGE_PATH, "")) for pl in faces.payloads]
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for t, pl in zip(truth, faces.payloads, strict=True):
        if S.is_hand_labeled(pl):
            votes[pl[S.PERSON_ID]][t] += 1
    person_identity = {pid: c.most_common(1)[0][0] for pid, c in votes.items()}
    predicted: list[str | None] = []
    for pl in faces.payloads:
        person, cluster = pl.get(S.PERSON_ID), pl.get(S.CLUSTER_ID)
        if person:
            predicted.append("person:" + person)
        elif S.is_group(cluster):
            predicted.append("cluster:" + str(cluster))
        else:
            predicted.append(None)
    known_identities = set(person_identity.values())
    auto = [i for i, pl in enumerate(faces.payloads) if pl.get(S.ASSIGNMENT_SOURCE) != S.SOURCE_MANUAL]
    assigned_as = [
        person_identity.get(faces.payloads[i].get(S.PERSON_ID) or "", faces.payloads[i].get(S.PERSON_ID)) for i in auto
    ]
    assignment = assignment_scores([truth[i] for i in auto], assigned_as, [truth[i] in known_identities for i in auto])
    strangers = [i for i, t in enumerate(truth) if t not in known_identities]
    return {
        "faces": len(faces.ids),
        "clustering": clustering_scores(truth, predicted),
        # the faces of people nobody labeled: how well the unknown groups find them
        "unknown_people_clustering": clustering_scores([truth[i] for i in strangers], [predicted[i] for i in strangers])
        if strangers
        else None,
        "assignment": assignment,
    }
