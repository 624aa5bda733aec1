"""Clustering, link and open-set assignment metrics: arrays in, numbers or a dict out.

Noise and singletons: a predicted label of -1 or None ("noise") counts as a cluster of its own for
every metric here, so a clusterer cannot gain by declaring hard faces noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

NOISE_VALUES = (-1, "-1", None)


def noise_as_singletons(labels: Sequence[object] | np.ndarray) -> np.ndarray:
    """Integer labels where each noise entry (-1 or None) becomes a cluster of its own."""
    values = list(labels)
    codes: dict[object, int] = {}
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v in NOISE_VALUES or (isinstance(v, float) and np.isnan(v)):
            out[i] = len(codes) + i + 1_000_000_000  # unique, never equal to a real code
        else:
            out[i] = codes.setdefault(v, len(codes))
    return out


def _check(truth: Sequence[object], pred: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
    if len(truth) != len(pred):
        raise ValueError(f"truth and predicted labels differ in length: {len(truth)} vs {len(pred)}")
    if len(truth) == 0:
        raise ValueError("no labels to score")
    return noise_as_singletons(truth), noise_as_singletons(pred)


def _pairs(n: np.ndarray) -> float:
    n = n.astype(np.float64)
    return float((n * (n - 1) / 2).sum())


def _f(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def pairwise_prf(truth: Sequence[object], pred: Sequence[object]) -> dict[str, float]:
    """Pairwise precision / recall / F over all pairs of items put together.

    Precision is 1.0 when no pair is predicted, recall 1.0 when no pair is true.

    >>> pairwise_prf([0, 0, 1, 1], [0, 0, 0, 1])
    {'pairwise_p': 0.3333333333333333, 'pairwise_r': 0.5, 'pairwise_f': 0.4}
    """
    t, p = _check(truth, pred)
    c = contingency_matrix(t, p, sparse=True)
    tp = _pairs(c.data)
    pred_pairs = _pairs(np.asarray(c.sum(axis=0)).ravel())
    true_pairs = _pairs(np.asarray(c.sum(axis=1)).ravel())
    prec = tp / pred_pairs if pred_pairs else 1.0
    rec = tp / true_pairs if true_pairs else 1.0
    return {"pairwise_p": prec, "pairwise_r": rec, "pairwise_f": _f(prec, rec)}


def bcubed_prf(truth: Sequence[object], pred: Sequence[object]) -> dict[str, float]:
    """BCubed precision / recall / F (item-averaged).

    >>> r = bcubed_prf([0, 0, 1, 1], [0, 0, 0, 1])
    >>> round(r["bcubed_p"], 4), round(r["bcubed_r"], 4)
    (0.6667, 0.75)
    """
    t, p = _check(truth, pred)
    c = contingency_matrix(t, p, sparse=True)
    coo = c.tocoo()
    n_ij = coo.data.astype(np.float64)
    pred_sizes = np.asarray(c.sum(axis=0)).ravel()[coo.col]
    true_sizes = np.asarray(c.sum(axis=1)).ravel()[coo.row]
    n = len(t)
    prec = float((n_ij**2 / pred_sizes).sum() / n)
    rec = float((n_ij**2 / true_sizes).sum() / n)
    return {"bcubed_p": prec, "bcubed_r": rec, "bcubed_f": _f(prec, rec)}


def clustering_scores(truth: Sequence[object], pred: Sequence[object]) -> dict[str, float]:
    """Pairwise and BCubed P/R/F, NMI and ARI of a clustering against the truth."""
    t, p = _check(truth, pred)
    return {
        **pairwise_prf(t, p),
        **bcubed_prf(t, p),
        "nmi": float(normalized_mutual_info_score(t, p)),
        "ari": float(adjusted_rand_score(t, p)),
    }


def assignment_scores(
    truth: Sequence[object], predicted: Sequence[object], known: Sequence[bool] | np.ndarray
) -> dict[str, float | int]:
    """Open-set assignment: faces of known people should be assigned to them, others to nobody.

    Parameters
    ----------
    truth : the true identity of each face.
    predicted : the identity each face was assigned (in the same namespace as `truth`), or None/-1.
    known : whether each face's true person is a known (labeled) person.

    Returns precision (correct among assigned), recall (correct among faces of known people),
    false_accept (assigned among faces of unknown people) and the counts behind them.

    >>> r = assignment_scores(["a", "a", "b", "x"], ["a", None, "a", "b"], [True, True, True, False])
    >>> round(r["precision"], 4), round(r["recall"], 4), r["false_accept"]
    (0.3333, 0.3333, 1.0)
    """
    if not (len(truth) == len(predicted) == len(known)):
        raise ValueError(f"lengths differ: truth {len(truth)}, predicted {len(predicted)}, known {len(known)}")
    known_arr = np.asarray(known, dtype=bool)
    assigned = np.array([p not in NOISE_VALUES for p in predicted], dtype=bool)
    correct = np.array([a and t == p for a, t, p in zip(assigned, truth, predicted, strict=True)], dtype=bool)
    n_assigned, n_known, n_unknown = int(assigned.sum()), int(known_arr.sum()), int((~known_arr).sum())
    return {
        "precision": float(correct.sum() / n_assigned) if n_assigned else 1.0,
        "recall": float(correct[known_arr].sum() / n_known) if n_known else 0.0,
        "false_accept": float(assigned[~known_arr].sum() / n_unknown) if n_unknown else 0.0,
        "assigned": n_assigned,
        "known_faces": n_known,
        "unknown_faces": n_unknown,
    }


def link_precision(
    indices: np.ndarray, sims: np.ndarray, truth: np.ndarray, threshold: float
) -> tuple[float | None, int]:
    """The share of one person's pairs (same `truth`) among the pairs a threshold links in a kNN graph (`indices`,
    `sims`: each face's nearest, -1 / -inf where none), each pair once, and how many pairs; None where there are none.

    >>> link_precision(np.array([[1], [0], [1]]), np.array([[0.9], [0.9], [0.8]]), np.array(["a", "a", "b"]), 0.7)
    (0.5, 2)
    """
    rows, ranks = np.nonzero(sims >= threshold)
    pairs = np.unique(np.sort(np.stack([rows, indices[rows, ranks]], axis=1), axis=1), axis=0)
    if not len(pairs):
        return None, 0
    return float(np.mean(truth[pairs[:, 0]] == truth[pairs[:, 1]])), len(pairs)
