"""The training loop over a store: train a head on its hand labels, re-assign in the new space,
and keep each iteration's metrics (label → train → reassign → evaluate)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from facekit.config import Settings, get_settings
from facekit.dual import DualModeClusterer
from facekit.errors import CheckpointError
from facekit.projection import Projection, load_projection, save_checkpoint, threshold_map
from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.training.data import get_labeled_faces_by_person, get_pseudo_labeled_faces
from facekit.training.trainer import FaceTrainer

MAP_SAMPLE = 20_000  # faces whose random pairs map the clustering threshold into the new space


def fine_tune_for_person_clustering(
    store: FaceStore,
    *,
    trainer: FaceTrainer | None = None,
    out: str | Path | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Train a projection head on the store's hand labels and pseudo-labels, and save it (the spec's name).

    The trainer defaults come from the settings (FACE_TRIPLET_MARGIN, FACE_TRAINING_EPOCHS,
    FACE_BATCH_SIZE, FACE_LEARNING_RATE). The checkpoint goes to `out`, default
    `<FACEKIT_CHECKPOINT_DIR>/<model>-<label hash>.safetensors`. Returns the spec's summary:
    checkpoint, epochs_run, train_loss, val_metrics, seconds (and a little more).
    """
    start = time.perf_counter()
    settings = settings or get_settings()
    trainer = trainer or FaceTrainer(
        margin=settings.triplet_margin,
        epochs=settings.training_epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
    )
    labeled = get_labeled_faces_by_person(store)
    pseudo = get_pseudo_labeled_faces(store)
    result = trainer.fit(
        labeled.embeddings, labeled.person_ids, pseudo_x=pseudo.embeddings, pseudo_ids=pseudo.person_ids
    )
    label_hash = labeled.snapshot_hash if not pseudo.face_ids else f"{labeled.snapshot_hash}+{pseudo.snapshot_hash}"
    label_hash = hashlib.sha256(label_hash.encode()).hexdigest() if pseudo.face_ids else label_hash
    projection = Projection(result.weights, {"dim": store.dim, "base_model_id": store.model_id})
    base = store.scroll_all(fields=[S.IMAGE_ID]).embeddings
    if len(base) > MAP_SAMPLE:
        base = base[np.random.default_rng(0).choice(len(base), MAP_SAMPLE, replace=False)]
    meta = {
        "base_model_id": store.model_id,
        "dim": store.dim,
        "hidden": trainer.hidden,
        "hyperparameters": trainer.hyperparameters(),
        "label_hash": label_hash,
        "labels": {
            "people": len(set(labeled.person_ids)),
            "faces": len(labeled.face_ids),
            "pseudo_labels": len(pseudo.face_ids),
        },
        "val_metrics": result.val_metrics,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_loss": result.train_loss,
        "threshold_map": threshold_map(base, projection.transform(base)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if out is None:
        out = settings.checkpoint_dir / f"{_safe(store.model_id)}-{label_hash[:12]}.safetensors"
    path = save_checkpoint(out, result.weights, meta)
    return {
        "checkpoint": str(path),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_loss": result.train_loss,
        "val_metrics": result.val_metrics,
        "labels": meta["labels"],
        "device": result.device,
        "seconds": round(time.perf_counter() - start, 3),
    }


def latest_checkpoint(store: FaceStore, settings: Settings | None = None) -> Path:
    """FACE_MODEL_CHECKPOINT if set, else the newest checkpoint for the store's model in
    FACEKIT_CHECKPOINT_DIR."""
    settings = settings or get_settings()
    if settings.model_checkpoint:
        return Path(settings.model_checkpoint)
    found = sorted(
        settings.checkpoint_dir.glob(f"{_safe(store.model_id)}-*.safetensors"), key=lambda p: p.stat().st_mtime
    )
    if not found:
        raise CheckpointError(
            f"no checkpoint for model {store.model_id!r} in {settings.checkpoint_dir}: run `facekit train-matching` "
            "first, or pass --checkpoint / set FACE_MODEL_CHECKPOINT"
        )
    return found[-1]


def reassign(store: FaceStore, projection: Projection | None, **clusterer_args: Any) -> dict[str, Any]:
    """Re-run dual-mode clustering in the projected space (the spec's reassign-smart; None: the base
    space) and report how the faces not labeled by hand moved between people: newly assigned, changed
    person, unassigned."""
    before = _auto_people(store)
    summary = DualModeClusterer(store, projection=projection, **clusterer_args).cluster_all_faces()
    return {**_moves(before, _auto_people(store)), "clustering": summary}


def log_iteration(path: str | Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Append one iteration's record to the JSON list at `path` (created if missing); returns the list."""
    path = Path(path)
    records: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    records.append({"iteration": len(records) + 1, **record})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1, default=str))
    tmp.replace(path)
    return records


def training_iteration(
    store: FaceStore,
    *,
    log: str | Path,
    trainer: FaceTrainer | None = None,
    settings: Settings | None = None,
    evaluate_truth: bool = True,
    use_pseudo_labels: bool = True,
    use_head: bool = False,
) -> dict[str, Any]:
    """One turn of the loop on the labels the store holds now, scored at each stage (an ablation):

    1. ``before``: the store as it is (the calibrated score rule on the hand labels);
    2. ``with_pseudo_labels``: pseudo-labels recomputed from the hand labels
       (`facekit.assign.pseudo_labels`), a pass in the base space with them in the prototypes;
    3. ``with_head``: a triplet head trained on hand and pseudo-labels, scored in a dry run in its space.
       The head is applied (a pass in its space) only with `use_head` and when it beat the base space on
       held-out hand labels: on LFW it lowered recall and unknown-people F after pseudo-labels
       (bench/results/training.md), so it is off by default.

    ``after`` is the state the store is left in. `evaluate_truth` scores against folder names (LFW
    layout); the record is appended to `log`.
    """
    from facekit.assign.pseudo_labels import clear_pseudo_labels, update_pseudo_labels
    from facekit.evaluation import evaluate

    settings = settings or get_settings()
    start_people = _auto_people(store)
    before = evaluate(store) if evaluate_truth else None
    if use_pseudo_labels:
        link = DualModeClusterer(store, settings=settings).link_threshold()  # the pass's, as its checks use it
        pseudo = update_pseudo_labels(store, link_threshold=link)
    else:
        pseudo = {"pseudo_labels": 0, "rounds": [], "cleared": clear_pseudo_labels(store)}
    passed = reassign(store, None, settings=settings)
    with_pseudo = evaluate(store) if evaluate_truth else None
    trained = fine_tune_for_person_clustering(store, trainer=trainer, settings=settings)
    projection = load_projection(trained["checkpoint"], model_id=store.model_id)
    head_better = trained["best_epoch"] > 0 and "dir_at_far_0_1pct" in trained["val_metrics"]
    with_head = _dry_run_scores(store, projection, settings) if evaluate_truth and head_better else None
    head_used = use_head and head_better
    if head_used:
        passed = reassign(store, projection, settings=settings)
    if not head_better:
        note = "the head did not beat the base space on held-out hand labels: not used"
    elif not use_head:
        note = "the head beat the base space on held-out hand labels; with_head is a dry run (use_head applies it)"
    else:
        note = None
    record = {
        "pseudo_labels": pseudo,
        "train": trained,
        "head_used": head_used,
        "head_note": note,
        "reassign": {**_moves(start_people, _auto_people(store)), "clustering": passed["clustering"]},
        "before": before,
        "with_pseudo_labels": with_pseudo,
        "with_head": with_head,
        "after": with_head if head_used else with_pseudo,
    }
    log_iteration(log, record)
    return record


def _dry_run_scores(store: FaceStore, projection: Projection, settings: Settings) -> dict[str, Any]:
    """What a pass in the head's space would score, nothing written."""
    from facekit.evaluation import read_faces, score

    faces = read_faces(store)
    clusterer = DualModeClusterer(store, projection=projection, settings=settings)
    result = clusterer.predict(clusterer.project(faces))
    return score(faces, result.person_ids, result.cluster_ids)


def _moves(before: dict[str, str | None], after: dict[str, str | None]) -> dict[str, int]:
    """How faces not labeled by hand moved between people: newly assigned, changed, unassigned."""
    moved = {"newly_assigned": 0, "changed": 0, "unassigned": 0}
    for face_id, now in after.items():
        was = before.get(face_id)
        if was is None and now is not None:
            moved["newly_assigned"] += 1
        elif was is not None and now is None:
            moved["unassigned"] += 1
        elif was != now:
            moved["changed"] += 1
    return moved


def _auto_people(store: FaceStore) -> dict[str, str | None]:
    """The person of each face not labeled by hand."""
    faces = store.scroll_all(with_embeddings=False, fields=[S.PERSON_ID, S.ASSIGNMENT_SOURCE])
    return {
        fid: p.get(S.PERSON_ID)
        for fid, p in zip(faces.ids, faces.payloads, strict=True)
        if p.get(S.ASSIGNMENT_SOURCE) != S.SOURCE_MANUAL
    }


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
