"""The store's schema: collection names, payload keys, point ids. Change SCHEMA_VERSION with the layout."""

from __future__ import annotations

import re
import uuid

SCHEMA_VERSION = 1
FACE_COLLECTION_PREFIX = "faces__"
PERSONS_COLLECTION = "facekit_persons"
ID_NAMESPACE = uuid.UUID("6f1c1a52-5d0e-4c55-9a7e-3f2f6e0f4b1a")

# Payload keys of a face point.
FACE_ID = "face_id"
IMAGE_ID = "image_id"
IMAGE_PATH = "image_path"
FACE_INDEX = "face_index"
IMAGE_FACE_COUNT = "image_face_count"  # faces found in the image: lets a re-run spot half-written images
BBOX = "bbox"
LANDMARKS = "landmarks"
DET_SCORE = "det_score"
QUALITY = "quality"
EMBEDDING_NORM = "embedding_norm"
MODEL_ID = "model_id"
PERSON_ID = "person_id"
CLUSTER_ID = "cluster_id"
CLUSTER_CONFIDENCE = "cluster_confidence"
ASSIGNMENT_SOURCE = "assignment_source"
INDEXED_AT = "indexed_at"
INDEXED_FIELDS = (PERSON_ID, CLUSTER_ID, IMAGE_ID)

# Cluster ids: unknown_cluster_<n> for groups, unknown_noise_<n> for faces left alone.
NOISE_CLUSTER_PREFIX = "unknown_noise"

# Values of ASSIGNMENT_SOURCE.
SOURCE_MANUAL = "manual"
SOURCE_AUTO = "auto"
SOURCE_CLUSTER = "cluster"

# Payload keys of a person point.
PERSON_NAME = "name"
CREATED_AT = "created_at"


def face_point_id(image_sha256: str, face_index: int, model_id: str) -> str:
    """Deterministic point id, so indexing the same photo twice writes the same points."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{image_sha256}:{face_index}:{model_id}"))


def collection_for(model_id: str) -> str:
    """The face collection of one embedding model (two embedding spaces never mix)."""
    return FACE_COLLECTION_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "_", model_id)


def is_group(cluster_id: object) -> bool:
    """Whether a face's cluster id names a real group (not unset, not a noise id)."""
    return bool(cluster_id) and not str(cluster_id).startswith(NOISE_CLUSTER_PREFIX)
