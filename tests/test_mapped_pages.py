"""Letting go of the resident pages of mapped files: on a real memory map, and on a real Qdrant Edge store."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import numpy as np
import pytest

from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.store.face_store import BULK_FACES
from facekit.store.mapped_pages import release_mapped_pages
from facekit.types import FaceRecord

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/smaps is Linux's")


def resident_kb(folder: Path) -> int:
    """Resident KB of this process's maps of files under `folder` (every map counted: Edge maps files twice)."""
    total, inside = 0, False
    prefix = str(folder) + "/"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            inside = len(fields) >= 6 and fields[5].startswith(prefix)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def test_a_shared_map_gives_back_its_pages_and_keeps_its_data(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, 1 << 22, dtype=np.uint8)  # 4 MB
    path = tmp_path / "vectors.dat"
    path.write_bytes(data.tobytes())
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        assert bytes(view[::4096]) == data[::4096].tobytes()  # every page touched
        assert resident_kb(tmp_path) >= 4000
        assert release_mapped_pages(tmp_path) >= len(data)
        assert resident_kb(tmp_path) == 0
        assert view[:] == data.tobytes()  # mapped again from the file


def test_a_private_writable_map_is_left_alone(tmp_path):
    path = tmp_path / "scratch.dat"
    path.write_bytes(bytes(1 << 16))
    with open(path, "r+b") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) as view:
        view[:5] = b"hello"  # copy-on-write: the only copy is in this process
        assert release_mapped_pages(tmp_path) == 0
        assert view[:5] == b"hello"


def test_reading_every_face_of_an_edge_store_leaves_its_segments_unmapped(tmp_path):
    """Edge fills its search map on open and reads through a second map; a bulk read (`scroll_all`) copies
    the vectors out and lets go of both (a small read keeps them), as a bulk label write does of the copies it
    makes; the store answers as before."""
    dim, n = 128, 20_500  # Edge builds HNSW above ~10 MB of vectors: the indexed segment is the one filled on open
    emb = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    recs = [FaceRecord(S.face_point_id(f"img{i}", 0, "m"), f"img{i}", f"/p/{i}.jpg", 0, (0, 0, 9, 9), 0.9, 0.5, "m",
                       embedding=emb[i]) for i in range(n)]  # fmt: skip
    with FaceStore(tmp_path, model_id="m", dim=dim) as store:
        store.add_faces(recs)
        store.build_search_index()
    with FaceStore(tmp_path, model_id="m", dim=dim) as store:
        shard = store.client.root / store.collection
        assert store.engine == "edge" and shard.is_dir()
        assert resident_kb(shard) > n * dim * 4 // 1024 // 2  # the search map, filled on open
        store.label_faces([r.face_id for r in recs[:3]], store.create_person("Ann").person_id)
        assert len(store.scroll_labeled().ids) == 3  # a small read keeps what later searches use
        assert resident_kb(shard) > n * dim * 4 // 1024 // 2
        read = store.scroll_all()
        assert resident_kb(shard) < n * dim * 4 // 1024 // 20
        np.testing.assert_allclose(read.embeddings[read.ids.index(recs[9].face_id)], emb[9] / np.linalg.norm(emb[9]),
                                   atol=1e-6)  # fmt: skip
        assert store.search(emb[7], top_k=1)[0].face.face_id == recs[7].face_id
        store.release_read_pages()
        assert resident_kb(shard) < n * dim * 4 // 1024 // 20
        store.update_payload({recs[3].face_id: {S.CLUSTER_ID: S.cluster_name(1)}})
        assert store.get_face(recs[3].face_id).cluster_id == S.cluster_name(1)
        assert store.search(emb[11], top_k=1)[0].face.face_id == recs[11].face_id
        # a bulk label write (a pass's) copies its points out of the indexed segment: the copies are let go of too
        store.update_payload({r.face_id: {S.CLUSTER_ID: S.cluster_name(2)} for r in recs[:BULK_FACES]})
        assert resident_kb(shard) < n * dim * 4 // 1024 // 20
        assert store.get_face(recs[BULK_FACES - 1].face_id).cluster_id == S.cluster_name(2)
        assert store.search(emb[11], top_k=1)[0].face.face_id == recs[11].face_id
