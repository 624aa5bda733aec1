"""Plain records passed between stages (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image, embedded and ready to store.

    `bbox` is (x1, y1, x2, y2) in pixels of the EXIF-rotated image, `landmarks` a (K, 2) array in the
    same frame, `embedding` L2-normalised float32. `quality` is in [0, 1] (size and sharpness).
    """

    bbox: tuple[float, float, float, float]
    landmarks: np.ndarray
    det_score: float
    quality: float
    embedding: np.ndarray


@dataclass(frozen=True)
class FaceRecord:
    """A face as the store holds it: its id, payload fields and (optionally) its embedding."""

    face_id: str
    image_id: str
    image_path: str
    face_index: int
    bbox: tuple[float, float, float, float] | None
    det_score: float | None
    quality: float | None
    model_id: str
    person_id: str | None = None
    cluster_id: str | None = None
    cluster_confidence: float | None = None
    assignment_source: str | None = None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SearchHit:
    """One result of a similarity search."""

    face: FaceRecord
    score: float
    person_name: str | None = None


@dataclass(frozen=True)
class Person:
    """A known person: a stable id and a display name; `face_count` is filled by listings."""

    person_id: str
    name: str
    face_count: int = 0


@dataclass(frozen=True)
class SkippedImage:
    """An input that produced no face record, with the reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class IndexSummary:
    """What one indexing run did."""

    images: int
    faces_added: int
    faces_total: int
    skipped: list[SkippedImage]
    seconds: float
    already_indexed: int = 0

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "faces_added": self.faces_added,
            "faces_total": self.faces_total,
            "already_indexed": self.already_indexed,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "seconds": round(self.seconds, 3),
        }
