import math

import numpy as np
import pytest

from facekit.metrics import assignment_scores, bcubed_prf, clustering_scores, noise_as_singletons, pairwise_prf

# Hand example: truth {a,a,a,b,b}, predicted {1,1,2,2,2}.
T = ["a", "a", "a", "b", "b"]
P = [1, 1, 2, 2, 2]


def test_pairwise_by_hand():
    # true pairs: C(3,2)+C(2,2)=4; predicted pairs: 1+3=4; both: (0,1) and (3,4) = 2.
    r = pairwise_prf(T, P)
    assert r["pairwise_p"] == pytest.approx(0.5) and r["pairwise_r"] == pytest.approx(0.5)
    assert r["pairwise_f"] == pytest.approx(0.5)


def test_bcubed_by_hand():
    # precision per item: 1,1,1/3,2/3,2/3 → 11/15; recall: 2/3,2/3,1/3,1,1 → 11/15.
    r = bcubed_prf(T, P)
    assert r["bcubed_p"] == pytest.approx(11 / 15) and r["bcubed_r"] == pytest.approx(11 / 15)
    assert r["bcubed_f"] == pytest.approx(11 / 15)


def test_noise_counts_as_singletons():
    # All noise: every face alone → precision 1, pairwise recall 0, BCubed recall = mean(1/|class|).
    r = clustering_scores(T, [-1] * 5)
    assert r["pairwise_p"] == 1.0 and r["pairwise_r"] == 0.0
    assert r["bcubed_p"] == 1.0 and r["bcubed_r"] == pytest.approx((3 * (1 / 3) + 2 * (1 / 2)) / 5)
    assert len(set(noise_as_singletons([-1, None, -1, "x", "x"]))) == 4


def test_perfect_and_label_names_do_not_matter():
    r = clustering_scores(T, ["p", "p", "p", "q", "q"])
    assert all(math.isclose(r[k], 1.0) for k in ("pairwise_f", "bcubed_f", "nmi", "ari"))


def test_nmi_ari_match_sklearn_definitions():
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 7, 200)
    r = clustering_scores(t, p)
    assert r["nmi"] == pytest.approx(normalized_mutual_info_score(t, p))
    assert r["ari"] == pytest.approx(adjusted_rand_score(t, p))


def test_assignment_by_hand():
    truth = ["a", "a", "a", "b", "x", "y"]
    pred = ["a", "a", None, "a", "b", None]
    known = [True, True, True, True, False, False]
    r = assignment_scores(truth, pred, known)
    # assigned 4, correct 2 → precision 0.5; known 4, correct 2 → recall 0.5; unknown 2, assigned 1 → 0.5.
    assert (r["precision"], r["recall"], r["false_accept"]) == (0.5, 0.5, 0.5)


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        pairwise_prf([1, 2], [1])
    with pytest.raises(ValueError, match="no labels"):
        bcubed_prf([], [])
