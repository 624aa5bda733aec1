"""Unsupervised clustering of faces (sklearn-style estimators; -1 = noise), kNN graphs and stable ids."""

from __future__ import annotations

from typing import TYPE_CHECKING

from facekit.cluster.density import AgglomerativeClusterer, DbscanClusterer, HdbscanClusterer
from facekit.cluster.graph import ChineseWhispers, ConnectedComponents, GraphClusterer, relabel_by_size
from facekit.cluster.knn import KnnGraph, knn_graph
from facekit.cluster.stable_ids import match_cluster_ids

if TYPE_CHECKING:
    from facekit.cluster.calibration import LinkThreshold

CLUSTERERS = {
    "chinese_whispers": ChineseWhispers,
    "connected_components": ConnectedComponents,
    "hdbscan": HdbscanClusterer,
    "dbscan": DbscanClusterer,
    "agglomerative": AgglomerativeClusterer,
}


def make_clusterer(
    method: str,
    threshold: float,
    min_cluster_size: int,
    *,
    data: LinkThreshold | None = None,
) -> GraphClusterer:
    """The clusterer named `method`, linking faces at cosine similarity >= `threshold`; Chinese Whispers also reads
    the strangers off the data's calibration `data` (`LinkThreshold.strangers`: it splits off parts of a group no
    closer to the rest than look-alike strangers, and keeps no group less alike than their mode); other methods
    ignore it."""
    try:
        cls = CLUSTERERS[method]
    except KeyError:
        raise ValueError(f"unknown clustering method {method!r}; choose one of {', '.join(CLUSTERERS)}") from None
    if cls is ChineseWhispers:
        return cls(threshold, min_cluster_size=min_cluster_size, **(data.strangers if data is not None else {}))
    return cls(threshold, min_cluster_size=min_cluster_size)


__all__ = [
    "CLUSTERERS",
    "AgglomerativeClusterer",
    "ChineseWhispers",
    "ConnectedComponents",
    "DbscanClusterer",
    "GraphClusterer",
    "HdbscanClusterer",
    "KnnGraph",
    "knn_graph",
    "make_clusterer",
    "match_cluster_ids",
    "relabel_by_size",
]
