"""dlib's ResNet face recognizer (128-d, CC0 weights from `face-recognition-models`): fully offline."""

from __future__ import annotations

import functools
import logging

import numpy as np

from facekit.embedding.base import ModelDefaults, face_quality, l2_normalize, main_face_order
from facekit.embedding.landmarks import FivePointDetector, dlib_weights
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
    """facekit's HOG detector (`FivePointDetector`: retries for tight and tilted faces, first look upsampled once) +
    dlib's 5-point landmarks in each box + its ResNet descriptor.

    face_recognition (and facekit before) ran HOG alone at its default threshold. Through the detector's retries, on
    435 photos of bench/detection.py's subset (the first 300 folders), the dlib model finds 100% of the faces in the
    photos (99.54% before), in their tight crops (97.24%) and in those crops turned +20° / -20° (91.49% / 92.64%), and
    BCubed F (a photo with no face a singleton) rises 0.9657 -> 0.9671, 0.9414 -> 0.9487 and 0.918 / 0.924 -> 0.971 /
    0.968, at the same median time a photo (`make bench-detection`, bench/results/detection.md).

    Parameters
    ----------
    detector : FivePointDetector or None
        Finds the faces (its boxes only: dlib's own 5-point predictor places the chip); None: facekit's default.
    """

    model_id = MODEL_ID
    dim = DIM
    defaults = DEFAULTS

    def __init__(self, detector: FivePointDetector | None = None) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelNotFoundError("the dlib model needs the dlib extra: pip install 'facekit[dlib]'") from exc
        self.detector = detector if detector is not None else FivePointDetector()
        self._dlib = dlib
        self._shapes_file, self._recognizer_file = dlib_weights(SHAPES_FILE, RECOGNIZER_FILE)

    # Loaded on first use: an indexing run's parent process, which only hands photos to its workers,
    # never pays for them.
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
        found, scores, _ = self.detector.detect(pixels)
        if not len(found):
            return []
        boxes = [tuple(float(c) for c in box) for box in found]
        order = main_face_order(np.array(boxes), pixels.shape)
        shapes = dlib.full_object_detections()
        for i in order:
            x1, y1, x2, y2 = boxes[i]
            shapes.append(self._shapes(pixels, dlib.rectangle(round(x1), round(y1), round(x2), round(y2))))
        descriptors = self._recognizer.compute_face_descriptor(pixels, shapes, 0, 0.25)
        embeddings = l2_normalize(np.array([np.array(d) for d in descriptors], dtype=np.float32))
        faces = []
        for k, i in enumerate(order):
            box = boxes[i]
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
