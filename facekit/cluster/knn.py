"""k-nearest-neighbour graphs over L2-normalised embeddings (cosine similarity = dot product)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class KnnGraph:
    """Each row's k nearest other rows, most similar first: `indices` (N, k) and `sims` (N, k)."""

    indices: np.ndarray
    sims: np.ndarray

    @property
    def n(self) -> int:
        return len(self.indices)

    def adjacency(self, min_sim: float) -> sp.csr_matrix:
        """Symmetric sparse matrix of the edges with similarity >= `min_sim` (weights = similarity)."""
        rows, cols = np.nonzero(self.sims >= min_sim)
        targets = self.indices[rows, cols]
        keep = targets >= 0
        a = sp.coo_matrix((self.sims[rows, cols][keep], (rows[keep], targets[keep])), shape=(self.n, self.n)).tocsr()
        return a.maximum(a.T).tocsr()


def knn_graph(embeddings: np.ndarray, k: int = 30, *, block: int = 2048) -> KnnGraph:
    """Exact k nearest neighbours by blocked matrix products (no N x N matrix is ever held).

    Rows with fewer than k others get index -1 and similarity -inf in the missing places.
    """
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    k_eff = min(k, max(n - 1, 0))
    indices = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    if k_eff == 0:
        return KnnGraph(indices, sims)
    for start in range(0, n, block):
        s = x[start : start + block] @ x.T
        rows = np.arange(len(s))
        s[rows, start + rows] = -np.inf  # not its own neighbour
        part = np.argpartition(-s, k_eff - 1, axis=1)[:, :k_eff]
        part_sims = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        indices[start : start + len(s), :k_eff] = np.take_along_axis(part, order, axis=1)
        sims[start : start + len(s), :k_eff] = np.take_along_axis(part_sims, order, axis=1)
    return KnnGraph(indices, sims)
