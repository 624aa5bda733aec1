import numpy as np
import pytest
from qdrant_client import QdrantClient

from facekit.errors import NotFoundError, SchemaMismatchError, StoreError
from facekit.store import FaceStore, open_store
from facekit.store import schema as S
from facekit.store.schema import face_point_id
from facekit.types import FaceRecord

DIM = 8


def faces(n: int, *, image_prefix: str = "img", seed: int = 0) -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return [
        FaceRecord(
            face_point_id(f"{image_prefix}{i // 2}", i % 2, "m"),
            f"{image_prefix}{i // 2}",
            f"/photos/p{i % 3}/{i}.jpg",
            i % 2,
            (0, 0, 10, 10),
            0.9,
            0.5,
            "m",
            embedding=emb[i],
        )
        for i in range(n)
    ]


@pytest.fixture
def store(engine_store):
    """The FaceStore contract below runs on every engine (conftest's engine_store)."""
    return engine_store


def test_point_ids_are_deterministic():
    assert face_point_id("abc", 0, "m") == face_point_id("abc", 0, "m") != face_point_id("abc", 1, "m")
    assert face_point_id("abc", 0, "m") != face_point_id("abc", 0, "other")


def test_add_is_idempotent_and_batched(store):
    recs = faces(1100)  # more than one upsert batch
    assert store.add_faces(recs) == 1100
    assert store.add_faces(recs[:600]) == 0
    assert store.count() == 1100


def test_filters_on_a_label_and_a_face_field_together(store):
    """A label field (kept apart on Edge) and a face field in one filter: reads and counts agree on every engine."""
    recs = faces(20)
    store.add_faces(recs)
    store.update_payload({r.face_id: {S.CLUSTER_ID: S.cluster_name(i % 2)} for i, r in enumerate(recs)})
    images = [recs[0].image_id, recs[2].image_id, recs[4].image_id]  # faces 0-5; cluster 0 holds 0, 2 and 4
    found = store.get_by_filter(cluster_id=S.cluster_name(0), image_id=images)
    assert sorted(f.face_id for f in found) == sorted(recs[i].face_id for i in (0, 2, 4))
    assert store.count(cluster_id=S.cluster_name(0), image_id=recs[2].image_id) == 1


def test_get_search_filter_update_remove(store):
    recs = faces(10)
    store.add_faces(recs)
    got = store.get_face(recs[3].face_id)
    assert got.image_id == recs[3].image_id and np.allclose(got.embedding, recs[3].embedding, atol=1e-6)
    hits = store.search(recs[3].embedding, top_k=3)
    assert hits[0].face.face_id == recs[3].face_id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    store.update_payload(
        {recs[0].face_id: {S.CLUSTER_ID: "unknown_cluster_1"}, recs[1].face_id: {S.CLUSTER_ID: "unknown_cluster_1"}}
    )
    assert {f.face_id for f in store.get_by_filter(cluster_id="unknown_cluster_1")} == {
        recs[0].face_id,
        recs[1].face_id,
    }
    assert (
        store.search(recs[3].embedding, top_k=5, cluster_id="unknown_cluster_1")[0].face.cluster_id
        == "unknown_cluster_1"
    )
    assert store.remove_image(recs[0].image_id) == 2
    store.remove_face(recs[5].face_id)
    assert store.count() == 7
    with pytest.raises(NotFoundError, match="no face"):
        store.get_face(recs[5].face_id)
    with pytest.raises(NotFoundError, match="not in the store"):
        store.update_payload({recs[5].face_id: {S.CLUSTER_ID: "x"}})
    all_faces = store.scroll_all()
    assert all_faces.embeddings.shape == (7, DIM) and len(all_faces.ids) == 7


def test_persons_registry(store):
    recs = faces(6)
    store.add_faces(recs)
    ann = store.create_person("Ann")
    with pytest.raises(StoreError, match="exists already"):
        store.create_person("ann")
    store.label_faces([r.face_id for r in recs[:3]], ann.person_id)
    assert [(p.name, p.face_count) for p in store.list_persons()] == [("Ann", 3)]
    store.rename_person(ann.person_id, "Anna")
    assert store.get_face(recs[0].face_id).person_id == ann.person_id
    assert store.resolve_person("Anna").person_id == ann.person_id
    assert store.search(recs[0].embedding, top_k=1)[0].person_name == "Anna"
    assert store.delete_person(ann.person_id) == 3
    assert store.list_persons() == [] and store.get_face(recs[0].face_id).person_id is None
    with pytest.raises(NotFoundError):
        store.get_person(ann.person_id)


def test_reindex_keeps_labels(store):
    recs = faces(4)
    store.add_faces(recs)
    p = store.create_person("Bo")
    store.label_faces([recs[0].face_id], p.person_id)
    store.add_faces(recs)  # the same photos indexed again
    face = store.get_face(recs[0].face_id)
    assert face.person_id == p.person_id and face.assignment_source == S.SOURCE_MANUAL


def test_persists_and_refuses_other_model_or_dim(store_path):
    with FaceStore(store_path, model_id="m", dim=DIM) as s:
        s.add_faces(faces(4))
    with open_store(store_path) as s:  # discovers the only collection
        assert (s.model_id, s.dim, s.count()) == ("m", DIM, 4)
    with pytest.raises(SchemaMismatchError, match="dimension 8, not m of dimension 16"):
        FaceStore(store_path, model_id="m", dim=16)
    with FaceStore(store_path, model_id="other", dim=16) as s:  # another model: its own collection
        assert s.count() == 0
    with pytest.raises(StoreError, match="several models"):
        open_store(store_path)
    with open_store(store_path, model_id="m") as s:
        assert s.count() == 4


def test_empty_store_is_a_clear_error(store_path):
    with pytest.raises(StoreError, match=r"no store at .*does not exist"):
        open_store(store_path)
    store_path.mkdir(parents=True)
    with pytest.raises(StoreError, match="run `facekit index"):
        open_store(store_path)


def test_wrong_embedding_shape_is_refused(store):
    bad = FaceRecord(
        "00000000-0000-0000-0000-000000000001", "i", "p", 0, None, None, None, "m", embedding=np.zeros(3, np.float32)
    )
    with pytest.raises(StoreError, match=r"store expects \(8,\)"):
        store.add_faces([bad])


def test_clear_keeps_people(store):
    store.add_faces(faces(4))
    store.create_person("Cy")
    store.clear()
    assert store.count() == 0 and [p.name for p in store.list_persons()] == ["Cy"]


def _hold_store_in_another_process(store_path):
    import subprocess
    import sys

    code = (
        f"from facekit.store import FaceStore; s = FaceStore({str(store_path)!r}, model_id='m', dim=8); "
        "print('open', flush=True); import sys; sys.stdin.readline(); import time; time.sleep(1); s.close()"
    )
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "open"
    return other


def test_store_open_in_another_process_is_a_clear_error(store_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_STORE_LOCK_WAIT", "0")
    other = _hold_store_in_another_process(store_path)
    try:
        with pytest.raises(StoreError, match=r"open in another process.*FACEKIT_QDRANT_URL"):
            FaceStore(store_path, model_id="m", dim=DIM)
    finally:
        other.communicate("\n")
    with FaceStore(store_path, model_id="m", dim=DIM) as s:  # free again once the other process is gone
        assert s.count() == 0


def test_store_waits_for_another_process_to_close_it(store_path, monkeypatch):
    """Notebooks of a sweep read one embedded store in turn: opening waits up to FACEKIT_STORE_LOCK_WAIT."""
    monkeypatch.setenv("FACEKIT_STORE_LOCK_WAIT", "30")
    other = _hold_store_in_another_process(store_path)
    other.stdin.write("\n")
    other.stdin.flush()  # the other process closes the store one second from now
    with FaceStore(store_path, model_id="m", dim=DIM) as s:
        assert s.count() == 0
    assert other.wait(30) == 0


def local_mode_store(path):
    """An empty store as facekit wrote them before Qdrant Edge (qdrant-client's local mode)."""
    QdrantClient(path=str(path)).close()
    return path


def test_local_mode_store_writes_in_wal_mode(store_path):
    """Fast, crash-safe label writes in an unmigrated store rely on qdrant-client internals: notice if an
    upgrade breaks them."""
    import sqlite3

    with FaceStore(local_mode_store(store_path), model_id="m", dim=4) as store:
        assert store.engine == "local"
        files = sorted((store_path / "collection").glob("*/storage.sqlite"))
        assert {f.parent.name for f in files} >= {store.collection, S.PERSONS_COLLECTION, store.history.collection}
        for f in files:
            assert sqlite3.connect(f).execute("PRAGMA journal_mode").fetchone()[0] == "wal", f


def test_a_damaged_edge_store_is_a_clear_error_and_stays_as_it_is(store_path):
    with FaceStore(store_path, model_id="m", dim=16) as store:
        assert store.engine == "edge"
    catalog = store_path / "edge" / "collections.json"
    good = catalog.read_bytes()
    catalog.write_text("{bad")
    with pytest.raises(StoreError, match=f"{catalog} is not valid JSON"):
        open_store(store_path)
    assert catalog.read_text() == "{bad"
    catalog.write_bytes(good)
    config = store_path / "edge" / "faces__m" / "edge_config.json"
    config.write_text("{bad")
    with pytest.raises(StoreError, match=r"damaged: a Qdrant Edge shard .* could not be opened"):
        open_store(store_path)
    assert config.read_text() == "{bad"


def test_a_damaged_or_misplaced_store_is_a_clear_error_and_stays_as_it_is(store_path, tmp_path):
    with FaceStore(local_mode_store(store_path), model_id="m", dim=16):
        pass
    meta = store_path / "meta.json"
    good = meta.read_bytes()
    meta.write_text("{bad")
    with pytest.raises(StoreError, match=f"{meta} is not valid JSON"):
        open_store(store_path)
    assert meta.read_text() == "{bad"  # nothing changed
    meta.write_bytes(good)
    (db,) = store_path.glob("collection/faces__m/storage.sqlite")
    db.write_bytes(db.read_bytes()[:1500])  # truncated
    damaged = db.read_bytes()
    with pytest.raises(StoreError, match=f"{db} is not a valid SQLite database"):
        open_store(store_path)
    assert db.read_bytes() == damaged
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(StoreError, match="is a file, not a store folder"):
        FaceStore(a_file, model_id="m", dim=16)
