"""Checkpoints of the projection head that `facekit.training` trains (safetensors: tensors plus JSON
metadata, nothing unpickled), and `Projection`, which applies one in numpy, without torch.

Metadata: format version, base model id, dimensions, hyperparameters, the hash of the label snapshot
the head was trained on, validation metrics, and the threshold map (cosine thresholds of the base
space and the projected thresholds with the same rate of matching pairs; see `threshold_map`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facekit.embedding.base import l2_normalize
from facekit.errors import CheckpointError

FORMAT = "facekit-projection-head/1"
# the head: y = normalize(x + l2(relu(l1(x)))), torch Linear layout (weight is out x in)
LAYERS = ("l1.weight", "l1.bias", "l2.weight", "l2.bias")


@dataclass(frozen=True)
class Projection:
    """A trained projection head, ready to apply to base-model embeddings.

    >>> p = Projection.identity("demo", dim=2, hidden=3)
    >>> [round(float(v), 2) for v in p.transform(np.array([[3.0, 4.0]], dtype=np.float32))[0]]
    [0.6, 0.8]
    """

    weights: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def base_model_id(self) -> str:
        return str(self.meta["base_model_id"])

    @classmethod
    def identity(cls, base_model_id: str, *, dim: int, hidden: int) -> Projection:
        """An untrained head (the identity map up to normalisation)."""
        weights = {
            "l1.weight": np.zeros((hidden, dim), np.float32),
            "l1.bias": np.zeros(hidden, np.float32),
            "l2.weight": np.zeros((dim, hidden), np.float32),
            "l2.bias": np.zeros(dim, np.float32),
        }
        return cls(weights, {"format": FORMAT, "base_model_id": base_model_id, "dim": dim, "hidden": hidden})

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project (N, dim) base embeddings; returns L2-normalised float32, same shape."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.meta["dim"]:
            raise CheckpointError(
                f"embeddings of shape {x.shape} do not fit this checkpoint (dim {self.meta['dim']}, "
                f"base model {self.base_model_id!r})"
            )
        w = self.weights
        hidden = np.maximum(x @ w["l1.weight"].T + w["l1.bias"], 0.0)
        return l2_normalize(x + hidden @ w["l2.weight"].T + w["l2.bias"])

    def map_threshold(self, base_threshold: float) -> float:
        """The projected-space cosine with the same rate of matching pairs as `base_threshold` had in the
        base space (from the checkpoint's threshold map); unchanged without a map."""
        table = self.meta.get("threshold_map")
        if not table:
            return float(base_threshold)
        base, projected = np.asarray(table["base"]), np.asarray(table["projected"])
        return float(np.interp(base_threshold, base, projected))

    def check_model(self, model_id: str) -> None:
        """Raise CheckpointError unless this head was trained for `model_id`'s embeddings."""
        if model_id != self.base_model_id:
            raise CheckpointError(
                f"the checkpoint was trained on {self.base_model_id!r} embeddings, but the store holds "
                f"{model_id!r} embeddings. Train a head for this store (facekit train-matching) or unset "
                "FACE_MODEL_CHECKPOINT."
            )


def save_checkpoint(path: str | Path, weights: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write weights and metadata to `path` (.safetensors); returns the path."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: np.ascontiguousarray(weights[k], dtype=np.float32) for k in LAYERS}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata={"facekit": json.dumps({"format": FORMAT, **meta})})
    tmp.replace(path)  # a reader never sees half a file
    return path


def load_projection(path: str | Path, *, model_id: str | None = None) -> Projection:
    """Read a checkpoint written by `save_checkpoint`; check it fits `model_id` when given."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: train one with `facekit train-matching` or fix the path")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("facekit", "{}"))
            weights = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (SafetensorError, OSError, json.JSONDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable facekit checkpoint ({exc})") from None
    if meta.get("format") != FORMAT or set(weights) != set(LAYERS):
        raise CheckpointError(f"{path} is not a facekit projection-head checkpoint (format {meta.get('format')!r})")
    projection = Projection(weights, {**meta, "path": str(path)})
    if model_id is not None:
        projection.check_model(model_id)
    return projection


def threshold_map(base: np.ndarray, projected: np.ndarray, *, pairs: int = 2_000_000, seed: int = 0) -> dict:
    """Match thresholds of the two spaces by the rate of random pairs above them.

    Random pairs of a photo collection are nearly all two different people, so a threshold's rate is
    its false-match rate; the projected threshold with the same rate keeps clustering about as strict
    as it was. `base` and `projected` are the same faces in both spaces.
    """
    n = len(base)
    if n < 3:
        return {}
    rng = np.random.default_rng(seed)
    pairs = min(pairs, n * (n - 1) // 2)
    b_sims, p_sims = [], []
    for start in range(0, pairs, 200_000):
        m = min(200_000, pairs - start)
        i, j = rng.integers(0, n, m), rng.integers(0, n, m)
        keep = i != j
        i, j = i[keep], j[keep]
        b_sims.append(np.einsum("ij,ij->i", base[i], base[j]))
        p_sims.append(np.einsum("ij,ij->i", projected[i], projected[j]))
    b, p = np.sort(np.concatenate(b_sims)), np.sort(np.concatenate(p_sims))
    grid = np.round(np.arange(0.30, 0.996, 0.005), 3)
    rates = 1.0 - np.searchsorted(b, grid, side="left") / len(b)  # share of pairs >= each base threshold
    mapped = np.quantile(p, np.clip(1.0 - rates, 0.0, 1.0))
    # above the highest sampled pair the rate is 0 in both spaces: keep the base value there
    mapped = np.where(rates > 0, mapped, np.maximum(grid, p[-1]))
    return {"base": grid.tolist(), "projected": np.maximum.accumulate(mapped).round(4).tolist(), "pairs": len(b)}
