"""Keep cluster ids stable across runs: each new group inherits the old id most of it carried."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from facekit.store import schema as S


def match_cluster_ids(
    labels: np.ndarray, old_ids: Sequence[str | None], pinned: np.ndarray, *, first_new: int = 0
) -> list[str | None]:
    """Cluster id for each face from new group labels (-1 = none) and the ids faces had before.

    - A pinned face (put in its cluster by hand) keeps its old id, and its new group joins that
      cluster: the group with the most faces pinned to a cluster inherits its id.
    - Otherwise a new group inherits the old id carried by more than half of its faces; each old id
      goes to at most one group, the one with the largest overlap.
    - Other groups get fresh ids numbered from `first_new` and after every id in `old_ids`, so that
      ids are never reused.
    Faces without a group (-1) get None, except pinned faces.

    >>> match_cluster_ids(np.array([0, 0, 1, -1]), ["unknown_cluster_4", "unknown_cluster_4", None, None],
    ...                   np.zeros(4, bool))
    ['unknown_cluster_4', 'unknown_cluster_4', 'unknown_cluster_5', None]
    """
    labels = np.asarray(labels)
    pinned = np.asarray(pinned, dtype=bool)
    out: list[str | None] = [old_ids[i] if pinned[i] else None for i in range(len(labels))]
    overlaps: Counter[tuple[int, str]] = Counter()
    sizes = Counter(int(g) for g in labels if g >= 0)
    for i, g in enumerate(labels):
        old = old_ids[i]
        if g >= 0 and S.is_group(old):
            overlaps[(int(g), str(old))] += 1_000_000 if pinned[i] else 1
    chosen: dict[int, str] = {}
    used: set[str] = set()
    for (g, old), score in sorted(overlaps.items(), key=lambda kv: (-kv[1], kv[0])):
        if g in chosen or old in used:
            continue
        if score >= 1_000_000 or 2 * score > sizes[g]:
            chosen[g] = old
            used.add(old)
    next_number = max(first_new, 1 + max((S.cluster_number(c) for c in old_ids), default=-1))
    for g in sorted(sizes):  # groups are numbered by decreasing size: big groups get the lower new ids
        if g not in chosen:
            chosen[g] = S.cluster_name(next_number)
            next_number += 1
    for i, g in enumerate(labels):
        if g >= 0 and not pinned[i]:
            out[i] = chosen[int(g)]
    return out
