"""The face store over Qdrant and its schema."""

from facekit.store import schema
from facekit.store.face_store import FaceStore, StoredFaces, connect, face_models, open_store

__all__ = ["FaceStore", "StoredFaces", "connect", "face_models", "open_store", "schema"]
