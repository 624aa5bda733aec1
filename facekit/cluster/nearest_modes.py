"""A cut that leaves out a person's own lower tail: every face's nearest similarity, read for one mode.

A cut leaves a face alone where its nearest neighbour is below it, and a face is best left alone where its nearest is
a stranger. Where nearly every face has its own person nearest (everyone has many photos), every face's nearest
similarity shows one mode, and a cut that leaves a few of the faces alone (under `DENSE`) has cut into that mode's lower
tail: a person's poorer photos, whose nearest is still their own person. The cut is loosened to leave `LEFT_ALONE` of
them alone. Where it leaves many alone in one mode (no one twice, or a first import of a model whose strangers spread
as widely as one person's photos), the mode is strangers, and nothing is moved.

MobileFace's held-out shape (people with >= 15 photos, 22 each): the mixture's cut left 4.5% of the faces alone where
the best swept cut leaves 0.3-0.4% and 2.2% have a stranger nearest (bench/results/left_alone.md); loosened from ~0.43
to ~0.40, its gap to the best peer went from -0.040 to -0.018 (bench/results/third_models.md).

Where every face's nearest similarity shows two modes (albums, first imports), the lower one's share reads how many
faces have a stranger nearest (within 0.02 on 72% of bench-left-alone's sets), but the cut is not moved to it: a lower
mode of a person's poorer photos reads the same, and a cut tightened to it splits them off (synthetic dense sets with a
tenth of the photos noisier: F 0.95 -> 0.92, 0.89 -> 0.82).
"""

from __future__ import annotations

import numpy as np

from facekit.embedding.base import fisher_z

# Ashman's D under this: one mode, a peak with a wide skirt around the same centre, as a dense set's nearest
# similarities show (0.2-1.2 on bench-left-alone's held-out shapes; a single Gaussian's sample reads ~1.5, people with
# 2-9 photos 1.2-1.8, albums and first imports 2.2-5.9). The calibration's MIN_SEPARATION_WEAK.
ONE_MODE = 1.0
DENSE = 0.1  # one mode is read as everyone's own person where the cut leaves under this share of the faces alone
LEFT_ALONE = 0.02  # the share of the faces a cut into one mode may leave alone
MIN_NEAREST_FACES = 200  # fewer faces' nearest similarities say nothing


def nearest_modes(nearest: np.ndarray) -> tuple[float, float]:
    """Two Gaussian modes of the Fisher transforms of `nearest`: how far apart (Ashman's D), and the share of the values
    in the lower one."""
    from sklearn.mixture import GaussianMixture

    z = fisher_z(nearest).astype(np.float64)[:, None]
    mixture = GaussianMixture(2, random_state=0, n_init=3).fit(z)
    means, variances = mixture.means_.ravel(), mixture.covariances_.ravel()
    separation = float(np.sqrt(2) * abs(means[1] - means[0]) / np.sqrt(variances.sum()))
    return separation, float(np.mean(mixture.predict(z) == np.argmin(means)))


def loosened_cut(nearest: np.ndarray, cut: float) -> tuple[float, float | None]:
    """`cut`, loosened to leave `LEFT_ALONE` of the faces alone where every face's nearest similarity (`nearest`, copies
    of one photo left out) shows one mode (`nearest_modes` under `ONE_MODE` apart) and `cut` leaves more than that but
    under `DENSE` of them alone (their nearest below it); and the modes' separation where it was read (None where the
    cut leaves too few or too many alone). Copies of a photo less alike than `COPY_SIMILARITY` make a mode of their
    own, and nothing moves."""
    if len(nearest) < MIN_NEAREST_FACES or not LEFT_ALONE < np.mean(nearest < cut) < DENSE:
        return cut, None
    separation, _ = nearest_modes(nearest)
    return (float(np.quantile(nearest, LEFT_ALONE)) if separation < ONE_MODE else cut), separation
