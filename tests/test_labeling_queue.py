"""The labeling panel's model (no widgets): queue order, completion, suggestions, and that each
edit lands in the store exactly as asked, undo included. Real LFW faces in an embedded store."""

from __future__ import annotations

import numpy as np
import pytest

from facekit.dual import DualModeClusterer
from facekit.errors import StoreError
from facekit.store import schema as S
from facekit.widgets import LabelingQueue

from .test_dual import state


@pytest.fixture
def clustered(store):
    DualModeClusterer(store).cluster_all_faces()
    return store


def changed(before: dict, after: dict) -> dict[str, dict]:
    """Faces whose labels differ, field by field."""
    fields = (S.PERSON_ID, S.CLUSTER_ID, S.ASSIGNMENT_SOURCE, S.REJECTED_PERSONS)
    out = {}
    for fid, p in after.items():
        diff = {k: (before[fid].get(k), p.get(k)) for k in fields if before[fid].get(k) != p.get(k)}
        if diff:
            out[fid] = diff
    return out


def test_queue_orders_clusters_largest_or_least_confident_first(clustered):
    queue = LabelingQueue(clustered)
    sizes = [len(g.face_ids) for g in queue.queue]
    assert len(sizes) >= 4 and sizes == sorted(sizes, reverse=True)
    assert queue.current == queue.queue[0]
    uncertain = LabelingQueue(clustered, order="uncertain")
    confidences = [g.confidence for g in uncertain.queue]
    assert confidences == sorted(confidences)
    with pytest.raises(ValueError, match="order must be"):
        LabelingQueue(clustered, order="random")  # type: ignore[arg-type]


def test_name_merge_reject_undo_write_exactly_those_edits(clustered):
    queue = LabelingQueue(clustered)
    before = state(clustered)
    first = queue.current
    assert first is not None and first.person is None

    alice = queue.name("Alice")
    after_name = state(clustered)
    diff = changed(before, after_name)
    assert set(diff) == set(first.face_ids)
    assert all(after_name[f][S.PERSON_ID] == alice.person_id for f in first.face_ids)
    assert all(after_name[f][S.ASSIGNMENT_SOURCE] == S.SOURCE_MANUAL for f in first.face_ids)
    assert queue.current.person == alice  # the named group stays on screen for "not this person"
    assert queue.complete("al") == ["Alice"] and queue.complete("LIC") == ["Alice"]

    rejected = first.face_ids[-1]
    queue.reject([rejected])
    after_reject = state(clustered)
    assert changed(after_name, after_reject).keys() == {rejected}
    assert after_reject[rejected][S.REJECTED_PERSONS] == [alice.person_id]
    assert not after_reject[rejected].get(S.PERSON_ID)
    assert rejected not in queue.current.face_ids

    queue.next()
    target = queue.current
    (other, cosine), *_ = queue.suggestions()
    assert other != target.key
    faces = clustered.scroll_all(fields=[S.CLUSTER_ID])

    def centroid(cluster):
        v = faces.embeddings[[p.get(S.CLUSTER_ID) == cluster for p in faces.payloads]].mean(axis=0)
        return v / np.linalg.norm(v)

    assert cosine == pytest.approx(float(centroid(other) @ centroid(target.key)), abs=1e-3)
    other_faces = [f for f, p in after_reject.items() if p.get(S.CLUSTER_ID) == other]
    kept = queue.merge(other)
    after_merge = state(clustered)
    assert kept == target.key
    assert set(changed(after_reject, after_merge)) == set(target.face_ids) | set(other_faces)
    assert all(after_merge[f][S.CLUSTER_ID] == kept for f in [*target.face_ids, *other_faces])

    undone = queue.undo()
    assert undone == {"op": "merge", "faces": len(target.face_ids) + len(other_faces)}
    assert changed(after_reject, state(clustered)) == {}
    assert changed(before, state(clustered)).keys() == set(first.face_ids)  # the name and the reject remain
    assert queue.done[-1].startswith("undid merge")


def test_split_and_reject_on_an_unnamed_cluster(clustered):
    queue = LabelingQueue(clustered)
    group = queue.current
    one, two = group.face_ids[-2:]
    before = state(clustered)
    new_ids = queue.split([one])
    assert new_ids[0] == group.key and len(new_ids) == 2
    assert state(clustered)[one][S.CLUSTER_ID] == new_ids[1]
    queue.reject([two])  # not the same person as the rest: a cluster of its own, by hand
    now = state(clustered)
    assert now[two][S.CLUSTER_ID] not in (group.key, new_ids[1])
    assert now[two][S.ASSIGNMENT_SOURCE] == S.SOURCE_MANUAL
    assert set(changed(before, now)) == set(group.face_ids)  # the split pins the kept faces too


def test_bad_panel_input_is_a_clear_error(clustered):
    queue = LabelingQueue(clustered)
    with pytest.raises(StoreError, match="type a name"):
        queue.name("  ")
    with pytest.raises(StoreError, match="select the faces"):
        queue.reject([])
    while queue.current is not None:
        queue.next()
    with pytest.raises(StoreError, match="no unknown cluster on screen"):
        queue.name("Bob")
    assert queue.position()[0] == 0
