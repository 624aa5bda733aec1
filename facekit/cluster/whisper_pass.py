"""One Chinese Whispers pass over a CSR graph: each node, in the given order, takes the label with the
largest summed edge weight among its neighbours (ties: the smallest label).

Compiled with numba when it is installed (it comes with umap-learn), else plain Python; both give the
same labels (float64 sums in neighbour order). Measured at 100K synthetic faces: ~19 s in Python.
"""

from __future__ import annotations

import numpy as np


def _python_pass(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, labels: np.ndarray, order: np.ndarray
) -> int:
    changed = 0
    for i in order.tolist():
        start, end = int(indptr[i]), int(indptr[i + 1])
        if start == end:
            continue
        if end - start == 1:
            best = int(labels[indices[start]])
        else:
            votes: dict[int, float] = {}
            for p in range(start, end):
                label = int(labels[indices[p]])
                votes[label] = votes.get(label, 0.0) + float(data[p])
            top = max(votes.values())
            best = min(label for label, vote in votes.items() if vote == top)
        if best != labels[i]:
            labels[i] = best
            changed += 1
    return changed


def _numba_pass():  # compiled on first use, cached on disk (NUMBA_CACHE_DIR)
    from numba import njit

    @njit(cache=True)
    def run(indptr, indices, data, labels, order):  # pragma: no cover - compiled
        changed = 0
        width = 1
        for i in range(len(indptr) - 1):
            width = max(width, indptr[i + 1] - indptr[i])
        seen = np.empty(width, dtype=np.int64)
        votes = np.empty(width, dtype=np.float64)
        for i in order:
            start, end = indptr[i], indptr[i + 1]
            if start == end:
                continue
            if end - start == 1:
                best = labels[indices[start]]
            else:
                m = 0
                for p in range(start, end):
                    label = labels[indices[p]]
                    q = 0
                    while q < m and seen[q] != label:
                        q += 1
                    if q == m:
                        seen[m] = label
                        votes[m] = 0.0
                        m += 1
                    votes[q] += np.float64(data[p])
                best, top = seen[0], votes[0]
                for q in range(1, m):
                    if votes[q] > top or (votes[q] == top and seen[q] < best):
                        best, top = seen[q], votes[q]
            if best != labels[i]:
                labels[i] = best
                changed += 1
        return changed

    return run


_compiled: object = None  # the compiled pass, made on first use (importing numba costs ~1 s)


def compiled_pass():
    """numba's pass, or None without numba."""
    global _compiled
    if _compiled is None:
        try:
            _compiled = _numba_pass()
        except ImportError:  # numba is optional
            _compiled = False
    return _compiled or None


def warm_up() -> None:
    """Compile (or load from numba's cache) the pass now, on a two-node graph, rather than in the first job."""
    whisper_pass(np.array([0, 1, 2]), np.array([1, 0]), np.ones(2), np.arange(2, dtype=np.int64), np.arange(2))


def whisper_pass(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, labels: np.ndarray, order: np.ndarray
) -> int:
    """Update `labels` (int64, in place) node by node in `order`; returns how many labels changed."""
    run = compiled_pass()
    if run is not None:  # one set of argument types: one compiled version, the one warm_up loads
        as_int = [np.asarray(a, dtype=np.int64) for a in (indptr, indices, order)]
        return int(run(as_int[0], as_int[1], np.asarray(data, dtype=np.float32), labels, as_int[2]))
    return _python_pass(indptr, indices, data, labels, order)
