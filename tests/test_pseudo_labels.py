"""Pseudo-labels: synthetic spaces where the truth is known, then a real LFW store and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from facekit.assign import PersonAssigner
from facekit.assign.pseudo_labels import (
    clear_pseudo_labels,
    list_pseudo_labels,
    pseudo_label,
    update_pseudo_labels,
)
from facekit.cli import app
from facekit.cluster import knn_graph
from facekit.dual import DualModeClusterer
from facekit.store import schema as S

from .conftest import DUAL_PEOPLE as PEOPLE
from .test_dual import faces_of, label
from .test_group_veto import stranger_beside


def collection(seed: int = 0, people: int = 40, per: int = 12, strangers: int = 300, spread: float = 0.5):
    """Known people with `per` faces each (the first 3 hand-labeled) and one-face strangers, in 32-d."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people + strangers, 32))
    who = np.r_[np.repeat(np.arange(people), per), np.arange(people, people + strangers)]
    x = centres[who] + rng.normal(scale=spread, size=(len(who), 32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    hand = np.zeros(len(who), bool)
    hand[: people * per] = np.arange(people * per) % per < 3
    return x.astype(np.float32), who.astype(str), hand, who < people


def assignment(assigner: PersonAssigner, x, truth, known):
    best, accepted, _, _ = assigner.decide(x)
    right = accepted & (best == truth)
    return right.sum() / max(accepted.sum(), 1), right.sum() / known.sum()


def test_unknown_ratio_is_read_from_the_unlabeled_faces():
    x, who, hand, known = collection(strangers=600)
    pool = ~hand
    assigner = PersonAssigner().fit(x[hand], who[hand], unlabeled=x[pool])
    true_ratio = (pool & ~known).sum() / (pool & known).sum()  # 600 strangers / 360 faces of known people
    assert "estimated from 960 unlabeled faces" in assigner.calibration_["unknown_ratio_source"]
    assert true_ratio <= assigner.calibration_["unknown_ratio"] <= 1.5 * true_ratio  # an upper bound, not far off
    few = PersonAssigner().fit(x[hand], who[hand], unlabeled=x[pool][:50])
    assert few.calibration_["unknown_ratio"] == 2.0 and "too few" in few.calibration_["unknown_ratio_source"]


def test_the_rule_that_decides_is_the_one_reported():
    x, who, hand, _ = collection(seed=1)
    assigner = PersonAssigner().fit(x[hand], who[hand], unlabeled=x[~hand])
    w, m, t = assigner.score_weight_, assigner.margin_, assigner.threshold_
    assert assigner.calibration_["rule"] == f"s1 + {w:g}*(s1 - s2) >= threshold and s1 - s2 >= margin"
    _, s1, lead = assigner.best_match(x[~hand])
    assert (assigner.decide(x[~hand])[1] == ((s1 + w * lead >= t) & (lead >= m))).all()


def test_pseudo_labels_lift_recall_at_the_same_precision():
    x, who, hand, known = collection(seed=2, spread=0.8)
    pool = ~hand
    labels = pseudo_label(x[hand], who[hand], x[pool])
    assert len(labels.rows) > 100
    assert np.mean(labels.person_ids == who[pool][labels.rows]) >= 0.99  # the stricter bar
    assert labels.rounds[0]["round"] == 0 and labels.rounds[1]["kept"]
    kept = [r for r in labels.rounds if r["kept"]]
    assert kept[-1]["pseudo_labels"] == len(labels.rows)
    recalls = [r["estimated_recall"] for r in kept]
    assert recalls == sorted(recalls)  # no kept round lowered it
    last = labels.rounds[-1]
    assert not last["kept"] or "did not rise" in last.get("why_stopped", "") or len(labels.rounds) == 4
    base = PersonAssigner().fit(x[hand], who[hand], unlabeled=x[pool])
    rows = np.r_[np.flatnonzero(hand), np.flatnonzero(pool)[labels.rows]]
    weights = np.r_[np.ones(hand.sum()), np.full(len(labels.rows), 0.5)]
    calibrate = np.r_[np.ones(hand.sum(), bool), np.zeros(len(labels.rows), bool)]
    ids = np.r_[who[hand], labels.person_ids.astype(str)]
    lifted = PersonAssigner().fit(x[rows], ids, weights=weights, calibrate=calibrate, unlabeled=x[pool])
    assert lifted.calibration_["known_tests"] == hand.sum()  # pseudo-labels are never tested
    (p0, r0), (p1, r1) = (assignment(a, x[pool], who[pool], known[pool]) for a in (base, lifted))
    assert p0 >= 0.98 and p1 >= 0.98 and r1 > r0 + 0.02


def test_pseudo_labels_respect_rejections_and_one_face_per_photo():
    x, who, hand, _ = collection(seed=5, spread=0.8)
    pool = np.flatnonzero(~hand)
    free = pseudo_label(x[hand], who[hand], x[pool])
    first, person = free.rows[0], str(free.person_ids[0])
    rejected = [set() for _ in pool]
    rejected[first] = {person}  # "not this person"
    twins = [r for r, p in zip(free.rows[1:], free.person_ids[1:], strict=True) if p == free.person_ids[1]][:2]
    images = np.array([f"photo{i}" for i in range(len(pool))], dtype=object)
    images[twins] = "one photo"  # two faces of one photo cannot both be this person
    bound = pseudo_label(x[hand], who[hand], x[pool], rejected=rejected, images=images)
    got = dict(zip(bound.rows.tolist(), bound.person_ids.astype(str).tolist(), strict=True))
    assert first in free.rows and got.get(first) != person
    assert len(twins) == 2 and sum(got.get(t) == str(free.person_ids[1]) for t in twins) == 1


def test_strangers_only_give_no_pseudo_labels():
    x, who, hand, known = collection(seed=4)
    labels = pseudo_label(x[hand], who[hand], x[~hand & ~known])
    assert len(labels.rows) <= 2
    assert not labels.rounds[-1]["kept"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_pseudo_label_must_link_to_one_of_its_persons_faces(seed):
    """A stranger seen once, built to clear the pseudo-label bar for person 0 while every face of theirs is further
    from it than the link threshold given, is a pseudo-label without the link and none with it. Most of the person's own
    pseudo-labels stay: a link this high (the stranger's closest similarity to them) drops a face of theirs only
    where none of their other faces is as close."""
    x, who, hand, _ = collection(seed=seed, spread=0.5)
    mine = np.flatnonzero(who == "0")
    stranger = stranger_beside(x, mine, mine[hand[mine]], 0.82, seed)
    link = float((x[mine] @ stranger).max()) + 0.01
    x, who, hand = np.vstack([x, stranger]), np.append(who, "stranger"), np.append(hand, False)
    pool = np.flatnonzero(~hand)
    graph = knn_graph(np.r_[x[hand], x[pool]], 30)
    free = pseudo_label(x[hand], who[hand], x[pool])
    linked = pseudo_label(x[hand], who[hand], x[pool], links=(graph, link))
    theirs = {int(pool[r]): str(p) for r, p in zip(free.rows, free.person_ids, strict=True)}
    kept = {int(pool[r]): str(p) for r, p in zip(linked.rows, linked.person_ids, strict=True)}
    assert theirs[len(x) - 1] == "0" and len(x) - 1 not in kept  # the rule alone takes the stranger for person 0
    own = [r for r, p in theirs.items() if p == "0" and who[r] == "0"]
    assert own and sum(kept.get(r) == "0" for r in own) >= 0.75 * len(own)


def test_store_pseudo_labels_feed_the_pass_and_hand_labels_win(store):
    for name in PEOPLE:
        label(store, name, faces_of(store, name)[:3])
    summary = update_pseudo_labels(store)
    assert summary["pseudo_labels"] > 0 and summary["rounds"][0]["round"] == 0
    listed = list_pseudo_labels(store)
    assert sum(r["pseudo_labels"] for r in listed) == summary["pseudo_labels"]
    assert {r["name"] for r in listed} <= set(PEOPLE)
    result = DualModeClusterer(store).cluster_all_faces()
    assert result["person_calibration"]["pseudo_labels"] == summary["pseudo_labels"]
    # a pseudo-labeled face labeled by hand as someone else: the hand label counts, the pseudo-label not
    faces = store.scroll_all(with_embeddings=False, fields=[S.PSEUDO_PERSON_ID, S.PERSON_ID, S.ASSIGNMENT_SOURCE])
    face_id, payload = next((f, p) for f, p in zip(faces.ids, faces.payloads, strict=True) if p.get(S.PSEUDO_PERSON_ID))
    other = next(p for p in store.list_persons() if p.person_id != payload[S.PSEUDO_PERSON_ID])
    store.label_faces([face_id], other.person_id)
    assert sum(r["pseudo_labels"] for r in list_pseudo_labels(store)) == summary["pseudo_labels"] - 1
    after = DualModeClusterer(store).cluster_all_faces()
    assert after["person_calibration"]["pseudo_labels"] == summary["pseudo_labels"] - 1
    assert store.get_face(face_id, with_embedding=False).person_id == other.person_id
    hand = {f: p[S.PERSON_ID] for f, p in zip(faces.ids, faces.payloads, strict=True) if S.is_hand_labeled(p)}
    assert clear_pseudo_labels(store) == summary["pseudo_labels"]
    assert list_pseudo_labels(store) == []
    again = store.scroll_all(with_embeddings=False, fields=[S.PERSON_ID, S.ASSIGNMENT_SOURCE])
    kept = {f: p[S.PERSON_ID] for f, p in zip(again.ids, again.payloads, strict=True) if S.is_hand_labeled(p)}
    assert kept == {**hand, face_id: other.person_id}


def test_cli_pseudo_labels(store, tmp_path):
    for name in PEOPLE:
        label(store, name, faces_of(store, name)[:3])
    folder = str(tmp_path / "store")
    store.close()
    runner = CliRunner()
    args = ["--store", folder, "--model", "dlib", "--json"]
    made = runner.invoke(app, ["pseudo-labels", "update", *args])
    assert made.exit_code == 0, made.output
    count = json.loads(made.stdout)["pseudo_labels"]
    listed = json.loads(runner.invoke(app, ["pseudo-labels", "list", *args]).stdout)
    assert listed["pseudo_labels"] == count > 0
    cleared = json.loads(runner.invoke(app, ["pseudo-labels", "clear", *args]).stdout)
    assert cleared == {"cleared": count}
    empty = runner.invoke(app, ["pseudo-labels", "list", "--store", folder, "--model", "dlib"])
    assert "no pseudo-labels" in empty.stdout
