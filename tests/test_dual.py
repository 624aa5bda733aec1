"""DualModeClusterer and ClusterEditor on real LFW faces (dlib), in real embedded stores."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facekit.dual import PLACEMENTS, DualModeClusterer
from facekit.edits import ClusterEditor
from facekit.errors import NotFoundError, StoreError
from facekit.metrics import clustering_scores
from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.types import FaceRecord

from .conftest import DLIB


def truth(payload: dict) -> str:
    return Path(payload[S.IMAGE_PATH]).parent.name


def faces_of(store: FaceStore, name: str) -> list[str]:
    """Main faces (face_index 0) of one person's photos, by file name."""
    faces = store.scroll_all(with_embeddings=False)
    rows = [(p[S.IMAGE_PATH], fid) for fid, p in zip(faces.ids, faces.payloads, strict=True) if truth(p) == name]
    return [fid for path, fid in sorted(rows) if store.get_face(fid, with_embedding=False).face_index == 0]


def label(store: FaceStore, name: str, face_ids: list[str]) -> str:
    person = store.ensure_person(name)
    store.label_faces(face_ids, person.person_id)
    return person.person_id


def state(store: FaceStore) -> dict[str, dict]:
    faces = store.scroll_all(with_embeddings=False)
    return dict(zip(faces.ids, faces.payloads, strict=True))


def partition(store: FaceStore) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for fid, p in state(store).items():
        key = p.get(S.PERSON_ID) or p.get(S.CLUSTER_ID)
        groups.setdefault(str(key), set()).add(fid)
    return {frozenset(g) for g in groups.values()}


def test_unknown_faces_are_grouped_by_person(store):
    summary = DualModeClusterer(store).cluster_all_faces()
    assert set(summary) >= {"assigned_to_people", "unknown_clusters", "noise", "total_processed", "seconds"}
    assert summary["total_processed"] == store.count() and summary["assigned_to_people"] == 0
    payloads = [p for p in state(store).values() if p[S.FACE_INDEX] == 0]
    clusters = [p[S.CLUSTER_ID] for p in payloads]
    assert all(c.startswith(("unknown_cluster_", "unknown_noise_")) for c in clusters)
    scores = clustering_scores([truth(p) for p in payloads], [c if S.is_group(c) else None for c in clusters])
    assert scores["bcubed_f"] > 0.8, scores
    assert summary["unknown_clusters"] >= 4


def test_rerun_keeps_cluster_ids_and_writes_nothing(store):
    d = DualModeClusterer(store)
    d.cluster_all_faces()
    before = state(store)
    again = d.cluster_all_faces()
    assert again["faces_written"] == 0 and state(store) == before


def test_known_people_are_assigned_and_hand_labels_survive_every_pass(store):
    powell, blair = faces_of(store, "Colin_Powell"), faces_of(store, "Tony_Blair")
    label(store, "Colin Powell", powell[:3])
    blair_id = label(store, "Tony Blair", blair[:3])
    wrong = label(store, "Donald Rumsfeld", [powell[3]])  # a deliberate (wrong) hand label must stay
    label(store, "Donald Rumsfeld", faces_of(store, "Donald_Rumsfeld")[:2])
    d = DualModeClusterer(store)
    summary = d.cluster_all_faces()
    assert summary["person_calibration"]["source"] == "calibrated"
    after = state(store)
    auto = [p for p in after.values() if p.get(S.ASSIGNMENT_SOURCE) == S.SOURCE_AUTO]
    assert auto, "no face was assigned to a known person"
    names = {p.person_id: p.name for p in store.list_persons()}
    assert all(names[p[S.PERSON_ID]].replace(" ", "_") == truth(p) for p in auto)
    assert any(after[f][S.PERSON_ID] == blair_id for f in blair[3:])
    # every automatic pass, and edits of other faces, leave the hand labels alone
    editor = ClusterEditor(store)
    clusters = list(editor.list_clusters())
    assert len(clusters) >= 2, clusters
    editor.merge_clusters(clusters[:2])
    d.cluster_all_faces()
    assert d.add_faces_incrementally([powell[4], powell[3]])["labeled_by_hand"] == 1
    d.cluster_all_faces()
    final = state(store)
    assert final[powell[3]][S.PERSON_ID] == wrong and final[powell[3]][S.ASSIGNMENT_SOURCE] == S.SOURCE_MANUAL
    for fid in powell[:3] + blair[:3]:
        assert final[fid][S.ASSIGNMENT_SOURCE] == S.SOURCE_MANUAL


def test_not_this_person_is_remembered(store):
    powell = faces_of(store, "Colin_Powell")
    powell_id = label(store, "Colin Powell", powell[:3])
    label(store, "Tony Blair", faces_of(store, "Tony_Blair")[:3])
    d = DualModeClusterer(store, person_threshold=0.92)  # fixed: this test is about the rejection
    d.cluster_all_faces()
    assigned = [f for f in powell[3:] if store.get_face(f, with_embedding=False).person_id == powell_id]
    assert assigned
    face = assigned[0]
    ClusterEditor(store).reject_person(face)
    for _ in range(2):
        d.cluster_all_faces()
        assert store.get_face(face, with_embedding=False).person_id != powell_id
    store.update_payload({face: {S.CLUSTER_ID: None, S.ASSIGNMENT_SOURCE: None}})
    d.add_faces_incrementally([face])
    assert store.get_face(face, with_embedding=False).person_id != powell_id


def test_two_faces_of_one_photo_never_share_a_person_or_cluster(store):
    # A copy of a face stored as a second face of the same photo: identical embeddings, so only the
    # cannot-link rule keeps them apart.
    blair = faces_of(store, "Tony_Blair")
    original = store.get_face(blair[4])
    twin = FaceRecord(
        S.face_point_id(original.image_id, 9, DLIB), original.image_id, original.image_path, 9, original.bbox,
        original.det_score, original.quality, DLIB, embedding=original.embedding,
    )  # fmt: skip
    store.add_faces([twin])
    d = DualModeClusterer(store, person_threshold=0.92)
    d.cluster_all_faces()
    a, b = store.get_face(original.face_id, with_embedding=False), store.get_face(twin.face_id, with_embedding=False)
    assert (a.person_id, a.cluster_id) != (b.person_id, b.cluster_id)
    label(store, "Tony Blair", blair[:3])
    label(store, "Colin Powell", faces_of(store, "Colin_Powell")[:3])
    d.cluster_all_faces()
    a, b = store.get_face(original.face_id, with_embedding=False), store.get_face(twin.face_id, with_embedding=False)
    assert a.person_id is not None or b.person_id is not None
    assert a.person_id != b.person_id and not (S.is_group(a.cluster_id) and a.cluster_id == b.cluster_id)
    # the incremental path keeps them apart too: the later of the two may not join the other's person or cluster
    later = b if b.person_id is None else a
    other = a if later is b else b
    store.update_payload({later.face_id: dict.fromkeys((S.PERSON_ID, S.CLUSTER_ID, S.ASSIGNMENT_SOURCE))})
    d.add_faces_incrementally([later.face_id])
    placed = store.get_face(later.face_id, with_embedding=False)
    assert (placed.person_id or placed.cluster_id) not in {other.person_id, other.cluster_id}
    for payloads in _by_group(store).values():
        images = Counter(p[S.IMAGE_ID] for p in payloads if p.get(S.ASSIGNMENT_SOURCE) != S.SOURCE_MANUAL)
        assert max(images.values()) == 1


def _by_group(store: FaceStore) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for p in state(store).values():
        key = p.get(S.PERSON_ID) or (p[S.CLUSTER_ID] if S.is_group(p.get(S.CLUSTER_ID)) else None)
        if key:
            groups.setdefault(key, []).append(p)
    return groups


KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    import facekit.store.face_store as fs
    from facekit.dual import DualModeClusterer
    fs.UPSERT_BATCH = 3  # write in small batches, then stop after the first
    store = fs.FaceStore(sys.argv[1], model_id="dlib_resnet_v1", dim=128)
    real = fs.FaceStore._set_payloads
    def slow(self, items):
        out = real(self, items)
        print("WRITING", flush=True)
        time.sleep(60)
        return out
    fs.FaceStore._set_payloads = slow
    DualModeClusterer(store).cluster_all_faces()
    """
)


def test_a_run_killed_midway_is_completed_by_the_next(store, tmp_path):
    powell = faces_of(store, "Colin_Powell")
    label(store, "Colin Powell", powell[:3])
    label(store, "Tony Blair", faces_of(store, "Tony_Blair")[:3])
    folder = Path(store.location)
    reference = tmp_path / "reference"
    store.close()
    shutil.copytree(folder, reference)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with FaceStore(folder, model_id=DLIB, dim=128) as killed:
        assert killed.history.run_marker()["status"] == "running"
        half = state(killed)
        written = sum(p.get(S.CLUSTER_ID) is not None or p.get(S.PERSON_ID) is not None for p in half.values()) - 6
        assert 0 < written < len(half)  # really midway
        assert sum(p.get(S.ASSIGNMENT_SOURCE) == S.SOURCE_MANUAL for p in half.values()) == 6
        summary = DualModeClusterer(killed).cluster_all_faces()
        assert summary["completed_interrupted_run"]
        assert killed.history.run_marker()["status"] == "done"
        completed = partition(killed)
        assert sum(p.get(S.ASSIGNMENT_SOURCE) == S.SOURCE_MANUAL for p in state(killed).values()) == 6
    with FaceStore(reference, model_id=DLIB, dim=128) as clean:
        DualModeClusterer(clean).cluster_all_faces()
        assert partition(clean) == completed


def test_incremental_add_joins_the_nearest_cluster(store):
    d = DualModeClusterer(store)
    summary = d.cluster_all_faces()
    schroeder = faces_of(store, "Gerhard_Schroeder")
    home = Counter(store.get_face(f, with_embedding=False).cluster_id for f in schroeder).most_common(1)[0][0]
    newcomer = next(f for f in schroeder if store.get_face(f, with_embedding=False).cluster_id == home)
    store.update_payload({newcomer: {S.CLUSTER_ID: None, S.ASSIGNMENT_SOURCE: None, S.CLUSTER_CONFIDENCE: None}})
    counts = d.add_faces_incrementally([newcomer])
    assert counts["joined_clusters"] == 1
    assert store.get_face(newcomer, with_embedding=False).cluster_id == home
    # it says what it linked at, and why: the pass's own threshold
    assert counts["unknown_threshold"] == summary["unknown_threshold"]
    assert counts["unknown_threshold_source"] == summary["unknown_threshold_source"]


def test_a_new_process_adds_at_the_last_passs_threshold_without_reading_the_store(store, monkeypatch):
    """Adding faces in a later process must not recalibrate on every stored face (minutes at 1M)."""
    summary = DualModeClusterer(store).cluster_all_faces()
    later = DualModeClusterer(store)

    def full_read(*args, **kwargs):
        raise AssertionError("calibrated again on the whole store")

    monkeypatch.setattr(store, "scroll_all", full_read)
    assert later.link_threshold() == summary["unknown_threshold"]
    assert later.link_.method == summary["unknown_threshold_source"]["method"]
    assert later.link_.reason.startswith("the last pass's")
    monkeypatch.undo()
    placed = later.cluster_new_faces()  # nothing new: it still says what it links at, and why
    assert placed["new_faces"] == 0 and placed["unknown_threshold"] == summary["unknown_threshold"]
    assert placed["unknown_threshold_source"]["reason"].startswith("the last pass's")
    store.history.start_run("killed")  # a pass that never finished: its marker holds no threshold to trust
    fresh = DualModeClusterer(store)
    assert fresh.link_threshold() > 0 and not fresh.link_.reason.startswith("the last pass's")


def _grow(store: FaceStore, times: float) -> int:
    """Add new faces (the stored ones moved a little, in new photos) until the store holds `times` its faces."""
    faces = store.scroll_all()
    rng = np.random.default_rng(0)
    extra = int(np.ceil((times - 1) * len(faces.ids)))
    rows = rng.choice(len(faces.ids), extra)
    moved = faces.embeddings[rows] + rng.normal(0, 0.02, (extra, faces.embeddings.shape[1]))
    moved /= np.linalg.norm(moved, axis=1, keepdims=True)
    records = [
        FaceRecord(S.face_point_id(f"new{i}", 0, DLIB), f"new{i}", f"/new/{i}.jpg", 0, None, None, None, DLIB,
                   embedding=v.astype(np.float32)) for i, v in enumerate(moved, start=len(faces.ids))
    ]  # fmt: skip
    store.add_faces(records)
    return len(faces.ids) + extra


def test_new_faces_are_clustered_by_a_full_pass_once_the_store_has_doubled(store):
    """The cut a collection needs moves as it grows: placing faces one by one does not keep a small store's forever."""
    first = DualModeClusterer(store).cluster_all_faces()
    almost = _grow(store, 1.5)
    placed = DualModeClusterer(store).cluster_new_faces()  # not grown enough yet: placed at the pass's threshold
    assert "full_pass" not in placed and sum(placed[name] for name in PLACEMENTS) == placed["new_faces"] > 0
    assert placed["unknown_threshold_source"]["reason"].startswith("the last pass's")
    total = _grow(store, 2 * first["total_processed"] / almost)
    grown = DualModeClusterer(store).cluster_new_faces()
    assert grown["full_pass"] == f"{total} faces, 2.0 times the {first['total_processed']} of the last pass"
    assert grown["total_processed"] == total == store.count() and grown["new_faces"] == total - almost
    assert f"{total} faces" in grown["unknown_threshold_source"]["reason"]  # chosen on all of them
    assert all(p.get(S.PERSON_ID) or p.get(S.CLUSTER_ID) for p in store.scroll_all(with_embeddings=False).payloads)
    _grow(store, 1.2)  # the next faces are placed at that pass's threshold
    later = DualModeClusterer(store).cluster_new_faces()
    assert "full_pass" not in later and later["unknown_threshold"] == grown["unknown_threshold"]
    # a pass that never finished is completed by the next placement, not calibrated around on every call
    store.history.start_run("killed")
    _grow(store, 1.1)
    completed = DualModeClusterer(store).cluster_new_faces()
    assert completed["full_pass"] == "the last pass (killed) did not finish: this one completes it"
    assert completed["completed_interrupted_run"] == "killed" and store.history.run_marker()["status"] == "done"
    # a threshold the user fixed still wins in the pass
    _grow(store, 2.0)
    fixed = DualModeClusterer(store, unknown_threshold=0.93).cluster_new_faces()
    assert "full_pass" in fixed and fixed["unknown_threshold"] == 0.93
    assert fixed["unknown_threshold_source"]["method"] == "argument"


def test_cluster_edits_and_undo(store):
    d = DualModeClusterer(store)
    d.cluster_all_faces()
    editor = ClusterEditor(store)
    clusters = list(editor.list_clusters())
    assert len(clusters) >= 2
    a, b = clusters[:2]
    size_a, size_b = len(editor.get_cluster(a)), len(editor.get_cluster(b))
    before = state(store)

    merged = editor.merge_clusters([a, b])
    assert merged == a and len(editor.get_cluster(a)) == size_a + size_b
    d.cluster_all_faces()  # an automatic pass keeps the merge
    assert len(editor.get_cluster(a)) >= size_a + size_b
    faces_b = [f.face_id for f in editor.get_cluster(a)][-size_b:]
    parts = editor.split_cluster(a, [faces_b])
    assert parts[0] == a and len(parts) == 2 and {f.face_id for f in editor.get_cluster(parts[1])} == set(faces_b)

    person = editor.name_cluster(parts[1], "Someone")
    assert store.count(person_id=person.person_id) == len(faces_b)
    moved = editor.reassign_face(faces_b[0], cluster_id=a)
    assert (
        moved.cluster_id == a
        and moved.person_id is None
        and person.person_id in state(store)[faces_b[0]][S.REJECTED_PERSONS]
    )
    image = store.get_face(faces_b[1], with_embedding=False).image_id
    n_image = editor.remove_image(image)
    editor.remove_face(faces_b[2]) if len(faces_b) > 2 else None
    for _ in range(6):
        if editor.undo() is None:
            break
    assert editor.undo() is None
    after = state(store)
    assert set(after) == set(before) and len(after) == len(before) and n_image >= 1
    # merge, split, name, reassign all undone: the auto pass's labels are back (the pass after the merge kept it)
    assert {f: after[f][S.CLUSTER_ID] for f in before} == {f: before[f][S.CLUSTER_ID] for f in before}


def test_split_without_groups_reclusters(store):
    DualModeClusterer(store, unknown_threshold=0.9).cluster_all_faces()  # loose: groups mix people
    editor = ClusterEditor(store)
    biggest = next(iter(editor.list_clusters()))
    parts = editor.split_cluster(biggest)
    assert len(parts) >= 2 and sum(len(editor.get_cluster(p)) for p in parts) >= 2


def test_bad_edits_say_what_is_wrong(store):
    editor = ClusterEditor(store)
    with pytest.raises(Exception, match="no faces in cluster"):
        editor.get_cluster("unknown_cluster_999")
    with pytest.raises(Exception, match="at least two"):
        editor.merge_clusters(["unknown_cluster_1"])
    with pytest.raises(ValueError, match="max_faces"):
        DualModeClusterer(store).cluster_all_faces(max_faces=0)
    with pytest.raises(ValueError, match="unknown clustering method"):
        DualModeClusterer(store, unknown_method="kmeans")


def test_max_faces_limits_the_pass(store):
    summary = DualModeClusterer(store).cluster_all_faces(max_faces=10)
    assert summary["total_processed"] == 10
    assert sum(p.get(S.CLUSTER_ID) is not None for p in state(store).values()) == 10


def test_synthetic_scale_smoke():
    """The store-free stages on 3K synthetic faces: every face gets exactly one decision."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(300, 64))
    who = rng.integers(0, 300, 3000)
    x = centres[who] + 0.1 * rng.normal(size=(3000, 64))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    with FaceStore(":memory:", model_id="synthetic", dim=64) as s:
        s.add_faces(
            [FaceRecord(S.face_point_id(f"i{i}", 0, "synthetic"), f"i{i}", f"/p/{i}.jpg", 0, None, None, None,
                        "synthetic", embedding=v) for i, v in enumerate(x)]
        )  # fmt: skip
        summary = DualModeClusterer(s, unknown_threshold=0.8).cluster_all_faces()
        # same identity: cosine ~0.99, different ones ~0: each identity with 2+ faces is exactly one group
        assert summary["unknown_clusters"] == int((np.bincount(who) >= 2).sum()) and summary["noise"] == 0
        assert all(p.get(S.CLUSTER_ID) for p in s.scroll_all(with_embeddings=False).payloads)


def test_edits_refuse_what_would_do_nothing_or_invent_a_cluster(store):
    label(store, "Colin", faces_of(store, "Colin_Powell")[:3])
    DualModeClusterer(store).cluster_all_faces()
    editor = ClusterEditor(store)
    cluster = next(iter(editor.list_clusters()))
    before, last_edit = state(store), store.history.last_edit()
    with pytest.raises(StoreError, match="two different cluster ids"):
        editor.merge_clusters([cluster, cluster])
    face = faces_of(store, "Tony_Blair")[0]
    with pytest.raises(NotFoundError, match="no cluster 'nocluster'"):
        editor.reassign_face(face, cluster_id="nocluster")
    with pytest.raises(NotFoundError, match="no person named or with id 'Nobody'"):
        editor.reassign_face(face, person="Nobody")
    assert state(store) == before and store.history.last_edit() == last_edit  # nothing written, nothing to undo


def test_front_rows_moves_the_selection_in_place_block_by_block():
    from facekit.dual import _front_rows

    rng = np.random.default_rng(3)
    x = rng.standard_normal((1000, 8)).astype(np.float32)
    rows = np.sort(rng.choice(1000, 700, replace=False))
    expected = x[rows].copy()
    front = _front_rows(x, rows, block=64)  # many blocks, each reading rows that earlier ones moved past
    assert np.shares_memory(front, x)
    np.testing.assert_array_equal(front, expected)


def test_a_hand_label_made_while_a_pass_computes_is_kept(store, monkeypatch):
    """The pass checks each face against the store before writing it, block by block."""
    import facekit.dual as dual

    monkeypatch.setattr(dual, "SAVE_BLOCK", 7)
    d = DualModeClusterer(store)
    faces = store.scroll_all(fields=dual.READ_FIELDS)
    result = d.predict(faces)
    edited = faces.ids[10]
    person = label(store, "Someone", [edited])  # by hand, after the pass read the faces
    assert d.save_dual_mode_results(faces, result) == len(faces.ids) - 1
    after = state(store)
    assert after[edited][S.PERSON_ID] == person and after[edited][S.ASSIGNMENT_SOURCE] == S.SOURCE_MANUAL
    assert all(S.CLUSTER_ID in p for fid, p in after.items() if fid != edited)
