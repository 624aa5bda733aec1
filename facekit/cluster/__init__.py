"""Unsupervised clustering of faces (sklearn-style estimators; -1 = noise) and kNN graphs."""

from facekit.cluster.graph import ChineseWhispers, ConnectedComponents, relabel_by_size
from facekit.cluster.knn import KnnGraph, knn_graph

__all__ = ["ChineseWhispers", "ConnectedComponents", "KnnGraph", "knn_graph", "relabel_by_size"]
