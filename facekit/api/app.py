"""The HTTP API (FastAPI): long work is enqueued as background jobs (202 + job id), reads answer at once.

One store per server (`facekit serve --store`, or FACEKIT_QDRANT_URL). An embedded store is opened per
request and shared by concurrent requests; while a job's worker holds it, a read waits
FACEKIT_STORE_LOCK_WAIT seconds and then answers 503 with the reason. With a Qdrant server everything
runs concurrently. Every error is JSON: {"error": ..., "type": ...}.
"""

from __future__ import annotations

import hmac
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from facekit.errors import FacekitError, NotFoundError, StoreError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
API_KEY_HEADER = "X-API-Key"


# -- schemas --------------------------------------------------------------------------------------------
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterDualRequest(Strict):
    person_threshold: float | None = Field(None, ge=0, le=1, description="Fixed cosine (default: calibrated).")
    unknown_method: Literal["chinese_whispers", "connected_components", "hdbscan", "dbscan", "agglomerative"] | None = (
        None
    )
    unknown_min_size: int | None = Field(None, ge=2)
    unknown_threshold: float | None = Field(None, ge=-1, le=1)
    max_faces: int | None = Field(None, ge=1)


class TrainRequest(Strict):
    epochs: int | None = Field(None, ge=1, le=1000)
    margin: float | None = Field(None, ge=0)
    batch_size: int | None = Field(None, ge=2)
    learning_rate: float | None = Field(None, gt=0)


class ReassignRequest(Strict):
    checkpoint: str | None = Field(None, description="A head on the server (default: the newest).")


class IndexRequest(Strict):
    paths: list[str] = Field(..., min_length=1, description="Photos and folders, as paths on the server.")
    recursive: bool = False
    workers: int = Field(1, ge=1, le=64)
    cluster: bool = False


class JobAccepted(BaseModel):
    job_id: str


class JobView(BaseModel):
    job_id: str
    name: str | None = None
    status: Literal["queued", "started", "finished", "failed", "canceled"]
    progress: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None


class Stats(BaseModel):
    faces: int
    images: int
    people: int
    clusters: int
    labeled_faces: int
    assigned_faces: int
    model: str


class PersonOut(BaseModel):
    person_id: str
    name: str
    face_count: int


class SearchHitOut(BaseModel):
    face_id: str
    image_path: str
    score: float
    person_id: str | None
    person_name: str | None
    cluster_id: str | None


class SearchFaceOut(BaseModel):
    face_index: int
    bbox: list[float]
    hits: list[SearchHitOut]


class ErrorOut(BaseModel):
    error: str
    type: str


# -- the app ----------------------------------------------------------------------------------------------
def create_app(store: str | None = None, *, api_key: str | None = None, max_upload: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The API over `store` (a folder; None: FACEKIT_QDRANT_URL or FACEKIT_STORE). With `api_key`, every
    request needs it in X-API-Key or `Authorization: Bearer` (compared in constant time), else 401."""
    from facekit.jobs.handle import store_location

    location = store_location(store)
    app = FastAPI(
        title="facekit",
        description="Faces → people: background jobs and reads over one facekit store.",
        responses={401: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}},
    )

    def check_key(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get(API_KEY_HEADER) or ""
        auth = request.headers.get("Authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, f"missing or wrong API key: send it in {API_KEY_HEADER} or Authorization: Bearer")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "type": "HTTPError"}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts), "type": "ValidationError"}, status_code=422)

    @app.exception_handler(FacekitError)
    async def facekit_error(_: Request, exc: FacekitError) -> JSONResponse:
        busy = isinstance(exc, StoreError) and "open in another process" in str(exc)
        code = 503 if busy else 404 if isinstance(exc, NotFoundError) else 400
        return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=code)

    @contextmanager
    def opened():
        from facekit.store import open_store

        with open_store(location["path"] or _default_store(), url=location["url"], api_key=_qdrant_key()) as fs:
            yield fs

    def enqueue(name: str, **options: Any) -> JobAccepted:
        from facekit.jobs import enqueue as put

        return JobAccepted(job_id=put(name, location, **options))

    embedders: dict[str, Any] = {}

    def embedder_for(model_id: str) -> Any:
        """The store's model, loaded once per server."""
        from facekit.embedding import load_embedder, model_name_for

        if model_id not in embedders:
            embedders[model_id] = load_embedder(model_name_for(model_id))
        return embedders[model_id]

    guarded = [Depends(check_key)]

    @app.post("/faces/cluster/dual", status_code=202, response_model=JobAccepted, dependencies=guarded)
    def cluster_dual(body: ClusterDualRequest) -> JobAccepted:
        """Enqueue `cluster_dual_job`: assign faces to labeled people, cluster the rest."""
        return enqueue("cluster-dual", **body.model_dump())

    @app.post("/faces/train", status_code=202, response_model=JobAccepted, dependencies=guarded)
    def train(body: TrainRequest) -> JobAccepted:
        """Enqueue `train_person_matching_job` on the hand labels."""
        return enqueue("train-matching", **body.model_dump())

    @app.post("/faces/reassign", status_code=202, response_model=JobAccepted, dependencies=guarded)
    def reassign(body: ReassignRequest) -> JobAccepted:
        """Enqueue `reassign_faces_job` in the trained space."""
        return enqueue("reassign", **body.model_dump())

    @app.post("/faces/index", status_code=202, response_model=JobAccepted, dependencies=guarded)
    def index(body: IndexRequest) -> JobAccepted:
        """Enqueue `index_job` on photos at paths on the server."""
        missing = [p for p in body.paths if not Path(p).exists()]
        if missing:
            raise HTTPException(422, f"not found on the server: {', '.join(missing[:5])}")
        return enqueue("index", **{**body.model_dump(), "paths": [str(Path(p).resolve()) for p in body.paths]})

    @app.get("/jobs/{job_id}", response_model=JobView, dependencies=guarded)
    def job(job_id: str) -> dict[str, Any]:
        """The same object as `facekit jobs show --json`."""
        from facekit.jobs import show

        return show(job_id)

    @app.get("/stats", response_model=Stats, dependencies=guarded)
    def stats() -> dict[str, Any]:
        with opened() as fs:
            return fs.stats()

    @app.get("/persons", response_model=list[PersonOut], dependencies=guarded)
    def persons() -> list[dict[str, Any]]:
        with opened() as fs:
            return [{"person_id": p.person_id, "name": p.name, "face_count": p.face_count} for p in fs.list_persons()]

    @app.get("/clusters", response_model=dict[str, int], dependencies=guarded)
    def clusters() -> dict[str, int]:
        """Unknown cluster id → faces."""
        from facekit.edits import ClusterEditor

        with opened() as fs:
            return ClusterEditor(fs).list_clusters()

    @app.post("/search", response_model=list[SearchFaceOut], dependencies=guarded)
    def search(image: UploadFile = File(...), top_k: int = 5) -> list[dict[str, Any]]:
        """The stored faces most like each face in an uploaded photo (at most 10 MB)."""
        from facekit.search import search_image

        if not 1 <= top_k <= 100:
            raise HTTPException(422, f"top_k must be 1..100, got {top_k}")
        data = image.file.read(max_upload + 1)
        if len(data) > max_upload:
            raise HTTPException(413, f"upload larger than {max_upload} bytes: send a smaller photo")
        suffix = Path(image.filename or "upload.jpg").suffix[:8] or ".jpg"
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            with opened() as fs:
                found = search_image(fs, tmp.name, embedder_for(fs.model_id), top_k=top_k)
        return [_search_row(i, m.face, m.hits) for i, m in enumerate(found)]

    return app


def _search_row(index: int, face: Any, hits: list[Any]) -> dict[str, Any]:
    return {
        "face_index": index,
        "bbox": [float(c) for c in face.bbox],
        "hits": [
            {
                "face_id": h.face.face_id,
                "image_path": h.face.image_path,
                "score": h.score,
                "person_id": h.face.person_id,
                "person_name": h.person_name,
                "cluster_id": h.face.cluster_id,
            }
            for h in hits
        ],
    }


def _default_store() -> str:
    from facekit.config import get_settings

    return str(get_settings().store)


def _qdrant_key() -> str | None:
    from facekit.config import get_settings

    key = get_settings().qdrant_api_key
    return key.get_secret_value() if key else None


def loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def serve(host: str = "127.0.0.1", port: int = 8000, store: str | None = None) -> None:
    """Run the API with uvicorn. Binding anything but loopback needs FACEKIT_API_KEY."""
    import uvicorn

    from facekit.config import get_settings

    key = get_settings().api_key
    key = key if key is not None and key.get_secret_value() else None  # set but empty: no key
    if not loopback(host) and key is None:
        raise FacekitError(
            f"refusing to serve on {host} without FACEKIT_API_KEY: anyone who can reach it could read and change "
            "the store. Set FACEKIT_API_KEY, or bind 127.0.0.1"
        )
    app = create_app(store, api_key=key.get_secret_value() if key else None)
    uvicorn.run(app, host=host, port=port, log_level=os.environ.get("FACEKIT_API_LOG_LEVEL", "warning"))
