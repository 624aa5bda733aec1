"""dlib's ResNet face recognizer (128-d, CC0 weights from `face-recognition-models`): fully offline."""

from __future__ import annotations

import functools
import logging

import numpy as np

from facekit.embedding.base import ModelDefaults, face_quality, l2_normalize, main_face_order, resize
from facekit.embedding.landmarks import FIRST_LOOK_UPSAMPLE, dlib_weights
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
SHAPES_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"


class DlibEmbedder:
    """HOG face detector + 5-point landmarks + ResNet descriptor, as in face_recognition.

    Parameters
    ----------
    upsample : int or None
        Times to upsample the image for the detector; None: `FIRST_LOOK_UPSAMPLE` (once: faces from ~40 px of the
        image scaled to `max_side`, ~100 px in a 12-megapixel photo).
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
        self.upsample = upsample
        self.max_side = max_side
        self._dlib = dlib
        self._shapes_file, self._recognizer_file = dlib_weights(SHAPES_FILE, RECOGNIZER_FILE)

    # Loaded on first use: an indexing run's parent process, which only hands photos to its workers,
    # never pays for them.
    @functools.cached_property
    def _detector(self):  # dlib.fhog_object_detector
        return self._dlib.get_frontal_face_detector()

    @functools.cached_property
    def _shapes(self):  # dlib.shape_predictor
        return self._dlib.shape_predictor(str(self._shapes_file))

    @functools.cached_property
    def _recognizer(self):  # dlib.face_recognition_model_v1
        log.info("dlib recognizer loaded from %s (CPU)", self._recognizer_file)
        return self._dlib.face_recognition_model_v1(str(self._recognizer_file))

    def detect_and_embed(self, pixels: np.ndarray) -> list[DetectedFace]:
        """All faces in an RGB uint8 image, the subject first (`main_face_order`)."""
        dlib = self._dlib
        h, w = pixels.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = pixels if scale == 1.0 else resize(pixels, scale)
        upsample = self.upsample if self.upsample is not None else FIRST_LOOK_UPSAMPLE
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
