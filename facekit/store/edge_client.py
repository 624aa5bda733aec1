"""The embedded engine: Qdrant Edge (`qdrant-edge-py`), Qdrant's own storage in-process.

`EdgeClient` answers the part of qdrant-client's API that FaceStore and its history use, so one
FaceStore runs on either engine. Each collection is an Edge shard (segments, HNSW, payload indexes,
a WAL) in `<store>/edge/<collection>/`; collection metadata lives in `<store>/edge/collections.json`
(written atomically). Collections without vectors (persons, history) get a 1-d placeholder vector.
A collection with vectors keeps its label fields in a payload-only companion shard,
`<store>/edge/.labels/<collection>/` (`facekit.store.edge_labels`): relabeling never takes a face out of
the HNSW index. An acknowledged update is in the shard's WAL before `update` returns; a killed process
replays it on the next open. A shard's WAL is locked by the process that opened it: one process at a time.
"""

from __future__ import annotations

import contextlib
import json
import logging
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

from facekit.store import schema as S
from facekit.store.edge_labels import (
    PLACEHOLDER,
    LabelShard,
    must_conditions,
    payload_only_shard,
    scroll_ids,
    split_filter,
    split_payload,
    wanted_fields,
)
from facekit.store.mapped_pages import release_mapped_pages
from facekit.store.page_warmup import FileWarmer, readahead, segment_files

log = logging.getLogger(__name__)

EDGE_DIR = "edge"
CATALOG = "collections.json"
LABELS_DIR = ".labels"  # companion label shards (no collection name starts with a dot)
OPEN_MARKER = ".open"  # present while a process has the store open: found on open, the last one died
EDGE_PIN = "qdrant-edge-py==0.9.0"
# The HNSW search's candidate list. Given explicitly: Edge 0.9 without it searched a fresh 1M-face shard 5-17x
# slower (random queries, 7-25 ms against 1.5 ms), with the same results as 100 on data-like queries.
HNSW_EF = 128


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
    # Points written to the vector shard since the last index build. Qdrant copies a point it updates
    # (payload included) out of its indexed segment into an unindexed one, so such a write can take a face out
    # of the HNSW index. Label writes go to `labels` and never do.
    written: int = 0
    labels: LabelShard | None = None
    label_fields: frozenset[str] = frozenset()


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


def edge_filter(flt: models.Filter | None, ids: Sequence[str] | None = None) -> Any:
    """qdrant-client's Filter (field conditions under must) as an Edge Filter; `ids`: only those points."""
    if flt is None and ids is None:
        return None
    conditions = [_condition(c) for c in must_conditions(flt)]
    if ids is not None:
        conditions.append(qe.HasIdCondition(point_ids=set(ids)))
    return qe.Filter(must=conditions)


def _ids(points: Iterable[Any]) -> list[str]:
    return [str(p) for p in points]


def _record(point: Any, with_vector: bool) -> EdgeRecord:
    vector = point.vector if with_vector else None
    if isinstance(vector, dict):  # the default vector of a named map
        vector = vector.get("")
    return EdgeRecord(str(point.id), dict(point.payload or {}), vector, float(getattr(point, "score", 0.0) or 0.0))


class EdgeClient:
    """qdrant-client's calls FaceStore makes, answered by Qdrant Edge shards in one folder.

    `label_fields`: the payload keys a collection with vectors keeps in its label shard (those a clustering
    pass or an edit rewrites). A collection keeps the fields it was made or migrated with."""

    def __init__(self, folder: str | os.PathLike[str], label_fields: Sequence[str] = S.LABEL_FIELDS) -> None:
        self.root = Path(folder) / EDGE_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self._label_fields = frozenset(label_fields)
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}
        self._unsaved = False  # written counts not yet in the catalog
        self._marked = False  # this process wrote OPEN_MARKER
        self.warmer = FileWarmer()  # reads the shards' files once: after open, an index build, a pass
        catalog = self._read_catalog()
        try:
            for name, info in catalog.items():
                c = _Collection(
                    self._load(name), int(info["dim"]), info.get("metadata") or {}, list(info.get("indexed") or []),
                    int(info.get("written", 0)), label_fields=frozenset(info.get("labels") or ()),
                )  # fmt: skip
                self._collections[name] = c
                if c.label_fields:
                    c.labels = self._load_labels(name)
            died = (self.root / OPEN_MARKER).exists()
            for name, c in self._collections.items():
                if c.dim and self._label_fields and not c.labels:
                    self._split_labels(name, c)
                elif c.labels:
                    self._reconcile_labels(name, c, compare_ids=died)
        except OSError:
            self.close()
            raise
        with open(self.root / OPEN_MARKER, "w") as marker:
            os.fsync(marker.fileno())
        self._marked = True
        self.warmer.start(f for name in self._collections for f in self._segment_files(name))

    def _load(self, name: str) -> Any:
        """Open the collection's shard folder; OSError (BlockingIOError when another process has it) if not."""
        return _load_shard(self.root / name)

    def _labels_path(self, name: str) -> Path:
        return self.root / LABELS_DIR / name

    def _load_labels(self, name: str) -> LabelShard:
        return LabelShard(_load_shard(self._labels_path(name)), edge_filter)

    def _split_labels(self, name: str, c: _Collection) -> None:
        """Move a collection's label fields into a label shard (a store written before label shards existed).
        The copy is built aside and put in place whole; the vector shard's old copies are never read again."""
        fields = sorted(self._label_fields)
        total = int(c.shard.count(qe.CountRequest(exact=True)))
        log.info("moving the labels of %d points of %s into a label shard (once)", total, name)
        self._labels_path(name).parent.mkdir(exist_ok=True)
        indexed = [f for f in c.indexed if f in self._label_fields]
        c.labels = LabelShard.build(self._labels_path(name), self._scroll_labels(c, fields), indexed, edge_filter)
        for f in indexed:  # the vector shard's indexes on label fields would only slow its writes
            c.shard.update(qe.UpdateOperation.delete_field_index(f))
        with self._lock:
            c.label_fields = self._label_fields
            self._write_catalog()

    @staticmethod
    def _scroll_labels(c: _Collection, fields: list[str]) -> Iterable[tuple[str, dict[str, Any]]]:
        offset = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=4096, with_payload=fields, with_vector=False)
            points, offset = c.shard.scroll(request)
            for p in points:
                yield str(p.id), {k: v for k, v in (p.payload or {}).items() if k in fields}
            if offset is None:
                return

    def _reconcile_labels(self, name: str, c: _Collection, *, compare_ids: bool) -> None:
        """After a process died between a write's two shards: every face gets a label point (unlabeled when it
        had none), and label points of deleted faces go. The ids are compared after a process died with the store
        open (~8 s at a million faces), else only when the counts disagree."""
        assert c.labels is not None
        if not compare_ids and int(c.shard.count(qe.CountRequest(exact=True))) == c.labels.count():
            return
        faces = set(self._vector_ids(c))
        labeled = set(c.labels.ids())
        missing, orphans = sorted(faces - labeled), sorted(labeled - faces)
        if not missing and not orphans:
            return
        log.warning("%s: %d faces had no label point, %d label points no face (an interrupted write): repaired",
                    name, len(missing), len(orphans))  # fmt: skip
        c.labels.replace([(i, {}) for i in missing])
        c.labels.delete(orphans)

    @staticmethod
    def _vector_ids(c: _Collection, flt: models.Filter | None = None) -> list[str]:
        return scroll_ids(c.shard, edge_filter(flt))

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
        data = {}
        for n, c in self._collections.items():
            data[n] = {"dim": c.dim, "metadata": c.metadata, "indexed": c.indexed, "written": c.written}
            if c.label_fields:
                data[n]["labels"] = sorted(c.label_fields)
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

    def update_collection(self, name: str, metadata: dict[str, Any]) -> bool:
        """Merge `metadata` into the collection's (qdrant-client's `update_collection(metadata=...)`)."""
        with self._lock:
            self._get(name).metadata.update(metadata)
            self._write_catalog()
        return True

    def create_collection(
        self, name: str, vectors_config: models.VectorParams | dict, metadata: dict[str, Any] | None = None
    ) -> bool:
        with self._lock:
            if name in self._collections:
                raise ValueError(f"Collection {name} already exists")
            dim = int(vectors_config.size) if isinstance(vectors_config, models.VectorParams) else 0
            path = self.root / name
            if path.exists():  # left by a create that died before the catalog was written
                shutil.rmtree(path)
            if dim:
                config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine))
                shard = qe.EdgeShard.create(str(path), config)
            else:
                shard = payload_only_shard(path)
            c = _Collection(shard, dim, dict(metadata or {}))
            if dim and self._label_fields:
                labels_path = self._labels_path(name)
                shutil.rmtree(labels_path, ignore_errors=True)
                labels_path.parent.mkdir(exist_ok=True)
                c.labels = LabelShard(payload_only_shard(labels_path), edge_filter)
                c.label_fields = self._label_fields
            self._collections[name] = c
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
            if c.labels is not None:
                c.labels.close()
                shutil.rmtree(self._labels_path(name), ignore_errors=True)
            return True

    def create_payload_index(self, name: str, field_name: str, field_schema: Any = None, **_: Any) -> None:
        with self._lock:
            c = self._get(name)
            if c.labels is not None and field_name in c.label_fields:
                c.labels.index(field_name)
            else:
                c.shard.update(qe.UpdateOperation.create_field_index(field_name, qe.PayloadSchemaType.Keyword))
            if field_name not in c.indexed:
                c.indexed.append(field_name)
                self._write_catalog()

    # -- writing ------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[models.PointStruct], wait: bool = True) -> None:
        """Write whole points: the vector shard first, then their labels (a process killed in between leaves
        a face its old labels, or none when it is new: `_reconcile_labels`)."""
        c = self._get(name)
        edge_points, labels = [], []
        for p in points:
            vector = p.vector if c.dim else PLACEHOLDER
            if isinstance(vector, dict):
                vector = vector.get("", PLACEHOLDER)
            payload = p.payload or {}
            if c.labels is not None:
                payload, point_labels = split_payload(payload, c.label_fields)
                labels.append((str(p.id), point_labels))
            edge_points.append(qe.Point(id=str(p.id), vector=list(vector), payload=payload))
        if edge_points:
            c.shard.update(qe.UpdateOperation.upsert_points(edge_points))
            self._count_written(c, len(edge_points))
        if c.labels is not None:
            c.labels.replace(labels)

    def set_payload(self, name: str, payload: dict[str, Any], points: Sequence[Any], wait: bool = True) -> None:
        self.set_payloads(name, dict.fromkeys(_ids(points), payload))

    def set_payloads(self, name: str, updates: dict[str, dict[str, Any]]) -> None:
        """Set each point's own payload fields ({id: fields}), with no operation objects in between."""
        c = self._get(name)
        moved = 0
        for point_id, fields in updates.items():
            if c.labels is not None:
                fields, labels = split_payload(fields, c.label_fields)
                c.labels.set([point_id], labels)
            if fields:
                c.shard.update(qe.UpdateOperation.set_payload([point_id], fields))
                moved += 1
        if moved:
            self._count_written(c, moved)

    def delete(self, name: str, points_selector: Any, wait: bool = True) -> None:
        c = self._get(name)
        if isinstance(points_selector, models.PointIdsList):
            ids = _ids(points_selector.points)
        elif isinstance(points_selector, models.FilterSelector):
            ids = self._matching_ids(c, points_selector.filter)
        else:
            raise NotImplementedError(f"facekit's Edge engine does not delete by {type(points_selector).__name__}")
        c.shard.update(qe.UpdateOperation.delete_points(ids))
        if c.labels is not None:
            c.labels.delete(ids)

    def _matching_ids(self, c: _Collection, flt: models.Filter | None) -> list[str]:
        """Ids of the points matching a filter on either shard's fields."""
        face_flt, label_flt = split_filter(flt, c.label_fields)
        if label_flt is None or c.labels is None:
            return self._vector_ids(c, flt)
        ids = c.labels.ids(label_flt)
        if face_flt is None or not ids:
            return ids
        return self._vector_ids_among(c, face_flt, ids)

    def _vector_ids_among(self, c: _Collection, flt: models.Filter | None, ids: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(ids), 4096):
            batch = ids[start : start + 4096]
            request = qe.ScrollRequest(limit=len(batch), filter=edge_filter(flt, batch), with_payload=False,
                                       with_vector=False)  # fmt: skip
            found += [str(p.id) for p in c.shard.scroll(request)[0]]
        return found

    # -- reading ------------------------------------------------------------------------------
    def _with_labels(
        self, c: _Collection, points: list[Any], with_payload: Any, with_vectors: bool
    ) -> list[EdgeRecord]:
        """Records of vector-shard points, their labels merged in (the label shard wins over any copy an old
        layout left in the vector shard)."""
        records = [_record(p, with_vectors) for p in points]
        if c.labels is None:
            return records
        _, label_part = wanted_fields(with_payload, c.label_fields)
        found = c.labels.read([r.id for r in records], label_part)
        for r in records:
            payload = {k: v for k, v in (r.payload or {}).items() if k not in c.label_fields}
            payload.update(found.get(r.id, {}))
            r.payload = payload
        return records

    def retrieve(
        self, name: str, ids: Sequence[Any], with_payload: bool | list[str] = True, with_vectors: bool = False
    ) -> list[EdgeRecord]:
        c = self._get(name)
        wanted = [str(point_id) for point_id in ids]
        if not wanted:
            return []
        vectors = with_vectors and bool(c.dim)
        face_part, _ = wanted_fields(with_payload, c.label_fields)
        try:
            points = c.shard.retrieve(wanted, face_part, vectors)
        except Exception:  # the engine's error for a malformed id does not name it
            for point_id in wanted:
                try:
                    uuid.UUID(point_id)
                except ValueError:
                    raise ValueError(f"{point_id!r} is not a valid point id (a UUID)") from None
            raise
        return self._with_labels(c, points, with_payload, vectors)

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
        face_flt, label_flt = split_filter(scroll_filter, c.label_fields)
        if c.labels is not None and label_flt is not None:  # page through the label shard's matches
            labeled, next_offset = c.labels.scroll(label_flt, limit, start)
            ids = [str(p.id) for p in labeled]
            if face_flt is not None and ids:
                ids = self._vector_ids_among(c, face_flt, ids)
            return self.retrieve(name, ids, with_payload, with_vectors), next_offset
        face_part, _ = wanted_fields(with_payload, c.label_fields)
        request = qe.ScrollRequest(
            offset=start, limit=limit, filter=edge_filter(face_flt), with_payload=face_part, with_vector=vectors
        )
        points, next_offset = c.shard.scroll(request)
        return self._with_labels(c, points, with_payload, vectors), None if next_offset is None else str(next_offset)

    def count(self, name: str, count_filter: models.Filter | None = None, exact: bool = True) -> _Count:
        c = self._get(name)
        face_flt, label_flt = split_filter(count_filter, c.label_fields)
        if c.labels is not None and label_flt is not None:
            if face_flt is None:
                return _Count(c.labels.count(label_flt))
            return _Count(len(self._matching_ids(c, count_filter)))
        return _Count(int(c.shard.count(qe.CountRequest(exact=exact, filter=edge_filter(count_filter)))))

    def facet(self, name: str, key: str, limit: int = 10, exact: bool = True, facet_filter: Any = None) -> Any:
        """Distinct values of an indexed keyword field with their counts, most common first."""
        c = self._get(name)
        face_flt, label_flt = split_filter(facet_filter, c.label_fields)
        on_labels = c.labels is not None and key in c.label_fields
        if c.labels is not None and (face_flt if on_labels else label_flt) is not None:
            raise NotImplementedError("facekit's Edge engine facets a label field by label fields only, and back")
        shard = c.labels.shard if on_labels and c.labels is not None else c.shard
        request = qe.FacetRequest(key=key, limit=limit, exact=exact, filter=edge_filter(facet_filter))
        hits = shard.facet(request).hits
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
        face_flt, label_flt = split_filter(query_filter, c.label_fields)
        among = c.labels.ids(label_flt) if c.labels is not None and label_flt is not None else None
        if among is not None and not among:
            return _Points([])
        face_part, _ = wanted_fields(with_payload, c.label_fields)
        request = qe.QueryRequest(limit=limit, query=qe.Query.Nearest(list(map(float, query))),
                                  params=qe.SearchParams(hnsw_ef=max(HNSW_EF, limit)),
                                  filter=edge_filter(face_flt, among), with_payload=face_part,
                                  with_vector=with_vectors)  # fmt: skip
        return _Points(self._with_labels(c, c.shard.query(request), with_payload, with_vectors))

    def query_batch_points(self, name: str, queries: Sequence[Sequence[float]], limit: int) -> list[list[EdgeRecord]]:
        """Nearest `limit` points of each query in one planned batch (ids and scores only)."""
        requests = [qe.QueryRequest(limit=limit, query=qe.Query.Nearest(list(map(float, q)))) for q in queries]
        return [[_record(p, False) for p in hits] for hits in self._get(name).shard.query_batch(
            qe.QueryBatchRequest(requests))]  # fmt: skip

    # -- engine -------------------------------------------------------------------------------
    def optimize(self, name: str) -> bool:
        """Build the collection's index (HNSW) now, blocking; True when something was optimized.

        The segment pages resident in this process are dropped first (`release_pages`), so the build's peak holds
        only what it reads and writes, not what earlier reads and the open left mapped. The new segment's files are
        then read once (`warm_pages`; Edge lets go of the merged segments' cached pages), before this returns."""
        self.release_pages(name)
        c = self._get(name)
        optimized = bool(c.shard.optimize())
        with self._lock:
            c.written = 0
            self._write_catalog()
        if optimized:
            self.warm_pages(name, wait=True)
        return optimized

    def release_pages(self, name: str) -> int:
        """Drop this process's resident pages of the collection's segment files (`release_mapped_pages`): what a
        bulk read left mapped, and the search map each open fills. Nothing is closed; returns the bytes released."""
        released = release_mapped_pages(self.root / name)
        if self._get(name).labels is not None:
            released += release_mapped_pages(self._labels_path(name))
        return released

    def warm_pages(self, name: str, *, wait: bool = False) -> None:
        """Read the collection's segment files once (`FileWarmer`), in the background unless `wait`, so that
        searches find them in memory: after an index build, and after a pass, whose arrays may have pushed them out."""
        self.warmer.start(self._segment_files(name))
        if wait:
            self.warmer.wait()

    def _segment_files(self, name: str) -> list[Path]:
        files = segment_files(self.root / name)
        return files + segment_files(self._labels_path(name)) if self._get(name).labels is not None else files

    def flush(self) -> None:
        for c in self._collections.values():
            c.shard.flush()
            if c.labels is not None:
                c.labels.shard.flush()
        with self._lock:
            if self._unsaved:
                self._write_catalog()

    def close(self) -> None:
        """Close every shard. Edge lets go of their files' cached pages as it closes them; the kernel is then asked
        to read them back (`readahead`, not waited for), so that the store's next open loads from memory."""
        self.warmer.stop()
        with self._lock:
            files = [f for name in self._collections for f in self._segment_files(name)]
            if self._unsaved:
                with contextlib.suppress(OSError):  # only the count of points written since the index build
                    self._write_catalog()
            for c in self._collections.values():
                with contextlib.suppress(Exception):  # closing what failed to open half-way
                    c.shard.close()
                if c.labels is not None:
                    with contextlib.suppress(Exception):
                        c.labels.close()
            if self._marked:  # every write is whole: the next open need not compare the shards
                (self.root / OPEN_MARKER).unlink(missing_ok=True)
                self._marked = False
            self._collections.clear()
        readahead(files)


def _load_shard(path: Path) -> Any:
    """Open a shard folder; OSError (BlockingIOError when another process has it) if not."""
    try:
        return qe.EdgeShard.load(str(path))
    except Exception as exc:  # the engine raises a bare Exception
        if "WouldBlock" in str(exc):
            raise BlockingIOError(f"{path} is locked by another process") from None
        raise OSError(f"cannot open the Qdrant Edge shard {path}: {exc}") from None


def _facet_value(value: Any) -> Any:
    """Edge's facet value (a Keyword("x") wrapper) as the plain value."""
    for attr in ("value", "keyword", "_0"):
        if hasattr(value, attr):
            return getattr(value, attr)
    text = str(value)
    return text[len('Keyword("') : -2] if text.startswith('Keyword("') else text
