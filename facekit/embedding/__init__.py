"""Embedding models behind one protocol: buffalo_l (ONNX), MobileFaceNet, dlib, generic ONNX, precomputed files."""

from __future__ import annotations

import logging

from facekit.config import Settings, get_settings
from facekit.embedding.base import Embedder, ModelDefaults, l2_normalize
from facekit.embedding.dlib_resnet import DEFAULTS as DLIB_DEFAULTS
from facekit.embedding.dlib_resnet import MODEL_ID as DLIB_MODEL_ID
from facekit.embedding.mobilefacenet import DEFAULTS as MOBILEFACENET_DEFAULTS
from facekit.embedding.mobilefacenet import MODEL_ID as MOBILEFACENET_MODEL_ID
from facekit.embedding.mobilefacenet import installed as mobilefacenet_installed
from facekit.embedding.onnx_models import (
    BUFFALO_L,
    BUFFALO_L_DEFAULTS,
    GENERIC_ONNX_DEFAULTS,
    buffalo_l_installed,
)
from facekit.embedding.precomputed import PrecomputedEmbeddings, read_embeddings_npz
from facekit.errors import ConfigError

log = logging.getLogger(__name__)

# Model id → recommended thresholds; ids not listed (generic ONNX, precomputed) get the generic ones.
MODEL_DEFAULTS: dict[str, ModelDefaults] = {
    BUFFALO_L: BUFFALO_L_DEFAULTS,
    MOBILEFACENET_MODEL_ID: MOBILEFACENET_DEFAULTS,
    DLIB_MODEL_ID: DLIB_DEFAULTS,
}
# Model name (FACE_MODEL_NAME) ↔ model id, for the models facekit knows by name.
_MODEL_IDS = {"dlib": DLIB_MODEL_ID, "buffalo_l": BUFFALO_L, "mobilefacenet": MOBILEFACENET_MODEL_ID}


def defaults_for(model_id: str) -> ModelDefaults:
    """Recommended thresholds of an embedding space by its model id."""
    return MODEL_DEFAULTS.get(model_id, GENERIC_ONNX_DEFAULTS)


def resolve_model_name(settings: Settings | None = None) -> str:
    """FACE_MODEL_NAME, or where unset: buffalo_l if its pack is installed, else mobilefacenet if its
    file is installed, else dlib (logged)."""
    settings = settings or get_settings()
    if settings.model_name:
        return settings.model_name
    if buffalo_l_installed(settings.models_dir):
        name, why = "buffalo_l", "its pack is installed"
    elif mobilefacenet_installed(settings.models_dir):
        name, why = "mobilefacenet", "no buffalo_l pack; its file is installed"
    else:
        name, why = "dlib", "neither buffalo_l nor mobilefacenet is installed (`facekit models list`)"
    log.info("FACE_MODEL_NAME unset: using %s (%s, in %s)", name, why, settings.models_dir)
    return name


def model_name_for(model_id: str) -> str:
    """The model name (FACE_MODEL_NAME value) that produces embeddings with this model id."""
    for name, known_id in _MODEL_IDS.items():
        if model_id == known_id:
            return name
    if model_id.startswith("onnx_"):
        return "onnx"
    return "precomputed"


def model_id_for(name: str) -> str:
    """The model id of a model name ("dlib" → "dlib_resnet_v1"); other strings are taken as ids."""
    return _MODEL_IDS.get(name, name)


def load_embedder(name: str | None = None, settings: Settings | None = None) -> Embedder:
    """Load an embedding model by name: "buffalo_l", "mobilefacenet", "dlib" or "onnx" (FACEKIT_ONNX_RECOGNIZER)."""
    from facekit.embedding.dlib_resnet import DlibEmbedder
    from facekit.embedding.mobilefacenet import load_mobilefacenet
    from facekit.embedding.onnx_models import load_buffalo_l, load_generic_onnx

    settings = settings or get_settings()
    name = name or resolve_model_name(settings)
    if name == "buffalo_l":
        return load_buffalo_l(settings.models_dir)
    if name == "mobilefacenet":
        return load_mobilefacenet(settings.models_dir)
    if name == "dlib":
        return DlibEmbedder()
    if name == "onnx":
        if not settings.onnx_recognizer:
            raise ConfigError("FACE_MODEL_NAME=onnx needs FACEKIT_ONNX_RECOGNIZER=<path to the recognizer .onnx>")
        return load_generic_onnx(
            settings.onnx_recognizer,
            settings.models_dir,
            input_mean=settings.onnx_input_mean,
            input_std=settings.onnx_input_std,
            channel_order=settings.onnx_channel_order,
        )
    if name == "precomputed":
        raise ConfigError(
            "precomputed embeddings have no model to embed new photos: import them with "
            "`facekit import-embeddings FILE.npz`, and index photos with buffalo_l, mobilefacenet, dlib or onnx"
        )
    raise ConfigError(f"unknown model {name!r}; choose one of buffalo_l, mobilefacenet, dlib, onnx")


__all__ = [
    "MODEL_DEFAULTS",
    "Embedder",
    "ModelDefaults",
    "PrecomputedEmbeddings",
    "defaults_for",
    "l2_normalize",
    "load_embedder",
    "model_id_for",
    "model_name_for",
    "read_embeddings_npz",
    "resolve_model_name",
]
