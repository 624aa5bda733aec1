"""The cosine at which unknown faces are linked, read off the data when no measured value applies.

A face's nearest neighbours in a collection are a mix of the same person (a high mode of similarities)
and look-alike strangers (a lower mode). A two-component Gaussian mixture on the Fisher-transformed
similarities of each face's `ranks` nearest neighbours separates them without labels and without a
per-model table: a space whose similarities are shifted or rescaled moves both modes, and the cut moves
with them. The link threshold is the lowest similarity where the same-person mode's posterior reaches
`posterior`; the estimated pairwise precision is that mode's mean posterior over the edges kept.

On LFW's main faces this lands at cosine 0.950 for dlib (facekit's measured prior 0.945) and 0.616 for
MobileFaceNet (prior 0.64), BCubed F within 0.5 points of each prior (bench/results/clustering.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facekit.cluster.knn import KnnGraph

MIN_EDGES = 200
MAX_EDGES = 200_000  # a seeded sample of the edges beyond this (the mixture needs no more)
# Ashman's D >= 2: the usual bar for two cleanly separated modes. LFW: dlib 2.4, MobileFaceNet 3.2;
# random vectors (no one twice) 1.8.
MIN_SEPARATION = 2.0


@dataclass(frozen=True)
class LinkThreshold:
    """A link threshold and where it came from: `method` is "argument", "setting", "model prior",
    "kNN similarity mixture" or "generic fallback"; `reason` says why, in words."""

    threshold: float
    method: str
    reason: str
    estimated_precision: float | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["threshold"] = round(self.threshold, 4)
        if self.estimated_precision is not None:
            out["estimated_precision"] = round(self.estimated_precision, 4)
        return out


def _fisher(s: np.ndarray) -> np.ndarray:
    return np.arctanh(np.clip(s, -0.9999, 0.9999))


def calibrate_link_threshold(graph: KnnGraph, *, ranks: int = 10, posterior: float = 0.99) -> LinkThreshold | None:
    """The mixture's cut on `graph` (None when the similarities show no two modes to separate).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same, other = rng.normal(0.8, 0.05, (300, 5)), rng.normal(0.3, 0.08, (300, 5))
    >>> sims = np.sort(np.hstack([same, other]), axis=1)[:, ::-1]
    >>> g = KnnGraph(indices=np.zeros(sims.shape, int), sims=sims)
    >>> 0.45 < calibrate_link_threshold(g).threshold < 0.7
    True
    """
    from sklearn.mixture import GaussianMixture

    s = graph.sims[:, :ranks].ravel()
    s = s[np.isfinite(s)]
    if len(s) < MIN_EDGES:
        return None
    if len(s) > MAX_EDGES:
        s = np.random.default_rng(0).choice(s, MAX_EDGES, replace=False)
    z = _fisher(s)[:, None]
    mixture = GaussianMixture(2, random_state=0).fit(z)
    means = mixture.means_.ravel()
    high = int(np.argmax(means))
    variances = mixture.covariances_.ravel()
    separation = np.sqrt(2) * abs(means[0] - means[1]) / np.sqrt(variances.sum())  # Ashman's D
    if min(mixture.weights_) < 0.01 or separation < MIN_SEPARATION:
        return None  # one skewed mode (faces with no one like them), or two too close to cut between
    grid = np.linspace(np.quantile(s, 0.001), s.max(), 2000)
    post = mixture.predict_proba(_fisher(grid)[:, None])[:, high]
    above = np.flatnonzero((post >= posterior) & (grid >= np.tanh(means.min())))
    if len(above) == 0:
        return None
    threshold = float(grid[above[0]])
    kept = s >= threshold
    precision = float(mixture.predict_proba(z[kept])[:, high].mean()) if kept.any() else None
    return LinkThreshold(
        threshold=threshold,
        method="kNN similarity mixture",
        reason=f"two modes in the {ranks} nearest neighbours' similarities of {graph.n} faces "
        f"(same person ~{np.tanh(means[high]):.2f}, strangers ~{np.tanh(means.min()):.2f}); cut where the "
        f"same-person posterior reaches {posterior}",
        estimated_precision=precision,
    )
