import shutil
import subprocess
import sys

import numpy as np
import pytest

from facekit.images import load_image
from facekit.indexing import index, index_batch, index_directory
from facekit.store import FaceStore
from facekit.store import schema as S

from .conftest import make_bad_inputs


@pytest.fixture
def store(store_path, dlib_embedder):
    with FaceStore(store_path, model_id=dlib_embedder.model_id, dim=dlib_embedder.dim) as s:
        yield s


def test_index_real_photos_then_again_adds_nothing(store, photos, dlib_embedder):
    first = index_batch(store, photos, embedder=dlib_embedder, progress=False)
    assert first.images == len(photos) and first.faces_added >= len(photos) - 1 and not first.skipped
    assert first.faces_total == store.count() == first.faces_added
    again = index_batch(store, photos, embedder=dlib_embedder, progress=False)
    assert again.faces_added == 0 and again.already_indexed == len(photos) and again.faces_total == first.faces_total
    face = store.scroll_all().payloads[0]
    for key in (
        S.FACE_ID,
        S.IMAGE_ID,
        S.IMAGE_PATH,
        S.BBOX,
        S.DET_SCORE,
        S.QUALITY,
        S.EMBEDDING_NORM,
        S.MODEL_ID,
        S.INDEXED_AT,
    ):
        assert face.get(key) is not None, key
    assert face[S.EMBEDDING_NORM] == pytest.approx(1.0, abs=1e-4)


def test_same_person_is_nearest(store, photos, dlib_embedder):
    index_batch(store, photos, embedder=dlib_embedder, progress=False)
    query = photos[0]  # Arnold_Schwarzenegger_0001
    face = dlib_embedder.detect_and_embed(load_image(query).pixels)[0]
    hits = store.search(face.embedding, top_k=4)
    assert [h.face.image_path.split("/")[-2] for h in hits[:3]] == ["Arnold_Schwarzenegger"] * 3


def test_a_face_100_px_wide_in_a_12_megapixel_photo_is_found(store, photos, dlib_embedder, tmp_path):
    """A phone's photo (4032 x 3024; scikit-learn's temple photo behind the face) with a face 100 px wide: HOG not
    upsampled on the photo scaled to 1600 px finds faces from ~160 px and misses it; facekit's first look, upsampled
    once, finds it, and the same person's photos are its nearest (bench/results/large_photos.md)."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from facekit.embedding.dlib_resnet import DlibEmbedder
    from facekit.embedding.landmarks import FivePointDetector

    large = Image.fromarray(load_sample_image("china.jpg")).resize((4032, 3024), Image.Resampling.BICUBIC)
    large.paste(Image.open(photos[0]).convert("RGB").resize((234, 234), Image.Resampling.LANCZOS), (2900, 700))
    path = tmp_path / "phone.jpg"
    large.save(path, quality=92)
    assert DlibEmbedder(FivePointDetector(upsample=0)).detect_and_embed(load_image(path).pixels) == []

    index_batch(store, photos[1:], embedder=dlib_embedder, progress=False)
    summary = index(store, path, embedder=dlib_embedder, progress=False)
    assert summary.faces_added == 1 and not summary.skipped
    (face,) = [f for f in store.get_by_filter(with_embedding=True) if f.image_path == str(path)]
    x1, y1, x2, y2 = face.bbox
    assert 2900 < x1 < x2 < 2900 + 234 and 700 < y1 < y2 < 700 + 234 and 80 < x2 - x1 < 130
    hits = store.search(face.embedding, top_k=4)
    assert [h.face.image_path.split("/")[-2] for h in hits[1:4]] == ["Arnold_Schwarzenegger"] * 3


def test_the_dlib_model_finds_tight_and_turned_faces_through_the_detectors_retries(lfw, dlib_embedder):
    """face_recognition runs HOG alone at its default threshold, which misses a face that fills the photo or leans;
    the dlib model takes facekit's detector (retries at -0.5, padded, turned ±20°), finds them, and each is nearer
    its own person's photos than the other person's (bench/results/detection.md)."""
    from PIL import Image

    from facekit.embedding.dlib_resnet import DlibEmbedder
    from facekit.embedding.landmarks import FivePointDetector

    hog_alone = DlibEmbedder(FivePointDetector(retry_threshold=0.0, pad=0.0, retry_angle=0.0))
    people = ("Hugo_Chavez", "Arnold_Schwarzenegger")
    crops, own, means = [], [], []
    for k, person in enumerate(people):
        photos = [load_image(p).pixels for p in sorted((lfw / person).glob("*.jpg"))[:10]]
        faces = [dlib_embedder.detect_and_embed(px)[0] for px in photos]
        means.append(np.mean([f.embedding for f in faces], axis=0))
        for px, face in zip(photos, faces, strict=True):
            x1, y1, x2, y2 = face.bbox  # HOG's box, brows to chin; its inner 85% is a photo of its own
            dx, dy = 0.075 * (x2 - x1), 0.075 * (y2 - y1)
            crop = np.ascontiguousarray(px[round(y1 + dy) : round(y2 - dy), round(x1 + dx) : round(x2 - dx)])
            crops += [crop, np.asarray(Image.fromarray(crop).rotate(20, expand=True))]
            own += [k, k]
    missed = [i for i, crop in enumerate(crops) if not hog_alone.detect_and_embed(crop)]
    assert len(missed) >= 10  # 16 of 40 measured
    for i in missed:
        (face,) = dlib_embedder.detect_and_embed(crops[i])
        assert np.argmax([face.embedding @ m for m in means]) == own[i]


def test_every_face_in_a_photo_is_a_record(store, lfw, dlib_embedder):
    group = lfw / "Abdel_Nasser_Assidi" / "Abdel_Nasser_Assidi_0001.jpg"  # three faces, the subject largest
    summary = index(store, group, embedder=dlib_embedder, progress=False)
    recs = sorted(store.get_by_filter(), key=lambda r: r.face_index)
    assert summary.faces_added == len(recs) >= 2
    areas = [(r.bbox[2] - r.bbox[0]) * (r.bbox[3] - r.bbox[1]) for r in recs]
    assert areas == sorted(areas, reverse=True)


def test_bad_inputs_are_reported_and_stored_faces_survive(store, tmp_path, photos, dlib_embedder):
    index_batch(store, photos[:4], embedder=dlib_embedder, progress=False)
    before = {f.face_id for f in store.get_by_filter()}
    folder = tmp_path / "mixed"
    expected = make_bad_inputs(folder, photos[0])
    shutil.copy(photos[5], folder / "good.jpg")
    summary = index_directory(store, folder, embedder=dlib_embedder, progress=False, max_pixels=80_000_000)
    reasons = {s.path.split("/")[-1]: s.reason for s in summary.skipped}
    assert set(reasons) == set(expected)
    for name, part in expected.items():
        assert part in reasons[name], (name, reasons[name])
    assert summary.faces_added == 1
    assert before <= {f.face_id for f in store.get_by_filter()}


def test_half_written_image_is_completed(store, lfw, dlib_embedder):
    group = lfw / "Abdel_Nasser_Assidi" / "Abdel_Nasser_Assidi_0001.jpg"
    index(store, group, embedder=dlib_embedder, progress=False)
    n = store.count()
    victim = max(store.get_by_filter(), key=lambda r: r.face_index)
    store.remove_face(victim.face_id)  # as if the run died between two of the image's faces
    summary = index(store, group, embedder=dlib_embedder, progress=False)
    assert summary.faces_added == 1 and store.count() == n


@pytest.mark.slow
def test_two_workers_give_the_same_faces(store_path, tmp_path, photos, dlib_embedder):
    with FaceStore(store_path, model_id=dlib_embedder.model_id, dim=dlib_embedder.dim) as one:
        index_batch(one, photos[:8], embedder=dlib_embedder, progress=False)
        ref = {f.face_id: f.embedding for f in one.get_by_filter(with_embedding=True)}
    with FaceStore(tmp_path / "two", model_id=dlib_embedder.model_id, dim=dlib_embedder.dim) as two:
        summary = index_batch(two, photos[:8], embedder=dlib_embedder, workers=2, progress=False)
        got = {f.face_id: f.embedding for f in two.get_by_filter(with_embedding=True)}
    assert summary.faces_added == len(ref) and set(got) == set(ref)
    assert all(np.allclose(got[k], ref[k], atol=1e-5) for k in ref)


def test_workers_start_without_the_store_client_or_the_callers_script(tmp_path):
    """A worker imports its model and `facekit.photo_worker`: not the store client or scikit-learn, and
    not the calling script (here one that imports the store client), which costs seconds each."""
    script = tmp_path / "caller.py"
    script.write_text(
        "import qdrant_client  # the caller's own imports: the workers must not repeat them\n"
        "from facekit.photo_worker import worker_pool\n"
        "if __name__ == '__main__':\n"
        "    heavy = ('qdrant_client', 'sklearn', 'facekit.store', 'dlib')\n"
        "    probe = f'sorted(m for m in {heavy} if m in __import__(\"sys\").modules)'\n"
        "    with worker_pool(1, 'dlib', 10**8) as pool:\n"
        "        print(pool.apply(eval, (probe,)))\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['dlib']"


def test_import_embeddings_is_idempotent_and_checks_the_space(store_path, tmp_path):
    from facekit.embedding import read_embeddings_npz
    from facekit.errors import FacekitError
    from facekit.indexing import import_embeddings

    paths = np.array(["/x/a/1.jpg", "/x/a/1.jpg", "/x/b/2.jpg"])  # two faces in the first photo
    np.savez(tmp_path / "e.npz", embeddings=np.eye(3, 5, dtype=np.float32) * 3, paths=paths)
    data = read_embeddings_npz(tmp_path / "e.npz")
    assert data.model_id == "precomputed_5d" and np.allclose(np.linalg.norm(data.embeddings, axis=1), 1)
    with FaceStore(store_path, model_id=data.model_id, dim=5) as store:
        assert import_embeddings(store, data) == 3 and import_embeddings(store, data) == 0
        assert sorted(r.face_index for r in store.get_by_filter()) == [0, 0, 1]
    other = read_embeddings_npz(tmp_path / "e.npz", model_id="other")
    with FaceStore(tmp_path / "other", model_id="precomputed_5d", dim=5) as store, pytest.raises(FacekitError):
        import_embeddings(store, other)
