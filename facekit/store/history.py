"""A model's clustering-run marker and hand-edit history, kept in the store next to its faces.

The run marker says whether the last `cluster_all_faces` finished (a killed run is spotted and
completed by the next one) and which cluster number comes next (ids are never reused). Each hand
edit records the fields it changed, so `undo` can put them back.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from qdrant_client import QdrantClient, models

from facekit.store import schema as S

RUN_MARKER_ID = str(uuid.uuid5(S.ID_NAMESPACE, "cluster-run-marker"))
RUNNING, DONE = "running", "done"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StoreHistory:
    """Run marker and edit log of one model's faces (a payload-only collection)."""

    def __init__(self, client: QdrantClient, model_id: str) -> None:
        self.client = client
        self.collection = S.log_collection_for(model_id)
        if not client.collection_exists(self.collection):
            client.create_collection(self.collection, vectors_config={}, metadata={"facekit_schema": S.SCHEMA_VERSION})

    # -- clustering runs ----------------------------------------------------------------------
    def run_marker(self) -> dict[str, Any]:
        """The last run's marker ({} before the first run)."""
        points = self.client.retrieve(self.collection, [RUN_MARKER_ID])
        return dict(points[0].payload or {}) if points else {}

    def start_run(self, run_id: str) -> str | None:
        """Mark a run as started; returns the id of an earlier run that never finished, if any."""
        marker = self.run_marker()
        interrupted = marker.get("run_id") if marker.get("status") == RUNNING else None
        marker.update(run_id=run_id, status=RUNNING, started_at=_now())
        self._put(RUN_MARKER_ID, marker)
        return interrupted

    def finish_run(self, run_id: str, summary: dict[str, Any]) -> None:
        """Mark the run finished, with its summary."""
        marker = self.run_marker()
        marker.update(run_id=run_id, status=DONE, finished_at=_now(), summary=summary)
        self._put(RUN_MARKER_ID, marker)

    def next_cluster_number(self) -> int:
        """The lowest cluster number never handed out."""
        return int(self.run_marker().get("next_cluster_number", 0))

    def reserve_cluster_numbers(self, at_least: int, count: int = 0) -> int:
        """Hand out `count` numbers from max(next, at_least); returns the first."""
        marker = self.run_marker()
        first = max(int(marker.get("next_cluster_number", 0)), at_least)
        marker["next_cluster_number"] = first + count
        self._put(RUN_MARKER_ID, marker)
        return first

    # -- hand edits ---------------------------------------------------------------------------
    def push_edit(
        self, op: str, before: dict[str, dict[str, Any]], removed: list[dict[str, Any]] | None = None
    ) -> None:
        """Record an edit: the fields of each face before it, and whole faces it deleted."""
        seq = 1 + max((e["seq"] for e in self._edits()), default=0)
        payload = {"kind": "edit", "seq": seq, "op": op, "at": _now(), "before": before, "removed": removed or []}
        self._put(str(uuid.uuid4()), payload)

    def last_edit(self) -> tuple[str, dict[str, Any]] | None:
        """The newest edit (point id, record), or None."""
        edits = self._edits()
        if not edits:
            return None
        newest = max(edits, key=lambda e: e["seq"])
        return newest["_id"], newest

    def drop_edit(self, edit_id: str) -> None:
        self.client.delete(self.collection, models.PointIdsList(points=[edit_id]), wait=True)

    def _edits(self) -> list[dict[str, Any]]:
        out, offset = [], None
        flt = models.Filter(must=[models.FieldCondition(key="kind", match=models.MatchValue(value="edit"))])
        while True:
            points, offset = self.client.scroll(self.collection, scroll_filter=flt, limit=256, offset=offset)
            out.extend({**(p.payload or {}), "_id": str(p.id)} for p in points)
            if offset is None:
                return out

    def _put(self, point_id: str, payload: dict[str, Any]) -> None:
        self.client.upsert(self.collection, [models.PointStruct(id=point_id, vector={}, payload=payload)], wait=True)
