"""Reading an embedded store's files once in the background: every byte, and the pages end up in memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from facekit.dual import DualModeClusterer
from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.store.page_warmup import CHUNK, FileWarmer, segment_files

from .test_store import DIM, faces


def resident_bytes(files) -> int:
    """Bytes of `files` in the page cache, by util-linux's fincore."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, files)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sum(int(v) for v in out.split())


def test_the_warmer_reads_every_byte_of_every_file_once(tmp_path):
    sizes = [0, 1, CHUNK, 2 * CHUNK + 5]
    files = []
    for i, size in enumerate(sizes):
        files.append(tmp_path / f"f{i}")
        files[-1].write_bytes(bytes(size))
    warmer = FileWarmer()
    warmer.start([*files, tmp_path / "merged-away"])  # a file gone since the listing is passed over
    assert warmer.wait(timeout=60)
    assert (warmer.bytes_read, warmer.files_read) == (sum(sizes), len(sizes))
    warmer.start(files[-1:])  # a new reading counts afresh
    assert warmer.wait(timeout=60) and warmer.bytes_read == sizes[-1]


def test_a_stopped_warmer_reads_nothing_more(tmp_path):
    (tmp_path / "f").write_bytes(bytes(3 * CHUNK))
    warmer = FileWarmer()
    warmer.stop()  # never started: nothing to stop
    warmer.start([tmp_path / "f"] * 200)
    warmer.stop()
    read = warmer.bytes_read
    assert warmer.wait(timeout=0) and read < 200 * 3 * CHUNK
    assert warmer.bytes_read == read


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("fincore"), reason="util-linux fincore")
def test_an_edge_store_reads_its_files_back_into_memory_on_open_and_after_a_pass(tmp_path):
    """Edge drops a shard's pages from the page cache as it closes it (the close asks the kernel to read them
    back), and fills only vectors and HNSW on open: the open's warm-up brings back the rest (payloads, labels,
    indexes) of every shard; an index build and a pass warm the face collection's again before they return;
    closing the store stops a reading in progress."""
    recs = faces(300)
    with FaceStore(tmp_path, model_id="m", dim=DIM) as store:
        store.add_faces(recs)
        store.update_payload({r.face_id: {S.CLUSTER_ID: S.noise_name(r.face_id)} for r in recs[:10]})
        root, collection = store.client.root, store.collection

    def listed() -> tuple[list, int, int]:
        """The face collection's and its label shard's segment files, their size, and the bytes they hold (Edge
        preallocates its files sparse: holes are not read)."""
        files = [*segment_files(root / collection), *segment_files(root / ".labels" / collection)]
        return files, sum(f.stat().st_size for f in files), sum(f.stat().st_blocks * 512 for f in files)

    files, size, held = listed()
    assert 0 < held < size // 10
    deadline = time.monotonic() + 30
    while resident_bytes(files) < held and time.monotonic() < deadline:  # read back after Edge let go of them
        time.sleep(0.05)
    assert resident_bytes(files) >= held
    for f in files:  # a cold page cache (a reboot, memory pressure)
        with open(f, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    assert resident_bytes(files) < held

    with FaceStore(tmp_path, model_id="m", dim=DIM) as store:
        warmer = store.client.warmer
        assert warmer.wait(timeout=60)
        files, size, held = listed()
        assert resident_bytes(files) >= held
        assert 0 < warmer.bytes_read < size // 10  # holes are not read
        assert store.build_search_index() is not None  # a new segment replaces the old ones...
        assert warmer.wait(timeout=0)  # ...and is read before the build returns
        files, size, held = listed()
        assert 0 < warmer.bytes_read <= held <= resident_bytes(files)
        summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["total_processed"] == len(recs)
        assert warmer.wait(timeout=0)  # the pass waited for it
        files, size, held = listed()
        assert 0 < warmer.bytes_read <= held <= resident_bytes(files)
        warmer.start(files * 100)  # a long reading, cut by the close
    assert warmer.wait(timeout=0) and warmer.bytes_read < 100 * held
