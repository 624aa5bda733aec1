"""FaceStore: faces and people in Qdrant — embedded (a folder) by default, a server by URL."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from facekit.config import get_settings
from facekit.errors import NotFoundError, SchemaMismatchError, StoreError
from facekit.store import schema as S
from facekit.store.edge_client import CATALOG, EDGE_DIR, EdgeClient, is_edge_store
from facekit.store.history import StoreHistory
from facekit.types import FaceRecord, Person, SearchHit

log = logging.getLogger(__name__)

UPSERT_BATCH = 512
# Faces from which a read or a label write is a bulk one, whose pages an embedded (Edge) store lets go of: a read
# leaves every vector it copied out resident, and a write the copies Edge makes of each point it updates (its
# vector too) out of the indexed segment (2 GB each at 1M faces). Smaller ones keep them: letting go also drops
# the search map each open fills, which later searches fault back in.
BULK_FACES = 10_000
SCROLL_BATCH = 2048
# qdrant-client's local mode sorts every id on each scroll call: read it in few, large pages.
LOCAL_SCROLL_BATCH = 1 << 17
EDGE_SCROLL_BATCH = 1 << 14
# Vectors turned into float32 this many at a time, and read at most this many a page: a page of 512-d vectors
# as Python floats takes 16 KB a face (67 MB for 4,096; 268 MB for 16,384, alive twice while the next is read).
VECTOR_PAGE = 1 << 12
PROGRESS_MIN = 50_000  # bulk reads and writes of at least this many faces show a progress bar


class _NoBar:
    """What `_bar` gives small work: nothing shown, and tqdm not imported (12 ms of a process's first add)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _bar(total: int, desc: str) -> Any:
    """A progress bar (stderr, or a widget in Jupyter) for bulk work on a large collection; silent below."""
    if total < PROGRESS_MIN:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="face", leave=False)


@dataclass(frozen=True)
class StoredFaces:
    """Every face of a collection at once, for bulk work: ids, (N, d) float32 embeddings, payloads."""

    ids: list[str]
    embeddings: np.ndarray
    payloads: list[dict[str, Any]]


def _damage(folder: Path, exc: Exception) -> str:
    """Which file of an embedded store is damaged, and what to do (nothing is changed or deleted)."""
    meta = folder / EDGE_DIR / CATALOG if is_edge_store(folder) else folder / "meta.json"
    try:
        json.loads(meta.read_text())
    except (OSError, ValueError):
        where = f"{meta} is not valid JSON"
    else:
        where = "a collection file could not be read"
        if is_edge_store(folder):
            where = f"a Qdrant Edge shard under {folder / EDGE_DIR} could not be opened"
        for db in sorted(folder.glob("collection/*/storage.sqlite")):
            try:
                with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                    ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            except sqlite3.DatabaseError:
                ok = False
            if not ok:
                where = f"{db} is not a valid SQLite database"
                break
    return (
        f"the store at {folder} is damaged: {where} ({type(exc).__name__}: {exc}). Nothing was changed: restore "
        "the folder from a backup, or index the photos into a new store (labels live in the store)"
    )


def is_local_mode_store(folder: Path) -> bool:
    """A store written by qdrant-client's local mode (facekit before Qdrant Edge), not yet migrated."""
    return (folder / "meta.json").is_file() and not is_edge_store(folder)


def _open_embedded(path: str) -> Any:
    """The engine of an embedded store folder: Qdrant Edge, or qdrant-client's local mode for a store
    that has not been migrated (it keeps working; `facekit store migrate` moves it)."""
    folder = Path(path)
    if is_local_mode_store(folder):
        log.warning(
            "the store at %s is in qdrant-client's local mode (brute force, slow past ~20K faces): "
            "`facekit store migrate --store %s` moves it to Qdrant Edge (nothing is lost)",
            path,
            path,
        )
        return QdrantClient(path=path)
    return EdgeClient(path)


class _LocalClients:
    """One embedded client per folder and process, shared (an embedded store can be opened once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[Any, int]] = {}

    def acquire(self, path: str, wait: float = 0.0) -> Any:
        """The shared client of folder `path`; if another process holds the folder, retry for up to
        `wait` seconds (a sweep's notebooks reading one store take turns) before the error."""
        with self._lock:
            client, refs = self._clients.get(path, (None, 0))
            if client is None:
                if Path(path).exists() and not Path(path).is_dir():
                    raise StoreError(f"{path} is a file, not a store folder: give a folder for the store")
                Path(path).mkdir(parents=True, exist_ok=True)
                deadline = time.monotonic() + wait
                while client is None:
                    try:
                        client = _open_embedded(path)
                    except (RuntimeError, BlockingIOError, OSError) as exc:
                        if not _held_elsewhere(exc):
                            raise StoreError(_damage(Path(path), exc)) from None
                        if time.monotonic() < deadline:
                            time.sleep(0.2)
                            continue
                        raise StoreError(
                            f"the store at {path} is open in another process ({exc}; waited {wait:g} s, "
                            "FACEKIT_STORE_LOCK_WAIT). Close it there (FaceStore.close(), or stop that notebook "
                            "kernel), or run a Qdrant server and set FACEKIT_QDRANT_URL for concurrent access."
                        ) from None
                    except (ValueError, sqlite3.DatabaseError) as exc:  # JSONDecodeError is a ValueError
                        raise StoreError(_damage(Path(path), exc)) from None
            self._clients[path] = (client, refs + 1)
            return client

    def release(self, path: str) -> None:
        with self._lock:
            client, refs = self._clients.get(path, (None, 0))
            if client is None:
                return
            if refs <= 1:
                del self._clients[path]
                client.close()
            else:
                self._clients[path] = (client, refs - 1)


def _held_elsewhere(exc: Exception) -> bool:
    """Whether opening failed because another process holds the store's lock."""
    text = str(exc)
    return isinstance(exc, BlockingIOError) or "WouldBlock" in text or "already accessed by another" in text


_LOCAL = _LocalClients()


def connect(path: str | os.PathLike[str] | None = None, *, url: str = "", api_key: str | None = None) -> QdrantClient:
    """A Qdrant client: a server when `url` is given, else the embedded store in folder `path`."""
    if url:
        return QdrantClient(url=url, api_key=api_key)
    if path is None:
        raise StoreError("no store given: pass path= (embedded store folder) or url= (Qdrant server)")
    if str(path) == ":memory:":
        return QdrantClient(location=":memory:")
    return _LOCAL.acquire(str(Path(path).expanduser().resolve()), get_settings().store_lock_wait)


def _fast_local_writes(client: QdrantClient) -> None:
    """Put an embedded store's SQLite files in WAL mode with synchronous=NORMAL.

    qdrant-client's local mode commits every point on its own; with the default rollback journal each
    commit waits for the disk (~1 ms a point, so 100K label updates take ~100 s). WAL commits survive a
    killed process (the next open replays them); only a power cut can lose the last few commits, never
    corrupting the file. Measured: 20K payload updates 22 s → 2.6 s. Reaches into qdrant-client's
    private objects, so a version without them is left as it is.
    """
    collections = getattr(getattr(client, "_client", None), "collections", None)
    if not isinstance(collections, dict):
        return
    for collection in collections.values():
        db = getattr(getattr(collection, "storage", None), "storage", None)
        if db is None:
            continue
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except Exception as exc:  # a speed-up only; the default journal still works
            log.debug("could not switch the embedded store to WAL: %s", exc)


def face_models(client: QdrantClient) -> dict[str, int]:
    """Model id → dimension of every face collection in a store."""
    found = {}
    for c in client.get_collections().collections:
        if c.name.startswith(S.FACE_COLLECTION_PREFIX):
            meta = client.get_collection(c.name).config.metadata or {}
            found[str(meta.get("model_id", c.name[len(S.FACE_COLLECTION_PREFIX) :]))] = int(meta.get("dim", 0))
    return found


def _engine(client: Any, url: str) -> str:
    """Which engine a store runs on: edge (embedded default), server, local (an unmigrated
    qdrant-client local-mode folder) or memory (qdrant-client in-process, the server API's stand-in)."""
    if isinstance(client, EdgeClient):
        return "edge"
    if url:
        return "server"
    return "memory" if getattr(getattr(client, "_client", None), "location", None) == ":memory:" else "local"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _record(point_id: Any, payload: dict[str, Any], vector: Any = None) -> FaceRecord:
    bbox = payload.get(S.BBOX)
    return FaceRecord(
        face_id=str(point_id),
        image_id=payload.get(S.IMAGE_ID, ""),
        image_path=payload.get(S.IMAGE_PATH, ""),
        face_index=int(payload.get(S.FACE_INDEX, 0)),
        bbox=tuple(bbox) if bbox else None,  # type: ignore[arg-type]
        det_score=payload.get(S.DET_SCORE),
        quality=payload.get(S.QUALITY),
        model_id=payload.get(S.MODEL_ID, ""),
        person_id=payload.get(S.PERSON_ID),
        cluster_id=payload.get(S.CLUSTER_ID),
        cluster_confidence=payload.get(S.CLUSTER_CONFIDENCE),
        assignment_source=payload.get(S.ASSIGNMENT_SOURCE),
        embedding=None if vector is None else np.asarray(vector, dtype=np.float32),
    )


def _match(**fields: Any) -> models.Filter | None:
    must = []
    for key, value in fields.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set)):
            must.append(models.FieldCondition(key=key, match=models.MatchAny(any=list(value))))
        else:
            must.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
    return models.Filter(must=must) if must else None


class FaceStore:
    """Faces of one embedding model (one collection) plus the store-wide persons registry.

    Parameters
    ----------
    path : str or Path, optional
        Folder of the embedded store (created if missing), or ":memory:". Ignored when `url` is set.
    model_id, dim :
        The embedding space. A collection made for another model or dimension is refused.
    url, api_key : optional
        A Qdrant server instead of the embedded store: same code, one setting.

    Examples
    --------
    >>> store = FaceStore(":memory:", model_id="demo", dim=4)
    >>> store.count()
    0
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        model_id: str,
        dim: int,
        url: str = "",
        api_key: str | None = None,
    ) -> None:
        if dim < 1:
            raise StoreError(f"embedding dimension must be positive, got {dim}")
        self.model_id = model_id
        self.dim = dim
        self.location = url or str(path)
        self._local_key = None if url or str(path) == ":memory:" else str(Path(path).expanduser().resolve())
        self.client = connect(path, url=url, api_key=api_key)
        self.engine = _engine(self.client, url)
        self._scroll_batch = {"server": SCROLL_BATCH, "edge": EDGE_SCROLL_BATCH}.get(self.engine, LOCAL_SCROLL_BATCH)
        self.collection = S.collection_for(model_id)
        try:
            self._ensure_collections()
        except Exception:
            self.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------------
    def _ensure_collections(self) -> None:
        meta = {"facekit_schema": S.SCHEMA_VERSION, "model_id": self.model_id, "dim": self.dim}
        if self.client.collection_exists(self.collection):
            info = self.client.get_collection(self.collection)
            found = info.config.metadata or {}
            vectors = info.config.params.vectors
            found_dim = int(found.get("dim", getattr(vectors, "size", 0) or 0))
            found_model = found.get("model_id", self.model_id)
            if found_model != self.model_id or found_dim != self.dim:
                raise SchemaMismatchError(
                    f"collection {self.collection!r} in {self.location} holds {found_model} embeddings of "
                    f"dimension {found_dim}, not {self.model_id} of dimension {self.dim}. Open it with "
                    f"model {found_model!r}, or use another store folder (--store / FACEKIT_STORE)."
                )
            if int(found.get("facekit_schema", S.SCHEMA_VERSION)) > S.SCHEMA_VERSION:
                raise SchemaMismatchError(
                    f"collection {self.collection!r} was written by a newer facekit (schema "
                    f"{found['facekit_schema']}); upgrade facekit to open it"
                )
            if self.engine == "edge" and int(found.get("facekit_schema", 1)) < S.SCHEMA_VERSION:
                # its labels were moved into a label shard on open: older facekit must not read the stale copies
                self.client.update_collection(self.collection, metadata={"facekit_schema": S.SCHEMA_VERSION})
        else:
            self.client.create_collection(
                self.collection,
                vectors_config=models.VectorParams(size=self.dim, distance=models.Distance.COSINE),
                metadata=meta,
            )
        self._ensure_payload_indexes()
        if not self.client.collection_exists(S.PERSONS_COLLECTION):
            self.client.create_collection(S.PERSONS_COLLECTION, vectors_config={}, metadata={"facekit_schema": 1})
        self.history = StoreHistory(self.client, self.model_id)
        if self.engine == "local":
            _fast_local_writes(self.client)

    def _ensure_payload_indexes(self) -> None:
        """Keyword indexes on person, cluster, image and assignment source (Edge and servers; qdrant-client's
        in-process modes have none and would only warn). A store made before an index existed gets it."""
        if self.engine not in ("edge", "server"):
            return
        have = set(getattr(self.client.get_collection(self.collection), "payload_schema", None) or {})
        for field in S.INDEXED_FIELDS:
            if field not in have:
                self.client.create_payload_index(self.collection, field, models.PayloadSchemaType.KEYWORD)

    def build_search_index(self, *, min_unindexed: int = 0) -> float | None:
        """Build the engine's vector index (HNSW) over faces added since the last build, blocking; returns
        the seconds it took, or None when there was nothing to do: fewer than `min_unindexed` new faces, or
        an engine that indexes on its own (a server) or never (qdrant-client's in-process modes)."""
        outside = self.faces_outside_search_index()
        if outside is None or outside < max(min_unindexed, 1):
            return None
        start = time.perf_counter()
        self.client.optimize(self.collection)
        seconds = time.perf_counter() - start
        log.info("search index (HNSW) of %d faces built in %.1f s", self.count(), seconds)
        return seconds

    def release_read_pages(self) -> None:
        """After a bulk read whose vectors were copied out (`scroll_all`), let go of the segment pages still
        resident in this process: an embedded (Edge) store drops them (`EdgeClient.release_pages`: the search
        map each open fills too; later searches map their pages back from the page cache); other engines map
        nothing here. A pass holds its own copy of every vector, so the store's would count twice."""
        if self.engine == "edge":
            self.client.release_pages(self.collection)

    def warm_search_pages(self) -> None:
        """Have an embedded (Edge) store read its segment files back into memory (`EdgeClient.warm_pages`;
        seconds at a million faces), so that the next searches need no disk read; other engines: nothing."""
        if self.engine == "edge":
            self.client.warm_pages(self.collection, wait=True)

    def faces_outside_search_index(self, info: Any = None) -> int | None:
        """Faces an embedded (Edge) store's searches compare one by one instead of finding through its HNSW
        index: those added, and those whose own fields were rewritten (Qdrant moves a point it updates out of its
        indexed segment; labels live apart and never do), since the last build. None for engines that index on
        their own or never. `info`: the collection's info when the caller has just read it."""
        if self.engine != "edge":
            return None
        info = info or self.client.get_collection(self.collection)
        return info.points_count - info.indexed_vectors_count

    def engine_info(self) -> dict[str, Any]:
        """Engine, location, faces and payload indexes (and the engine's segment and index state)."""
        info = self.client.get_collection(self.collection)
        return {
            "engine": self.engine,
            "location": self.location,
            "collection": self.collection,
            "model": self.model_id,
            "dim": self.dim,
            "faces": self.count(),
            "payload_indexes": sorted(getattr(info, "payload_schema", None) or {}),
            "segments": getattr(info, "segments_count", None),
            "indexed_vectors": getattr(info, "indexed_vectors_count", None),
            "faces_outside_search_index": self.faces_outside_search_index(info),
        }

    def close(self) -> None:
        """Release the store (an embedded store folder can then be opened by another process)."""
        if self._local_key is not None:
            _LOCAL.release(self._local_key)
            self._local_key = None
        elif self.engine in ("server", "memory"):
            self.client.close()

    def __enter__(self) -> FaceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaceStore({self.location!r}, model_id={self.model_id!r}, dim={self.dim})"

    # -- writing faces ---------------------------------------------------------------------------
    def add_faces(self, faces: Sequence[FaceRecord], *, image_face_counts: dict[str, int] | None = None) -> int:
        """Upsert faces (each with an embedding) in batches; returns how many were new.

        Ids are deterministic, so adding the same face twice keeps one point. Person, cluster and
        assignment fields already stored on a face are kept (a re-index never drops a label).
        """
        if not faces:
            return 0
        for f in faces:
            if f.embedding is None or f.embedding.shape != (self.dim,):
                got = None if f.embedding is None else f.embedding.shape
                raise StoreError(f"face {f.face_id}: embedding of shape {got}, store expects ({self.dim},)")
        existing = self._existing_payloads([f.face_id for f in faces])
        before = len(existing)
        now = _now()
        points = []
        for f in faces:
            emb = np.asarray(f.embedding, dtype=np.float32)
            payload: dict[str, Any] = {
                S.FACE_ID: f.face_id,
                S.IMAGE_ID: f.image_id,
                S.IMAGE_PATH: f.image_path,
                S.FACE_INDEX: f.face_index,
                S.BBOX: list(f.bbox) if f.bbox is not None else None,
                S.DET_SCORE: f.det_score,
                S.QUALITY: f.quality,
                S.EMBEDDING_NORM: float(np.linalg.norm(emb)),
                S.MODEL_ID: self.model_id,
                S.PERSON_ID: f.person_id,
                S.CLUSTER_ID: f.cluster_id,
                S.CLUSTER_CONFIDENCE: f.cluster_confidence,
                S.ASSIGNMENT_SOURCE: f.assignment_source,
                S.INDEXED_AT: now,
            }
            if image_face_counts is not None:
                payload[S.IMAGE_FACE_COUNT] = image_face_counts[f.image_id]
            old = existing.get(f.face_id)
            if old:
                for key in (S.PERSON_ID, S.CLUSTER_ID, S.CLUSTER_CONFIDENCE, S.ASSIGNMENT_SOURCE, S.INDEXED_AT):
                    if old.get(key) is not None:
                        payload[key] = old[key]
            points.append(models.PointStruct(id=f.face_id, vector=emb.tolist(), payload=payload))
        for start in range(0, len(points), UPSERT_BATCH):
            self.client.upsert(self.collection, points[start : start + UPSERT_BATCH], wait=True)
        return len(faces) - before

    def _existing_payloads(self, ids: Sequence[str], fields: list[str] | bool = True) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), SCROLL_BATCH):
            batch = list(ids[start : start + SCROLL_BATCH])
            for p in self.client.retrieve(self.collection, batch, with_payload=fields):
                found[str(p.id)] = p.payload or {}
        return found

    def payloads(self, face_ids: Sequence[str], *, fields: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """face_id → payload (only `fields` if given) of the faces that exist."""
        return self._existing_payloads(list(face_ids), fields if fields is not None else True)

    def update_payload(self, updates: dict[str, dict[str, Any]], *, check_exists: bool = True) -> None:
        """Set payload fields on many faces at once: {face_id: {key: value}}. Missing faces are an
        error (pass check_exists=False when the ids were just read from the store)."""
        if not updates:
            return
        missing = set(updates) - set(self._existing_payloads(list(updates), [S.FACE_ID])) if check_exists else set()
        if missing:
            raise NotFoundError(f"{len(missing)} face(s) not in the store, e.g. {sorted(missing)[0]}")
        items = list(updates.items())
        with _bar(len(items), "writing labels") as bar:
            for start in range(0, len(items), UPSERT_BATCH):
                self._set_payloads(items[start : start + UPSERT_BATCH])
                bar.update(len(items[start : start + UPSERT_BATCH]))
        if self.engine == "edge" and len(items) >= BULK_FACES:
            self.client.release_pages(self.collection)

    def _set_payloads(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        if isinstance(self.client, EdgeClient):  # the engine takes them as they are (~5 s less at 100K faces)
            self.client.set_payloads(self.collection, dict(items))
            return
        construct = models.SetPayloadOperation.model_construct  # ids and fields are checked: skip pydantic
        ops = [construct(set_payload=models.SetPayload.model_construct(payload=f, points=[i])) for i, f in items]
        self.client.batch_update_points(self.collection, ops, wait=True)

    def label_faces(self, face_ids: Iterable[str], person_id: str | None) -> None:
        """Give faces a person by hand (assignment_source "manual"); None removes the label."""
        if person_id is not None:
            self.get_person(person_id)
        source = S.SOURCE_MANUAL if person_id is not None else None
        self.update_payload({fid: {S.PERSON_ID: person_id, S.ASSIGNMENT_SOURCE: source} for fid in face_ids})

    def remove_face(self, face_id: str) -> None:
        """Delete one face."""
        self.get_face(face_id)
        self.client.delete(self.collection, models.PointIdsList(points=[face_id]), wait=True)

    def remove_image(self, image_id: str) -> int:
        """Delete every face of one image (by sha256); returns how many."""
        n = self.count(image_id=image_id)
        if n:
            self.client.delete(
                self.collection, models.FilterSelector(filter=_match(**{S.IMAGE_ID: image_id})), wait=True
            )
        return n

    def clear(self) -> None:
        """Delete every face of this model and its edit history (people stay registered)."""
        self.client.delete_collection(self.collection)
        self.client.delete_collection(self.history.collection)
        self._ensure_collections()

    # -- reading faces ---------------------------------------------------------------------------
    def count(self, *, person_id: str | None = None, cluster_id: str | None = None, image_id: str | None = None) -> int:
        """Faces in the collection, optionally only those matching the given fields."""
        flt = _match(**{S.PERSON_ID: person_id, S.CLUSTER_ID: cluster_id, S.IMAGE_ID: image_id})
        return self.client.count(self.collection, count_filter=flt, exact=True).count

    def get_face(self, face_id: str, *, with_embedding: bool = True) -> FaceRecord:
        """One face by id; `NotFoundError` if absent."""
        try:
            uuid.UUID(str(face_id))
        except ValueError:
            raise NotFoundError(f"face id {face_id!r} is not a face id (a UUID like those `search` prints)") from None
        points = self.client.retrieve(self.collection, [face_id], with_payload=True, with_vectors=with_embedding)
        if not points:
            raise NotFoundError(f"no face {face_id} in {self.collection}")
        p = points[0]
        return _record(p.id, p.payload or {}, p.vector if with_embedding else None)

    def get_by_filter(
        self,
        *,
        person_id: str | None = None,
        cluster_id: str | None = None,
        image_id: str | None = None,
        limit: int | None = None,
        with_embedding: bool = False,
    ) -> list[FaceRecord]:
        """Faces whose fields match (lists match any of their values)."""
        flt = _match(**{S.PERSON_ID: person_id, S.CLUSTER_ID: cluster_id, S.IMAGE_ID: image_id})
        out = []
        for p in self._scroll(flt, with_vectors=with_embedding):
            out.append(_record(p.id, p.payload or {}, p.vector if with_embedding else None))
            if limit is not None and len(out) >= limit:
                break
        return out

    def _scroll(
        self, flt: models.Filter | None = None, *, with_vectors: bool = False, payload: bool | list[str] = True
    ) -> Iterator[models.Record]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=min(self._scroll_batch, VECTOR_PAGE) if with_vectors else self._scroll_batch,
                offset=offset,
                with_payload=payload,
                with_vectors=with_vectors,
            )
            yield from points
            if offset is None:
                return

    def scroll_all(
        self, *, with_embeddings: bool = True, fields: list[str] | None = None, _filter: models.Filter | None = None
    ) -> StoredFaces:
        """Every face in one pass (ids, embeddings, payloads): the way to do bulk work. Vectors become
        float32 page by page into one array sized by the count, so a million 512-d faces hold 2 GB of array,
        not Python floats, and are never copied whole."""
        ids: list[str] = []
        payloads: list[dict[str, Any]] = []
        expected = self.count() if _filter is None else 0
        emb = np.empty((expected if with_embeddings else 0, self.dim), np.float32)
        extra: list[np.ndarray] = []  # faces added while reading, beyond the count
        page: list[Any] = []
        wanted = fields if fields is not None else True
        bar = _bar(expected, "reading faces")

        def store_page() -> None:
            block = np.asarray(page, dtype=np.float32).reshape(len(page), self.dim)
            start = len(ids) - len(page)
            room = max(0, min(len(block), len(emb) - start))
            emb[start : start + room] = block[:room]
            if room < len(block):
                extra.append(block[room:])
            page.clear()
            if self.engine == "edge" and len(ids) >= BULK_FACES:
                self.client.release_pages(self.collection)

        for p in self._scroll(_filter, with_vectors=with_embeddings, payload=wanted):
            bar.update()
            ids.append(str(p.id))
            payloads.append(p.payload or {})
            if with_embeddings:
                page.append(p.vector)
                if len(page) >= VECTOR_PAGE:
                    store_page()
        bar.close()
        if page:
            store_page()
        if not with_embeddings:
            return StoredFaces(ids, np.zeros((0, self.dim), np.float32), payloads)
        if extra:
            emb = np.concatenate([emb, *extra])
        return StoredFaces(ids, emb[: len(ids)], payloads)

    def scroll_labeled(self) -> StoredFaces:
        """The faces labeled by hand with a person (ids, embeddings, payloads)."""
        manual = self.scroll_all(_filter=_match(**{S.ASSIGNMENT_SOURCE: S.SOURCE_MANUAL}))
        keep = [i for i, p in enumerate(manual.payloads) if S.is_hand_labeled(p)]
        return StoredFaces([manual.ids[i] for i in keep], manual.embeddings[keep], [manual.payloads[i] for i in keep])

    def image_face_counts(self) -> dict[str, tuple[int, int]]:
        """image_id → (faces stored, faces the image holds): an image is complete when they agree."""
        stored: Counter[str] = Counter()
        expected: dict[str, int] = {}
        for p in self._scroll(payload=[S.IMAGE_ID, S.IMAGE_FACE_COUNT]):
            pl = p.payload or {}
            image_id = pl.get(S.IMAGE_ID, "")
            stored[image_id] += 1
            expected[image_id] = int(pl.get(S.IMAGE_FACE_COUNT) or 0)
        return {k: (v, expected[k]) for k, v in stored.items()}

    def search(
        self,
        embedding: np.ndarray,
        *,
        top_k: int = 10,
        person_id: str | None = None,
        cluster_id: str | None = None,
        image_id: str | None = None,
        with_embeddings: bool = False,
    ) -> list[SearchHit]:
        """Most similar faces (cosine), best first, with their person's name; optionally only those
        of one person, cluster or image, and with their embeddings."""
        emb = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if emb.shape != (self.dim,):
            raise StoreError(f"query embedding has shape {emb.shape}, store expects ({self.dim},)")
        flt = _match(**{S.PERSON_ID: person_id, S.CLUSTER_ID: cluster_id, S.IMAGE_ID: image_id})
        res = self.client.query_points(
            self.collection,
            query=emb.tolist(),
            limit=top_k,
            query_filter=flt,
            with_payload=True,
            with_vectors=with_embeddings,
        ).points
        names = self._person_names()
        return [
            SearchHit(
                _record(p.id, p.payload or {}, p.vector if with_embeddings else None),
                float(p.score),
                names.get((p.payload or {}).get(S.PERSON_ID)),
            )
            for p in res
        ]

    def facet_counts(self, field: str, *, only: models.Filter | None = None) -> dict[Any, int]:
        """Value → faces for every value of a keyword field (unset values left out): counted by the
        engine's facet over its payload index, not by reading every face."""
        faces = self.count()
        if faces == 0:
            return {}
        hits = self.client.facet(self.collection, field, limit=faces, exact=True, facet_filter=only).hits
        return {h.value: h.count for h in hits if h.count > 0}  # Edge keeps emptied values, at count 0

    def stats(self) -> dict[str, Any]:
        """Counts of faces, images, people, clusters (noise excluded) and labeled faces, by facets."""
        manual = _match(**{S.ASSIGNMENT_SOURCE: S.SOURCE_MANUAL})
        return {
            "faces": self.count(),
            "images": len(self.facet_counts(S.IMAGE_ID)),
            "people": len(self._person_points()),
            "clusters": sum(S.is_group(c) for c in self.facet_counts(S.CLUSTER_ID)),
            "labeled_faces": sum(self.facet_counts(S.PERSON_ID, only=manual).values()),
            "assigned_faces": sum(self.facet_counts(S.PERSON_ID).values()),
            "model": self.model_id,
        }

    # -- persons ---------------------------------------------------------------------------------
    def _person_points(self) -> list[models.Record]:
        points, offset = [], None
        while True:
            batch, offset = self.client.scroll(S.PERSONS_COLLECTION, limit=SCROLL_BATCH, offset=offset)
            points.extend(batch)
            if offset is None:
                return points

    def _person_names(self) -> dict[str, str]:
        return {str(p.id): (p.payload or {}).get(S.PERSON_NAME, "") for p in self._person_points()}

    def create_person(self, name: str) -> Person:
        """Register a person; names are unique (case-insensitive) and not blank."""
        name = name.strip()
        if not name:
            raise StoreError("a person needs a non-empty name")
        if self.find_person(name) is not None:
            raise StoreError(f"a person named {name!r} exists already; rename or reuse them")
        person_id = str(uuid.uuid4())
        self.client.upsert(
            S.PERSONS_COLLECTION,
            [models.PointStruct(id=person_id, vector={}, payload={S.PERSON_NAME: name, S.CREATED_AT: _now()})],
            wait=True,
        )
        return Person(person_id, name)

    def ensure_person(self, name: str) -> Person:
        """The person with this name, created if needed."""
        return self.find_person(name) or self.create_person(name)

    def find_person(self, name: str) -> Person | None:
        """The person with this name (case-insensitive), or None."""
        key = name.strip().casefold()
        for pid, pname in self._person_names().items():
            if pname.casefold() == key:
                return Person(pid, pname)
        return None

    def get_person(self, person_id: str) -> Person:
        """A person by id; `NotFoundError` if absent."""
        try:
            points = self.client.retrieve(S.PERSONS_COLLECTION, [person_id])
        except (ValueError, TypeError):
            points = []
        if not points:
            raise NotFoundError(f"no person with id {person_id!r}; `facekit persons list` shows them")
        return Person(str(points[0].id), (points[0].payload or {}).get(S.PERSON_NAME, ""))

    def resolve_person(self, id_or_name: str) -> Person:
        """A person by id or by name."""
        found = self.find_person(id_or_name)
        if found is not None:
            return found
        try:
            return self.get_person(id_or_name)
        except NotFoundError:
            raise NotFoundError(
                f"no person named or with id {id_or_name!r}; `facekit persons list` shows them"
            ) from None

    def rename_person(self, person_id: str, name: str) -> Person:
        """Give a person a new (unique) name; their faces keep the same person id."""
        self.get_person(person_id)
        other = self.find_person(name)
        if other is not None and other.person_id != person_id:
            raise StoreError(f"a person named {name!r} exists already")
        self.client.set_payload(S.PERSONS_COLLECTION, {S.PERSON_NAME: name.strip()}, points=[person_id], wait=True)
        return Person(person_id, name.strip())

    def delete_person(self, person_id: str) -> int:
        """Forget a person; their faces become unlabeled (the faces stay). Returns faces unlabeled."""
        self.get_person(person_id)
        faces = [r.face_id for r in self.get_by_filter(person_id=person_id)]
        self.update_payload({fid: {S.PERSON_ID: None, S.ASSIGNMENT_SOURCE: None} for fid in faces})
        self.client.delete(S.PERSONS_COLLECTION, models.PointIdsList(points=[person_id]), wait=True)
        return len(faces)

    def list_persons(self) -> list[Person]:
        """Every person with their face count in this model's collection, by name."""
        counts = self.facet_counts(S.PERSON_ID)
        people = [Person(pid, name, counts.get(pid, 0)) for pid, name in self._person_names().items()]
        return sorted(people, key=lambda p: p.name.casefold())


def stored_models(
    path: str | os.PathLike[str] | None = None, *, url: str = "", api_key: str | None = None
) -> dict[str, int]:
    """Model id → dimension of the faces a store holds; {} for a folder that does not exist (yet)."""
    if not url and (path is None or not Path(path).expanduser().is_dir()):
        return {}
    client = connect(path, url=url, api_key=api_key)
    try:
        return face_models(client)
    finally:
        if url:
            client.close()
        else:
            _LOCAL.release(str(Path(path).expanduser().resolve()))


def open_store(
    path: str | os.PathLike[str] | None = None,
    *,
    url: str = "",
    api_key: str | None = None,
    model_id: str | None = None,
    dim: int | None = None,
) -> FaceStore:
    """Open a store's face collection. With no `dim`, the collection must exist: the store's only
    one, or the one of `model_id`."""
    if model_id is not None and dim is not None:
        return FaceStore(path, model_id=model_id, dim=dim, url=url, api_key=api_key)
    if not url and path is not None and str(path) != ":memory:":
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():  # reading never creates a store
            what = "is a file, not a store folder" if folder.exists() else "does not exist"
            if not Path(path).expanduser().is_absolute():
                what += f"; {str(path)!r} counts from {Path.cwd()}"
            raise StoreError(
                f"no store at {folder} ({what}): index photos into it first (`facekit index PHOTOS --store ...`), "
                "or give the store's folder"
            )
    client = connect(path, url=url, api_key=api_key)
    try:  # an embedded client stays open until the FaceStore holds it too: the folder is loaded once
        return _open_found(face_models(client), path, url, api_key, model_id)
    finally:
        if url:
            client.close()
        elif path is not None and str(path) != ":memory:":
            _LOCAL.release(str(Path(path).expanduser().resolve()))


def _open_found(
    found: dict[str, int], path: str | os.PathLike[str] | None, url: str, api_key: str | None, model_id: str | None
) -> FaceStore:
    """The FaceStore of `model_id`, or of the store's only model, among the models `found` there."""
    where = url or str(path)
    if model_id is not None:
        if model_id not in found:
            raise StoreError(f"the store at {where} has no {model_id} faces (it has: {', '.join(found) or 'none'})")
        return FaceStore(path, model_id=model_id, dim=found[model_id], url=url, api_key=api_key)
    if not found:
        raise StoreError(f"the store at {where} holds no faces yet: run `facekit index PHOTOS` first")
    if len(found) > 1:
        raise StoreError(
            f"the store at {where} holds faces of several models ({', '.join(found)}): pick one with --model"
        )
    ((only, only_dim),) = found.items()
    return FaceStore(path, model_id=only, dim=only_dim, url=url, api_key=api_key)
