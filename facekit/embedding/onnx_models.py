"""InsightFace-style ONNX models through onnxruntime: SCRFD detector, ArcFace recognizer, buffalo_l.

Normalisation is explicit (mean, std, channel order), never guessed from node names. The execution
provider is chosen explicitly (CUDA when onnxruntime offers it and `prefer_gpu`, else CPU) and logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facekit.embedding.base import (
    ARCFACE_TEMPLATE,
    ModelDefaults,
    face_quality,
    l2_normalize,
    main_face_order,
    similarity_transform,
    warp_affine,
)
from facekit.errors import ModelLoadError, ModelNotFoundError
from facekit.types import DetectedFace

log = logging.getLogger(__name__)

BUFFALO_L = "buffalo_l"
BUFFALO_L_FILES = {"detector": "det_10g.onnx", "recognizer": "w600k_r50.onnx"}
# ArcFace R50 (w600k): same-person cosine similarities sit well above 0.4; insightface's own
# verification threshold is ~0.3-0.4. 0.5 is a precision-leaning fallback for a pass that cannot calibrate.
BUFFALO_L_DEFAULTS = ModelDefaults(unknown_eps=0.5)
GENERIC_ONNX_DEFAULTS = ModelDefaults(unknown_eps=0.5)


def make_session(path: Path, *, prefer_gpu: bool = True, threads: int | None = None):  # -> InferenceSession
    """An onnxruntime session on CUDA when available (and wanted), else CPU; says which.

    `threads` caps onnxruntime's intra-op threads (None: FACEKIT_ONNX_THREADS, else onnxruntime's
    default of one a core); indexing workers run one each, so N workers do not fight over N cores.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelNotFoundError(
            "ONNX models need onnxruntime: pip install 'facekit[insightface]' (CPU) or 'facekit[gpu]' (CUDA)"
        ) from exc
    if not path.is_file():
        raise ModelNotFoundError(f"ONNX model file not found: {path}")
    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if prefer_gpu and "CUDAExecutionProvider" in available:
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # keep the missing-CUDA-library noise out of notebooks
    threads = threads if threads is not None else int(os.environ.get("FACEKIT_ONNX_THREADS", "0"))
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelLoadError(f"cannot load ONNX model {path}: {exc}") from exc
    used = session.get_providers()[0]
    log.info("%s runs on %s", path.name, "GPU (CUDA)" if used == "CUDAExecutionProvider" else "CPU")
    return session


class ScrfdDetector:
    """SCRFD face detector (insightface `det_*.onnx`): 3 strides, 2 anchors a cell, 5 keypoints.

    Outputs are expected in insightface's order: scores, boxes, keypoints, each per stride (8, 16, 32).
    """

    strides = (8, 16, 32)
    anchors_per_cell = 2

    def __init__(
        self, session, *, input_size: int = 640, score_threshold: float = 0.5, nms_threshold: float = 0.4
    ) -> None:
        n_out = len(session.get_outputs())
        if n_out != 9:
            raise ModelLoadError(
                f"SCRFD detector must have 9 outputs (scores, boxes, keypoints for 3 strides), got {n_out}"
            )
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.input_size = input_size
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold

    def detect(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4), scores (N,), keypoints (N, 5, 2) in the input image's pixels."""
        from PIL import Image

        h, w = pixels.shape[:2]
        size = self.input_size
        scale = size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.zeros((size, size, 3), dtype=np.float32)
        canvas[:nh, :nw] = np.asarray(Image.fromarray(pixels).resize((nw, nh), Image.Resampling.BILINEAR))
        blob = ((canvas - 127.5) / 128.0).transpose(2, 0, 1)[None]  # RGB, NCHW
        outputs = self.session.run(None, {self.input_name: blob.astype(np.float32)})
        boxes, scores, kps = [], [], []
        for i, stride in enumerate(self.strides):
            s = outputs[i].reshape(-1)
            d = outputs[i + 3].reshape(-1, 4) * stride
            k = outputs[i + 6].reshape(-1, 10) * stride
            cells = size // stride
            ys, xs = np.mgrid[:cells, :cells]
            centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            centers = np.repeat(centers, self.anchors_per_cell, axis=0)
            keep = np.where(s >= self.score_threshold)[0]
            c = centers[keep]
            boxes.append(np.hstack([c - d[keep, :2], c + d[keep, 2:]]))
            scores.append(s[keep])
            kps.append(c[:, None, :] + k[keep].reshape(-1, 5, 2))
        b, sc, kp = np.vstack(boxes), np.concatenate(scores), np.vstack(kps)
        keep = _nms(b, sc, self.nms_threshold)
        return b[keep] / scale, sc[keep], kp[keep] / scale


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = np.array(order, dtype=int)
        if rest.size == 0:
            break
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = [int(j) for j, o in zip(rest, iou, strict=True) if o <= threshold]
    return keep


class ArcFaceRecognizer:
    """ArcFace-style recognizer: 112x112 aligned crop → embedding, with explicit normalisation."""

    def __init__(
        self, session, *, input_mean: float = 127.5, input_std: float = 127.5, channel_order: str = "rgb"
    ) -> None:
        shape = session.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] != 3:
            raise ModelLoadError(f"recognizer input must be N x 3 x H x W, got {shape}")
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.crop = int(shape[2]) if isinstance(shape[2], int) else 112
        out = session.get_outputs()[0].shape
        if not isinstance(out[-1], int):
            raise ModelLoadError(f"recognizer output must have a fixed embedding size, got {out}")
        self.dim = int(out[-1])
        self.input_mean, self.input_std, self.channel_order = input_mean, input_std, channel_order

    def align(self, pixels: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Crop of side `self.crop`, aligned on ArcFace's template (5 points, or 3: eyes and nose)."""
        template = ARCFACE_TEMPLATE[: len(landmarks)] * (self.crop / 112.0)
        return warp_affine(pixels, similarity_transform(landmarks, template), self.crop)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (N, dim), L2-normalised, of aligned crops."""
        batch = np.stack(crops).astype(np.float32)
        if self.channel_order == "bgr":
            batch = batch[..., ::-1]
        batch = ((batch - self.input_mean) / self.input_std).transpose(0, 3, 1, 2)
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch)})[0]
        return l2_normalize(out.reshape(len(crops), -1))


class OnnxFaceEmbedder:
    """A detector (SCRFD, or any callable with the same result) + an ArcFace-style recognizer."""

    def __init__(self, detector, recognizer: ArcFaceRecognizer, *, model_id: str, defaults: ModelDefaults) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.model_id = model_id
        self.dim = recognizer.dim
        self.defaults = defaults

    def detect_and_embed(self, pixels: np.ndarray) -> list[DetectedFace]:
        boxes, scores, kps = self.detector.detect(pixels)
        if len(boxes) == 0:
            return []
        order = main_face_order(boxes, pixels.shape)
        crops = [self.recognizer.align(pixels, kps[i]) for i in order]
        embeddings = self.recognizer.embed(crops)
        faces = []
        for k, i in enumerate(order):
            box = tuple(float(c) for c in boxes[i])
            faces.append(
                DetectedFace(
                    bbox=box,  # type: ignore[arg-type]
                    landmarks=np.asarray(kps[i], dtype=np.float32),
                    det_score=float(scores[i]),
                    quality=face_quality(pixels, box),  # type: ignore[arg-type]
                    embedding=embeddings[k],
                )
            )
        return faces


def buffalo_l_dir(models_dir: Path) -> Path:
    return Path(models_dir).expanduser() / BUFFALO_L


def buffalo_l_installed(models_dir: Path) -> bool:
    folder = buffalo_l_dir(models_dir)
    return all((folder / name).is_file() for name in BUFFALO_L_FILES.values())


def load_buffalo_l(models_dir: Path, *, prefer_gpu: bool = True) -> OnnxFaceEmbedder:
    """InsightFace's buffalo_l pack (SCRFD 10G + ArcFace R50, 512-d) from `<models_dir>/buffalo_l/`."""
    folder = buffalo_l_dir(models_dir)
    missing = [name for name in BUFFALO_L_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"buffalo_l pack not found: {', '.join(missing)} missing in {folder}. Download buffalo_l.zip from "
            "the insightface model zoo (non-commercial research licence), unzip it there, or set "
            "FACEKIT_MODELS_DIR to the folder holding buffalo_l/; or use FACE_MODEL_NAME=dlib."
        )
    detector = ScrfdDetector(make_session(folder / BUFFALO_L_FILES["detector"], prefer_gpu=prefer_gpu))
    recognizer = ArcFaceRecognizer(make_session(folder / BUFFALO_L_FILES["recognizer"], prefer_gpu=prefer_gpu))
    return OnnxFaceEmbedder(detector, recognizer, model_id=BUFFALO_L, defaults=BUFFALO_L_DEFAULTS)


def load_generic_onnx(
    recognizer_path: Path,
    models_dir: Path,
    *,
    input_mean: float = 127.5,
    input_std: float = 127.5,
    channel_order: str = "rgb",
    prefer_gpu: bool = True,
) -> OnnxFaceEmbedder:
    """An ArcFace-style recognizer file, with SCRFD from the buffalo_l pack if installed, else dlib's HOG
    detector and 68-point landmarks (five points either way)."""
    path = Path(recognizer_path).expanduser()
    recognizer = ArcFaceRecognizer(
        make_session(path, prefer_gpu=prefer_gpu),
        input_mean=input_mean,
        input_std=input_std,
        channel_order=channel_order,
    )
    if buffalo_l_installed(models_dir):
        folder = buffalo_l_dir(models_dir)
        detector = ScrfdDetector(make_session(folder / BUFFALO_L_FILES["detector"], prefer_gpu=prefer_gpu))
    else:
        from facekit.embedding.landmarks import FivePointDetector

        log.info("no SCRFD pack in %s: generic ONNX recognizer uses dlib's HOG detector, 5-point alignment", models_dir)
        detector = FivePointDetector()
    return OnnxFaceEmbedder(detector, recognizer, model_id=f"onnx_{path.stem}", defaults=GENERIC_ONNX_DEFAULTS)
