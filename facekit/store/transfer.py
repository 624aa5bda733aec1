"""Copy a store between engines: migrate a local-mode folder to Qdrant Edge, export to a Qdrant server.

Every collection is copied whole (faces with their vectors, persons, history), in id order and in
batches, so an interrupted copy resumes where the destination stops. The copy is verified by counts
and by a checksum over each collection's ids and labels (person, cluster, assignment source).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from facekit.errors import StoreError
from facekit.store import schema as S
from facekit.store.edge_client import EDGE_DIR, EdgeClient, is_edge_store

log = logging.getLogger(__name__)

COPY_BATCH = 1024
CHECKSUM_FIELDS = (S.PERSON_ID, S.CLUSTER_ID, S.ASSIGNMENT_SOURCE, S.PERSON_NAME, "kind", "status")
BACKUP_DIR = "local-mode-backup"


def collection_checksum(client: Any, name: str) -> tuple[int, str]:
    """(points, sha256 over the sorted ids and their label fields) of one collection."""
    rows = []
    offset = None
    while True:
        points, offset = client.scroll(name, limit=8192, offset=offset, with_payload=list(CHECKSUM_FIELDS))
        rows += [f"{p.id}|" + "|".join(str((p.payload or {}).get(k)) for k in CHECKSUM_FIELDS) for p in points]
        if offset is None:
            break
    digest = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()
    return len(rows), digest


def _vectors_config(source: Any, name: str) -> tuple[Any, dict[str, Any]]:
    config = source.get_collection(name).config
    vectors = config.params.vectors
    size = getattr(vectors, "size", 0) if vectors else 0
    params = models.VectorParams(size=int(size), distance=models.Distance.COSINE) if size else {}
    return params, dict(config.metadata or {})


def copy_collection(
    source: Any, dest: Any, name: str, *, batch: int = COPY_BATCH, progress: Callable[[int], None] | None = None
) -> int:
    """Copy one collection into `dest` (created if missing), resuming where an earlier copy stopped: the
    source is read in id order, so a destination holding N points holds the source's first N."""
    params, metadata = _vectors_config(source, name)
    if not dest.collection_exists(name):
        dest.create_collection(name, vectors_config=params, metadata=metadata)
        if name.startswith(S.FACE_COLLECTION_PREFIX) and _has_payload_indexes(dest):
            for field in S.INDEXED_FIELDS:
                dest.create_payload_index(name, field, models.PayloadSchemaType.KEYWORD)
    have, total = dest.count(name, exact=True).count, source.count(name, exact=True).count
    if have >= total > 0:
        return 0  # copied already: the checksum says whether it matches
    start = _position(source, name, have) if have else None
    copied, offset = 0, start
    with_vectors = bool(params)
    while True:
        points, offset = source.scroll(name, limit=batch, offset=offset, with_payload=True, with_vectors=with_vectors)
        if points:
            dest.upsert(name, [models.PointStruct(id=str(p.id), vector=p.vector if with_vectors else {},
                                                  payload=p.payload or {}) for p in points], wait=True)  # fmt: skip
            copied += len(points)
            if progress is not None:
                progress(len(points))
        if offset is None:
            return copied


def _has_payload_indexes(client: Any) -> bool:
    """Edge and a server keep payload indexes; qdrant-client's in-process modes only warn."""
    return isinstance(client, EdgeClient) or not hasattr(getattr(client, "_client", None), "collections")


def _position(source: Any, name: str, skip: int) -> Any:
    """The id at position `skip` of the source in id order: where a copy holding `skip` points resumes."""
    offset, seen = None, 0
    while seen < skip:
        points, offset = source.scroll(name, limit=min(8192, skip - seen), offset=offset, with_payload=False)
        seen += len(points)
        if offset is None:
            break
    return offset


def copy_store(source: Any, dest: Any, *, progress: bool = True) -> dict[str, Any]:
    """Copy every collection of `source` into `dest` and verify it; returns counts and checksums."""
    from tqdm.auto import tqdm

    names = [c.name for c in source.get_collections().collections]
    report: dict[str, Any] = {}
    for name in names:
        total = source.count(name, exact=True).count
        with tqdm(total=total, desc=f"copy {name}", unit="point", disable=not progress) as bar:
            copied = copy_collection(source, dest, name, progress=bar.update)
        want, got = collection_checksum(source, name), collection_checksum(dest, name)
        if want != got:
            raise StoreError(
                f"the copy of {name} does not match its source ({want[0]} points, checksum {want[1][:12]}; the "
                f"copy has {got[0]}, {got[1][:12]}). The source is unchanged; run the command again to resume."
            )
        report[name] = {"points": want[0], "copied_now": copied, "checksum": want[1]}
    return report


def migrate_local_mode(folder: str | os.PathLike[str], *, progress: bool = True) -> dict[str, Any]:
    """Move a qdrant-client local-mode store folder to Qdrant Edge, in place.

    The Edge copy is written next to the old files and verified (counts, checksum of ids and labels);
    only then does it take the old files' place, and they move into `<store>/local-mode-backup/` (kept,
    never deleted). A migration stopped while copying leaves the old store in charge and resumes when run
    again; one stopped while moving the old files finishes moving them.
    """
    root = Path(folder).expanduser().resolve()
    if is_edge_store(root) and not (root / "meta.json").exists():
        raise StoreError(f"the store at {root} is on Qdrant Edge already: nothing to migrate")
    if not (root / "meta.json").exists():
        raise StoreError(f"no local-mode store at {root} (no meta.json): give the folder of a facekit store")
    report: dict[str, Any] = {}
    if not is_edge_store(root):
        staging = root / ".edge-migration"
        try:
            source = QdrantClient(path=str(root))
        except (RuntimeError, BlockingIOError) as exc:
            raise StoreError(
                f"the store at {root} is open in another process ({exc}): close it, then migrate"
            ) from None
        try:
            dest = EdgeClient(staging)
            try:
                report = copy_store(source, dest, progress=progress)
            finally:
                dest.close()
        finally:
            source.close()
        os.replace(staging / EDGE_DIR, root / EDGE_DIR)  # verified: from here on the store opens on Edge
        staging.rmdir()
    backup = root / BACKUP_DIR
    backup.mkdir(exist_ok=True)
    for entry in list(root.iterdir()):
        if entry.name not in (BACKUP_DIR, EDGE_DIR):
            shutil.move(str(entry), str(backup / entry.name))
    log.info("migrated %s to Qdrant Edge; the old files are in %s", root, backup)
    return {"store": str(root), "engine": "edge", "backup": str(backup), "collections": report}


def export_store(source: Any, dest: Any, *, progress: bool = True) -> dict[str, Any]:
    """Copy an open store's client (`FaceStore.client`) into `dest` (a server's QdrantClient); running it
    again after an interruption resumes, and a finished export is verified again, not copied twice."""
    return {"collections": copy_store(source, dest, progress=progress)}
