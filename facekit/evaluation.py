"""Scoring a store against folder-name truth (`<root>/<Person_Name>/<photo>`), and the simulated user
who labels a few photos per person: the protocol of the demo and the benchmarks."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facekit.cluster import knn_graph
from facekit.dual import IN_MEMORY, READ_FIELDS, DualModeClusterer
from facekit.errors import CheckpointError
from facekit.metrics import assignment_scores, clustering_scores, link_precision
from facekit.projection import Projection, load_projection
from facekit.store import FaceStore, StoredFaces
from facekit.store import schema as S

_FIELDS = [S.IMAGE_PATH, S.FACE_INDEX, S.PERSON_ID, S.CLUSTER_ID, S.ASSIGNMENT_SOURCE]


def folder_truth(image_path: str) -> str:
    """The true identity of a face: the name of its image's parent folder."""
    return Path(image_path).parent.name


def is_main_face(payload: dict[str, Any]) -> bool:
    """Whether a face is its photo's main face (face_index 0, `main_face_order`): the one its folder names."""
    return int(payload.get(S.FACE_INDEX, 0)) == 0


def label_from_folders(
    store: FaceStore, *, min_photos: int = 5, per_person: int = 3, only: Collection[str] | None = None
) -> dict[str, int]:
    """Label, by folder name, the main face (face_index 0, `main_face_order`) of the first `per_person` photos
    (by path) of every folder holding at least `min_photos` photos with a face (of the folders named in
    `only`, when given: the other people stay unknown).

    Persons are created as needed; faces already labeled by hand keep their label. Returns the people
    labeled, the faces this call asked for (`faces_labeled`), and what the store now holds: every face
    labeled by hand (`hand_labeled`) and the most any person has (`max_per_person`), which exceeds
    `per_person` when an earlier run labeled more.
    """
    if min_photos < 1 or per_person < 1:
        raise ValueError(f"min_photos and per_person must be >= 1, got {min_photos} and {per_person}")
    faces = store.scroll_all(with_embeddings=False, fields=_FIELDS)
    main_faces: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for face_id, pl in zip(faces.ids, faces.payloads, strict=True):
        if is_main_face(pl):
            main_faces[folder_truth(pl[S.IMAGE_PATH])].append((pl[S.IMAGE_PATH], face_id, pl))
    people, labeled = 0, 0
    for name in sorted(main_faces):
        photos = sorted(main_faces[name], key=lambda item: item[0])
        if len(photos) < min_photos or (only is not None and name not in only):
            continue
        person = store.ensure_person(name)
        people += 1
        chosen = [fid for _, fid, pl in photos[:per_person] if pl.get(S.ASSIGNMENT_SOURCE) != S.SOURCE_MANUAL]
        store.label_faces(chosen, person.person_id)
        labeled += min(per_person, len(photos))
    now = store.scroll_all(with_embeddings=False, fields=[S.PERSON_ID, S.ASSIGNMENT_SOURCE])
    per = Counter(p[S.PERSON_ID] for p in now.payloads if S.is_hand_labeled(p))
    return {
        "people": people,
        "faces_labeled": labeled,
        "hand_labeled": sum(per.values()),
        "max_per_person": max(per.values(), default=0),
    }


def read_faces(store: FaceStore, *, with_embeddings: bool = True) -> StoredFaces:
    """Every face with what scoring and a dry-run clustering need (embeddings, paths, labels)."""
    return store.scroll_all(with_embeddings=with_embeddings, fields=_FIELDS + READ_FIELDS)


def evaluate(store: FaceStore) -> dict[str, Any]:
    """Clustering and assignment scores of the store, truth = each face's image folder (see `score`)."""
    faces = read_faces(store)  # with embeddings: the link precision reads them
    scores = score(faces, [p.get(S.PERSON_ID) for p in faces.payloads], [p.get(S.CLUSTER_ID) for p in faces.payloads])
    last = store.history.run_marker().get("summary") or {}
    scores["last_pass"] = {  # what the clustering pass behind these labels chose, and why
        k: last.get(k)
        for k in (
            "unknown_method",
            "unknown_threshold",
            "unknown_threshold_source",
            "unknown_threshold_from_data",
            "unknown_link_precision",
        )
    }
    scores["last_pass"]["measured_link_precision"] = measured_link_precision(faces, last, store.model_id)
    return scores


LINK_NEIGHBOURS = 30  # as a pass's kNN graph


def measured_link_precision(faces: StoredFaces, summary: dict[str, Any], model_id: str) -> dict[str, Any]:
    """What the link precision a pass estimates (`unknown_link_precision`, for the faces it left unknown) is with
    folder truth: the share of one person's pairs among the pairs of faces now unknown (no person; each photo's main
    face) that its threshold links among their `LINK_NEIGHBOURS` nearest, in the pass's space (`faces`: the store's,
    with embeddings; `model_id`: its model, which a saved head must fit). `not_measured` says why where it cannot be."""
    threshold, space = summary.get("unknown_threshold"), summary.get("projection")
    if threshold is None:
        return {"not_measured": "no finished clustering pass: run `facekit cluster-dual`"}
    if space == IN_MEMORY:
        return {"not_measured": "the pass ran in a trained head that was never saved to a file"}
    unknown = [i for i, pl in enumerate(faces.payloads) if is_main_face(pl) and not pl.get(S.PERSON_ID)]
    if len(unknown) < 2:
        return {"not_measured": f"{len(unknown)} unknown faces: nothing to link"}
    x = faces.embeddings[unknown]
    if space is not None:
        try:
            x = load_projection(space, model_id=model_id).transform(x)
        except CheckpointError as exc:
            return {"not_measured": f"the pass's head cannot be read: {exc}"}
    truth = np.array([folder_truth(faces.payloads[i].get(S.IMAGE_PATH, "")) for i in unknown])
    graph = knn_graph(x, min(LINK_NEIGHBOURS, len(unknown) - 1))
    precision, pairs = link_precision(graph.indices, graph.sims, truth, threshold)
    return {"precision": precision, "pairs": pairs, "faces": len(unknown), "threshold": threshold}


def score(faces: StoredFaces, person_ids: Sequence[str | None], cluster_ids: Sequence[str | None]) -> dict[str, Any]:
    """Scores of one labeling of `faces` (a person id and a cluster id per face), truth = image folder.

    Only each photo's main face (face_index 0, `main_face_order`) is scored: the folder names it, and other
    faces in the photo are of unknown people. A face's predicted identity is its person, else its
    cluster (noise clusters count as singletons), else itself alone. Assignment scores the faces not
    labeled by hand: precision of automatic person assignments, recall over faces of labeled people,
    false accepts over faces of people nobody labeled. A person stands for the folder most of their
    hand-labeled faces come from.
    """
    main = [i for i, pl in enumerate(faces.payloads) if is_main_face(pl)]
    if not main:
        raise ValueError("the store holds no faces to evaluate")
    # the folder names the photo's main face only; other faces in it are strangers
    payloads = [faces.payloads[i] for i in main]
    person_ids = [person_ids[i] for i in main]
    cluster_ids = [cluster_ids[i] for i in main]
    truth = [folder_truth(pl.get(S.IMAGE_PATH, "")) for pl in payloads]
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for t, pl in zip(truth, payloads, strict=True):
        if S.is_hand_labeled(pl):
            votes[pl[S.PERSON_ID]][t] += 1
    person_identity = {pid: c.most_common(1)[0][0] for pid, c in votes.items()}
    predicted: list[str | None] = []
    for person, cluster in zip(person_ids, cluster_ids, strict=True):
        if person:
            predicted.append("person:" + person)
        elif S.is_group(cluster):
            predicted.append("cluster:" + str(cluster))
        else:
            predicted.append(None)
    known_identities = set(person_identity.values())
    auto = [i for i, pl in enumerate(payloads) if pl.get(S.ASSIGNMENT_SOURCE) != S.SOURCE_MANUAL]
    assigned_as = [person_identity.get(person_ids[i] or "", person_ids[i]) for i in auto]
    assignment = assignment_scores([truth[i] for i in auto], assigned_as, [truth[i] in known_identities for i in auto])
    strangers = [i for i, t in enumerate(truth) if t not in known_identities]
    return {
        "faces": len(payloads),
        "clustering": clustering_scores(truth, predicted),
        # the faces of people nobody labeled: how well the unknown groups find them
        "unknown_people_clustering": clustering_scores([truth[i] for i in strangers], [predicted[i] for i in strangers])
        if strangers
        else None,
        "assignment": assignment,
    }


def _labeled_people(faces: StoredFaces) -> set[str]:
    """The hand-labeled people; fewer than 2 is an error that says what to do."""
    people = {p[S.PERSON_ID] for p in faces.payloads if S.is_hand_labeled(p)}
    if len(people) < 2:
        raise ValueError(
            f"a threshold sweep needs hand-labeled faces of at least 2 people, found {len(people)}: label some "
            "first (`facekit label-from-folders`, the labeling panel, or `facekit name-cluster`)"
        )
    return people


def threshold_grid(
    faces: StoredFaces, *, projection: Projection | None = None, steps: int = 11, low: float = 0.25, high: float = 0.98
) -> list[float]:
    """Person thresholds worth sweeping, read off the data rather than one model's scale: `steps` values
    from the `low` to the `high` quantile of each unlabeled face's cosine to its nearest hand-labeled
    person's centroid (dlib's land near 0.9-0.98, MobileFaceNet's near 0.3-0.85)."""
    people = sorted(_labeled_people(faces))
    x = faces.embeddings if projection is None else projection.transform(faces.embeddings)
    labeled = np.array([S.is_hand_labeled(p) for p in faces.payloads], dtype=bool)
    if labeled.all():
        raise ValueError(
            "a threshold grid needs unlabeled faces to compare with the labeled ones: every face is labeled"
        )
    who = np.array([p.get(S.PERSON_ID) for p in faces.payloads], dtype=object)
    centroids = np.stack([x[labeled & (who == person)].mean(axis=0) for person in people])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    best = (x[~labeled] @ centroids.T).max(axis=1)
    lo, hi = np.quantile(best, [low, high])
    return sorted({round(float(t), 3) for t in np.linspace(lo, hi, steps)})


def threshold_sweep(
    faces: StoredFaces,
    *,
    model_id: str,
    thresholds: Sequence[float | None],
    unknown_method: str | None = None,
    unknown_min_size: int | None = None,
    projection: Projection | None = None,
) -> list[dict[str, Any]]:
    """Dual-mode clustering of `faces` (from `read_faces`) at each person threshold, scored against
    folder truth, nothing written: one row per threshold. `None` in `thresholds` is facekit's
    calibrated default (a threshold fit to the labels, with a runner-up margin)."""
    _labeled_people(faces)
    rows = []
    projected: StoredFaces | None = None  # the same for every threshold: projected once
    with FaceStore(":memory:", model_id=model_id, dim=faces.embeddings.shape[1]) as scratch:  # the real one untouched
        for t in thresholds:
            clusterer = DualModeClusterer(
                scratch,
                person_threshold=t,
                unknown_method=unknown_method,
                unknown_min_size=unknown_min_size,
                projection=projection,
            )
            if projected is None:
                projected = clusterer.project(faces)
            result = clusterer.predict(projected)
            scores = score(faces, result.person_ids, result.cluster_ids)
            unknown = scores["unknown_people_clustering"] or {}
            rows.append(
                {
                    "person_threshold": round(float(result.calibration.get("threshold", t or 0.0)), 4),
                    "calibrated": t is None,
                    "unknown_method": clusterer.unknown_method,
                    "unknown_min_size": clusterer.unknown_min_size,
                    "precision": scores["assignment"]["precision"],
                    "recall": scores["assignment"]["recall"],
                    "false_accept": scores["assignment"]["false_accept"],
                    "bcubed_f": scores["clustering"]["bcubed_f"],
                    "unknown_bcubed_f": unknown.get("bcubed_f"),
                    "revoked_by_groups": result.calibration.get("revoked_by_groups", 0),
                    "revoked_unlinked": result.calibration.get("revoked_unlinked", 0),
                    "unknown_threshold": clusterer.link_.threshold if clusterer.link_ else None,
                    "unknown_threshold_method": clusterer.link_.method if clusterer.link_ else None,
                    "unknown_threshold_precision": clusterer.link_.estimated_precision if clusterer.link_ else None,
                    "unknown_threshold_reason": clusterer.link_.reason if clusterer.link_ else None,
                    "unknown_link_precision": (clusterer.linked_precision_ or {}).get("estimated_precision"),
                }
            )
    return rows


def recommend_threshold(rows: Sequence[dict[str, Any]], target_precision: float = 0.995) -> dict[str, Any] | None:
    """The swept row (not the calibrated one) with the best recall among those reaching
    `target_precision`; None when no threshold reaches it."""
    ok = [r for r in rows if not r.get("calibrated") and r["precision"] >= target_precision]
    return max(ok, key=lambda r: (r["recall"], -r["person_threshold"]), default=None)
