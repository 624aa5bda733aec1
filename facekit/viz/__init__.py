"""Plots of faces and scores: UMAP maps of the embeddings, threshold and training curves (plotly).

Compute apart from drawing: `embedding_map_data` gives the points, `embedding_map_figure` draws them.
Needs the notebooks extra: `pip install 'facekit[notebooks]'`.
"""

from facekit.viz.embedding_map import MapData, embedding_map_data, umap_coordinates
from facekit.viz.figures import embedding_map_figure, iteration_curves, show, threshold_curves
from facekit.viz.html_blocks import face_grid_html, table_html
from facekit.viz.sprite import Sprite, face_sprite

__all__ = [
    "MapData",
    "Sprite",
    "embedding_map_data",
    "embedding_map_figure",
    "face_grid_html",
    "face_sprite",
    "iteration_curves",
    "show",
    "table_html",
    "threshold_curves",
    "umap_coordinates",
]
