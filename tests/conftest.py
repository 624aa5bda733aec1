"""Shared fixtures: real LFW photos from ../shared/datasets/lfw, the real dlib model, temp stores."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facekit.indexing import index_batch
from facekit.store import FaceStore

ROOT = Path(__file__).resolve().parents[1]
LFW = Path(os.environ.get("FACEKIT_LFW", ROOT.parent / "shared" / "datasets" / "lfw"))
# Small, fixed subsets: people with several photos (for matching) and a few with one.
PEOPLE = ["Arnold_Schwarzenegger", "Art_Howe", "Arminio_Fraga", "Arnold_Palmer", "Arturo_Gatti", "Aron_Ralston"]
# Clustering and training tests: 7 photos each of 6 people
DUAL_PEOPLE = ["Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon", "Hugo_Chavez"]
DUAL_PER_PERSON = 7
DLIB = "dlib_resnet_v1"


@pytest.fixture(scope="session")
def lfw() -> Path:
    if not (LFW / "Arnold_Schwarzenegger").is_dir():
        pytest.fail(f"LFW not found at {LFW}: the tests need ../shared/datasets/lfw (or set FACEKIT_LFW)")
    return LFW


@pytest.fixture(scope="session")
def photos(lfw: Path) -> list[Path]:
    """Up to 4 photos each of the PEOPLE (20 photos)."""
    out: list[Path] = []
    for name in PEOPLE:
        out += sorted((lfw / name).glob("*.jpg"))[:4]
    return out


@pytest.fixture(scope="session")
def dlib_embedder():
    from facekit.embedding.dlib_resnet import DlibEmbedder

    return DlibEmbedder()


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


ENGINES = ["edge", "local", "memory"]


@pytest.fixture(params=ENGINES)
def engine_store(request, store_path):
    """An empty 8-d store on each engine: Qdrant Edge (the embedded default), an unmigrated local-mode
    folder, and qdrant-client in-process (the server API's stand-in where no server runs)."""
    from qdrant_client import QdrantClient

    location = {"edge": store_path, "local": store_path, "memory": ":memory:"}[request.param]
    if request.param == "local":
        QdrantClient(path=str(store_path)).close()
    with FaceStore(location, model_id="m", dim=8) as s:
        assert s.engine == request.param
        yield s


def make_bad_inputs(folder: Path, good_photo: Path) -> dict[str, str]:
    """Write one file of every bad-input kind into `folder`; returns file name → expected reason part."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good_photo.read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(np.random.default_rng(0).integers(0, 255, 4000)))
    (folder / "notes.txt").write_text("not a photo\n")
    Image.fromarray(np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (200, 1))).save(folder / "noface.png")
    Image.new("1", (10_000, 10_000)).save(folder / "bomb.png")  # 100 MP in a few kB
    return {
        "empty.jpg": "empty file",
        "truncated.jpg": "corrupt or truncated",
        "corrupt.jpg": "corrupt or truncated image",
        "notes.txt": "not an image",
        "noface.png": "no face detected",
        "bomb.png": "decompression bomb",
    }


def pytest_sessionfinish(session, exitstatus):
    """A run that collected no test is a failure, not pytest's quiet exit code 5."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def dual_indexed(tmp_path_factory, lfw, dlib_embedder) -> Path:
    """An embedded store of 7 photos each of 6 people (one photo holds two faces), indexed once."""
    folder = tmp_path_factory.mktemp("dual") / "store"
    photos = [p for name in DUAL_PEOPLE for p in sorted((lfw / name).glob("*.jpg"))[:DUAL_PER_PERSON]]
    with FaceStore(folder, model_id=dlib_embedder.model_id, dim=dlib_embedder.dim) as store:
        summary = index_batch(store, photos, embedder=dlib_embedder, progress=False)
        assert not summary.skipped and summary.faces_total > len(photos)  # Ariel_Sharon_0004 has two faces
    return folder


@pytest.fixture
def store(dual_indexed, tmp_path):
    """A fresh copy of the indexed store for each test."""
    folder = tmp_path / "store"
    shutil.copytree(dual_indexed, folder)
    with FaceStore(folder, model_id=DLIB, dim=128) as s:
        yield s


SHARED_MODELS = Path(os.environ.get("FACEKIT_SHARED_MODELS", ROOT.parent / "shared" / "models"))


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """../shared/models, holding mobilefacenet-sirius-192.onnx (never copied into the repository)."""
    if not (SHARED_MODELS / "mobilefacenet-sirius-192.onnx").is_file():
        pytest.fail(f"MobileFaceNet not found in {SHARED_MODELS}: the tests need ../shared/models")
    return SHARED_MODELS


@pytest.fixture(scope="session")
def mobilefacenet(shared_models: Path):
    from facekit.embedding.mobilefacenet import load_mobilefacenet

    return load_mobilefacenet(shared_models)
