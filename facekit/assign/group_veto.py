"""Automatic person assignments that the collection's own groups contradict.

The assigner decides each face alone, against prototypes of the labeled people. A face of someone nobody
labeled who looks like a labeled person P can clear its threshold, while the face's own photos, all unknown,
are closer to it than P's are. Clustering every face as if nobody were labeled shows that: the face lands in
its own person's group, where P has no hand-labeled face and holds at most half of the faces. Such an
assignment is revoked and the face goes to the unknown groups with its own person's photos.

On LFW (3 labels for each person with >= 10 photos, `bench/clustering.py`'s label_effect) MobileFaceNet's pass
revokes 4 of 3,747 automatic assignments: the 2 that made labeling lower the never-labeled people's BCubed F (a photo
of Amram Mitzna given to Mahmoud Abbas, one of King Abdullah II to Recep Tayyip Erdogan) and 2 right ones; that F goes
0.9781 / 0.9784 / 0.9784 at 0 / 3 / 8 labels a person (0.9780 at 3 without the check). dlib's revokes 1 of 3,009, a
wrong one (Kim Jin-sun's photo given to Hu Jintao).

A look-alike with several photos can take their whole group: every face of it assigned to P, so P holds it, while
its faces are on average no closer to P's hand-labeled faces than look-alike strangers are (the link calibration's
stranger similarity: the strangers' mode plus half its spread, where the clusterer splits groups too). Such a group's
assignments are revoked as well. MobileFaceNet, all of LFW with 20 labels for each of the 19 people with >= 40
photos: the groups it finds hold 3 photos of Venus Williams and 4 of Allyson Felix given to one labeled person, and 6
faces of 4 other people, at mean cosines 0.45-0.50 to their person's hand labels (strangers: 0.50); some of them P
held at most half of, and were revoked already. Precision 0.9913 -> 0.9953 (13 -> 7 wrong: the 6 more it revokes are
all wrong), recall 0.9966 unchanged. dlib's such groups were revoked already, and in the 8 albums dlib's 3 labels a
person go 16 -> 14 wrong; no set's recall moves (`make bench-assignment`: albums, the families' own photos, LFW).

A stranger seen once has no group to land in. Where the labeled people are few, the labels' impostor tests miss the
strangers who look like one of them (dlib compresses some demographics: in a family album, 10 people with all their
photos and 1,000 people seen once, 16 of one draw's 22 false accepts went to one person), and such a face clears
the rule while it links, at the unknown faces' own link threshold, to none of P's faces: no hand label of P and no
other face assigned to P is among its nearest neighbours at that similarity. That assignment is revoked too
(`unlinked_assignments`). Full passes with and without it (`make bench-assignment`), dlib, 8 albums (the first 3 / 8 /
20 photos of each family member labeled): precision 0.9892 / 0.9954 / 0.9941 -> 0.9971 / 0.9976 / 0.9954 (lowest draw
0.9604 -> 0.9925 at 3), recall 0.9020 / 0.9358 / 0.9758 -> 0.9002 / 0.9322 / 0.9713; MobileFaceNet's precision stays
at 0.9994-0.9999 and its recall moves by 0.001 or less. LFW (people with >= 5 / 10 / 40 photos, 3 / 8 / 20 labeled):
dlib precision 0.9967 / 0.9988 / 0.9872 -> 0.9972 / 0.9988 / 0.9879, recall 0.8369 / 0.8313 / 0.9865 -> 0.8358 /
0.8313 / 0.9859; MobileFaceNet 0.9972 / 0.9990 / 0.9873 -> 0.9976 / 0.9990 / 0.9913, recall 0.9737 -> 0.9718 at 3
(most of its revokes are right faces that link to none of their person's others).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facekit.cluster.knn import KnnGraph


def contradicted_assignments(
    groups: np.ndarray,
    person_ids: Sequence[str | None],
    automatic: np.ndarray,
    hand_labeled: np.ndarray,
    x: np.ndarray | None = None,
    stranger_similarity: float | None = None,
) -> np.ndarray:
    """Rows whose automatic assignment (`automatic`) to a person P is contradicted by `groups`, a clustering of
    every face with no labels (-1: no group): the row's group has no face labeled P by hand (`hand_labeled`), and
    P's faces are at most half of it or, given the faces' embeddings `x` and `stranger_similarity`, the group's faces
    assigned to P are on average no closer to P's hand-labeled faces than look-alike strangers are (their mean
    similarity, each with each, at most `stranger_similarity`).

    >>> groups = np.array([0, 0, 0, 1, 1, 1, -1])
    >>> people = ["ann", "ann", None, "ann", None, None, "bo"]
    >>> auto = np.array([False, True, False, True, False, False, True])
    >>> contradicted_assignments(groups, people, auto, ~auto & (np.array(people) != None)).tolist()
    [3]
    >>> x = np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8], [0.6, 0.8], [0, 1], [1, 0]])
    >>> groups, people = np.array([0, 0, 2, 1, 1, 2, -1]), ["ann", "ann", None, "ann", "ann", None, None]
    >>> auto = np.array([False, False, False, True, True, False, False])
    >>> contradicted_assignments(groups, people, auto, ~auto & (np.array(people) != None), x, 0.7).tolist()
    [3, 4]
    """
    groups = np.asarray(groups)
    people = np.asarray(person_ids, dtype=object)
    named = people != None  # noqa: E711 (elementwise)
    rows = np.flatnonzero(automatic & named & (groups >= 0))
    if len(rows) == 0:
        return rows
    _, codes = np.unique(people[named].astype(str), return_inverse=True)
    person = np.full(len(people), -1)
    person[named] = codes
    in_group = named & (groups >= 0)
    keys = groups.astype(np.int64) * (codes.max() + 1) + person  # one key per (group, person)
    faces_of = _counts(keys[in_group])
    labeled_of = _counts(keys[in_group & hand_labeled])
    size = np.bincount(groups[groups >= 0])
    unlabeled = [r for r in rows if labeled_of.get(keys[r], 0) == 0]
    outvoted = [r for r in unlabeled if 2 * faces_of[keys[r]] <= size[groups[r]]]
    if x is None or stranger_similarity is None:
        return np.array(outvoted, dtype=int)
    candidates = np.asarray(unlabeled, dtype=int)
    far = _no_closer_than_strangers(candidates, keys, person, hand_labeled, x, stranger_similarity)
    return np.union1d(np.array(outvoted, dtype=int), far).astype(int)


def _no_closer_than_strangers(
    rows: np.ndarray, keys: np.ndarray, person: np.ndarray, hand_labeled: np.ndarray, x: np.ndarray, floor: float
) -> np.ndarray:
    """`rows` (automatic assignments, each keyed by its group and person) whose key's rows are on average no closer
    to their person's hand-labeled faces than `floor` (the mean similarity, each with each, from summed embeddings)."""
    hand = np.flatnonzero(hand_labeled & (person >= 0))
    if len(rows) == 0 or len(hand) == 0:
        return np.array([], dtype=int)
    dim = x.shape[1]
    hand_sum = np.zeros((person.max() + 1, dim))
    np.add.at(hand_sum, person[hand], x[hand].astype(np.float64))
    hand_count = np.bincount(person[hand], minlength=person.max() + 1)
    _, first, slot = np.unique(keys[rows], return_index=True, return_inverse=True)
    sums = np.zeros((len(first), dim))
    np.add.at(sums, slot, x[rows].astype(np.float64))
    count = np.bincount(slot)
    owner = person[rows[first]]  # each key's person
    mean = np.einsum("ij,ij->i", sums, hand_sum[owner]) / (count * np.maximum(hand_count[owner], 1))
    far = (hand_count[owner] > 0) & (mean <= floor)
    return rows[far[slot]]


def unlinked_assignments(
    graph: KnnGraph, person_ids: Sequence[str | None], automatic: np.ndarray, threshold: float
) -> np.ndarray:
    """Rows whose automatic assignment (`automatic`) to a person P links to no other face of P: no edge of `graph`
    (either way) at similarity >= `threshold` joins the row to a face whose person is P (labeled by hand or assigned).

    >>> sims = np.array([[0.9, 0.5], [0.9, 0.5], [0.5, 0.5]])
    >>> graph = KnnGraph(indices=np.array([[1, 2], [0, 2], [0, 1]]), sims=sims)
    >>> unlinked_assignments(graph, ["ann", "ann", "ann"], np.array([False, True, True]), 0.8).tolist()
    [2]
    """
    people = np.asarray(person_ids, dtype=object)
    named = people != None  # noqa: E711 (elementwise)
    person = np.full(len(people), -1)
    person[named] = np.unique(people[named].astype(str), return_inverse=True)[1]
    rows = np.flatnonzero(named)  # only faces with a person have a link to one of theirs: read their rows alone
    near = graph.indices[rows]
    same = (near >= 0) & (graph.sims[rows] >= threshold) & (person[np.maximum(near, 0)] == person[rows][:, None])
    linked = np.zeros(len(people), bool)
    linked[rows[same.any(axis=1)]] = True
    linked[near[same]] = True  # the edge read the other way
    return np.flatnonzero(automatic & named & ~linked)


def _counts(keys: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(keys, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))
