"""The embedded engine: Qdrant Edge (`qdrant-edge-py`), Qdrant's own storage in-process.

`EdgeClient` answers the part of qdrant-client's API that FaceStore and its history use, so one
FaceStore runs on either engine. Each collection is an Edge shard (segments, HNSW, payload indexes,
a WAL) in `<store>/edge/<collection>/`; collection metadata lives in `<store>/edge/collections.json`
(written atomically). Collections without vectors (persons, history) get a 1-d placeholder vector.
An acknowledged update is in the shard's WAL before `update` returns; a killed process replays it on
the next open. A shard's WAL is locked by the process that opened it: one process at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from qdrant_client import models

from facekit.store.mapped_pages import release_mapped_pages

EDGE_DIR = "edge"
CATALOG = "collections.json"
PLACEHOLDER = [1.0]  # the vector of a payload-only collection's points
EDGE_PIN = "qdrant-edge-py==0.9.0"


@dataclass(slots=True)
class EdgeRecord:
    """A point as FaceStore reads it (the fields qdrant-client's Record and ScoredPoint share)."""

    id: str
    payload: dict[str, Any] | None
    vector: list[float] | None = None
    score: float = 0.0


@dataclass
class _Collection:
    shard: Any
    dim: int  # 0: payload only
    metadata: dict[str, Any] = field(default_factory=dict)
    indexed: list[str] = field(default_factory=list)
    # Points written since the last index build. Qdrant copies a point it updates (payload included) out of
    # its indexed segment into an unindexed one, so each write can take a face out of the HNSW index.
    written: int = 0


@dataclass(frozen=True)
class _Params:
    vectors: Any


@dataclass(frozen=True)
class _Config:
    metadata: dict[str, Any]
    params: _Params


@dataclass(frozen=True)
class EdgeCollectionInfo:
    """The fields of qdrant-client's CollectionInfo that facekit reads."""

    config: _Config
    points_count: int
    indexed_vectors_count: int
    segments_count: int
    payload_schema: dict[str, str]


@dataclass(frozen=True)
class _Count:
    count: int


@dataclass(frozen=True)
class _Points:
    points: list[EdgeRecord]


def is_edge_store(folder: Path) -> bool:
    return (folder / EDGE_DIR / CATALOG).is_file()


def _condition(cond: Any) -> Any:
    match = cond.match
    if isinstance(match, models.MatchValue):
        edge_match = qe.MatchValue(value=match.value)
    elif isinstance(match, models.MatchAny):
        edge_match = qe.MatchAny(any=list(match.any))
    else:
        raise NotImplementedError(f"facekit's Edge engine does not translate {type(match).__name__} filters")
    return qe.FieldCondition(key=cond.key, match=edge_match)


def edge_filter(flt: models.Filter | None) -> Any:
    """qdrant-client's Filter (field conditions under must) as an Edge Filter."""
    if flt is None:
        return None
    if flt.should or flt.must_not or flt.min_should:
        raise NotImplementedError("facekit's Edge engine translates `must` field conditions only")
    must = flt.must if isinstance(flt.must, list) else [flt.must] if flt.must else []
    return qe.Filter(must=[_condition(c) for c in must])


def _ids(points: Iterable[Any]) -> list[str]:
    return [str(p) for p in points]


def _record(point: Any, with_vector: bool) -> EdgeRecord:
    vector = point.vector if with_vector else None
    if isinstance(vector, dict):  # the default vector of a named map
        vector = vector.get("")
    return EdgeRecord(str(point.id), dict(point.payload or {}), vector, float(getattr(point, "score", 0.0) or 0.0))


class EdgeClient:
    """qdrant-client's calls FaceStore makes, answered by Qdrant Edge shards in one folder."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.root = Path(folder) / EDGE_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}
        self._unsaved = False  # written counts not yet in the catalog
        catalog = self._read_catalog()
        for name, info in catalog.items():
            try:
                shard = self._load(name)
            except OSError:
                self.close()
                raise
            self._collections[name] = _Collection(
                shard, int(info["dim"]), info.get("metadata") or {}, list(info.get("indexed") or []),
                int(info.get("written", 0)),
            )  # fmt: skip

    def _load(self, name: str) -> Any:
        """Open the collection's shard folder; OSError (BlockingIOError when another process has it) if not."""
        try:
            return qe.EdgeShard.load(str(self.root / name))
        except Exception as exc:  # the engine raises a bare Exception
            if "WouldBlock" in str(exc):
                raise BlockingIOError(f"{self.root / name} is locked by another process") from None
            raise OSError(f"cannot open the Qdrant Edge shard {self.root / name}: {exc}") from None

    # -- catalog ------------------------------------------------------------------------------
    def _read_catalog(self) -> dict[str, Any]:
        path = self.root / CATALOG
        if not path.exists():
            return {}
        return json.loads(path.read_text())

    def _count_written(self, c: _Collection, points: int) -> None:
        c.written += points
        self._unsaved = True

    def _write_catalog(self) -> None:
        data = {
            n: {"dim": c.dim, "metadata": c.metadata, "indexed": c.indexed, "written": c.written}
            for n, c in self._collections.items()
        }
        tmp = self.root / f".{CATALOG}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.root / CATALOG)
        self._unsaved = False

    def _get(self, name: str) -> _Collection:
        try:
            return self._collections[name]
        except KeyError:
            raise ValueError(f"Collection {name} not found") from None

    # -- collections --------------------------------------------------------------------------
    def collection_exists(self, name: str) -> bool:
        return name in self._collections

    def get_collections(self) -> Any:
        return models.CollectionsResponse(
            collections=[models.CollectionDescription(name=n) for n in sorted(self._collections)]
        )

    def get_collection(self, name: str) -> Any:
        """What FaceStore reads of a collection: config.metadata and config.params.vectors.size."""
        c = self._get(name)
        info = c.shard.info()
        vectors = models.VectorParams(size=c.dim, distance=models.Distance.COSINE) if c.dim else {}
        return EdgeCollectionInfo(
            config=_Config(metadata=c.metadata, params=_Params(vectors=vectors)),
            points_count=info.points_count,
            # the engine still counts the indexed copies of points written since: those are no longer searched
            indexed_vectors_count=max(0, min(info.indexed_vectors_count, info.points_count - c.written)),
            segments_count=info.segments_count,
            payload_schema={k: "keyword" for k in c.indexed},
        )

    def create_collection(
        self, name: str, vectors_config: models.VectorParams | dict, metadata: dict[str, Any] | None = None
    ) -> bool:
        with self._lock:
            if name in self._collections:
                raise ValueError(f"Collection {name} already exists")
            dim = int(vectors_config.size) if isinstance(vectors_config, models.VectorParams) else 0
            if dim:
                vectors = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
            else:
                vectors = qe.EdgeVectorParams(size=1, distance=qe.Distance.Dot)
            path = self.root / name
            if path.exists():  # left by a create that died before the catalog was written
                shutil.rmtree(path)
            shard = qe.EdgeShard.create(str(path), qe.EdgeConfig(vectors=vectors))
            self._collections[name] = _Collection(shard, dim, dict(metadata or {}))
            self._write_catalog()
            return True

    def delete_collection(self, name: str) -> bool:
        with self._lock:
            c = self._collections.pop(name, None)
            if c is None:
                return False
            self._write_catalog()
            c.shard.close()
            shutil.rmtree(self.root / name, ignore_errors=True)
            return True

    def create_payload_index(self, name: str, field_name: str, field_schema: Any = None, **_: Any) -> None:
        with self._lock:
            c = self._get(name)
            c.shard.update(qe.UpdateOperation.create_field_index(field_name, qe.PayloadSchemaType.Keyword))
            if field_name not in c.indexed:
                c.indexed.append(field_name)
                self._write_catalog()

    # -- writing ------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[models.PointStruct], wait: bool = True) -> None:
        c = self._get(name)
        edge_points = []
        for p in points:
            vector = p.vector if c.dim else PLACEHOLDER
            if isinstance(vector, dict):
                vector = vector.get("", PLACEHOLDER)
            edge_points.append(qe.Point(id=str(p.id), vector=list(vector), payload=p.payload or {}))
        if edge_points:
            c.shard.update(qe.UpdateOperation.upsert_points(edge_points))
            self._count_written(c, len(edge_points))

    def set_payload(self, name: str, payload: dict[str, Any], points: Sequence[Any], wait: bool = True) -> None:
        c, ids = self._get(name), _ids(points)
        c.shard.update(qe.UpdateOperation.set_payload(ids, payload))
        self._count_written(c, len(ids))

    def set_payloads(self, name: str, updates: dict[str, dict[str, Any]]) -> None:
        """Set each point's own payload fields ({id: fields}), with no operation objects in between."""
        c = self._get(name)
        for point_id, fields in updates.items():
            c.shard.update(qe.UpdateOperation.set_payload([point_id], fields))
        self._count_written(c, len(updates))

    def delete(self, name: str, points_selector: Any, wait: bool = True) -> None:
        shard = self._get(name).shard
        if isinstance(points_selector, models.PointIdsList):
            shard.update(qe.UpdateOperation.delete_points(_ids(points_selector.points)))
        elif isinstance(points_selector, models.FilterSelector):
            shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter(points_selector.filter)))
        else:
            raise NotImplementedError(f"facekit's Edge engine does not delete by {type(points_selector).__name__}")

    # -- reading ------------------------------------------------------------------------------
    def retrieve(
        self, name: str, ids: Sequence[Any], with_payload: bool | list[str] = True, with_vectors: bool = False
    ) -> list[EdgeRecord]:
        c = self._get(name)
        wanted = [str(point_id) for point_id in ids]
        if not wanted:
            return []
        vectors = with_vectors and bool(c.dim)
        try:
            points = c.shard.retrieve(wanted, with_payload, vectors)
        except Exception:  # the engine's error for a malformed id does not name it
            for point_id in wanted:
                try:
                    uuid.UUID(point_id)
                except ValueError:
                    raise ValueError(f"{point_id!r} is not a valid point id (a UUID)") from None
            raise
        return [_record(p, vectors) for p in points]

    def scroll(
        self,
        name: str,
        scroll_filter: models.Filter | None = None,
        limit: int = 10,
        offset: Any = None,
        with_payload: bool | list[str] = True,
        with_vectors: bool = False,
    ) -> tuple[list[EdgeRecord], str | None]:
        c = self._get(name)
        vectors = with_vectors and bool(c.dim)
        start = None if offset is None else str(offset)
        flt = edge_filter(scroll_filter)
        request = qe.ScrollRequest(
            offset=start, limit=limit, filter=flt, with_payload=with_payload, with_vector=vectors
        )
        points, next_offset = c.shard.scroll(request)
        return [_record(p, vectors) for p in points], None if next_offset is None else str(next_offset)

    def count(self, name: str, count_filter: models.Filter | None = None, exact: bool = True) -> _Count:
        return _Count(int(self._get(name).shard.count(qe.CountRequest(exact=exact, filter=edge_filter(count_filter)))))

    def facet(self, name: str, key: str, limit: int = 10, exact: bool = True, facet_filter: Any = None) -> Any:
        """Distinct values of an indexed keyword field with their counts, most common first."""
        request = qe.FacetRequest(key=key, limit=limit, exact=exact, filter=edge_filter(facet_filter))
        hits = self._get(name).shard.facet(request).hits
        found = [models.FacetValueHit(value=_facet_value(h.value), count=h.count) for h in hits]
        return models.FacetResponse(hits=found)

    def query_points(
        self,
        name: str,
        query: Sequence[float],
        limit: int = 10,
        query_filter: models.Filter | None = None,
        with_payload: bool | list[str] = True,
        with_vectors: bool = False,
    ) -> _Points:
        c = self._get(name)
        request = qe.QueryRequest(limit=limit, query=qe.Query.Nearest(list(map(float, query))),
                                  filter=edge_filter(query_filter), with_payload=with_payload,
                                  with_vector=with_vectors)  # fmt: skip
        return _Points([_record(p, with_vectors) for p in c.shard.query(request)])

    def query_batch_points(self, name: str, queries: Sequence[Sequence[float]], limit: int) -> list[list[EdgeRecord]]:
        """Nearest `limit` points of each query in one planned batch (ids and scores only)."""
        requests = [qe.QueryRequest(limit=limit, query=qe.Query.Nearest(list(map(float, q)))) for q in queries]
        return [[_record(p, False) for p in hits] for hits in self._get(name).shard.query_batch(
            qe.QueryBatchRequest(requests))]  # fmt: skip

    # -- engine -------------------------------------------------------------------------------
    def optimize(self, name: str) -> bool:
        """Build the collection's index (HNSW) now, blocking; True when something was optimized.

        The segment pages resident in this process are dropped first (`release_pages`), so the build's peak holds
        only what it reads and writes, not what earlier reads and the open left mapped."""
        self.release_pages(name)
        c = self._get(name)
        optimized = bool(c.shard.optimize())
        with self._lock:
            c.written = 0
            self._write_catalog()
        return optimized

    def release_pages(self, name: str) -> int:
        """Drop this process's resident pages of the collection's segment files (`release_mapped_pages`): what a
        bulk read left mapped, and the search map each open fills. Nothing is closed; returns the bytes released."""
        return release_mapped_pages(self.root / name)

    def flush(self) -> None:
        for c in self._collections.values():
            c.shard.flush()
        with self._lock:
            if self._unsaved:
                self._write_catalog()

    def close(self) -> None:
        with self._lock:
            if self._unsaved:
                with contextlib.suppress(OSError):  # only the count of points written since the index build
                    self._write_catalog()
            for c in self._collections.values():
                with contextlib.suppress(Exception):  # closing what failed to open half-way
                    c.shard.close()
            self._collections.clear()


def _facet_value(value: Any) -> Any:
    """Edge's facet value (a Keyword("x") wrapper) as the plain value."""
    for attr in ("value", "keyword", "_0"):
        if hasattr(value, attr):
            return getattr(value, attr)
    text = str(value)
    return text[len('Keyword("') : -2] if text.startswith('Keyword("') else text
