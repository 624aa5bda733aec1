"""Pseudo-labels: confident automatic assignments that join their person's prototype (self-training).

A few hand labels a person make a poor prototype; the store holds many more photos of the same people.
Each round fits the assigner on the hand labels plus the last round's pseudo-labels, and the faces it
accepts under a stricter bar (a higher target precision, calibrated on the hand labels only) become the
new pseudo-labels. The set is recomputed from scratch every round, so a wrong one does not stay. A
guard refuses a round that lowers the assigner's leave-one-out recall on the hand labels or breaks its
precision bound (wrong pseudo-labels pull prototypes away from the hand-labeled faces, and that shows
there first), and ends the rounds once that recall stops rising. Given the collection's link threshold, a face that
links to none of its person's faces (hand labels and the round's other pseudo-labels) is no pseudo-label, as a pass
would not keep it as an assignment (`facekit.assign.group_veto.unlinked_assignments`): in family albums (dlib, 3
labels a person) two draws' 11 and 17 wrong pseudo-labels held 9 and 17 such faces, and over 8 albums the link takes
the wrong ones from 95 to 24 of ~5,000 (`make bench-assignment`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facekit.assign.group_veto import unlinked_assignments
from facekit.assign.person_assigner import PersonAssigner
from facekit.cluster.knn import KNN_K, KnnGraph, knn_graph
from facekit.projection import Projection
from facekit.store import FaceStore, StoredFaces
from facekit.store import schema as S

log = logging.getLogger(__name__)

# A pseudo-label counts this much in its person's prototype; a hand label counts 1.
PSEUDO_WEIGHT = 0.5
# The bar for a pseudo-label: its error rate is this many times smaller than the assignment target's.
STRICTNESS = 5.0
MAX_ROUNDS = 3
# With pseudo-labels in the prototypes, false accepts are bounded this many standard errors above their count
# (one without): on LFW (dlib, 3 labels a person) strangers passed 1.8x as often as the hand labels' count
# said once pseudo-labels had joined the prototypes, and 1.5 sigma brought precision back to 0.995; at 1.75
# the bound could no longer be met at 8 labels a person.
PSEUDO_SIGMAS = 1.5


@dataclass
class PseudoLabels:
    """Rows of the pool that got a pseudo-label, their person and score, and what each round did."""

    rows: np.ndarray
    person_ids: np.ndarray
    scores: np.ndarray
    rounds: list[dict[str, Any]] = field(default_factory=list)


def fit_assigner(
    hand_x: np.ndarray,
    hand_ids: np.ndarray,
    pool: np.ndarray,
    labels: PseudoLabels | None,
    *,
    target_precision: float,
    weight: float = PSEUDO_WEIGHT,
    unknown_ratio: float | None = None,
) -> PersonAssigner:
    """A PersonAssigner on the hand labels plus `labels` (weighted), calibrated on the hand labels only;
    the unknown ratio is estimated from `pool` (every face not labeled by hand) unless given."""
    if labels is None or not len(labels.rows):
        return PersonAssigner(target_precision=target_precision, unknown_ratio=unknown_ratio).fit(
            hand_x, hand_ids, unlabeled=pool
        )
    assigner = PersonAssigner(target_precision=target_precision, unknown_ratio=unknown_ratio, sigmas=PSEUDO_SIGMAS)
    x = np.concatenate([hand_x, pool[labels.rows]])
    ids = np.concatenate([np.asarray(hand_ids, dtype=object), labels.person_ids.astype(object)])
    weights = np.r_[np.ones(len(hand_x)), np.full(len(labels.rows), weight)]
    calibrate = np.r_[np.ones(len(hand_x), bool), np.zeros(len(labels.rows), bool)]
    return assigner.fit(x, ids, weights=weights, calibrate=calibrate, unlabeled=pool)


def pseudo_label(
    hand_x: np.ndarray,
    hand_ids: Any,
    pool: np.ndarray,
    *,
    target_precision: float = 0.995,
    rejected: list[set[str]] | None = None,
    images: np.ndarray | None = None,
    max_rounds: int = MAX_ROUNDS,
    weight: float = PSEUDO_WEIGHT,
    links: tuple[KnnGraph, float] | None = None,
) -> PseudoLabels:
    """Pseudo-label faces of `pool` (embeddings of faces not labeled by hand) from the hand labels.

    `rejected[i]`: people pool face i must not get ("not this person"); `images[i]`: its photo (one face
    per photo and person). `links`: the kNN graph of the hand-labeled faces followed by the pool's, and the link
    threshold; a face that links to none of its person's faces is left out. Returns the labels of the last round
    the guard accepted (none if no round).
    """
    hand_ids = np.asarray(hand_ids, dtype=object)
    strict = 1.0 - (1.0 - target_precision) / STRICTNESS
    current = PseudoLabels(np.zeros(0, int), np.zeros(0, object), np.zeros(0, np.float32))
    base = fit_assigner(hand_x, hand_ids, pool, None, target_precision=target_precision, weight=weight)
    # how many faces of unknown people the pool holds is read once, before pseudo-labels join prototypes
    ratio = base.calibration_["unknown_ratio"]
    # A round must beat what the hand labels alone give, each at its own bound (pseudo-labels: the stricter):
    # measured on LFW, a lift at the stricter bound carried over; a rule that compared like with like let
    # recall fall by 0.5 points (MobileFaceNet, 5 labels a person).
    best_recall, bounded = base.calibration_["estimated_recall"], _bounded(base)
    current.rounds.append(_round_record(0, current, base))
    for number in range(1, max_rounds + 1):
        bar = fit_assigner(hand_x, hand_ids, pool, current, target_precision=strict, weight=weight, unknown_ratio=ratio)
        proposal = _accepted(bar, pool, rejected, images)
        if links is not None:
            proposal = _linked(proposal, hand_ids, *links)
        proposal.rounds = current.rounds
        operating = fit_assigner(
            hand_x, hand_ids, pool, proposal, target_precision=target_precision, weight=weight, unknown_ratio=ratio
        )
        record = _round_record(number, proposal, operating)
        recall = operating.calibration_["estimated_recall"]
        why_not = (
            "no face passed the pseudo-label bar"
            if not len(proposal.rows)
            else "the hand labels' recall fell"
            if recall < best_recall
            else "the precision bound no longer holds"
            if bounded and not _bounded(operating)
            else None
        )
        if why_not:
            current.rounds.append({**record, "kept": False, "why_stopped": why_not})
            break
        rose, best_recall, current = recall > best_recall, recall, proposal
        current.rounds.append(record)
        log.info("pseudo-label round %d: %d faces, estimated recall %.3f", number, len(current.rows), recall)
        if not rose:
            record["why_stopped"] = "kept; the hand labels' recall did not rise, so no further round"
            break
    return current


def _bounded(assigner: PersonAssigner) -> bool:
    """Whether the assigner's precision holds at its upper bound on false accepts (not only the point)."""
    return "sigma upper bound" in assigner.calibration_["false_accept_estimate"]


def _accepted(
    assigner: PersonAssigner, pool: np.ndarray, rejected: list[set[str]] | None, images: np.ndarray | None
) -> PseudoLabels:
    """Pool faces the assigner accepts, minus rejected people, one face per photo and person."""
    best, accepted, _, score = assigner.decide(pool)
    if rejected is not None:
        accepted &= np.array([str(p) not in r for p, r in zip(best, rejected, strict=True)], dtype=bool)
    rows = np.flatnonzero(accepted)
    if images is not None and len(rows):
        rows = rows[np.argsort(-score[rows], kind="stable")]
        seen: set[tuple[Any, str]] = set()
        keep = []
        for r in rows:
            key = (images[r], str(best[r]))
            if key not in seen:
                seen.add(key)
                keep.append(r)
        rows = np.sort(np.asarray(keep, dtype=int))
    return PseudoLabels(rows, best[rows], score[rows].astype(np.float32))


def _linked(labels: PseudoLabels, hand_ids: np.ndarray, graph: KnnGraph, threshold: float) -> PseudoLabels:
    """`labels` without the faces that link to none of their person's faces at `threshold` in `graph` (the hand
    labels' rows first, then the pool's)."""
    people = np.r_[hand_ids, np.full(graph.n - len(hand_ids), None, dtype=object)]
    people[len(hand_ids) + labels.rows] = labels.person_ids
    automatic = np.zeros(graph.n, bool)
    automatic[len(hand_ids) + labels.rows] = True
    unlinked = np.isin(len(hand_ids) + labels.rows, unlinked_assignments(graph, people, automatic, threshold))
    return PseudoLabels(labels.rows[~unlinked], labels.person_ids[~unlinked], labels.scores[~unlinked])


def _round_record(number: int, labels: PseudoLabels, operating: PersonAssigner) -> dict[str, Any]:
    c = operating.calibration_
    return {
        "round": number,
        "pseudo_labels": len(labels.rows),
        "estimated_recall": round(c["estimated_recall"], 4),
        "estimated_false_accept": round(c["estimated_false_accept"], 5),
        "false_accept_estimate": c["false_accept_estimate"],
        "unknown_ratio": c["unknown_ratio"],
        "kept": True,
    }


# -- in a store ---------------------------------------------------------------------------------------
PSEUDO_FIELDS = [S.PERSON_ID, S.ASSIGNMENT_SOURCE, S.IMAGE_ID, S.REJECTED_PERSONS, S.PSEUDO_PERSON_ID, S.PSEUDO_SCORE]


def stored_pseudo_labels(faces: StoredFaces) -> np.ndarray:
    """Rows of `faces` whose stored pseudo-label still counts: not labeled by hand since, its person
    not rejected for the face, and that person still labeled by hand somewhere."""
    people = {p[S.PERSON_ID] for p in faces.payloads if S.is_hand_labeled(p)}
    return np.array(
        [
            i
            for i, p in enumerate(faces.payloads)
            if p.get(S.PSEUDO_PERSON_ID) in people
            and p.get(S.ASSIGNMENT_SOURCE) != S.SOURCE_MANUAL
            and p[S.PSEUDO_PERSON_ID] not in (p.get(S.REJECTED_PERSONS) or [])
        ],
        dtype=int,
    )


def update_pseudo_labels(
    store: FaceStore,
    *,
    projection: Projection | None = None,
    target_precision: float = 0.995,
    link_threshold: float | None = None,
) -> dict[str, Any]:
    """Recompute the store's pseudo-labels from its hand labels (older ones are dropped, not reused)
    and write them; returns their count, per-person counts and the rounds. With the collection's `link_threshold`
    (`DualModeClusterer.link_threshold`), a face that links to none of its person's faces is no pseudo-label."""
    faces = store.scroll_all(fields=PSEUDO_FIELDS)
    hand = np.array([S.is_hand_labeled(p) for p in faces.payloads], dtype=bool)
    pinned = np.array([p.get(S.ASSIGNMENT_SOURCE) == S.SOURCE_MANUAL for p in faces.payloads], dtype=bool)
    pool = np.flatnonzero(~hand & ~pinned)  # a face put in a cluster by hand is not anyone's pseudo-label
    people = {faces.payloads[i][S.PERSON_ID] for i in np.flatnonzero(hand)}
    labels = None
    if len(people) >= 2 and len(pool):
        x = faces.embeddings if projection is None else projection.transform(faces.embeddings)
        rows = np.r_[np.flatnonzero(hand), pool]
        links = None if link_threshold is None else (knn_graph(x[rows], KNN_K), link_threshold)
        labels = pseudo_label(
            x[hand],
            [faces.payloads[i][S.PERSON_ID] for i in np.flatnonzero(hand)],
            x[pool],
            target_precision=target_precision,
            rejected=[set(faces.payloads[i].get(S.REJECTED_PERSONS) or []) for i in pool],
            images=np.array([faces.payloads[i].get(S.IMAGE_ID, "") for i in pool], dtype=object),
            links=links,
        )
    new: dict[str, tuple[str | None, float | None]] = {}
    if labels is not None:
        for r, person, score in zip(labels.rows, labels.person_ids, labels.scores, strict=True):
            new[faces.ids[pool[r]]] = (str(person), round(float(score), 4))
    updates = {
        face_id: {S.PSEUDO_PERSON_ID: person, S.PSEUDO_SCORE: score}
        for face_id, p in zip(faces.ids, faces.payloads, strict=True)
        for person, score in [new.get(face_id, (None, None))]
        if (p.get(S.PSEUDO_PERSON_ID), p.get(S.PSEUDO_SCORE)) != (person, score)
    }
    if updates:
        store.update_payload(updates, check_exists=False)
    return {
        "pseudo_labels": len(new),
        "people": len({person for person, _ in new.values()}),
        "rounds": labels.rounds if labels is not None else [],
        "link_threshold": None if link_threshold is None else round(link_threshold, 4),
        "skipped": None if labels is not None else "label faces of at least 2 people first",
    }


def list_pseudo_labels(store: FaceStore) -> list[dict[str, Any]]:
    """Per person with pseudo-labels that count: name, how many, and their lowest and median score."""
    faces = store.scroll_all(with_embeddings=False, fields=PSEUDO_FIELDS)
    rows: dict[str, list[float]] = {}
    for i in stored_pseudo_labels(faces):
        p = faces.payloads[i]
        rows.setdefault(p[S.PSEUDO_PERSON_ID], []).append(float(p.get(S.PSEUDO_SCORE) or 0.0))
    names = {person.person_id: person.name for person in store.list_persons()}
    return [
        {
            "person_id": person,
            "name": names.get(person, person),
            "pseudo_labels": len(scores),
            "min_score": round(min(scores), 4),
            "median_score": round(float(np.median(scores)), 4),
        }
        for person, scores in sorted(rows.items(), key=lambda item: (-len(item[1]), item[0]))
    ]


def clear_pseudo_labels(store: FaceStore) -> int:
    """Remove every pseudo-label (hand labels untouched); returns how many faces had one."""
    faces = store.scroll_all(with_embeddings=False, fields=[S.PSEUDO_PERSON_ID])
    ids = [fid for fid, p in zip(faces.ids, faces.payloads, strict=True) if p.get(S.PSEUDO_PERSON_ID)]
    if ids:
        cleared = {S.PSEUDO_PERSON_ID: None, S.PSEUDO_SCORE: None}
        store.update_payload({face_id: dict(cleared) for face_id in ids}, check_exists=False)
    return len(ids)
