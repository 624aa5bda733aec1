"""Face detection with five landmarks (eye centres, nose tip, mouth corners) from the models that
`face-recognition-models` ships: dlib's HOG detector and its 68-point shape predictor.

Measured on LFW (bench/results/detection.md): HOG at its default score threshold (0) misses faces in
photos that are nothing but a tight face crop; retries at -0.5, then on the photo padded by a border,
then turned by ±`retry_angle` degrees find them. HOG's box and the 68-point predictor are least sure of
themselves on a rolled face, so a face whose eyes lean by more than `level_above` degrees is found and
landmarked again on the region turned to level its eyes: on LFW crops turned +20°, TAR at FAR 1e-4 went
from 0.966 to 0.974 (0.978 for the same crops upright).
A photo where no face is found is reported as such by the indexer, never embedded from a guessed box.
"""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import numpy as np

from facekit.embedding.base import resize
from facekit.errors import ModelNotFoundError

log = logging.getLogger(__name__)

# 68-point indices (iBUG 300-W): the subject's right eye is on the image left.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT, _MOUTH_RIGHT = 48, 54
LEVEL_FACE_PX = 200  # the widest a levelled face is searched at (larger photos' faces are scaled down)
# HOG's window is 80 px: upsampled once, it finds faces from ~40 px of the photo scaled to `max_side` (1600), 2.5% of
# its long side, as SCRFD at 640 does (Immich, insightface). Not upsampled (photos over 1000 px before), a 12-megapixel
# photo's faces were found from ~160 px: of LFW's faces pasted 80, 100 and 130 px wide into 4032 x 3024 photos 0%, 2%
# and 51% were found, now 98%, 100% and 100% (60 px: 10%), in 0.75 s a photo where the retries that found nothing had
# taken 2.2 s (a photo with no face: 2.2 -> 2.7 s); MobileFaceNet's BCubed F on them 0.556 -> 0.858
# (bench/results/large_photos.md).
FIRST_LOOK_UPSAMPLE = 1


def five_points(shape68: np.ndarray) -> np.ndarray:
    """ArcFace's five points, image-left first: eye centres, nose tip, mouth corners, from 68 points."""
    return np.array(
        [
            shape68[_LEFT_EYE].mean(0),
            shape68[_RIGHT_EYE].mean(0),
            shape68[_NOSE_TIP],
            shape68[_MOUTH_LEFT],
            shape68[_MOUTH_RIGHT],
        ],
        dtype=np.float32,
    )


def dlib_model_dir() -> Path:
    """The folder of `face_recognition_models`' weight files (found without importing the package,
    which needs the removed `pkg_resources`)."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            "dlib model weights not found: install them with `pip install 'facekit[dlib]'` "
            "(packages dlib-bin and face-recognition-models)."
        )
    return Path(spec.origin).parent / "models"


def dlib_weights(*names: str) -> list[Path]:
    """The paths of these weight files in `dlib_model_dir()`, checked to be there (they load later, on
    first use)."""
    folder = dlib_model_dir()
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{', '.join(missing)} missing in {folder}: reinstall with `pip install --force-reinstall "
            "face-recognition-models`."
        )
    return [folder / name for name in names]


class FivePointDetector:
    """dlib HOG detection + 68-point landmarks reduced to ArcFace's five points.

    Parameters
    ----------
    score_threshold : float
        HOG's score threshold for the first attempt (dlib's default, 0).
    retry_threshold : float
        The lower threshold of the retries when the first attempt finds nothing (lower finds more faces,
        and more false ones: only used on photos where no clear face was found).
    pad : float
        When nothing is found, the photo is padded by this fraction of its size on each side (edge
        pixels repeated) and searched again: a face that fills the photo gets the margin HOG's
        window needs. 0: no retry.
    retry_angle : float
        When nothing is found, detect again on the photo turned by +/- this many degrees. 0: no retry.
    level_above : float
        A face whose eye line leans by more than this many degrees is found and landmarked again on the
        region around it turned upright (the points are mapped back). 0: never.
    max_side : int
        Larger photos are scaled down to this long side for detection (boxes and points are mapped back).
    upsample : int or None
        Times to upsample for the detector; None: once for the first look (HOG's window is 80 px, so faces from
        ~40 px of the scaled photo: ~100 px in a 12-megapixel one, `FIRST_LOOK_UPSAMPLE`), and for the retries
        (which look for a face that fills the photo or leans) once for photos up to 1000 px, else 0.
    """

    def __init__(
        self,
        *,
        score_threshold: float = 0.0,
        retry_threshold: float = -0.5,
        pad: float = 0.25,
        retry_angle: float = 20.0,
        level_above: float = 8.0,
        max_side: int = 1600,
        upsample: int | None = None,
    ) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ModelNotFoundError("face detection needs the dlib extra: pip install 'facekit[dlib]'") from exc
        self.score_threshold = score_threshold
        self.retry_threshold = retry_threshold
        self.pad = pad
        self.retry_angle = retry_angle
        self.level_above = level_above
        self.max_side = max_side
        self.upsample = upsample
        self._dlib = dlib
        (self._predictor_file,) = dlib_weights("shape_predictor_68_face_landmarks.dat")

    # Loaded on first use (~1-2 s): an indexing run's parent process, which only hands photos to its
    # workers, never pays for them.
    @functools.cached_property
    def _detector(self):  # dlib.fhog_object_detector
        return self._dlib.get_frontal_face_detector()

    @functools.cached_property
    def _shapes(self):  # dlib.shape_predictor
        return self._dlib.shape_predictor(str(self._predictor_file))

    def detect(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4), scores (N,) and five points (N, 5, 2) in the photo's pixels.

        Keeps HOG's faces at `score_threshold` when there are any, else those at `retry_threshold` (one
        HOG pass gives both: non-maximum suppression never drops a higher score for a lower one); then
        tries the photo padded (a face that fills the photo), then turned by +/- `retry_angle`. The first
        attempt that finds a face wins, so a photo with a clear face gets no extra, weaker detections.
        """
        low = min(self.score_threshold, self.retry_threshold)
        first, retry = self._upsample(pixels)
        attempts = [(0.0, 0.0, self.score_threshold, first)]
        if self.pad:
            attempts.append((0.0, self.pad, None, retry))
        if self.retry_angle:
            attempts += [(self.retry_angle, self.pad, None, retry), (-self.retry_angle, self.pad, None, retry)]
        for angle, pad, prefer, upsample in attempts:
            found = (
                self._detect_turned(pixels, angle, pad, low, upsample)
                if angle
                else self._detect_upright(pixels, pad, low, upsample, prefer=prefer)
            )
            if len(found[0]):
                return found
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)

    def _upsample(self, pixels: np.ndarray) -> tuple[int, int]:
        """Times HOG upsamples the (scaled) photo on the first look and on the retries."""
        if self.upsample is not None:
            return self.upsample, self.upsample
        side = min(self.max_side, max(pixels.shape[:2]))  # the scaled photo's long side
        return FIRST_LOOK_UPSAMPLE, 1 if side <= 1000 else 0

    def _detect_upright(
        self, pixels: np.ndarray, pad: float, threshold: float, upsample: int, *, prefer: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """HOG at `threshold` on the photo upsampled `upsample` times; with `prefer`, only the faces scoring at
        least that when there are any."""
        h, w = pixels.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = pixels if scale == 1.0 else resize(pixels, scale)
        py, px = round(small.shape[0] * pad), round(small.shape[1] * pad)
        padded = np.pad(small, ((py, py), (px, px), (0, 0)), mode="edge") if pad else small
        rects, det_scores, _ = self._detector.run(padded, upsample, threshold)
        found = list(zip(rects, det_scores, strict=True))
        if prefer is not None and any(score >= prefer for _, score in found):
            found = [(rect, score) for rect, score in found if score >= prefer]
        boxes, scores, points = [], [], []
        for rect, score in found:
            x1, y1 = (rect.left() - px) / scale, (rect.top() - py) / scale
            x2, y2 = (rect.right() - px) / scale, (rect.bottom() - py) / scale
            box = (x1, y1, x2, y2)
            boxes.append(box)
            scores.append(score)
            points.append(self._five_points(pixels, box))
        return (
            np.array(boxes, dtype=np.float32).reshape(-1, 4),
            np.array(scores, dtype=np.float32),
            np.array(points, dtype=np.float32).reshape(-1, 5, 2),
        )

    def _five_points(self, pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """The five points of the face in `box`; a rolled face is landmarked again, levelled."""
        points = self._predict(pixels, box)
        roll = eye_roll(points)
        if self.level_above and abs(roll) > self.level_above and _centre_inside(box, pixels.shape):
            points = self._predict_levelled(pixels, box, roll)
        return points

    def _predict(self, pixels: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        x1, y1, x2, y2 = (round(c) for c in box)
        shape = self._shapes(pixels, self._dlib.rectangle(x1, y1, x2, y2))
        return five_points(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32))

    def _predict_levelled(self, pixels: np.ndarray, box: tuple[float, float, float, float], roll: float) -> np.ndarray:
        """Five points predicted on the region around `box` turned by `roll` degrees about the box's
        centre (which levels the eyes), in HOG's box for the levelled face, mapped back into the photo."""
        from PIL import Image

        x1, y1, x2, y2 = box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        reach = max(x2 - x1, y2 - y1)  # covers the box's corners at any angle
        h, w = pixels.shape[:2]
        left, top = max(0, int(cx - reach)), max(0, int(cy - reach))
        right, bottom = min(w, int(cx + reach) + 1), min(h, int(cy + reach) + 1)
        region = pixels[top:bottom, left:right]
        centre = (cx - left, cy - top)
        turned = np.asarray(
            Image.fromarray(np.ascontiguousarray(region)).rotate(
                roll, center=centre, resample=Image.Resampling.BILINEAR
            )
        )
        points = self._predict(turned, self._upright_box(turned, (x1 - left, y1 - top, x2 - left, y2 - top)))
        back = _rotation(-roll, centre)
        return (points @ back[:, :2].T + back[:, 2] + np.array([left, top])).astype(np.float32)

    def _upright_box(
        self, region: np.ndarray, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """HOG's own box for the levelled face (the one nearest `box`'s centre), else `box` as it is. The
        region is searched with the face at most `LEVEL_FACE_PX` wide (HOG finds faces from 80 px)."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(box[2] - box[0], box[3] - box[1])
        scale = min(1.0, LEVEL_FACE_PX / side)
        small = region if scale == 1.0 else resize(region, scale)
        upsample = 1 if side * scale < 120 else 0
        rects, _, _ = self._detector.run(small, upsample, min(self.score_threshold, self.retry_threshold))
        best, best_d = box, 0.25 * side
        for r in rects:
            found = (r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale)
            d = np.hypot((found[0] + found[2]) / 2 - cx, (found[1] + found[3]) / 2 - cy)
            if d < best_d:
                best, best_d = found, d
        return best

    def _detect_turned(
        self, pixels: np.ndarray, angle: float, pad: float, threshold: float, upsample: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Detect on the photo turned by `angle` degrees about its centre; map the results back."""
        from PIL import Image

        h, w = pixels.shape[:2]
        turned = np.asarray(Image.fromarray(pixels).rotate(angle, resample=Image.Resampling.BILINEAR))
        boxes, scores, points = self._detect_upright(turned, pad, threshold, upsample)
        if len(boxes) == 0:
            return boxes, scores, points
        # PIL turns counter-clockwise on screen; undo it about the same centre.
        back = _rotation(-angle, (w / 2, h / 2))
        points = (points.reshape(-1, 2) @ back[:, :2].T + back[:, 2]).reshape(-1, 5, 2).astype(np.float32)
        corners = (
            np.stack([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [0, 3]], boxes[:, [2, 3]]], axis=1).reshape(-1, 2)
            @ back[:, :2].T
            + back[:, 2]
        )
        corners = corners.reshape(-1, 4, 2)
        boxes = np.hstack([corners.min(1), corners.max(1)]).astype(np.float32)
        return boxes, scores, points


def _centre_inside(box: tuple[float, float, float, float], shape: tuple[int, ...]) -> bool:
    """Whether the box's centre lies in the photo (a padded retry can find a face centred off it)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return 0 <= cx < shape[1] and 0 <= cy < shape[0]


def eye_roll(points: np.ndarray) -> float:
    """Degrees the eye line leans, clockwise on screen (y down): 0 for level eyes."""
    (lx, ly), (rx, ry) = points[0], points[1]
    return math.degrees(math.atan2(ry - ly, rx - lx))


def _rotation(angle: float, centre: tuple[float, float]) -> np.ndarray:
    """2x3 map of a turn by `angle` degrees counter-clockwise on screen (y down) about `centre`."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    rot = np.array([[c, s], [-s, c]])
    cx, cy = centre
    t = np.array([cx, cy]) - rot @ np.array([cx, cy])
    return np.hstack([rot, t[:, None]])
