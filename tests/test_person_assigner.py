import numpy as np
import pytest

from facekit.assign import UNASSIGNED, PersonAssigner
from facekit.assign.person_assigner import impostor_rate, known_fraction


def people(n_people: int, per: int, *, spread: float, dim: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_people, dim))
    x = np.repeat(centers, per, axis=0) + rng.normal(scale=spread, size=(n_people * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat([f"p{i}" for i in range(n_people)], per)


def test_known_faces_assigned_strangers_refused():
    x, y = people(30, 8, spread=0.25)
    train = np.arange(len(x)) % 8 < 3  # three labeled faces per person, as in the LFW protocol
    assigner = PersonAssigner().fit(x[train], y[train])
    assert assigner.calibration_["source"] == "calibrated" and 0 < assigner.threshold_ < 2
    pred = assigner.predict(x[~train])
    assert np.mean(pred == y[~train]) > 0.8
    strangers, _ = people(20, 3, spread=0.25, seed=99)
    assert np.mean(assigner.predict(strangers) == UNASSIGNED) > 0.95


def test_calibration_meets_its_target_on_held_out_faces():
    x, y = people(60, 10, spread=0.45, seed=3)
    train = np.arange(len(x)) % 10 < 3
    assigner = PersonAssigner(target_precision=0.99).fit(x[train], y[train])
    pred = assigner.predict(x[~train])
    accepted = pred != UNASSIGNED
    assert accepted.any() and np.mean(pred[accepted] == y[~train][accepted]) >= 0.98


def test_margin_refuses_faces_between_two_people():
    x = np.array([[1, 0, 0], [0.98, 0.2, 0], [0, 1, 0], [0.2, 0.98, 0]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    fit = PersonAssigner(threshold=0.0).fit(x, ["a", "a", "b", "b"])
    a, b = fit.prototypes_
    mix = 0.55 * a + 0.45 * b  # a little nearer "a"
    between = mix / np.linalg.norm(mix) * 0.9 + np.array([0, 0, np.sqrt(1 - 0.81)])
    s1 = float(between @ a)
    clear = s1 * a + np.sqrt(1 - s1**2) * np.array([0, 0, 1.0])  # as close to "a", far from "b"
    faces = np.stack([clear, between]).astype(np.float32)
    plain = PersonAssigner(threshold=s1 - 0.01).fit(x, ["a", "a", "b", "b"])
    assert plain.predict(faces).tolist() == ["a", "a"]  # same similarity: the plain rule cannot tell them apart
    with_margin = PersonAssigner(threshold=s1 - 0.01, margin=0.2).fit(x, ["a", "a", "b", "b"])
    assert with_margin.predict(faces).tolist() == ["a", UNASSIGNED]


def test_confidence_and_errors():
    x, y = people(3, 4, spread=0.1)
    assigner = PersonAssigner(threshold=0.5).fit(x, y)
    labels, score = assigner.predict_with_confidence(x)
    assert (labels == y).all() and score.shape == (12,)
    with pytest.raises(ValueError, match="at least 2 people"):
        PersonAssigner().fit(x[:4], y[:4])
    with pytest.raises(ValueError, match="12 embeddings but 3"):
        PersonAssigner().fit(x, y[:3])
    with pytest.raises(ValueError, match="fit on 32"):
        assigner.predict(np.ones((1, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="target_precision"):
        PersonAssigner(target_precision=1.0).fit(x, y)


@pytest.mark.parametrize("margin", [None, 0.0])
def test_calibration_with_two_people_is_finite(margin):
    # Removing a face's own person leaves one candidate: its runner-up must count as -1, not -inf.
    x, y = people(2, 5, spread=0.1)
    assigner = PersonAssigner(margin=margin).fit(x, y)
    assert np.isfinite(assigner.threshold_)
    assert assigner.calibration_["estimated_false_accept"] == 0.0
    assert (assigner.predict(x) == y).mean() > 0.5


def test_calibration_picks_a_margin_from_the_grid_and_reports_it():
    x, y = people(40, 6, spread=0.5, seed=7)
    assigner = PersonAssigner().fit(x, y)
    assert assigner.calibration_["margin"] in (0.0, 0.01, 0.02, 0.03, 0.05, 0.08)
    assert assigner.margin_ == assigner.calibration_["margin"]


def test_the_false_accept_rate_beyond_the_top_impostor_scores_is_estimated_not_counted():
    # Impostor scores with an exponential tail in Fisher z (logistic), whose rate at t is known: 1e-3.
    # Counting 1,000 tests reads 0 at t in a third of the draws and 0.003 in some; the tail fit does not.
    rng = np.random.default_rng(0)
    t = np.array([np.tanh(0.3 + 0.05 * np.log(999))])
    rates = np.array([impostor_rate(np.tanh(rng.logistic(0.3, 0.05, 1000)), t, 1000, 0.0)[0] for _ in range(200)])
    assert 0.7e-3 < np.median(rates) < 1.5e-3
    assert np.quantile(rates, 0.05) > 0.4e-3 and np.quantile(rates, 0.95) < 2.5e-3


@pytest.mark.parametrize("seed", range(5))
def test_the_known_share_is_read_where_strangers_score_above_the_labels_impostor_tests(seed):
    # A family album: 10 people's 3 labels give 30 impostor tests (cosine ~0.3), while the collection's strangers
    # score ~0.45 against them. 300 of the 1,000 unlabeled faces are the family's.
    rng = np.random.default_rng(seed)
    genuine, impostor = rng.normal(0.8, 0.05, 30), rng.normal(0.3, 0.08, 30)
    unlabeled = np.r_[rng.normal(0.82, 0.05, 300), rng.normal(0.45, 0.1, 700)]
    assert known_fraction(genuine, impostor, unlabeled) == pytest.approx(0.3, abs=0.04)
