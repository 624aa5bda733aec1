"""dlib's ResNet face recognizer (128-d, CC0 weights from `face-recognition-models`): fully offline."""

from __future__ import annotations

import logging

import numpy as np

from facekit.embedding.base import ModelDefaults, face_quality, l2_normalize, main_face_order, resize
from facekit.embedding.landmarks import dlib_model_dir
from facekit.errors import ModelNotFoundError
from facekit.types import DetectedFace

log = logging.getLogger(__name__)

MODEL_ID = "dlib_resnet_v1"
DIM = 128
# The link threshold a pass falls back to when the data cannot be calibrated: cosine 0.945 (eps 0.055),
# Chinese Whispers' best on all 13,233 LFW photos (bench/results/clustering.md). dlib's documented
# "euclidean distance < 0.6" rule (cosine 0.91 on unit vectors: raw descriptors have norm 1.43) links far
# too much for clustering.
DEFAULTS = ModelDefaults(unknown_eps=0.055)


class DlibEmbedder:
    """HOG face detector + 5-point landmarks + ResNet descriptor, as in face_recognition.

    Parameters
    ----------
    upsample : int or None
        Times to upsample the image for the detector; None: once for images up to 1000 px, else 0.
    max_side : int
        Larger images are scaled down to this long side for detection (boxes are mapped back).
    """

    model_id = MODEL_ID
    dim = DIM
    defaults = DEFAULTS

    def __init__(self, *, upsample: int | None = None, max_side: int = 1600) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelNotFoundError("the dlib model needs the dlib extra: pip install 'facekit[dlib]'") from exc
        folder = dlib_model_dir()
        self.upsample = upsample
        self.max_side = max_side
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self._recognizer = dlib.face_recognition_model_v1(str(folder / "dlib_face_recognition_resnet_model_v1.dat"))
        log.info("dlib embedder loaded from %s (CPU)", folder)

    def detect_and_embed(self, pixels: np.ndarray) -> list[DetectedFace]:
        """All faces in an RGB uint8 image, the subject first (`main_face_order`)."""
        dlib = self._dlib
        h, w = pixels.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = pixels if scale == 1.0 else resize(pixels, scale)
        upsample = self.upsample if self.upsample is not None else (1 if max(small.shape[:2]) <= 1000 else 0)
        rects, scores, _ = self._detector.run(small, upsample, 0.0)
        if not rects:
            return []
        boxes = [(r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale) for r in rects]
        order = main_face_order(np.array(boxes), pixels.shape)
        shapes = dlib.full_object_detections()
        for i in order:
            x1, y1, x2, y2 = boxes[i]
            shapes.append(self._shapes(pixels, dlib.rectangle(round(x1), round(y1), round(x2), round(y2))))
        descriptors = self._recognizer.compute_face_descriptor(pixels, shapes, 0, 0.25)
        embeddings = l2_normalize(np.array([np.array(d) for d in descriptors], dtype=np.float32))
        faces = []
        for k, i in enumerate(order):
            box = tuple(float(c) for c in boxes[i])
            parts = shapes[k].parts()
            landmarks = np.array([[p.x, p.y] for p in parts], dtype=np.float32)
            faces.append(
                DetectedFace(
                    bbox=box,  # type: ignore[arg-type]
                    landmarks=landmarks,
                    det_score=float(scores[i]),
                    quality=face_quality(pixels, box),  # type: ignore[arg-type]
                    embedding=embeddings[k],
                )
            )
        return faces
