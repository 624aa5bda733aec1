"""facekit: turn photo collections into people (detect, embed, store in Qdrant, cluster, label, train)."""

from facekit.assign import PersonAssigner
from facekit.config import Settings, get_settings
from facekit.dual import DualModeClusterer
from facekit.edits import ClusterEditor
from facekit.embedding import Embedder, ModelDefaults, defaults_for, load_embedder, read_embeddings_npz
from facekit.errors import (
    CheckpointError,
    ConfigError,
    FacekitError,
    ImageError,
    ModelLoadError,
    ModelNotFoundError,
    NotFoundError,
    ReportError,
    SchemaMismatchError,
    StoreError,
    TrainingError,
)
from facekit.evaluation import evaluate, label_from_folders, read_faces, recommend_threshold, threshold_sweep
from facekit.images import face_thumbnail, load_image
from facekit.indexing import import_embeddings, index, index_batch, index_directory
from facekit.metrics import assignment_scores, bcubed_prf, clustering_scores, pairwise_prf
from facekit.paths import project_root, resolve_path
from facekit.projection import Projection, load_projection
from facekit.search import search_image
from facekit.store import FaceStore, StoredFaces, open_store
from facekit.training import FaceTrainer, fine_tune_for_person_clustering, reassign, training_iteration
from facekit.types import DetectedFace, FaceRecord, IndexSummary, Person, SearchHit, SkippedImage

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ClusterEditor",
    "ConfigError",
    "DetectedFace",
    "DualModeClusterer",
    "Embedder",
    "FaceRecord",
    "FaceStore",
    "FaceTrainer",
    "FacekitError",
    "ImageError",
    "IndexSummary",
    "ModelDefaults",
    "ModelLoadError",
    "ModelNotFoundError",
    "NotFoundError",
    "Person",
    "PersonAssigner",
    "Projection",
    "ReportError",
    "SchemaMismatchError",
    "SearchHit",
    "Settings",
    "SkippedImage",
    "StoreError",
    "StoredFaces",
    "TrainingError",
    "__version__",
    "assignment_scores",
    "bcubed_prf",
    "clustering_scores",
    "defaults_for",
    "evaluate",
    "face_thumbnail",
    "fine_tune_for_person_clustering",
    "get_settings",
    "import_embeddings",
    "index",
    "index_batch",
    "index_directory",
    "label_from_folders",
    "load_embedder",
    "load_image",
    "load_projection",
    "open_store",
    "pairwise_prf",
    "project_root",
    "read_embeddings_npz",
    "read_faces",
    "reassign",
    "recommend_threshold",
    "resolve_path",
    "search_image",
    "threshold_sweep",
    "training_iteration",
]
