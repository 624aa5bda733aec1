"""Supervised assignment of faces to known people: a prototype per person and an open-set rule (a
score, a threshold on it and a runner-up margin), calibrated from the labels to a target precision."""

from __future__ import annotations

from typing import Any

import numpy as np

from facekit.embedding.base import fisher_z, l2_normalize

UNASSIGNED = -1

# The rule accepts a face's best person when  s1 + w * (s1 - s2) >= threshold  and  s1 - s2 >= margin,
# s1 and s2 being the cosines to the best and the runner-up person. w = 0 is the plain threshold-and-margin
# rule; w > 0 rewards a clear lead. Calibration picks the pair that keeps the most recall on the labels.
# w = 2 was tried: picked on dlib with pseudo-labels, it let precision fall to 0.993 on LFW's strangers.
SCORE_WEIGHTS = (0.0, 0.5, 1.0)
MARGIN_GRID = (0.0, 0.02, 0.05)
# Without enough faces to estimate it from, faces of unknown people assumed per face of a known one.
DEFAULT_UNKNOWN_RATIO = 2.0
# The estimate needs this many labeled faces to test and unlabeled faces to read the mixture from.
MIN_RATIO_TESTS = 30
MIN_RATIO_FACES = 100
# `known_fraction`'s largest overestimate of the known people's share of the unlabeled faces over bench-assignment's
# 78 sets at 3 / 8 / 20 labels a person (0.047: dlib, LFW, 3 labels), taken off the estimate whatever the sample
# size. With 2 labels a person it is 0.07 (dlib, LFW: a ratio of 0.89 for a true 0.97; precision held at 0.9953).
KNOWN_SHARE_ERROR = 0.05
# The impostor scores' top share (at least MIN_TAIL of them) is read as an exponential tail in Fisher z
# (peaks over a threshold), so that the rate above a threshold is not the count of its few highest scores.
TAIL_SHARE = 0.10
MIN_TAIL = 10


class PersonAssigner:
    """Assign faces to the nearest known person, or to nobody (-1).

    Each person has one prototype, the normalised weighted sum of their labeled faces (weights let
    pseudo-labels count for less than hand labels). A face goes to its best person when
    ``s1 + w (s1 - s2) >= threshold`` and ``s1 - s2 >= margin``. Without a threshold, `fit` calibrates
    ``w``, ``margin`` and ``threshold`` from the labels alone, by leave-one-out: each calibration face is
    scored as a known face (its person's prototype rebuilt without it) and as an unknown face (its
    person removed); for each (w, margin) of `SCORE_WEIGHTS` x `MARGIN_GRID` the lowest threshold whose
    estimated precision reaches `target_precision` is found, and the rule that keeps the most recall wins.

    Precision depends on how many faces of unknown people compete with each face of a known one
    (``unknown_ratio``). Given the `unlabeled` faces the assigner will be applied to, `fit` estimates
    it from them: their best-person scores are a mixture of unknown-face scores (as the labels show
    them) and known-face scores (a mode started where the labels put it), and the mixture's weight gives
    the ratio (`known_fraction`). A labeled face that matches another person better than half the
    labeled faces match their own is taken for a labeling mistake: it is left out of the calibration and
    listed in ``calibration_["suspect_labels"]``. False accepts are rare events counted on few labels:
    above the impostor scores' top `TAIL_SHARE` their rate is an exponential tail fitted to those scores
    (`impostor_rate`), and it is taken at its upper bound (`sigmas` standard errors up); where the labels
    are too few for any threshold to pass that way, the point estimate is used and the calibration says so.

    Parameters
    ----------
    threshold : float or None
        Fixed cosine threshold (plain rule, w = 0); None calibrates the rule in `fit`.
    margin : float or None
        Fixed runner-up margin; None: 0 with a fixed threshold (the spec's plain rule), else calibrated.
    target_precision : float
        Precision the calibration aims for.
    unknown_ratio : float or None
        Faces of unknown people per face of a known person; None: estimated from `unlabeled` in `fit`,
        else `DEFAULT_UNKNOWN_RATIO`.
    sigmas : float
        How far above the counted false-accept rate its upper bound is taken (Wilson, in standard errors).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[1, 0], [0.98, 0.2], [0, 1], [0.2, 0.98]], dtype=np.float32)
    >>> a = PersonAssigner(threshold=0.9).fit(x, ["ann", "ann", "bo", "bo"])
    >>> a.predict(np.array([[0.99, 0.1], [0.7, 0.7]], dtype=np.float32)).tolist()
    ['ann', -1]
    """

    def __init__(
        self,
        threshold: float | None = None,
        *,
        margin: float | None = None,
        target_precision: float = 0.995,
        unknown_ratio: float | None = None,
        sigmas: float = 1.0,
    ) -> None:
        self.threshold = threshold
        self.margin = margin
        self.target_precision = target_precision
        self.unknown_ratio = unknown_ratio
        self.sigmas = sigmas

    def fit(
        self,
        x: np.ndarray,
        person_ids: Any,
        *,
        weights: np.ndarray | None = None,
        calibrate: np.ndarray | None = None,
        unlabeled: np.ndarray | None = None,
    ) -> PersonAssigner:
        """Build each person's prototype from labeled faces; calibrate the rule if no threshold was given.

        `weights` (default 1) weigh each face in its person's prototype; `calibrate` (default all) marks
        the faces the calibration tests (hand labels, not pseudo-labels); `unlabeled` are the faces to be
        assigned, from which the unknown ratio is estimated.
        """
        x = _check_x(x)
        ids = np.asarray(person_ids, dtype=object)
        if len(ids) != len(x):
            raise ValueError(f"{len(x)} embeddings but {len(ids)} person ids")
        if not 0.5 <= self.target_precision < 1:
            raise ValueError(f"target_precision must be in [0.5, 1), got {self.target_precision}")
        if self.unknown_ratio is not None and self.unknown_ratio < 0:
            raise ValueError(f"unknown_ratio must be >= 0, got {self.unknown_ratio}")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")
        w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(x),) or (w <= 0).any():
            raise ValueError(f"weights must be {len(x)} positive numbers")
        tested = np.ones(len(x), bool) if calibrate is None else np.asarray(calibrate, dtype=bool)
        self.classes_, codes = np.unique(ids.astype(str), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need labeled faces of at least 2 people to assign (and to measure a runner-up)")
        sums = np.zeros((len(self.classes_), x.shape[1]), dtype=np.float64)
        np.add.at(sums, codes, w[:, None] * x)
        self.counts_ = np.bincount(codes, minlength=len(self.classes_))
        self.prototypes_ = l2_normalize(sums).astype(np.float32)
        if self.threshold is None:
            self._calibrate(x, codes, sums, w, tested, unlabeled)
        else:
            self.threshold_, self.margin_, self.score_weight_ = float(self.threshold), float(self.margin or 0.0), 0.0
            self.calibration_ = {"source": "fixed"}
        return self

    @staticmethod
    def _top2(sims: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best person index, its similarity s1 and the runner-up's s2 from (n, people) similarities."""
        top2 = np.argpartition(-sims, 1, axis=1)[:, :2]
        s = np.take_along_axis(sims, top2, axis=1)
        best = top2[np.arange(len(s)), s.argmax(axis=1)]
        # With one person left (calibration removes a face's own), the runner-up is the lowest cosine, -1.
        return best, s.max(axis=1), np.maximum(s.min(axis=1), -1.0)

    def _calibrate(
        self,
        x: np.ndarray,
        codes: np.ndarray,
        sums: np.ndarray,
        w: np.ndarray,
        tested: np.ndarray,
        unlabeled: np.ndarray | None,
    ) -> None:
        rows = np.flatnonzero(tested & (self.counts_[codes] >= 2))  # one-face people cannot be left out
        xt, ct = x[rows], codes[rows]
        sims = xt @ self.prototypes_.T
        # as a known face: its own prototype rebuilt without it
        genuine = sims.copy()
        genuine[np.arange(len(rows)), ct] = np.einsum("ij,ij->i", xt, l2_normalize(sums[ct] - w[rows, None] * xt))
        g_best, g_s1, g_s2 = self._top2(genuine)
        g_correct = g_best == ct
        # as an unknown face: its person removed
        impostor = sims.copy()
        impostor[np.arange(len(rows)), ct] = -np.inf
        _, i_s1, i_s2 = self._top2(impostor)
        # A labeled face that matches another person better than most faces match their own is more
        # likely a labeling mistake than a model error: leave it out, and report it.
        suspect = ~g_correct & (g_s1 >= np.median(g_s1[g_correct])) if g_correct.any() else ~g_correct
        keep = ~suspect
        g_s1, g_s2, g_correct, i_s1, i_s2 = g_s1[keep], g_s2[keep], g_correct[keep], i_s1[keep], i_s2[keep]
        ratio, ratio_source = self._unknown_ratio(g_s1, i_s1, unlabeled)
        margins = MARGIN_GRID if self.margin is None else (float(self.margin),)
        best = (-1.0, 2.0, margins[0], 0.0)  # (estimated recall, threshold, margin, w); nothing passes by default
        # the one-sigma bound on false accepts where the labels can support the target, else the point estimate
        estimates = (
            (self.sigmas, f"{self.sigmas:g}-sigma upper bound"),
            (0.0, "point estimate (too few labels for the bound)"),
        )
        estimate = estimates[0][1]
        for z, name in estimates:
            estimate = name
            for weight in SCORE_WEIGHTS:
                g_score, i_score = g_s1 + weight * (g_s1 - g_s2), i_s1 + weight * (i_s1 - i_s2)
                for m in margins:
                    ok_g, ok_i = g_s1 - g_s2 >= m, i_s1 - i_s2 >= m
                    t, recall = self._lowest_threshold(
                        g_score[ok_g & g_correct], g_score[ok_g & ~g_correct], i_score[ok_i], len(g_s1), ratio, z
                    )
                    if t is not None and recall > best[0] + 1e-9:
                        best = (recall, t, m, weight)
            if best[0] >= 0:
                break
        recall, self.threshold_, self.margin_, self.score_weight_ = best
        i_accepted = (i_s1 - i_s2 >= self.margin_) & (i_s1 + self.score_weight_ * (i_s1 - i_s2) >= self.threshold_)
        self.calibration_ = {
            "source": "calibrated",
            "rule": f"s1 + {self.score_weight_:g}*(s1 - s2) >= threshold and s1 - s2 >= margin",
            "score_weight": self.score_weight_,
            "margin": self.margin_,
            "false_accept_estimate": estimate,
            "target_precision": self.target_precision,
            "unknown_ratio": round(ratio, 3),
            "unknown_ratio_source": ratio_source,
            "labeled_faces": len(x),
            "known_tests": len(rows),
            "suspect_labels": rows[suspect].tolist(),
            "estimated_recall": max(recall, 0.0),
            "estimated_false_accept": float(np.mean(i_accepted)) if len(i_accepted) else 0.0,
        }

    def _unknown_ratio(self, g_s1: np.ndarray, i_s1: np.ndarray, unlabeled: np.ndarray | None) -> tuple[float, str]:
        """Faces of unknown people per face of a known one: given, estimated from `unlabeled`, or the default."""
        if self.unknown_ratio is not None:
            return float(self.unknown_ratio), "given"
        n = 0 if unlabeled is None else len(unlabeled)
        if n < MIN_RATIO_FACES or len(g_s1) < MIN_RATIO_TESTS:
            why = f"{n} unlabeled faces and {len(g_s1)} labeled ones to test are too few to estimate it from"
            return DEFAULT_UNKNOWN_RATIO, f"default ({why})"
        u_s1 = (_check_x(unlabeled) @ self.prototypes_.T).max(axis=1)
        known = known_fraction(g_s1, i_s1, u_s1)
        # an upper bound on the share of unknown faces (an error costs precision): the estimate's two-sigma one, or
        # the model's largest error seen, whichever is wider
        unknown = min(1.0, 1 - known + max(2 * np.sqrt(max(known * (1 - known), 1 / n) / n), KNOWN_SHARE_ERROR))
        ratio = unknown / max(1 - unknown, 1e-3)
        why = f"estimated from {n} unlabeled faces: {1 - known:.1%} of unknown people, {unknown:.1%} at most"
        return float(ratio), why

    def _lowest_threshold(
        self, right: np.ndarray, wrong: np.ndarray, impostor: np.ndarray, n_known: int, ratio: float, z: float
    ) -> tuple[float | None, float]:
        """Lowest threshold on the score whose estimated precision reaches the target, and the recall there."""
        candidates = np.unique(np.concatenate([right, impostor, wrong]))
        if not len(right) or not len(candidates):
            return None, 0.0

        def above(values: np.ndarray) -> np.ndarray:  # how many values are >= each candidate
            return len(values) - np.searchsorted(np.sort(values), candidates, side="left")

        tp = above(right) / max(n_known, 1)
        errors = above(wrong) / max(n_known, 1) + ratio * impostor_rate(impostor, candidates, n_known, z)
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = (tp > 0) & (tp / (tp + errors) >= self.target_precision)
        if not ok.any():
            return None, 0.0
        first = int(np.argmax(ok))  # candidates ascend: the first that reaches the target keeps most recall
        return float(candidates[first]), float(tp[first])

    def best_match(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best person per face, its cosine s1 and its lead over the runner-up (s1 - s2), before any rule."""
        x = _check_x(x)
        if x.shape[1] != self.prototypes_.shape[1]:
            raise ValueError(f"X has {x.shape[1]} dimensions, the assigner was fit on {self.prototypes_.shape[1]}")
        best, s1, s2 = self._top2(x @ self.prototypes_.T)
        return self.classes_[best], s1, s1 - s2

    def decide(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Best person, whether the rule accepts it, its cosine s1 and the rule's score, per face."""
        best, s1, lead = self.best_match(x)
        score = s1 + self.score_weight_ * lead
        return best, (score >= self.threshold_) & (lead >= self.margin_), s1, score

    def predict_with_confidence(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person per face (-1 for nobody) and its cosine similarity to that person."""
        best, accepted, s1, _ = self.decide(x)
        return np.where(accepted, best.astype(object), UNASSIGNED), s1

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Person per face, -1 for faces that match nobody well enough."""
        return self.predict_with_confidence(x)[0]


def known_fraction(known: np.ndarray, unknown: np.ndarray, mixed: np.ndarray, iterations: int = 300) -> float:
    """Share of `mixed` scores drawn like `known` rather than like `unknown`, by EM over two Gaussian modes in Fisher
    z, started at `known`'s mean and spread (the labels scored as known faces) and `unknown`'s (as unknown faces), and
    both left free. The known mode, because leave-one-out scores of the labels sit lower than the scores of new faces
    against every label (with 2 labels a person, one face against two): a fixed known mode took LFW's 0.97 unknown
    faces per known one for 0.61. The unknown mode, because the labels' impostor tests meet only the labeled people,
    never the collection's strangers: where their histogram was the unknown mode (fixed, 0.5 added to each of its 40
    bins), the known share was off by 0.078 on average over bench-assignment's 78 sets (LFW and 8 family albums at 3 /
    8 / 20 labels a person; dlib, MobileFaceNet and dlib on poorer photos): with 30 tests (10 people, 3 labels each)
    that floor spread 40% of the strangers' mode over the family's scores. Free, it is off by 0.003 (+0.047 at most).

    >>> rng = np.random.default_rng(0)
    >>> k, u = rng.normal(0.8, 0.05, 500), rng.normal(0.3, 0.1, 500)
    >>> round(known_fraction(k, u, np.r_[rng.normal(0.8, 0.05, 300), rng.normal(0.3, 0.1, 700)]), 1)
    0.3
    """
    zk, zu, zm = (fisher_z(np.asarray(v, dtype=np.float64)) for v in (known, unknown, mixed))
    means = np.array([zk.mean(), zu.mean()])
    spreads = np.array([zk.std(), zu.std()]) + 1e-3
    share = 0.5
    for _ in range(iterations):
        density = np.array([share, 1 - share]) * np.exp(-0.5 * ((zm[:, None] - means) / spreads) ** 2) / spreads
        posterior = density / np.maximum(density.sum(axis=1, keepdims=True), 1e-300)
        mass = posterior.sum(axis=0)
        share = float(mass[0] / len(zm))
        if not 0 < share < 1:
            break
        means = (posterior * zm[:, None]).sum(axis=0) / mass
        spreads = np.maximum(np.sqrt((posterior * (zm[:, None] - means) ** 2).sum(axis=0) / mass), 1e-3)
    return share


def impostor_rate(impostor: np.ndarray, thresholds: np.ndarray, n: int, z: float) -> np.ndarray:
    """Upper bound (`z` standard errors up) of the rate of `n` tested faces whose impostor score reaches
    each threshold. Below the top `TAIL_SHARE` of the scores it is their count (Wilson bound); above, an
    exponential tail in Fisher z fitted to those top scores (peaks over a threshold), its scale taken `z`
    standard errors up. Counting there made the threshold the second or third highest impostor score:
    on LFW (dlib, 5 random draws of 3 labels a person) recall ranged 0.65-0.92, and 0.83-0.90 with the tail.

    >>> s = np.random.default_rng(0).normal(0.3, 0.1, 1000)
    >>> bool(impostor_rate(s, np.array([0.9]), 1000, 0.0)[0] > 0)  # beyond the highest score, not zero
    True
    """
    s = np.sort(np.asarray(impostor, dtype=np.float64))
    counted = _upper_rate(len(s) - np.searchsorted(s, thresholds, side="left"), n, z)
    k = max(MIN_TAIL, int(TAIL_SHARE * len(s)))
    if len(s) < 2 * k:
        return counted
    fisher = fisher_z(np.r_[s[-k - 1 :], thresholds])
    start, top, at = fisher[0], fisher[1 : k + 1], fisher[k + 1 :]
    scale = float(np.mean(top - start)) * (1 + z / np.sqrt(k))
    tail = _upper_rate(np.array([k]), n, z)[0] * np.exp(-np.maximum(at - start, 0) / max(scale, 1e-9))
    return np.where(at > start, tail, counted)


def _upper_rate(hits: np.ndarray, n: int, z: float) -> np.ndarray:
    """One-sided Wilson upper bound of a rate of `hits` in `n` trials."""
    n = max(n, 1)
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


def _check_x(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_faces, dim), got shape {x.shape}")
    return x
