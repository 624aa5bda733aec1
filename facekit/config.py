"""Settings from the environment and `.env` (pydantic-settings), with the spec's names and defaults.

Similarity thresholds mean different things for different embedding models: where the user set none,
facekit calibrates them from the data (person threshold: from the hand labels; unknown-clustering
link: `facekit.cluster.calibration`), with the model's measured values as fallbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from facekit.errors import ConfigError

ClusteringMethod = Literal["chinese_whispers", "connected_components", "hdbscan", "dbscan", "agglomerative"]
CLUSTERING_METHODS: tuple[str, ...] = ("chinese_whispers", "connected_components", "hdbscan", "dbscan", "agglomerative")


def _env(name: str, field: str) -> AliasChoices:
    return AliasChoices(name, field)


class Settings(BaseSettings):
    """All facekit settings. Environment names are the aliases (FACE_*, FACEKIT_*)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    model_name: Literal["", "buffalo_l", "mobilefacenet", "dlib", "onnx", "precomputed"] = Field(
        "",
        validation_alias=_env("FACE_MODEL_NAME", "model_name"),
        description='"" picks buffalo_l when its pack is installed, else mobilefacenet when installed, else dlib.',
    )
    model_checkpoint: str = Field(
        "",
        validation_alias=_env("FACE_MODEL_CHECKPOINT", "model_checkpoint"),
        description="A trained projection head (.safetensors): assignment and clustering use its space.",
    )
    checkpoint_dir: Path = Field(
        Path.home() / ".facekit" / "checkpoints",
        validation_alias=_env("FACEKIT_CHECKPOINT_DIR", "checkpoint_dir"),
        description="Where `facekit train-matching` writes checkpoints.",
    )
    training_enabled: bool = Field(False, validation_alias=_env("FACE_TRAINING_ENABLED", "training_enabled"))
    triplet_margin: float = Field(0.2, gt=0, le=2, validation_alias=_env("FACE_TRIPLET_MARGIN", "triplet_margin"))
    training_epochs: int = Field(20, ge=1, validation_alias=_env("FACE_TRAINING_EPOCHS", "training_epochs"))
    batch_size: int = Field(32, ge=2, validation_alias=_env("FACE_BATCH_SIZE", "batch_size"))
    learning_rate: float = Field(0.0001, gt=0, le=1, validation_alias=_env("FACE_LEARNING_RATE", "learning_rate"))
    person_match_threshold: float = Field(
        0.7,
        ge=0,
        le=1,
        validation_alias=_env("FACE_PERSON_MATCH_THRESHOLD", "person_match_threshold"),
        description="Cosine similarity a face needs to join a known person.",
    )
    unknown_clustering_method: ClusteringMethod = Field(
        "chinese_whispers",
        validation_alias=_env("FACE_UNKNOWN_CLUSTERING_METHOD", "unknown_clustering_method"),
        description="How unknown faces are grouped; chinese_whispers won the LFW benchmark (bench/RESULTS.md).",
    )
    unknown_min_cluster_size: int = Field(
        2, ge=2, validation_alias=_env("FACE_UNKNOWN_MIN_CLUSTER_SIZE", "unknown_min_cluster_size")
    )
    unknown_eps: float = Field(
        0.5,
        gt=0,
        le=2,
        validation_alias=_env("FACE_UNKNOWN_EPS", "unknown_eps"),
        description="Cosine distance that links two unknown faces (graph edges, DBSCAN eps, linkage cut).",
    )
    store: Path = Field(
        Path.home() / ".facekit" / "store",
        validation_alias=_env("FACEKIT_STORE", "store"),
        description="Folder of the embedded Qdrant store (used when no server URL is set).",
    )
    store_lock_wait: float = Field(
        10.0,
        ge=0,
        validation_alias=_env("FACEKIT_STORE_LOCK_WAIT", "store_lock_wait"),
        description="Seconds to wait for an embedded store that another process has open.",
    )
    qdrant_url: str = Field("", validation_alias=_env("FACEKIT_QDRANT_URL", "qdrant_url"))
    qdrant_api_key: SecretStr | None = Field(None, validation_alias=_env("FACEKIT_QDRANT_API_KEY", "qdrant_api_key"))
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=_env("FACEKIT_REDIS_URL", "redis_url"),
        description="The Redis that background jobs (RQ) queue on.",
    )
    api_key: SecretStr | None = Field(
        None,
        validation_alias=_env("FACEKIT_API_KEY", "api_key"),
        description="Key every HTTP API request must carry; needed to serve on an address other than loopback.",
    )
    models_dir: Path = Field(
        Path.home() / ".insightface" / "models",
        validation_alias=_env("FACEKIT_MODELS_DIR", "models_dir"),
        description="Where model files live: <models_dir>/buffalo_l/*.onnx, <models_dir>/mobilefacenet-sirius-192.onnx",
    )
    onnx_recognizer: str = Field("", validation_alias=_env("FACEKIT_ONNX_RECOGNIZER", "onnx_recognizer"))
    onnx_input_mean: float = Field(127.5, validation_alias=_env("FACEKIT_ONNX_INPUT_MEAN", "onnx_input_mean"))
    onnx_input_std: float = Field(127.5, gt=0, validation_alias=_env("FACEKIT_ONNX_INPUT_STD", "onnx_input_std"))
    onnx_channel_order: Literal["rgb", "bgr"] = Field(
        "rgb", validation_alias=_env("FACEKIT_ONNX_CHANNEL_ORDER", "onnx_channel_order")
    )
    max_image_pixels: int = Field(
        80_000_000,
        ge=1,
        validation_alias=_env("FACEKIT_MAX_IMAGE_PIXELS", "max_image_pixels"),
        description="Images above this many pixels are refused as possible decompression bombs.",
    )


def _env_name(loc: tuple) -> str:
    field = str(loc[0]) if loc else "?"
    info = Settings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, AliasChoices):
        return str(info.validation_alias.choices[0])
    return field


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment and `.env`; keyword overrides win.

    Raises `ConfigError` naming the variable, the bad value and what is allowed.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            lines.append(f"{_env_name(err['loc'])}={err.get('input')!r} is invalid: {err['msg']}")
        raise ConfigError(
            "; ".join(lines) + ". Fix the environment variable or the .env entry (see README, 'Settings')."
        ) from None
