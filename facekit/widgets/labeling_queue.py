"""What the labeling panel shows and does, without any widget: testable without a browser.

The queue holds the unknown clusters, largest (or least confident) first. The group on screen is a
cluster, or, once named, the person it became, so that faces can still be marked "not this person".
Every edit goes through `ClusterEditor`, the same store API as the CLI, and can be undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from facekit.edits import ClusterEditor
from facekit.errors import StoreError
from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.types import Person

Order = Literal["largest", "uncertain"]


@dataclass(frozen=True)
class Group:
    """The faces on screen: an unknown cluster (`person` None) or the person a cluster was named."""

    key: str  # cluster id, or person id
    face_ids: tuple[str, ...]  # most confident first
    confidence: float  # mean cluster confidence
    person: Person | None = None

    @property
    def title(self) -> str:
        if self.person is not None:
            return f"{self.person.name} ({len(self.face_ids)} faces named from a cluster)"
        return f"{self.key} ({len(self.face_ids)} faces, confidence {self.confidence:.2f})"


class LabelingQueue:
    """The next cluster to label and the edits a user makes on it.

    Parameters
    ----------
    store : FaceStore
    order : "largest" (default) or "uncertain" (lowest mean cluster confidence first)
    min_size : clusters smaller than this are not queued
    """

    def __init__(self, store: FaceStore, *, order: Order = "largest", min_size: int = 2) -> None:
        if order not in ("largest", "uncertain"):
            raise ValueError(f"order must be 'largest' or 'uncertain', got {order!r}")
        self.store = store
        self.editor = ClusterEditor(store)
        self.order = order
        self.min_size = min_size
        self.skipped: set[str] = set()
        self.done: list[str] = []  # what was done, newest last, for the panel's log
        self.current: Group | None = None
        self._centroids: dict[str, np.ndarray] = {}
        self.queue: list[Group] = []
        self.refresh()

    # -- reading ----------------------------------------------------------------------------------
    def refresh(self) -> Group | None:
        """Re-read the store's unknown clusters; keeps the group on screen if it still exists."""
        faces = self.store.scroll_all(fields=[S.CLUSTER_ID, S.PERSON_ID, S.CLUSTER_CONFIDENCE])
        members: dict[str, list[int]] = {}
        for i, p in enumerate(faces.payloads):
            if S.is_group(p.get(S.CLUSTER_ID)) and not p.get(S.PERSON_ID):
                members.setdefault(p[S.CLUSTER_ID], []).append(i)
        groups, self._centroids = [], {}
        for cid, rows in members.items():
            conf = np.array([faces.payloads[i].get(S.CLUSTER_CONFIDENCE) or 0.0 for i in rows], dtype=float)
            ranked = [rows[j] for j in np.argsort(-conf, kind="stable")]
            centroid = faces.embeddings[rows].mean(axis=0)
            self._centroids[cid] = centroid / (np.linalg.norm(centroid) or 1.0)
            if len(rows) >= self.min_size:
                groups.append(Group(cid, tuple(faces.ids[i] for i in ranked), float(conf.mean())))
        if self.order == "largest":
            groups.sort(key=lambda g: (-len(g.face_ids), S.cluster_number(g.key)))
        else:
            groups.sort(key=lambda g: (g.confidence, -len(g.face_ids)))
        self.queue = groups
        if self.current is not None:
            self.current = self._reload(self.current)
        if self.current is None:
            self.current = self._first_unskipped()
        return self.current

    def _reload(self, group: Group) -> Group | None:
        if group.person is not None:
            now = self.store.payloads(list(group.face_ids), fields=[S.PERSON_ID])
            ids = tuple(fid for fid in group.face_ids if now.get(fid, {}).get(S.PERSON_ID) == group.person.person_id)
            return Group(group.key, ids, group.confidence, group.person) if ids else None
        return next((g for g in self.queue if g.key == group.key), None)

    def _first_unskipped(self) -> Group | None:
        return next((g for g in self.queue if g.key not in self.skipped), None)

    def position(self) -> tuple[int, int]:
        """(clusters left to label, clusters in the queue)."""
        left = sum(g.key not in self.skipped for g in self.queue)
        return left, len(self.queue)

    def next(self) -> Group | None:
        """Leave the group on screen for later and show the next one."""
        if self.current is not None and self.current.person is None:
            self.skipped.add(self.current.key)
        self.current = self._first_unskipped()
        return self.current

    def person_names(self) -> list[str]:
        """Every person's name, sorted: the panel's name completion."""
        return sorted(p.name for p in self.store.list_persons())

    def complete(self, prefix: str) -> list[str]:
        """Names that start with `prefix` (case-insensitive), then names that contain it."""
        low = prefix.lower()
        names = self.person_names()
        return [n for n in names if n.lower().startswith(low)] + [
            n for n in names if low in n.lower() and not n.lower().startswith(low)
        ]

    def suggestions(self, cluster_id: str | None = None, k: int = 3) -> list[tuple[str, float]]:
        """The `k` unknown clusters nearest to `cluster_id` (default: the one on screen), with the
        cosine between their centroids: the merge candidates."""
        cluster_id = cluster_id or self._current_cluster()
        if cluster_id not in self._centroids:
            return []
        ids = [c for c in self._centroids if c != cluster_id]
        if not ids:
            return []
        sims = np.stack([self._centroids[c] for c in ids]) @ self._centroids[cluster_id]
        best = np.argsort(-sims)[:k]
        return [(ids[i], round(float(sims[i]), 4)) for i in best]

    def _current_cluster(self) -> str:
        if self.current is None or self.current.person is not None:
            raise StoreError("no unknown cluster on screen: the queue is empty or the group was named")
        return self.current.key

    # -- edits (each one undoable) --------------------------------------------------------------------
    def name(self, person: str, cluster_id: str | None = None) -> Person:
        """Name the cluster on screen (or `cluster_id`): an existing person's name or id, or a new name."""
        cluster_id = cluster_id or self._current_cluster()
        if not person.strip():
            raise StoreError("type a name for the cluster (a new person, or an existing one)")
        face_ids = tuple(f.face_id for f in self.editor.get_cluster(cluster_id))
        named = self.editor.name_cluster(cluster_id, person.strip())
        self.done.append(f"named {cluster_id} ({len(face_ids)} faces) {named.name}")
        if self.current is not None and self.current.key == cluster_id:
            self.current = Group(named.person_id, face_ids, 1.0, named)
        self.refresh()
        return named

    def merge(self, other: str, cluster_id: str | None = None) -> str:
        """Merge cluster `other` into the cluster on screen (or `cluster_id`); returns the kept id."""
        cluster_id = cluster_id or self._current_cluster()
        kept = self.editor.merge_clusters([cluster_id, other])
        self.done.append(f"merged {other} into {kept}")
        self.refresh()
        return kept

    def reject(self, face_ids: list[str]) -> None:
        """ "Not this person" for faces on screen. A named group's faces leave the person for good
        (no automatic pass gives them back); an unknown cluster's faces go to clusters of their own."""
        if not face_ids:
            raise StoreError("select the faces that are not this person first")
        group = self.current
        if group is not None and group.person is not None:
            for fid in face_ids:
                self.editor.reject_person(fid, group.person.person_id)
            self.done.append(f"{len(face_ids)} face(s) are not {group.person.name}")
        else:
            cluster_id = self._current_cluster()
            self.editor.split_cluster(cluster_id, [[fid] for fid in face_ids])
            self.done.append(f"{len(face_ids)} face(s) taken out of {cluster_id}")
        self.refresh()

    def split(self, face_ids: list[str] | None = None) -> list[str]:
        """Split the cluster on screen: the selected faces become a new cluster, or, with none
        selected, re-cluster it (see `ClusterEditor.split_cluster`). Returns the cluster ids."""
        cluster_id = self._current_cluster()
        new_ids = self.editor.split_cluster(cluster_id, [face_ids] if face_ids else None)
        self.done.append(f"split {cluster_id} into {', '.join(new_ids)}")
        self.refresh()
        return new_ids

    def undo(self) -> dict | None:
        """Undo the newest edit (this panel's or anyone's, as `facekit undo` does)."""
        undone = self.editor.undo()
        if undone is not None:
            self.done.append(f"undid {undone['op']} ({undone['faces']} faces)")
            if undone["op"] == "name" and self.current is not None and self.current.person is not None:
                self.current = None  # the cluster is back in the queue
        self.refresh()
        return undone
