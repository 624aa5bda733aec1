"""The store's schema: collection names, payload keys, point ids. Change SCHEMA_VERSION with the layout."""

from __future__ import annotations

import re
import uuid

SCHEMA_VERSION = 2  # 2: an embedded (Edge) store keeps LABEL_FIELDS in a label shard beside the vectors
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
REJECTED_PERSONS = "rejected_person_ids"  # people a user said this face is not ("not this person")
CLUSTER_RUN = "cluster_run"  # the clustering run that last wrote the face's labels
PSEUDO_PERSON_ID = "pseudo_person_id"  # a confident automatic assignment that joins the person's prototype
PSEUDO_SCORE = "pseudo_score"  # the assignment rule's score behind that pseudo-label
INDEXED_FIELDS = (PERSON_ID, CLUSTER_ID, IMAGE_ID, ASSIGNMENT_SOURCE)  # keyword indexes: filters and facets
# The fields a clustering pass or an edit rewrites (the rest is written once, with the face).
LABEL_FIELDS = (
    PERSON_ID, CLUSTER_ID, CLUSTER_CONFIDENCE, ASSIGNMENT_SOURCE, REJECTED_PERSONS, CLUSTER_RUN, PSEUDO_PERSON_ID,
    PSEUDO_SCORE,
)  # fmt: skip

# Cluster ids: unknown_cluster_<n> for groups, unknown_noise_<face id> for faces left alone.
CLUSTER_PREFIX = "unknown_cluster_"
NOISE_CLUSTER_PREFIX = "unknown_noise"

# Per-model log of clustering runs and hand edits (for resuming and undo).
LOG_COLLECTION_PREFIX = "facekit_log__"

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


def log_collection_for(model_id: str) -> str:
    """The collection holding one model's run markers and edit history."""
    return LOG_COLLECTION_PREFIX + collection_for(model_id)[len(FACE_COLLECTION_PREFIX) :]


def cluster_name(number: int) -> str:
    """The id of unknown group `number`."""
    return f"{CLUSTER_PREFIX}{number}"


def noise_name(face_id: str) -> str:
    """The cluster id of a face left out of every group (unique to the face)."""
    return f"{NOISE_CLUSTER_PREFIX}_{face_id}"


def cluster_number(cluster_id: object) -> int:
    """The number in an unknown_cluster_<n> id; -1 for anything else."""
    text = str(cluster_id or "")
    if text.startswith(CLUSTER_PREFIX) and text[len(CLUSTER_PREFIX) :].isdigit():
        return int(text[len(CLUSTER_PREFIX) :])
    return -1


def is_hand_labeled(payload: dict) -> bool:
    """Whether a face was given a person by hand (a cluster chosen by hand is not a person label)."""
    return payload.get(ASSIGNMENT_SOURCE) == SOURCE_MANUAL and bool(payload.get(PERSON_ID))


def is_group(cluster_id: object) -> bool:
    """Whether a face's cluster id names a real group (not unset, not a noise id)."""
    return bool(cluster_id) and not str(cluster_id).startswith(NOISE_CLUSTER_PREFIX)
