"""Hand edits of clusters and faces, each one undoable.

Every edit is a label given by hand: the faces it touches get assignment_source "manual", so no
automatic pass moves them again. Each edit records the fields it changed (and whole faces it removed)
in the store's edit history; `undo` puts back the newest one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from qdrant_client import models

from facekit.cluster import make_clusterer
from facekit.errors import NotFoundError, StoreError
from facekit.store import schema as S
from facekit.store.face_store import FaceStore
from facekit.types import FaceRecord, Person

EDITED_FIELDS = (S.PERSON_ID, S.CLUSTER_ID, S.CLUSTER_CONFIDENCE, S.ASSIGNMENT_SOURCE, S.REJECTED_PERSONS)


class ClusterEditor:
    """get / merge / split / reassign / name / remove, with undo of the last edit.

    >>> store = FaceStore(":memory:", model_id="demo", dim=2)
    >>> ClusterEditor(store).undo() is None
    True
    """

    def __init__(self, store: FaceStore) -> None:
        self.store = store

    # -- reading ------------------------------------------------------------------------------
    def get_cluster(self, cluster_id: str) -> list[FaceRecord]:
        """The faces of one cluster, most confident first; `NotFoundError` if it has none."""
        faces = self.store.get_by_filter(cluster_id=cluster_id)
        if not faces:
            raise NotFoundError(f"no faces in cluster {cluster_id!r}; `facekit stats` counts the clusters")
        return sorted(faces, key=lambda f: -(f.cluster_confidence or 0.0))

    def list_clusters(self) -> dict[str, int]:
        """Cluster id → face count for every real group (noise left out), largest first."""
        counts: dict[str, int] = {}
        for p in self.store.scroll_all(with_embeddings=False, fields=[S.CLUSTER_ID, S.PERSON_ID]).payloads:
            if S.is_group(p.get(S.CLUSTER_ID)) and not p.get(S.PERSON_ID):
                counts[p[S.CLUSTER_ID]] = counts.get(p[S.CLUSTER_ID], 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    # -- edits --------------------------------------------------------------------------------
    def merge_clusters(self, cluster_ids: Sequence[str], *, into: str | None = None) -> str:
        """Put the faces of several clusters into one (`into`, default the first id); returns its id."""
        distinct = list(dict.fromkeys(cluster_ids))
        if len(distinct) < 2:
            raise StoreError(f"merging needs at least two different cluster ids, got {list(cluster_ids)}")
        target = into or distinct[0]
        faces = [f for cid in distinct for f in self.get_cluster(cid)]
        if into is not None and into not in cluster_ids:
            faces += self.store.get_by_filter(cluster_id=into)
        self._apply("merge", {f.face_id: self._hand_label(cluster_id=target) for f in faces})
        return target

    def split_cluster(
        self, cluster_id: str, groups: Sequence[Sequence[str]] | None = None, *, threshold: float | None = None
    ) -> list[str]:
        """Split a cluster into the given groups of face ids (faces left out stay in `cluster_id`),
        or, without groups, re-cluster it at cosine `threshold` (default: the median cosine between its
        faces). Returns the cluster ids that now hold its faces, the original first if it kept any."""
        faces = self.get_cluster(cluster_id)
        ids = [f.face_id for f in faces]
        if groups is None:
            groups = self._recluster(faces, threshold)
        stray = {fid for g in groups for fid in g} - set(ids)
        if stray:
            raise StoreError(f"{len(stray)} face(s) are not in {cluster_id}, e.g. {sorted(stray)[0]}")
        grouped = {fid for g in groups for fid in g}
        first = self.store.history.reserve_cluster_numbers(0, count=len(groups))
        updates = {fid: self._hand_label(cluster_id=cluster_id) for fid in ids if fid not in grouped}
        new_ids = [cluster_id] if updates else []
        for k, group in enumerate(g for g in groups if g):
            new_id = S.cluster_name(first + k)
            new_ids.append(new_id)
            updates.update({fid: self._hand_label(cluster_id=new_id) for fid in group})
        self._apply("split", updates)
        return new_ids

    def _recluster(self, faces: list[FaceRecord], threshold: float | None) -> list[list[str]]:
        records = [self.store.get_face(f.face_id) for f in faces]
        x = np.stack([r.embedding for r in records])
        if threshold is None:  # the median pairwise cosine: roughly halves the cluster's edges
            sims = x @ x.T
            threshold = float(np.median(sims[np.triu_indices(len(x), 1)])) if len(x) > 1 else 1.0
        labels = make_clusterer("chinese_whispers", threshold, 1).fit_predict(x)
        if len(set(labels.tolist())) < 2:
            raise StoreError(
                f"re-clustering at cosine {threshold:.3f} keeps the cluster whole; pass a higher --threshold "
                "or the groups of face ids"
            )
        biggest = np.bincount(labels).argmax()
        return [[records[i].face_id for i in np.flatnonzero(labels == c)] for c in np.unique(labels) if c != biggest]

    def reassign_face(self, face_id: str, *, cluster_id: str | None = None, person: str | None = None) -> FaceRecord:
        """Move one face by hand into a cluster, or to a person (id or name). Moving it away from a
        person it had also records "not this person" for them."""
        if (cluster_id is None) == (person is None):
            raise StoreError("give exactly one of cluster_id or person")
        face = self.store.get_face(face_id, with_embedding=False)
        target = self.store.resolve_person(person) if person is not None else None
        rejected = self._rejected(face_id)
        if face.person_id and (target is None or target.person_id != face.person_id):
            rejected = sorted({*rejected, face.person_id})
        if target is not None:
            fields = self._hand_label(person_id=target.person_id)
        elif not self.store.count(cluster_id=str(cluster_id)):
            raise NotFoundError(
                f"no cluster {cluster_id!r}: `facekit clusters` lists them (to give the face a group of its own, "
                "split it off its cluster)"
            )
        else:
            fields = self._hand_label(cluster_id=str(cluster_id))
        self._apply("reassign", {face_id: {**fields, S.REJECTED_PERSONS: rejected}})
        return self.store.get_face(face_id, with_embedding=False)

    def reject_person(self, face_id: str, person: str | None = None) -> None:
        """ "Not this person": the face leaves `person` (default: its current person) and no automatic
        pass gives it to them again."""
        face = self.store.get_face(face_id, with_embedding=False)
        person_id = self.store.resolve_person(person).person_id if person else face.person_id
        if not person_id:
            raise StoreError(f"face {face_id} has no person; say which person it is not")
        fields: dict[str, Any] = {S.REJECTED_PERSONS: sorted({*self._rejected(face_id), person_id})}
        if face.person_id == person_id:
            fields.update(
                {S.PERSON_ID: None, S.CLUSTER_ID: None, S.CLUSTER_CONFIDENCE: None, S.ASSIGNMENT_SOURCE: None}
            )
        self._apply("reject", {face_id: fields})

    def name_cluster(self, cluster_id: str, person: str) -> Person:
        """Label every face of a cluster as `person`: an existing person's id or name, else a new name."""
        faces = self.get_cluster(cluster_id)
        try:
            target = self.store.resolve_person(person)
        except NotFoundError:
            target = self.store.create_person(person)
        self._apply("name", {f.face_id: self._hand_label(person_id=target.person_id) for f in faces})
        return target

    def remove_face(self, face_id: str) -> None:
        """Delete a face (undo brings it back)."""
        self._remove([self.store.get_face(face_id, with_embedding=False).face_id], "remove-face")

    def remove_image(self, image_id: str) -> int:
        """Delete every face of an image (undo brings them back); returns how many."""
        ids = [f.face_id for f in self.store.get_by_filter(image_id=image_id)]
        if not ids:
            raise NotFoundError(f"no faces of image {image_id!r} in the store")
        self._remove(ids, "remove-image")
        return len(ids)

    def undo(self) -> dict[str, Any] | None:
        """Revert the newest edit; returns what was undone (op, faces), or None when nothing is left."""
        last = self.store.history.last_edit()
        if last is None:
            return None
        edit_id, edit = last
        if edit["removed"]:
            points = [models.PointStruct(id=r["id"], vector=r["vector"], payload=r["payload"]) for r in edit["removed"]]
            self.store.client.upsert(self.store.collection, points, wait=True)
        if edit["before"]:
            self.store.update_payload(edit["before"])
        self.store.history.drop_edit(edit_id)
        return {"op": edit["op"], "faces": len(edit["before"]) + len(edit["removed"])}

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _hand_label(*, person_id: str | None = None, cluster_id: str | None = None) -> dict[str, Any]:
        """Fields of a face given a person, or put in a cluster, by hand."""
        return {
            S.PERSON_ID: person_id,
            S.CLUSTER_ID: cluster_id,
            S.ASSIGNMENT_SOURCE: S.SOURCE_MANUAL,
            S.CLUSTER_CONFIDENCE: 1,
        }

    def _rejected(self, face_id: str) -> list[str]:
        payload = self.store.payloads([face_id], fields=[S.REJECTED_PERSONS]).get(face_id, {})
        return list(payload.get(S.REJECTED_PERSONS) or [])

    def _apply(self, op: str, updates: dict[str, dict[str, Any]]) -> None:
        """Record the touched faces' fields, then write the edit."""
        current = self.store.payloads(list(updates), fields=list(EDITED_FIELDS))
        missing = set(updates) - set(current)
        if missing:
            raise NotFoundError(f"{len(missing)} face(s) not in the store, e.g. {sorted(missing)[0]}")
        before = {fid: {k: current[fid].get(k) for k in EDITED_FIELDS} for fid in updates}
        self.store.history.push_edit(op, before)
        self.store.update_payload(updates)

    def _remove(self, face_ids: Iterable[str], op: str) -> None:
        ids = list(face_ids)
        records = self.store.client.retrieve(self.store.collection, ids, with_payload=True, with_vectors=True)
        removed = [{"id": str(r.id), "vector": list(map(float, r.vector)), "payload": r.payload} for r in records]
        self.store.history.push_edit(op, {}, removed)
        self.store.client.delete(self.store.collection, models.PointIdsList(points=ids), wait=True)
