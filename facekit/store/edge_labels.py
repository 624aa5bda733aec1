"""Labels kept apart from vectors in an embedded (Qdrant Edge) store.

Qdrant copies a point out of its indexed (HNSW) segment into an unindexed one whenever it writes to it,
payload included, and Edge has no background optimizer to index it again. A clustering pass labels every
face, so at a million faces every later search compared all of them one by one (266 ms an add). So each
face collection keeps its label fields (person, cluster, assignment...) in a companion payload-only shard
keyed by the same point ids: label writes never touch the vectors, and the HNSW index stays whole.

`EdgeClient` routes by key: label fields are written to and filtered in the `LabelShard`, everything else
in the vector shard, and reads merge the two. This module holds the label side and the routing helpers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

PLACEHOLDER = [1.0]  # the vector of a payload-only shard's points
ID_PAGE = 4096


def payload_only_shard(path: Path) -> Any:
    """A new Edge shard whose points carry payload only (a 1-d placeholder vector)."""
    return qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=1, distance=qe.Distance.Dot)))


def split_payload(payload: dict[str, Any], label_fields: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fields that stay with the vector, the label fields)."""
    face = {k: v for k, v in payload.items() if k not in label_fields}
    labels = {k: v for k, v in payload.items() if k in label_fields}
    return face, labels


def must_conditions(flt: models.Filter | None) -> list[Any]:
    """A filter's `must` field conditions (the only filters facekit makes); anything else is refused."""
    if flt is None:
        return []
    if flt.should or flt.must_not or flt.min_should:
        raise NotImplementedError("facekit's Edge engine translates `must` field conditions only")
    return flt.must if isinstance(flt.must, list) else [flt.must] if flt.must else []


def split_filter(
    flt: models.Filter | None, label_fields: frozenset[str]
) -> tuple[models.Filter | None, models.Filter | None]:
    """(the conditions on vector-side fields, those on label fields), each None when empty."""
    must = must_conditions(flt)
    face = [c for c in must if c.key not in label_fields]
    labels = [c for c in must if c.key in label_fields]
    return (models.Filter(must=face) if face else None), (models.Filter(must=labels) if labels else None)


def wanted_fields(with_payload: bool | Sequence[str], label_fields: frozenset[str]) -> tuple[Any, Any]:
    """What to ask each shard for: (vector side, label side), each True, False or a list of keys."""
    if with_payload is True or with_payload is False:
        return with_payload, with_payload
    keys = list(with_payload)
    face = [k for k in keys if k not in label_fields]
    labels = [k for k in keys if k in label_fields]
    return (face or False), (labels or False)


def scroll_ids(shard: Any, edge_flt: Any = None) -> list[str]:
    """Every point id of an Edge shard matching an Edge filter, in id order."""
    found: list[str] = []
    offset = None
    while True:
        request = qe.ScrollRequest(offset=offset, limit=ID_PAGE, filter=edge_flt, with_payload=False, with_vector=False)
        points, offset = shard.scroll(request)
        found += [str(p.id) for p in points]
        if offset is None:
            return found


class LabelShard:
    """One face collection's label fields: a payload-only Edge shard with the same point ids."""

    def __init__(self, shard: Any, to_edge_filter: Callable[[models.Filter | None], Any]) -> None:
        self.shard = shard
        self._edge_filter = to_edge_filter

    @classmethod
    def build(
        cls,
        path: Path,
        points: Iterable[tuple[str, dict[str, Any]]],
        indexed: Iterable[str],
        to_edge_filter: Callable[[models.Filter | None], Any],
    ) -> LabelShard:
        """Write a new label shard next to `path` and move it into place when complete (an interrupted build
        leaves nothing at `path`)."""
        staging = path.with_name(path.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        shard = payload_only_shard(staging)
        for field in indexed:
            shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
        page: list[Any] = []
        for point_id, labels in points:
            page.append(qe.Point(id=point_id, vector=PLACEHOLDER, payload=labels))
            if len(page) >= ID_PAGE:
                shard.update(qe.UpdateOperation.upsert_points(page))
                page = []
        if page:
            shard.update(qe.UpdateOperation.upsert_points(page))
        shard.flush()
        shard.close()
        shutil.rmtree(path, ignore_errors=True)  # a build that died after this move but before the catalog said so
        staging.rename(path)
        return cls(qe.EdgeShard.load(str(path)), to_edge_filter)

    def index(self, field: str) -> None:
        self.shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))

    def replace(self, points: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Each point's labels become exactly `labels` (an upsert of the face)."""
        if points:
            edge_points = [qe.Point(id=i, vector=PLACEHOLDER, payload=labels) for i, labels in points]
            self.shard.update(qe.UpdateOperation.upsert_points(edge_points))

    def set(self, ids: Sequence[str], labels: dict[str, Any]) -> None:
        """Set label fields on points, keeping their other labels."""
        if ids and labels:
            self.shard.update(qe.UpdateOperation.set_payload(list(ids), labels))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def read(self, ids: Sequence[str], with_payload: Any = True) -> dict[str, dict[str, Any]]:
        """Point id → labels, for the ids that have a label point."""
        if not ids or with_payload is False:
            return {}
        return {str(p.id): dict(p.payload or {}) for p in self.shard.retrieve(list(ids), with_payload, False)}

    def scroll(self, flt: models.Filter | None, limit: int, offset: str | None) -> tuple[list[Any], str | None]:
        request = qe.ScrollRequest(offset=offset, limit=limit, filter=self._edge_filter(flt), with_payload=True,
                                   with_vector=False)  # fmt: skip
        points, next_offset = self.shard.scroll(request)
        return points, None if next_offset is None else str(next_offset)

    def ids(self, flt: models.Filter | None = None) -> list[str]:
        """Every point id matching `flt`, in id order."""
        return scroll_ids(self.shard, self._edge_filter(flt))

    def count(self, flt: models.Filter | None = None) -> int:
        return int(self.shard.count(qe.CountRequest(exact=True, filter=self._edge_filter(flt))))

    def close(self) -> None:
        self.shard.close()
