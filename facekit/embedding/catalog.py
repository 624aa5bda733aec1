"""What embedding models facekit knows, and which are installed here (`facekit models list`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from facekit.config import Settings, get_settings
from facekit.embedding import dlib_resnet, mobilefacenet
from facekit.embedding.landmarks import dlib_model_dir
from facekit.embedding.onnx_models import BUFFALO_L, BUFFALO_L_FILES, buffalo_l_dir, buffalo_l_installed
from facekit.errors import ModelNotFoundError
from facekit.images import sha256_file


@dataclass(frozen=True)
class ModelInfo:
    """One model as `facekit models list` shows it; `sha256` is the installed recognizer file's."""

    name: str
    model_id: str
    dim: int | None
    installed: bool
    path: str
    sha256: str | None
    expected_sha256: str | None
    licence: str

    def as_dict(self) -> dict:
        return asdict(self)


def _sha256_if_file(path: Path) -> str | None:
    return sha256_file(path) if path.is_file() else None


def list_models(settings: Settings | None = None) -> list[ModelInfo]:
    """buffalo_l, mobilefacenet, dlib and (when FACEKIT_ONNX_RECOGNIZER is set) the generic ONNX model."""
    settings = settings or get_settings()
    rows = []
    buffalo = buffalo_l_dir(settings.models_dir) / BUFFALO_L_FILES["recognizer"]
    rows.append(
        ModelInfo(
            name="buffalo_l",
            model_id=BUFFALO_L,
            dim=512,
            installed=buffalo_l_installed(settings.models_dir),
            path=str(buffalo.parent),
            sha256=_sha256_if_file(buffalo),
            expected_sha256=None,
            licence="InsightFace model zoo: non-commercial research only",
        )
    )
    mfn = mobilefacenet.model_path(settings.models_dir)
    rows.append(
        ModelInfo(
            name="mobilefacenet",
            model_id=mobilefacenet.MODEL_ID,
            dim=mobilefacenet.DIM,
            installed=mfn.is_file(),
            path=str(mfn),
            sha256=_sha256_if_file(mfn),
            expected_sha256=mobilefacenet.ONNX_SHA256,
            licence=mobilefacenet.LICENCE,
        )
    )
    try:
        dlib_file = dlib_model_dir() / dlib_resnet.RECOGNIZER_FILE
    except ModelNotFoundError:  # the dlib extra is not installed
        dlib_file = Path("face_recognition_models (not installed)")
    rows.append(
        ModelInfo(
            name="dlib",
            model_id=dlib_resnet.MODEL_ID,
            dim=dlib_resnet.DIM,
            installed=dlib_file.is_file(),
            path=str(dlib_file),
            sha256=_sha256_if_file(dlib_file),
            expected_sha256=None,
            licence="CC0 weights (PyPI face-recognition-models)",
        )
    )
    if settings.onnx_recognizer:
        onnx_file = Path(settings.onnx_recognizer).expanduser()
        rows.append(
            ModelInfo(
                name="onnx",
                model_id=f"onnx_{onnx_file.stem}",
                dim=None,
                installed=onnx_file.is_file(),
                path=str(onnx_file),
                sha256=_sha256_if_file(onnx_file),
                expected_sha256=None,
                licence="yours (FACEKIT_ONNX_RECOGNIZER)",
            )
        )
    return rows
