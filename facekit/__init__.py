"""facekit: turn photo collections into people (detect, embed, store in Qdrant, cluster, label, train).

The public names load on first use (PEP 562), so that importing one part (an indexing worker, the CLI)
does not import all of them: scikit-learn, the store client and torch cost seconds.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_HOMES = {
    "CheckpointError": "facekit.errors",
    "ClusterEditor": "facekit.edits",
    "ConfigError": "facekit.errors",
    "DetectedFace": "facekit.types",
    "DualModeClusterer": "facekit.dual",
    "Embedder": "facekit.embedding",
    "FaceRecord": "facekit.types",
    "FaceStore": "facekit.store",
    "FaceTrainer": "facekit.training",
    "FacekitError": "facekit.errors",
    "ImageError": "facekit.errors",
    "IndexSummary": "facekit.types",
    "ModelDefaults": "facekit.embedding",
    "ModelLoadError": "facekit.errors",
    "ModelNotFoundError": "facekit.errors",
    "NotFoundError": "facekit.errors",
    "Person": "facekit.types",
    "PersonAssigner": "facekit.assign",
    "Projection": "facekit.projection",
    "ReportError": "facekit.errors",
    "SchemaMismatchError": "facekit.errors",
    "SearchHit": "facekit.types",
    "Settings": "facekit.config",
    "SkippedImage": "facekit.types",
    "StoreError": "facekit.errors",
    "StoredFaces": "facekit.store",
    "TrainingError": "facekit.errors",
    "assignment_scores": "facekit.metrics",
    "bcubed_prf": "facekit.metrics",
    "clustering_scores": "facekit.metrics",
    "defaults_for": "facekit.embedding",
    "evaluate": "facekit.evaluation",
    "face_thumbnail": "facekit.images",
    "fine_tune_for_person_clustering": "facekit.training",
    "get_settings": "facekit.config",
    "import_embeddings": "facekit.indexing",
    "index": "facekit.indexing",
    "index_batch": "facekit.indexing",
    "index_directory": "facekit.indexing",
    "label_from_folders": "facekit.evaluation",
    "load_embedder": "facekit.embedding",
    "load_image": "facekit.images",
    "load_projection": "facekit.projection",
    "open_store": "facekit.store",
    "pairwise_prf": "facekit.metrics",
    "project_root": "facekit.paths",
    "read_embeddings_npz": "facekit.embedding",
    "read_faces": "facekit.evaluation",
    "reassign": "facekit.training",
    "recommend_threshold": "facekit.evaluation",
    "resolve_path": "facekit.paths",
    "search_image": "facekit.search",
    "threshold_sweep": "facekit.evaluation",
    "training_iteration": "facekit.training",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'facekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = sorted(["__version__", *_HOMES])
