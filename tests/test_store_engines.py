"""Engines behind one FaceStore: counts by facets, migrating local-mode stores to Qdrant Edge, exporting
to a server (qdrant-client in-process stands in for it), and what a SIGKILL leaves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from qdrant_client import QdrantClient

from facekit.edits import ClusterEditor
from facekit.store import FaceStore, edge_client, face_store, open_store
from facekit.store import schema as S
from facekit.store.transfer import collection_checksum, copy_collection, export_store
from facekit.types import FaceRecord

from .test_store import DIM, faces


@pytest.fixture
def store(engine_store):
    return engine_store


def fill(store: FaceStore) -> None:
    """Faces, two people (one labeled by hand), clusters, noise and an undoable edit."""
    recs = faces(40)
    store.add_faces(recs)
    ann, bo = store.create_person("Ann"), store.create_person("Bo")
    store.label_faces([r.face_id for r in recs[:5]], ann.person_id)
    store.update_payload({r.face_id: {S.PERSON_ID: bo.person_id, S.ASSIGNMENT_SOURCE: "auto"} for r in recs[5:9]})
    store.update_payload({r.face_id: {S.CLUSTER_ID: S.cluster_name(i % 3)} for i, r in enumerate(recs[9:30])})
    store.update_payload({r.face_id: {S.CLUSTER_ID: S.noise_name(r.face_id)} for r in recs[30:]})
    ClusterEditor(store).merge_clusters([S.cluster_name(0), S.cluster_name(1)])


def test_counts_by_facets_agree_with_reading_every_face(store):
    fill(store)
    everything = store.scroll_all(with_embeddings=False).payloads
    assert store.stats() == {
        "faces": 40,
        "images": len({p[S.IMAGE_ID] for p in everything}),
        "people": 2,
        "clusters": len({p[S.CLUSTER_ID] for p in everything if S.is_group(p.get(S.CLUSTER_ID))}),
        "labeled_faces": 5,
        "assigned_faces": 9,
        "model": "m",
    }
    assert store.stats()["clusters"] == 2  # clusters 0 and 1 merged; noise is not a cluster
    assert [(p.name, p.face_count) for p in store.list_persons()] == [("Ann", 5), ("Bo", 4)]
    info = store.engine_info()
    if store.engine == "edge":
        assert info["payload_indexes"] == sorted(S.INDEXED_FIELDS)


def local_mode_store(path) -> dict:
    """A filled store in qdrant-client's local mode, as facekit wrote them before Qdrant Edge."""
    QdrantClient(path=str(path)).close()
    with FaceStore(path, model_id="m", dim=DIM) as store:
        assert store.engine == "local"
        fill(store)
        return {c.name: collection_checksum(store.client, c.name) for c in store.client.get_collections().collections}


def test_migrate_moves_a_local_mode_store_to_edge_verified_and_keeps_the_old_files(store_path):
    before = local_mode_store(store_path)
    out = subprocess.run(
        [sys.executable, "-m", "facekit.cli", "store", "migrate", "--store", str(store_path), "--json"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert {k: (v["points"], v["checksum"]) for k, v in result["collections"].items()} == before
    assert (store_path / "local-mode-backup" / "meta.json").exists() and not (store_path / "meta.json").exists()
    with open_store(store_path) as store:
        assert store.engine == "edge" and store.stats()["labeled_faces"] == 5
        assert ClusterEditor(store).undo()["op"] == "merge"  # the history came along
    again = subprocess.run(
        [sys.executable, "-m", "facekit.cli", "store", "migrate", "--store", str(store_path), "--json"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1 and "on Qdrant Edge already" in json.loads(again.stdout)["error"]


def test_an_interrupted_copy_resumes_where_it_stopped(store_path):
    with FaceStore(store_path, model_id="m", dim=DIM) as store:
        store.add_faces(faces(300))
        dest = QdrantClient(location=":memory:")

        def stop_after_first_batch(n: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            copy_collection(store.client, dest, store.collection, batch=100, progress=stop_after_first_batch)
        assert dest.count(store.collection).count == 100
        result = export_store(store.client, dest, progress=False)
        assert result["collections"][store.collection]["copied_now"] == 200
        assert collection_checksum(dest, store.collection) == collection_checksum(store.client, store.collection)
        assert export_store(store.client, dest, progress=False)["collections"][store.collection]["copied_now"] == 0


def test_store_info_and_bad_export_target_in_json(store_path):
    with FaceStore(store_path, model_id="m", dim=DIM) as store:
        store.add_faces(faces(4))
    cli = [sys.executable, "-m", "facekit.cli", "store"]
    info = json.loads(subprocess.run([*cli, "info", "--store", str(store_path), "--json"],
                                     capture_output=True, text=True).stdout)  # fmt: skip
    assert info["engine"] == "edge" and info["faces"] == 4
    bad = subprocess.run([*cli, "export", "--to", "http://127.0.0.1:9", "--store", str(store_path), "--json"],
                         capture_output=True, text=True)  # fmt: skip
    assert bad.returncode == 1 and "127.0.0.1:9" in json.loads(bad.stdout)["error"]


WRITER = textwrap.dedent(
    """
    import sys
    from facekit.store import FaceStore
    from tests.test_store import faces, DIM
    recs = faces(2000)
    with FaceStore(sys.argv[1], model_id="m", dim=DIM) as store:
        for start in range(0, len(recs), 50):
            store.add_faces(recs[start:start + 50])
            print(start + 50, flush=True)  # acknowledged: add_faces returned
    """
)


def test_sigkill_during_an_import_loses_nothing_acknowledged(store_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store_path)], stdout=subprocess.PIPE, text=True,
                            cwd=root)  # fmt: skip
    acknowledged = 0
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged >= 500:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recs = faces(2000)
    with FaceStore(store_path, model_id="m", dim=DIM) as store:
        assert store.count() >= acknowledged
        assert len(store.payloads([r.face_id for r in recs[:acknowledged]], fields=[S.FACE_ID])) == acknowledged
        store.add_faces(recs)  # the import run again completes the store
        assert store.count() == 2000


def test_the_search_index_is_built_on_edge_only_and_when_enough_faces_are_new(store):
    store.add_faces(faces(300))
    assert store.build_search_index(min_unindexed=1_000) is None  # 300 new faces: not worth a build
    built = store.build_search_index()
    assert (built is not None) == (store.engine == "edge")  # servers index by themselves; in-process never
    assert store.search(faces(300)[7].embedding, top_k=1)[0].face.face_id == faces(300)[7].face_id


def test_letting_go_of_read_pages_keeps_every_face_and_write(store):
    """A pass reads every vector, then lets go of the pages the read left mapped (Edge drops them,
    tests/test_mapped_pages.py): the store answers and takes writes as before, on every engine."""
    store.add_faces(faces(300))
    read = store.scroll_all()
    store.release_read_pages()
    assert store.count() == 300 and store.scroll_all().ids == read.ids
    assert store.search(faces(300)[7].embedding, top_k=1)[0].face.face_id == faces(300)[7].face_id
    store.update_payload({faces(300)[3].face_id: {S.CLUSTER_ID: S.cluster_name(1)}})
    assert store.get_face(faces(300)[3].face_id).cluster_id == S.cluster_name(1)


def _folder_bytes(folder) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_labels_are_written_beside_the_edge_search_index_not_into_it(store_path):
    """Qdrant copies a point it writes to out of its indexed segment. Labels live in a label shard, so a pass's
    labels leave every face in the HNSW index (the vectors' files do not grow by a copy of them); a write to a
    face's own fields still moves it, is counted across a reopen, and `build_search_index` takes it back."""
    dim, n = 128, 20_500  # Edge builds HNSW above ~10 MB of vectors
    emb = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    recs = [FaceRecord(S.face_point_id(f"img{i}", 0, "m"), f"img{i}", f"/p/{i}.jpg", 0, (0, 0, 9, 9), 0.9, 0.5, "m",
                       embedding=emb[i]) for i in range(n)]  # fmt: skip
    vectors = store_path / "edge" / S.collection_for("m")
    with FaceStore(store_path, model_id="m", dim=dim) as store:
        store.add_faces(recs)
        assert store.faces_outside_search_index() == n
        assert store.build_search_index() is not None
        assert store.faces_outside_search_index() == 0
        before = _folder_bytes(vectors)
        store.update_payload({r.face_id: {S.CLUSTER_ID: S.cluster_name(i % 50)} for i, r in enumerate(recs)})
        assert store.faces_outside_search_index() == 0
        assert _folder_bytes(vectors) - before < n * dim * 4 // 4  # moving them would copy 10.5 MB of vectors
        assert store.count(cluster_id=S.cluster_name(7)) == n // 50
        assert store.search(emb[7], top_k=1, cluster_id=S.cluster_name(7))[0].face.face_id == recs[7].face_id
        store.update_payload({r.face_id: {S.QUALITY: 0.7} for r in recs[:300]})  # the face's own fields
        assert store.faces_outside_search_index() == 300
    with FaceStore(store_path, model_id="m", dim=dim) as store:
        assert store.engine_info()["faces_outside_search_index"] == 300
        assert store.build_search_index() is not None
        assert store.faces_outside_search_index() == 0
        assert store.build_search_index() is None  # nothing left to index
        face = store.get_face(recs[5].face_id)
        assert (face.cluster_id, face.quality) == (S.cluster_name(5), 0.7)


def test_a_store_with_labels_among_its_vectors_moves_them_into_a_label_shard_on_open(store_path, monkeypatch):
    """An Edge store written before label shards (every field in the vector shard, schema 1) opens with the same
    labels, filters, facets and edits; older facekit is told it cannot read the store any more."""

    class BeforeLabelShards(edge_client.EdgeClient):
        def __init__(self, folder: str) -> None:
            super().__init__(folder, label_fields=())

    monkeypatch.setattr(face_store, "EdgeClient", BeforeLabelShards)
    with FaceStore(store_path, model_id="m", dim=DIM) as old:
        fill(old)
        old.client.update_collection(old.collection, metadata={"facekit_schema": 1})
        stats, payloads = old.stats(), old.payloads([r.face_id for r in faces(40)])
        persons = [(p.name, p.face_count) for p in old.list_persons()]
    assert not (store_path / "edge" / ".labels").exists()
    monkeypatch.undo()
    with FaceStore(store_path, model_id="m", dim=DIM) as store:
        assert (store_path / "edge" / ".labels" / store.collection).is_dir()
        assert store.client.get_collection(store.collection).config.metadata["facekit_schema"] == S.SCHEMA_VERSION
        assert store.stats() == stats
        assert store.payloads([r.face_id for r in faces(40)]) == payloads
        assert [(p.name, p.face_count) for p in store.list_persons()] == persons
        assert ClusterEditor(store).undo() is not None  # the merge, undone from the moved labels
        assert store.stats()["clusters"] == 3
        face_id = faces(40)[12].face_id
        store.update_payload({face_id: {S.CLUSTER_ID: S.cluster_name(9)}})
        assert store.get_face(face_id).cluster_id == S.cluster_name(9)  # the old copy is never read
        assert store.get_by_filter(cluster_id=S.cluster_name(9))[0].face_id == face_id
    catalog = json.loads((store_path / "edge" / "collections.json").read_text())
    assert catalog[S.collection_for("m")]["labels"] == sorted(S.LABEL_FIELDS)


def test_a_write_cut_between_the_vector_and_label_shards_is_repaired_on_open(store_path):
    """A process killed between a write's two shards leaves a face with no label point or a label point with no
    face: the next open gives the face empty labels and drops the stray labels, so counts stay true."""
    recs = faces(10)
    with FaceStore(store_path, model_id="m", dim=DIM) as store:
        store.add_faces(recs)
        store.update_payload({r.face_id: {S.CLUSTER_ID: S.cluster_name(1)} for r in recs})
        labels = store.client._get(store.collection).labels
        labels.delete([recs[0].face_id])  # the face's upsert reached only the vector shard
        labels.replace([(S.face_point_id("gone", 0, "m"), {S.CLUSTER_ID: S.cluster_name(1)})])  # a deleted face
        assert store.count(cluster_id=S.cluster_name(1)) == 10  # 9 true + 1 stray
    (store_path / "edge" / ".open").touch()  # what a killed process leaves
    with FaceStore(store_path, model_id="m", dim=DIM) as store:
        assert store.count(cluster_id=S.cluster_name(1)) == 9
        assert store.get_face(recs[0].face_id).cluster_id is None
        assert store.count() == 10
