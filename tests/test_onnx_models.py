"""The buffalo_l / generic ONNX path, tested with tiny models exported here with torch.onnx.

The detector's outputs are constants (one known face) so that decoding, NMS and rescaling are checked
exactly; the recognizer is a small random CNN whose ONNX output must equal torch's on the same crop.
"""

import logging
import re

import numpy as np
import pytest
import torch

from facekit.embedding import load_embedder
from facekit.embedding.base import ARCFACE_TEMPLATE, similarity_transform
from facekit.embedding.onnx_models import BUFFALO_L_FILES, load_buffalo_l
from facekit.errors import ModelLoadError, ModelNotFoundError

SIZE = 640
# One face: stride-8 cell (x=20, y=25), anchor 0; a weaker duplicate on anchor 1 of the same cell.
CELL_X, CELL_Y = 20, 25
DIST = [5.0, 6.0, 5.0, 7.0]  # left, top, right, bottom in stride units
KPS = [-2.0, -2.0, 2.0, -2.0, 0.0, 0.0, -1.5, 2.5, 1.5, 2.5]


class TinyScrfd(torch.nn.Module):
    def __init__(self):
        super().__init__()
        for stride in (8, 16, 32):
            n = (SIZE // stride) ** 2 * 2
            score, box, kps = torch.full((n, 1), 0.01), torch.zeros(n, 4), torch.zeros(n, 10)
            if stride == 8:
                i = (CELL_Y * (SIZE // 8) + CELL_X) * 2
                score[i, 0], score[i + 1, 0] = 0.9, 0.8
                box[i], box[i + 1] = torch.tensor(DIST), torch.tensor(DIST)
                kps[i] = torch.tensor(KPS)
            self.register_buffer(f"s{stride}", score)
            self.register_buffer(f"b{stride}", box)
            self.register_buffer(f"k{stride}", kps)

    def forward(self, x):
        zero = x.mean() * 0
        return tuple(getattr(self, f"{kind}{s}") + zero for kind in "sbk" for s in (8, 16, 32))


class TinyArcFace(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 8, stride=8)
        self.fc = torch.nn.Linear(8 * 14 * 14, 16)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def export(module, path, shape, dynamic_batch=False):
    kwargs = {"dynamic_axes": {"input.1": {0: "n"}}} if dynamic_batch else {}
    torch.onnx.export(module.eval(), torch.zeros(shape), str(path), input_names=["input.1"], dynamo=False, **kwargs)


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "buffalo_l").mkdir()
    export(TinyScrfd(), root / "buffalo_l" / BUFFALO_L_FILES["detector"], (1, 3, SIZE, SIZE))
    arc = TinyArcFace()
    export(arc, root / "buffalo_l" / BUFFALO_L_FILES["recognizer"], (1, 3, 112, 112), dynamic_batch=True)
    return root, arc


def test_buffalo_l_decodes_one_face_and_embeds_like_torch(pack, caplog):
    root, arc = pack
    with caplog.at_level(logging.INFO, logger="facekit"):
        model = load_buffalo_l(root)
    assert re.search(r"runs on (CPU|CUDA)", caplog.text)  # the provider is said out loud (CUDA on a GPU)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (320, 320, 3), dtype=np.uint8)  # 320 px → scale 2 to the 640 input
    faces = model.detect_and_embed(pixels)
    assert len(faces) == 1  # the weaker duplicate is removed by NMS
    cx, cy = CELL_X * 8, CELL_Y * 8
    expected = np.array([cx - DIST[0] * 8, cy - DIST[1] * 8, cx + DIST[2] * 8, cy + DIST[3] * 8]) / 2
    assert np.allclose(faces[0].bbox, expected)
    assert faces[0].det_score == pytest.approx(0.9)
    kps = (np.array([cx, cy]) + np.array(KPS).reshape(5, 2) * 8) / 2
    assert np.allclose(faces[0].landmarks, kps)
    emb = faces[0].embedding
    assert emb.shape == (16,) and emb.dtype == np.float32 and np.linalg.norm(emb) == pytest.approx(1, abs=1e-5)
    # Same crop through torch with ArcFace's normalisation: RGB, (x - 127.5) / 127.5.
    crop = model.recognizer.align(pixels, kps)
    ref = arc(torch.from_numpy(((crop.astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None].copy()))
    ref = ref.detach().numpy()[0]
    assert np.allclose(emb, ref / np.linalg.norm(ref), atol=1e-4)


def test_alignment_maps_landmarks_onto_template():
    rng = np.random.default_rng(1)
    angle, scale, shift = 0.3, 1.7, np.array([40.0, 25.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = (ARCFACE_TEMPLATE - 56) @ rot.T * scale + shift + rng.normal(0, 0.01, (5, 2))
    m = similarity_transform(src, ARCFACE_TEMPLATE)
    mapped = src @ m[:, :2].T + m[:, 2]
    assert np.allclose(mapped, ARCFACE_TEMPLATE, atol=0.1)


def test_missing_pack_says_what_to_put_where(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        load_buffalo_l(tmp_path)
    msg = str(err.value)
    assert "det_10g.onnx" in msg and str(tmp_path / "buffalo_l") in msg and "FACEKIT_MODELS_DIR" in msg


def test_auto_choice_prefers_buffalo_l_when_installed(pack, monkeypatch, tmp_path):
    root, _ = pack
    monkeypatch.delenv("FACE_MODEL_NAME", raising=False)
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(root))
    assert load_embedder().model_id == "buffalo_l"
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(tmp_path))
    assert load_embedder().model_id == "dlib_resnet_v1"


def test_generic_onnx_recognizer_with_explicit_normalisation(pack, monkeypatch, tmp_path, lfw):
    root, arc = pack
    monkeypatch.setenv("FACE_MODEL_NAME", "onnx")
    monkeypatch.setenv("FACEKIT_ONNX_RECOGNIZER", str(root / "buffalo_l" / BUFFALO_L_FILES["recognizer"]))
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(tmp_path))  # no SCRFD pack: dlib's detector + 68 points
    monkeypatch.setenv("FACEKIT_ONNX_CHANNEL_ORDER", "bgr")
    monkeypatch.setenv("FACEKIT_ONNX_INPUT_MEAN", "0")
    monkeypatch.setenv("FACEKIT_ONNX_INPUT_STD", "255")
    from facekit.images import load_image

    model = load_embedder()
    assert model.model_id == "onnx_w600k_r50" and model.dim == 16
    pixels = load_image(lfw / "Arnold_Schwarzenegger" / "Arnold_Schwarzenegger_0001.jpg").pixels
    faces = model.detect_and_embed(pixels)
    assert len(faces) == 1 and faces[0].landmarks.shape == (5, 2)  # five-point alignment, as buffalo_l
    crop = model.recognizer.align(pixels, faces[0].landmarks)
    ref = arc(torch.from_numpy((crop[..., ::-1].astype(np.float32) / 255).transpose(2, 0, 1)[None].copy()))
    ref = ref.detach().numpy()[0]
    assert np.allclose(faces[0].embedding, ref / np.linalg.norm(ref), atol=1e-4)


def test_wrong_model_files_are_clear_errors(tmp_path, pack):
    root, _ = pack
    (tmp_path / "buffalo_l").mkdir()
    (tmp_path / "buffalo_l" / BUFFALO_L_FILES["detector"]).write_bytes(b"not onnx")
    (tmp_path / "buffalo_l" / BUFFALO_L_FILES["recognizer"]).write_bytes(b"not onnx")
    with pytest.raises(ModelLoadError, match="cannot load ONNX model"):
        load_buffalo_l(tmp_path)
    # A recognizer where the detector should be: wrong number of outputs.
    rec = (root / "buffalo_l" / BUFFALO_L_FILES["recognizer"]).read_bytes()
    (tmp_path / "buffalo_l" / BUFFALO_L_FILES["detector"]).write_bytes(rec)
    with pytest.raises(ModelLoadError, match="9 outputs"):
        load_buffalo_l(tmp_path)
