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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def contradicted_assignments(
    groups: np.ndarray, person_ids: Sequence[str | None], automatic: np.ndarray, hand_labeled: np.ndarray
) -> np.ndarray:
    """Rows whose automatic assignment (`automatic`) to a person P is contradicted by `groups`, a clustering of
    every face with no labels (-1: no group): the row's group has no face labeled P by hand (`hand_labeled`) and
    P's faces are at most half of it.

    >>> groups = np.array([0, 0, 0, 1, 1, 1, -1])
    >>> people = ["ann", "ann", None, "ann", None, None, "bo"]
    >>> auto = np.array([False, True, False, True, False, False, True])
    >>> contradicted_assignments(groups, people, auto, ~auto & (np.array(people) != None)).tolist()
    [3]
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
    return np.array(
        [r for r in rows if labeled_of.get(keys[r], 0) == 0 and 2 * faces_of[keys[r]] <= size[groups[r]]], dtype=int
    )


def _counts(keys: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(keys, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))
