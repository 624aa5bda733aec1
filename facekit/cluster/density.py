"""The spec's three clusterers — HDBSCAN, DBSCAN, average-linkage agglomerative — run on the
k-nearest-neighbour graph, so they scale past the all-pairs matrices of their textbook forms.

Same interface as the graph clusterers: `fit(X, graph=None)`, `labels_` (-1 = noise, groups numbered
by decreasing size), `threshold` a cosine similarity where the method has one.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from facekit.cluster.graph import GraphClusterer, relabel_by_size
from facekit.cluster.knn import KnnGraph


def _to_distances(adjacency: sp.csr_matrix) -> sp.csr_matrix:
    """Cosine distances of a similarity adjacency's edges (tiny floor: a stored 0 is still an edge)."""
    d = adjacency.copy()
    d.data = np.maximum(1.0 - d.data, 1e-9)
    return d


class DbscanClusterer(GraphClusterer):
    """DBSCAN (PhotoPrism's and LibrePhotos' choice): `eps` = 1 - threshold, `min_samples` =
    min_cluster_size, over the kNN graph's edges.

    >>> import numpy as np
    >>> x = np.array([[1, 0], [0.99, 0.14], [0.98, 0.2], [0, 1]], dtype=np.float32)
    >>> DbscanClusterer(0.9, min_cluster_size=2).fit_predict(x).tolist()
    [0, 0, 0, -1]
    """

    def _partition(self, adjacency: sp.csr_matrix) -> np.ndarray:
        from sklearn.cluster import DBSCAN  # sklearn loads in ~1 s: only when used

        # min_samples counts the point itself, as DBSCAN's core rule does
        dbscan = DBSCAN(eps=1.0 - self.threshold, min_samples=self.min_cluster_size, metric="precomputed")
        return dbscan.fit_predict(_to_distances(adjacency))


class AgglomerativeClusterer(GraphClusterer):
    """Average-linkage agglomerative clustering, merging while the mean cosine similarity between two
    groups is >= threshold; only faces joined in the kNN graph are candidates (sklearn connectivity)."""

    @property
    def edge_floor(self) -> float:
        return -np.inf  # it reads every edge of the graph

    def fit(self, x: np.ndarray, y: None = None, *, graph: KnnGraph | None = None):
        x = self._prepare(x, graph)
        if len(x) < 2:
            self.labels_ = relabel_by_size(np.zeros(len(x), dtype=np.int64), self.min_cluster_size)
            return self
        from sklearn.cluster import AgglomerativeClustering

        connectivity = self.graph_.adjacency(-1.0)
        model = AgglomerativeClustering(
            n_clusters=None,
            metric="cosine",
            linkage="average",
            distance_threshold=1.0 - self.threshold,
            connectivity=connectivity,
        )
        self.labels_ = relabel_by_size(model.fit_predict(x), self.min_cluster_size)
        return self


class HdbscanClusterer(GraphClusterer):
    """HDBSCAN (the spec's default) on the kNN graph's cosine distances. It picks its own density
    levels, so `threshold` is not used."""

    @property
    def edge_floor(self) -> float:
        return -np.inf  # it reads every edge of the graph

    def fit(self, x: np.ndarray, y: None = None, *, graph: KnnGraph | None = None):
        x = self._prepare(x, graph)
        if len(x) <= self.min_cluster_size:
            self.labels_ = np.full(len(x), -1, dtype=np.int64)
            return self
        from sklearn.cluster import HDBSCAN

        d = _to_distances(self.graph_.adjacency(-1.0))
        model = HDBSCAN(
            min_cluster_size=max(2, self.min_cluster_size),
            metric="precomputed",
            allow_single_cluster=False,
            copy=True,
        )
        self.labels_ = relabel_by_size(model.fit_predict(d), self.min_cluster_size)
        return self
