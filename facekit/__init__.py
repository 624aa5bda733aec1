"""facekit: turn photo collections into people (detect, embed, store in Qdrant, cluster, label, train)."""

from facekit.assign import PersonAssigner
from facekit.config import Settings, get_settings
from facekit.dual import DualModeClusterer
from facekit.edits import ClusterEditor
from facekit.embedding import Embedder, ModelDefaults, defaults_for, load_embedder, read_embeddings_npz
from facekit.errors import (
    ConfigError,
    FacekitError,
    ImageError,
    ModelLoadError,
    ModelNotFoundError,
    NotFoundError,
    SchemaMismatchError,
    StoreError,
)
from facekit.evaluation import evaluate, label_from_folders
from facekit.images import load_image
from facekit.indexing import import_embeddings, index, index_batch, index_directory
from facekit.metrics import assignment_scores, bcubed_prf, clustering_scores, pairwise_prf
from facekit.search import search_image
from facekit.store import FaceStore, StoredFaces, open_store
from facekit.types import DetectedFace, FaceRecord, IndexSummary, Person, SearchHit, SkippedImage

__version__ = "0.1.0"

__all__ = [
    "ClusterEditor",
    "ConfigError",
    "DetectedFace",
    "DualModeClusterer",
    "Embedder",
    "FaceRecord",
    "FaceStore",
    "FacekitError",
    "ImageError",
    "IndexSummary",
    "ModelDefaults",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotFoundError",
    "Person",
    "PersonAssigner",
    "SchemaMismatchError",
    "SearchHit",
    "Settings",
    "SkippedImage",
    "StoreError",
    "StoredFaces",
    "__version__",
    "assignment_scores",
    "bcubed_prf",
    "clustering_scores",
    "defaults_for",
    "evaluate",
    "get_settings",
    "import_embeddings",
    "index",
    "index_batch",
    "index_directory",
    "label_from_folders",
    "load_embedder",
    "load_image",
    "open_store",
    "pairwise_prf",
    "read_embeddings_npz",
    "search_image",
]
