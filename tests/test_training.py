"""Triplet training of the projection head on real LFW faces (dlib), checkpoints, reassign, the loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facekit.cli import app
from facekit.config import get_settings
from facekit.dual import PLACEMENTS, DualModeClusterer
from facekit.errors import CheckpointError, TrainingError
from facekit.projection import Projection, load_projection, save_checkpoint, threshold_map
from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.training import (
    FaceTrainer,
    fine_tune_for_person_clustering,
    get_labeled_faces_by_person,
    reassign,
    training_iteration,
)
from facekit.training.head import build_head

from .conftest import DLIB
from .conftest import DUAL_PEOPLE as PEOPLE
from .test_dual import faces_of, label

torch = pytest.importorskip("torch")


def label_first(store: FaceStore, per_person: int) -> None:
    for name in PEOPLE:
        label(store, name, faces_of(store, name)[:per_person])


def separation(x: np.ndarray, ids: np.ndarray) -> float:
    """Mean cosine within people minus mean cosine across them."""
    sims = x @ x.T
    same = ids[:, None] == ids[None, :]
    off = ~np.eye(len(x), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def test_numpy_projection_computes_what_the_torch_head_does():
    head = build_head(8, 16)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        expected = head(torch.from_numpy(x)).numpy()
    weights = {k: v.numpy() for k, v in head.state_dict().items()}
    got = Projection(weights, {"dim": 8, "base_model_id": "m"}).transform(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    untrained = build_head(8, 16)
    with torch.no_grad():
        out = untrained(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)


def test_training_on_real_faces_separates_people_and_is_repeatable(store):
    label_first(store, 7)
    labeled = get_labeled_faces_by_person(store)
    ids = np.array(labeled.person_ids)
    trainer = FaceTrainer(epochs=15, margin=0.2, learning_rate=1e-3, batch_size=24, val_fraction=0)
    first = trainer.fit(labeled.embeddings, ids)
    again = trainer.fit(labeled.embeddings, ids)
    for k in first.weights:
        np.testing.assert_array_equal(first.weights[k], again.weights[k])
    assert first.epochs_run == 15 and first.device == ("cuda" if torch.cuda.is_available() else "cpu")
    losses = [h["train_loss"] for h in first.history[1:]]
    assert losses[-1] < losses[0]
    projected = Projection(first.weights, {"dim": 128, "base_model_id": DLIB}).transform(labeled.embeddings)
    assert separation(projected, ids) > separation(labeled.embeddings, ids) + 0.05


def test_early_stopping_keeps_the_best_epoch_on_held_out_labels():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((30, 16))
    x = np.repeat(centres, 4, axis=0) + 0.8 * rng.standard_normal((120, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    ids = np.repeat([f"p{i}" for i in range(30)], 4)
    result = FaceTrainer(epochs=30, patience=3, hidden=32, batch_size=16, learning_rate=3e-3).fit(x, ids)
    scores = [h["dir_at_far_0_1pct"] for h in result.history]
    assert result.val_metrics["best_epoch"] == int(np.argmax(scores))
    assert result.val_metrics["dir_at_far_0_1pct"] == max(scores)
    assert result.val_metrics["base_dir_at_far_0_1pct"] == scores[0]
    assert result.epochs_run - result.best_epoch <= 3 or result.epochs_run == 30


def test_the_held_out_split_does_not_depend_on_the_people_s_ids():
    """A person's id is a random UUID: the same labels under other ids hold out the same faces (sorted ids drew other
    people on every run of bench-training)."""
    import uuid

    ids = np.repeat([f"p{i:02d}" for i in range(30)], 4)
    renamed = {p: str(uuid.uuid4()) for p in np.unique(ids)}
    other = np.array([renamed[p] for p in ids])
    trainer = FaceTrainer()
    for mine, theirs in zip(trainer.split(ids), trainer.split(other), strict=True):
        assert (mine == theirs).all()
    assert trainer.split(ids)[2].sum() == 6 * 4  # a fifth of the 30 people held out, with all their faces


def test_training_refuses_too_few_labels_and_bad_settings():
    x = np.eye(4, dtype=np.float32)
    with pytest.raises(TrainingError, match="at least 2 labeled people"):
        FaceTrainer().fit(x, ["a", "b", "c", "d"])
    with pytest.raises(TrainingError, match="miner"):
        FaceTrainer(miner="weird").fit(x, ["a", "a", "b", "b"])
    with pytest.raises(TrainingError, match="batch_size"):
        FaceTrainer(batch_size=4, m_per_class=4).fit(x, ["a", "a", "b", "b"])


def test_checkpoint_round_trip_metadata_and_refusals(store, tmp_path):
    label_first(store, 4)
    trainer = FaceTrainer(epochs=3, learning_rate=1e-3, batch_size=16, val_fraction=0)
    out = fine_tune_for_person_clustering(store, trainer=trainer, out=tmp_path / "head.safetensors")
    assert set(out) >= {"checkpoint", "epochs_run", "train_loss", "val_metrics", "seconds"}
    projection = load_projection(out["checkpoint"], model_id=DLIB)
    meta = projection.meta
    assert meta["base_model_id"] == DLIB and meta["dim"] == 128
    assert meta["label_hash"] == get_labeled_faces_by_person(store).snapshot_hash
    assert meta["hyperparameters"]["epochs"] == 3 and meta["labels"] == {"people": 6, "faces": 24, "pseudo_labels": 0}
    assert meta["threshold_map"]["pairs"] > 0
    with pytest.raises(CheckpointError, match="trained on 'dlib_resnet_v1' embeddings"):
        load_projection(out["checkpoint"], model_id="buffalo_l_arcface")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(CheckpointError, match="not a readable facekit checkpoint"):
        load_projection(bad)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_projection(tmp_path / "missing.safetensors")
    other = save_checkpoint(tmp_path / "other.safetensors", projection.weights, {"base_model_id": "x", "dim": 128})
    with pytest.raises(CheckpointError, match="holds 'dlib_resnet_v1'"):
        DualModeClusterer(store, projection=load_projection(other))


def test_threshold_map_is_the_identity_for_the_same_space():
    x = np.random.default_rng(0).standard_normal((400, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    table = threshold_map(x, x)
    p = Projection({}, {"threshold_map": table, "dim": 8, "base_model_id": "m"})
    for t in (0.3, 0.5, 0.7):
        assert abs(p.map_threshold(t) - t) < 0.01


def test_reassign_in_the_trained_space_keeps_hand_labels_and_reports_moves(store, tmp_path):
    label_first(store, 3)
    DualModeClusterer(store).cluster_all_faces()
    manual_before = {fid: p[S.PERSON_ID] for fid, p in zip(*_payloads(store), strict=True) if S.is_hand_labeled(p)}
    before = dict(zip(*_people(store), strict=True))
    trainer = FaceTrainer(epochs=10, learning_rate=1e-3, batch_size=12, val_fraction=0)
    ckpt = fine_tune_for_person_clustering(store, trainer=trainer, out=tmp_path / "h.safetensors")["checkpoint"]
    result = reassign(store, load_projection(ckpt, model_id=DLIB))
    assert result["clustering"]["projection"] == ckpt
    after = dict(zip(*_people(store), strict=True))
    auto = [f for f in after if f not in manual_before]
    assert result["newly_assigned"] == sum(before[f] is None and after[f] is not None for f in auto)
    assert result["unassigned"] == sum(before[f] is not None and after[f] is None for f in auto)
    assert result["changed"] == sum(None not in (before[f], after[f]) and before[f] != after[f] for f in auto)
    assert {f: after[f] for f in manual_before} == manual_before


def test_settings_checkpoint_moves_assignment_and_incremental_add_into_the_projected_space(store, tmp_path):
    label_first(store, 3)
    trainer = FaceTrainer(epochs=5, learning_rate=1e-3, batch_size=12, val_fraction=0)
    ckpt = fine_tune_for_person_clustering(store, trainer=trainer, out=tmp_path / "h.safetensors")["checkpoint"]
    clusterer = DualModeClusterer(store, settings=get_settings(model_checkpoint=ckpt))
    assert clusterer.projection is not None
    summary = clusterer.cluster_all_faces()
    # 42 faces are too few to calibrate on: dlib's measured link, mapped into the head's space
    assert summary["unknown_threshold"] == pytest.approx(clusterer.projection.map_threshold(0.945), abs=1e-4)
    assert summary["unknown_threshold_source"]["method"] == "model prior"
    assert "mapped" in summary["unknown_threshold_source"]["reason"]
    assert summary["projection"] == ckpt and summary["labeled_by_hand"] == 18 and summary["assigned_to_people"] > 0
    new = faces_of(store, PEOPLE[0])[-1]
    store.update_payload({new: {S.PERSON_ID: None, S.CLUSTER_ID: None, S.ASSIGNMENT_SOURCE: None}})
    counts = DualModeClusterer(store, settings=get_settings(model_checkpoint=ckpt)).add_faces_incrementally([new])
    assert sum(counts[placement] for placement in PLACEMENTS) == 1
    assert store.get_face(new, with_embedding=False).person_id or counts["noise"] + counts["joined_clusters"] == 1


def test_training_iterations_are_logged(store, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    log = tmp_path / "iterations.json"
    trainer = FaceTrainer(epochs=2, learning_rate=1e-3, batch_size=12, val_fraction=0)
    for per_person in (2, 3):
        label_first(store, per_person)
        record = training_iteration(store, log=log, trainer=trainer)
        assert record["pseudo_labels"]["pseudo_labels"] > 0 and not record["head_used"]
        assert record["after"] == record["with_pseudo_labels"]
        assert record["with_pseudo_labels"]["assignment"]["recall"] >= record["before"]["assignment"]["recall"]
        assert "not used" in record["head_note"]  # no validation split (val_fraction=0): nothing shows it helps
    records = json.loads(log.read_text())
    assert [r["iteration"] for r in records] == [1, 2]
    assert [r["train"]["labels"]["faces"] for r in records] == [12, 18]


def test_cli_train_matching_then_reassign(store, tmp_path, monkeypatch):
    label_first(store, 3)
    folder = str(tmp_path / "store")
    store.close()
    monkeypatch.setenv("FACEKIT_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    runner = CliRunner()
    args = ["--store", folder, "--model", "dlib", "--json"]
    trained = runner.invoke(app, ["train-matching", "--epochs", "2", "--batch-size", "12", *args])
    assert trained.exit_code == 0, trained.output
    out = json.loads(trained.stdout.splitlines()[-1])
    assert set(out) >= {"checkpoint", "epochs_run", "train_loss", "val_metrics", "seconds"}
    assert Path(out["checkpoint"]).parent == tmp_path / "ckpt"
    moved = runner.invoke(app, ["reassign", *args])
    assert moved.exit_code == 0, moved.output
    res = json.loads(moved.stdout.splitlines()[-1])
    assert res["checkpoint"] == out["checkpoint"] and {"newly_assigned", "changed", "unassigned"} <= set(res)
    monkeypatch.setenv("FACEKIT_CHECKPOINT_DIR", str(tmp_path / "empty"))
    missing = runner.invoke(app, ["reassign", *args])
    assert missing.exit_code == 1 and "train-matching" in missing.output


def _payloads(store: FaceStore) -> tuple[list[str], list[dict]]:
    faces = store.scroll_all(with_embeddings=False)
    return faces.ids, faces.payloads


def _people(store: FaceStore) -> tuple[list[str], list[str | None]]:
    ids, payloads = _payloads(store)
    return ids, [p.get(S.PERSON_ID) for p in payloads]
