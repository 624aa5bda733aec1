"""Supervised assignment of faces to known people: centroid prototypes, a runner-up margin, and a
threshold calibrated from the labels to a target precision."""

from __future__ import annotations

from typing import Any

import numpy as np

from facekit.embedding.base import l2_normalize

UNASSIGNED = -1


class PersonAssigner:
    """Assign faces to the nearest known person, or to nobody (-1).

    A face's score for its best person is ``s1 + margin_weight * (s1 - s2)``: the cosine similarity to
    that person's centroid plus how far it beats the runner-up person. A face is assigned when the score
    reaches `threshold`. Without a threshold, `fit` calibrates one from the labels alone by leave-one-out:
    each labeled face is scored as a known face (its person's centroid rebuilt without it) and as an
    unknown face (its person removed), and the lowest threshold whose estimated precision reaches
    `target_precision` is kept, assuming `unknown_ratio` faces of unknown people for each face of a known
    one (in a young collection most faces belong to people nobody has labeled yet). A labeled face that
    matches another person better than half the labeled faces match their own is taken for a labeling
    mistake: it is left out of the calibration and listed in ``calibration_["suspect_labels"]`` (row
    numbers in the fitted data).

    Parameters
    ----------
    threshold : float or None
        Fixed score threshold; None calibrates it in `fit`.
    margin_weight : float
        Weight of the runner-up margin (0: the plain centroid rule).
    target_precision : float
        Precision the calibrated threshold aims for.
    unknown_ratio : float
        Faces of unknown people per face of a known person, assumed by the calibration.

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
        margin_weight: float = 1.0,
        target_precision: float = 0.995,
        unknown_ratio: float = 2.0,
    ) -> None:
        self.threshold = threshold
        self.margin_weight = margin_weight
        self.target_precision = target_precision
        self.unknown_ratio = unknown_ratio

    def fit(self, x: np.ndarray, person_ids: Any) -> PersonAssigner:
        """Build one centroid per person from labeled faces; calibrate the threshold if none was given."""
        x = _check_x(x)
        ids = np.asarray(person_ids, dtype=object)
        if len(ids) != len(x):
            raise ValueError(f"{len(x)} embeddings but {len(ids)} person ids")
        if not 0.5 <= self.target_precision < 1:
            raise ValueError(f"target_precision must be in [0.5, 1), got {self.target_precision}")
        if self.unknown_ratio < 0:
            raise ValueError(f"unknown_ratio must be >= 0, got {self.unknown_ratio}")
        if self.margin_weight < 0:
            raise ValueError(f"margin_weight must be >= 0, got {self.margin_weight}")
        self.classes_, codes = np.unique(ids.astype(str), return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need labeled faces of at least 2 people to assign (and to measure a runner-up)")
        sums = np.zeros((len(self.classes_), x.shape[1]), dtype=np.float64)
        np.add.at(sums, codes, x)
        self.counts_ = np.bincount(codes, minlength=len(self.classes_))
        self.centroids_ = l2_normalize(sums)
        if self.threshold is None:
            self.threshold_, self.calibration_ = self._calibrate(x, codes, sums)
        else:
            self.threshold_, self.calibration_ = float(self.threshold), {"source": "fixed"}
        return self

    def _scores(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best person index and score from a (n, people) similarity matrix."""
        top2 = np.argpartition(-sims, 1, axis=1)[:, :2]
        s = np.take_along_axis(sims, top2, axis=1)
        first = s.argmax(axis=1)
        best = top2[np.arange(len(s)), first]
        # With one person left (calibration removes a face's own), the runner-up is the lowest cosine, -1.
        s1, s2 = s.max(axis=1), np.maximum(s.min(axis=1), -1.0)
        return best, s1 + self.margin_weight * (s1 - s2)

    def _calibrate(self, x: np.ndarray, codes: np.ndarray, sums: np.ndarray) -> tuple[float, dict[str, Any]]:
        sims = x @ self.centroids_.T
        rows = np.arange(len(x))
        # as a known face: its own centroid rebuilt without it (people with one label cannot be tested)
        testable = self.counts_[codes] >= 2
        own = l2_normalize(sums[codes] - x)
        genuine = sims.copy()
        genuine[rows, codes] = np.einsum("ij,ij->i", x, own)
        g_best, g_score = self._scores(genuine[testable])
        g_correct = g_best == codes[testable]
        # as an unknown face: its person removed
        impostor = sims.copy()
        impostor[rows, codes] = -np.inf
        _, i_score = self._scores(impostor)
        # A labeled face that matches another person better than most faces match their own is more
        # likely a labeling mistake than a model error: leave it out, and report it.
        suspect = ~g_correct & (g_score >= np.median(g_score[g_correct])) if g_correct.any() else ~g_correct
        g_best, g_score, g_correct = g_best[~suspect], g_score[~suspect], g_correct[~suspect]
        suspect_rows = np.flatnonzero(testable)[suspect]
        i_score = np.delete(i_score, suspect_rows)
        candidates = np.unique(np.concatenate([g_score[g_correct], i_score]))
        chosen = float(candidates.max()) + 1e-6 if len(candidates) else 1.0
        for t in candidates:  # ascending: the first that reaches the target keeps the most recall
            tp = np.mean(g_correct & (g_score >= t)) if len(g_score) else 0.0
            wrong = np.mean(~g_correct & (g_score >= t)) if len(g_score) else 0.0
            fa = self.unknown_ratio * np.mean(i_score >= t)
            if tp > 0 and tp / (tp + wrong + fa) >= self.target_precision:
                chosen = float(t)
                break
        accepted = g_score >= chosen
        return chosen, {
            "source": "calibrated",
            "target_precision": self.target_precision,
            "unknown_ratio": self.unknown_ratio,
            "labeled_faces": len(x),
            "known_tests": int(testable.sum()),
            "suspect_labels": suspect_rows.tolist(),
            "estimated_recall": float(np.mean(g_correct & accepted)) if len(g_score) else 0.0,
            "estimated_false_accept": float(np.mean(i_score >= chosen)),
        }

    def best_match(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best person per face and its score, before the threshold is applied."""
        x = _check_x(x)
        if x.shape[1] != self.centroids_.shape[1]:
            raise ValueError(f"X has {x.shape[1]} dimensions, the assigner was fit on {self.centroids_.shape[1]}")
        best, score = self._scores(x @ self.centroids_.T)
        return self.classes_[best], score

    def predict_with_confidence(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person per face (-1 for nobody) and the score behind each decision."""
        best, score = self.best_match(x)
        labels = np.where(score >= self.threshold_, best.astype(object), UNASSIGNED)
        return labels, score

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Person per face, -1 for faces that match nobody well enough."""
        return self.predict_with_confidence(x)[0]


def _check_x(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"X must be a non-empty 2-D array (n_faces, dim), got shape {x.shape}")
    return x
