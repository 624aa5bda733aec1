"""MobileFaceNet-192 on real LFW photos: five-point detection, alignment, embeddings, model selection."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from facekit.embedding import load_embedder, model_id_for, model_name_for, resolve_model_name
from facekit.embedding.base import ARCFACE_TEMPLATE, similarity_transform
from facekit.embedding.landmarks import FivePointDetector
from facekit.embedding.mobilefacenet import DIM, MODEL_ID
from facekit.errors import ModelNotFoundError
from facekit.images import load_image

SAME = ["Colin_Powell", "Tony_Blair", "Hugo_Chavez"]


def photos_of(lfw, name, n=3):
    return [load_image(p).pixels for p in sorted((lfw / name).glob("*.jpg"))[:n]]


def test_embeddings_separate_people(lfw, mobilefacenet):
    assert mobilefacenet.model_id == MODEL_ID == "mobilefacenet_sirius_192" and mobilefacenet.dim == DIM == 192
    x, who = [], []
    for k, name in enumerate(SAME):
        for px in photos_of(lfw, name):
            faces = mobilefacenet.detect_and_embed(px)
            assert faces and faces[0].landmarks.shape == (5, 2)
            x.append(faces[0].embedding)
            who.append(k)
    x, who = np.array(x), np.array(who)
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    sims = x @ x.T
    same = (who[:, None] == who[None]) & ~np.eye(len(x), dtype=bool)
    # every same-person pair is closer than every different-person pair (README: means 0.79 vs 0.02)
    assert sims[same].min() > sims[who[:, None] != who[None]].max()
    assert sims[same].mean() > 0.6 > 0.3 > sims[who[:, None] != who[None]].mean()


def test_five_points_sit_where_arcface_expects_them(lfw):
    px = load_image(sorted((lfw / "Tony_Blair").glob("*.jpg"))[0]).pixels
    boxes, _, points = FivePointDetector().detect(px)
    assert len(boxes) == 1 and points.shape == (1, 5, 2)
    le, re, nose, ml, mr = points[0]
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]  # image-left first
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])  # eyes, then nose, then mouth
    # aligned, the points land within a few pixels of the template
    m = similarity_transform(points[0], ARCFACE_TEMPLATE)
    mapped = points[0] @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 10  # the nose moves with the head's yaw


def test_tight_crops_and_turned_faces_are_found(lfw):
    """HOG at dlib's default misses faces that fill the photo; the padded retry finds them, and the turned
    retry finds a face tilted past HOG's reach, with its points mapped back into the photo."""
    default_hog = FivePointDetector(retry_threshold=0.0, pad=0.0, retry_angle=0.0)
    no_padding = FivePointDetector(pad=0.0, retry_angle=0.0)
    facekit = FivePointDetector()
    crops = []
    paths = (
        sorted((lfw / "Hugo_Chavez").glob("*.jpg"))[:10] + sorted((lfw / "Arnold_Schwarzenegger").glob("*.jpg"))[:10]
    )
    for path in paths:
        px = load_image(path).pixels
        x1, y1, x2, y2 = facekit.detect(px)[0][0]  # HOG's box, brows to chin; keep its inner 85%
        dx, dy = 0.075 * (x2 - x1), 0.075 * (y2 - y1)
        crops.append(np.ascontiguousarray(px[round(y1 + dy) : round(y2 - dy), round(x1 + dx) : round(x2 - dx)]))
    assert sum(len(default_hog.detect(c)[0]) == 0 for c in crops) >= 4  # 6 measured
    assert sum(len(no_padding.detect(c)[0]) == 0 for c in crops) >= 1
    assert all(len(facekit.detect(c)[0]) == 1 for c in crops)

    px = load_image(sorted((lfw / "Tony_Blair").glob("*.jpg"))[0]).pixels
    _, _, upright = FivePointDetector().detect(px)
    tilted = np.asarray(Image.fromarray(px).rotate(50, resample=Image.Resampling.BILINEAR))
    assert len(FivePointDetector(retry_angle=0.0).detect(tilted)[0]) == 0
    _, _, points = FivePointDetector(retry_angle=50.0).detect(tilted)
    assert len(points) == 1
    a = np.radians(50)  # where the upright points went when the photo turned 50° counter-clockwise
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    expected = (upright[0] - 125) @ rot.T + 125
    assert np.abs(points[0] - expected).max() < 8


def test_a_face_100_px_wide_in_a_12_megapixel_photo_is_found_on_the_first_look(lfw, mobilefacenet):
    """Faces from ~40 px of the photo scaled to 1600 px (HOG upsampled once): a phone photo's 100-px face is found
    by the first look, where not upsampled every retry ran and found nothing; its embedding is its person's."""
    from sklearn.datasets import load_sample_image

    own = sorted((lfw / "Tony_Blair").glob("*.jpg"))[:2]
    large = Image.fromarray(load_sample_image("flower.jpg")).resize((4032, 3024), Image.Resampling.BICUBIC)
    large.paste(Image.open(own[0]).convert("RGB").resize((234, 234), Image.Resampling.LANCZOS), (600, 2000))
    px = np.asarray(large)
    assert len(FivePointDetector(upsample=0).detect(px)[0]) == 0
    boxes, scores, _ = FivePointDetector().detect(px)
    assert len(boxes) == 1 and scores[0] >= 0  # found at HOG's own threshold, not by a retry
    (face,) = mobilefacenet.detect_and_embed(px)
    other = mobilefacenet.detect_and_embed(load_image(own[1]).pixels)[0]
    assert float(face.embedding @ other.embedding) > 1 - mobilefacenet.defaults.unknown_eps


def test_rolled_faces_are_landmarked_level(lfw):
    """A face turned ±20° is found and landmarked again upright: its points land nearer where the upright
    photo's points went than the predictor's first guess does (measured: 0.33 / 0.38 px against 0.52 /
    0.47 px, mean over the five points of 18 photos)."""
    from facekit.embedding.landmarks import _rotation, eye_roll

    levelled, first_guess = FivePointDetector(), FivePointDetector(level_above=0.0)
    photos = [
        p for person in ("Tony_Blair", "Hugo_Chavez", "Colin_Powell") for p in sorted((lfw / person).glob("*.jpg"))[:3]
    ]
    for angle in (-20, 20):
        errors = {"levelled": [], "first guess": []}
        for path in photos:
            px = load_image(path).pixels
            upright = levelled.detect(px)[2][0]
            turn = _rotation(angle, (px.shape[1] / 2, px.shape[0] / 2))
            expected = upright @ turn[:, :2].T + turn[:, 2]
            tilted = np.asarray(Image.fromarray(px).rotate(angle, resample=Image.Resampling.BILINEAR))
            for name, detector in (("levelled", levelled), ("first guess", first_guess)):
                points = detector.detect(tilted)[2]
                assert len(points) == 1
                errors[name].append(np.abs(points[0] - expected).mean())
            # turned counter-clockwise by `angle`, the eye line leans `angle` degrees less (clockwise)
            assert eye_roll(points[0]) == pytest.approx(eye_roll(upright) - angle, abs=4)
        assert np.mean(errors["levelled"]) < 0.85 * np.mean(errors["first guess"])


def test_no_face_is_no_face(mobilefacenet):
    flat = np.full((200, 200, 3), 128, np.uint8)
    assert mobilefacenet.detect_and_embed(flat) == []


def test_model_selection_and_names(monkeypatch, tmp_path, shared_models, caplog):
    assert model_id_for("mobilefacenet") == MODEL_ID and model_name_for(MODEL_ID) == "mobilefacenet"
    monkeypatch.delenv("FACE_MODEL_NAME", raising=False)
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(shared_models))
    with caplog.at_level(logging.INFO, logger="facekit"):
        assert resolve_model_name() == "mobilefacenet"
    assert "mobilefacenet" in caplog.text
    monkeypatch.setenv("FACEKIT_MODELS_DIR", str(tmp_path))
    assert resolve_model_name() == "dlib"
    with pytest.raises(ModelNotFoundError, match="facekit models install mobilefacenet"):
        load_embedder("mobilefacenet")
