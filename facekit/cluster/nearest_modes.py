"""Every face's nearest similarity moves the cut: loosened into one mode, tightened to the lower of two.

A cut leaves a face alone where its nearest neighbour is below it, and a face is best left alone where its nearest is
a stranger. Where nearly every face has its own person nearest (everyone has many photos), every face's nearest
similarity shows one mode, and a cut that leaves a few of the faces alone (under `DENSE`) has cut into that mode's lower
tail: a person's poorer photos, whose nearest is still their own person. The cut is loosened to leave `LEFT_ALONE` of
them alone (at least `MIN_LEFT_ALONE_FACES`), or `LEFT_ALONE_NEAR_STRANGERS` where the mixture found the strangers'
mode near the same person's. Where it leaves many alone in one mode (no one twice, or a first import of a model whose
strangers spread as widely as one person's photos), the mode is strangers, and nothing is moved.

MobileFace's held-out shape (people with >= 15 photos, 22 each): the mixture's cut left 4.5% of the faces alone where
the best swept cut leaves 0.3-0.4% and 2.2% have a stranger nearest (bench/results/left_alone.md); loosened from ~0.43
to ~0.40 (2% alone), its gap to the best peer went from -0.040 to -0.018, and to ~0.35 (0.5%) to +0.010
(median of 8 draws, bench/results/third_models.md).

Where every face's nearest similarity shows two modes clearly apart (albums, first imports: Ashman's D at least
`TWO_MODES`), the lower one's share reads how many faces have a stranger nearest (within 0.02 on 72% of
bench-left-alone's sets). A cut that leaves fewer than that share (less `SHARE_SLACK`) alone links strangers, and is
tightened to it. A lower mode of a person's poorer photos reads the same, and a cut tightened to it splits them off
(synthetic dense sets with a tenth or a fifth of the photos noisier: F 0.95 -> 0.92, 0.89 -> 0.82); but their
nearest two neighbours are both their own person, and so linked to each other, where a stranger's nearest two are
mostly strangers to each other too. Where at least `BESIDE_A_GROUP` of the faces the tighter cut would leave alone
have their nearest two linked (0.53-0.98 on those synthetic sets, 0.03-0.28 on the 68 of bench-left-alone's sets with
two modes), the cut stays. So it does where the link's mixture finds under a quarter of that share of the faces alone
(`ALONE_AGREES`): in a dense set, near-copies of one shot above the rest of a person's photos make the two modes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from facekit.cluster.knn import KnnGraph
from facekit.embedding.base import fisher_z

# Ashman's D under this: one mode, a peak with a wide skirt around the same centre, as a dense set's nearest
# similarities show (0.2-1.2 on bench-left-alone's held-out shapes; a single Gaussian's sample reads ~1.5, people with
# 2-9 photos 1.2-1.8, albums and first imports 2.2-5.9). The calibration's MIN_SEPARATION_WEAK.
ONE_MODE = 1.0
DENSE = 0.1  # one mode is read as everyone's own person where the cut leaves under this share of the faces alone
# The share of the faces a cut into one mode may leave alone: the best swept cut of bench-left-alone's dense sets (one
# mode) leaves 0.1-0.7% of their faces alone, on seven spaces (dlib, MobileFaceNet, four made from them, MobileFace).
LEFT_ALONE = 0.005
# The same where the link's mixture found the strangers' mode near the same person's (Ashman's D under the calibration's
# MIN_SEPARATION): their nearest strangers are as close as a person's poorer photos, and a looser cut links them. HSE
# FaceRes's dense sets (D 1.1-1.8) are best cut leaving 1.5-4% alone, and lose 0.01-0.02 F loosened to leave 0.5%.
LEFT_ALONE_NEAR_STRANGERS = 0.02
# And at least this many faces: a count of k faces left alone is good to about sqrt(k), a third of k from 9. Fewer,
# and a stray or two set the cut: bench-detection's 433 turned crops (the dlib model), loosened to leave 0.5% (2
# faces), fell from F 0.966-0.970 to 0.70-0.92 (scratch: 0.957-0.970 leaving 9, 2.1%).
MIN_LEFT_ALONE_FACES = 9
MIN_NEAREST_FACES = 200  # fewer faces' nearest similarities say nothing
# Ashman's D at or over this: two modes clearly apart, whose lower one's share reads the faces with a stranger nearest
# (albums and first imports 2.2-5.9 on bench-left-alone's sets, the held-out shapes 0.2-1.2; from 2.0, sets of weak
# models whose lower mode is a third their own person were tightened too far in the bench's emulation). In the pass
# (scratch, the 148 stored sets), 2.25 tightens 5 sets more: HSE FaceRes's album draw 5 (D 2.45: 0.878 -> 0.946) and
# first import draw 2 (+0.051), but its first imports 5 and 7 -0.047 and -0.104 and MobileFace's first import 1 -0.004;
# 2.0 costs dlib cut to 16 principal components' all of LFW too (0.790 -> 0.743).
TWO_MODES = 2.5
SHARE_SLACK = 0.02  # a cut leaving that share of the faces alone, less this, is tightened (the reading's error)
BESIDE_A_GROUP = 0.5  # a lower mode whose faces mostly have their nearest two linked is a person's poorer photos
# The link's mixture reads how many faces have a stranger nearest too (`LinkThreshold.alone`). Where it reads under
# this share of the lower mode's, the two readings disagree: the lower mode is a person's photos under near-copies of
# one shot (a burst, a photo session) that their nearest sit among, not faces with a stranger nearest. MobileFace, 5
# of LFW's people with 50 photos each: the 100 nearest read 1% alone, every face's nearest showed two modes with about
# half in the lower one, and the cut tightened from 0.364 to 0.718 (F 0.99 -> 0.13, bench/results/dense_sets.md).
# The mixture reads low where strangers are as alike as a person's photos, the albums tightening is for (the tests'
# synthetic album: 0.37 where 0.71 are seen once, 0.32 with a tenth of its photos copied), so a quarter, not a half.
ALONE_AGREES = 0.25
MAX_FITTED = 50_000  # nearest similarities the modes are fitted on (a seeded sample beyond this)
MAX_FACES_READ = 2_000  # faces whose nearest two are read (a seeded sample beyond this)


class NearestModes(NamedTuple):
    """Two Gaussian modes of the Fisher transforms of every face's nearest similarity."""

    separation: float  # Ashman's D
    lower_share: float  # the share of the values in the lower mode
    upper_mean: float  # the upper mode's mean, in Fisher z


def nearest_modes(nearest: np.ndarray) -> NearestModes:
    """Two Gaussian modes of the Fisher transforms of `nearest` (fitted on a seeded sample of `MAX_FITTED` beyond
    that): how far apart, the share of the values in the lower one, and the upper one's mean."""
    from sklearn.mixture import GaussianMixture

    z = fisher_z(nearest).astype(np.float64)[:, None]
    fitted = z if len(z) <= MAX_FITTED else np.random.default_rng(0).choice(z, MAX_FITTED, replace=False)
    mixture = GaussianMixture(2, random_state=0, n_init=3).fit(fitted)
    means, variances = mixture.means_.ravel(), mixture.covariances_.ravel()
    separation = float(np.sqrt(2) * abs(means[1] - means[0]) / np.sqrt(variances.sum()))
    return NearestModes(separation, float(np.mean(mixture.predict(z) == np.argmin(means))), float(means.max()))


def without_copies(nearest: np.ndarray, copies: float) -> tuple[np.ndarray, NearestModes]:
    """`nearest` without the values at or above `copies` (a copy of the face's photo nearest) where they take the upper
    of its two modes (that mode's mean above `copies`), and the two modes of the values kept. A tenth of LFW's photos
    re-saved did (their nearest at cosine 0.999), and a cut tightened to the lower mode, all the rest, linked only
    copies (F 0.945 -> 0.609). The few pairs of nearly one photo that a dense set holds take none, and left out they
    would cut the top off its one mode (MobileFace's held-out shape: 2-3% of the faces, Ashman's D 0.7 -> 1.7)."""
    modes = nearest_modes(nearest)
    if modes.upper_mean <= fisher_z(np.float64(copies)):
        return nearest, modes
    kept = nearest[nearest < copies]
    return kept, nearest_modes(kept)


def loosened_cut(
    nearest: np.ndarray, cut: float, modes: NearestModes, left_alone: float = LEFT_ALONE
) -> tuple[float, float | None]:
    """`cut`, loosened to leave `left_alone` of the faces alone (at least `MIN_LEFT_ALONE_FACES` of them) where
    every face's nearest similarity (`nearest`, copies of one photo left out, and its `modes`) shows one mode (under
    `ONE_MODE` apart) and `cut` leaves more than that but under `DENSE` of them alone (their nearest below it); and the
    modes' separation where it was read (None where the cut leaves too few or too many alone). Copies of a photo less
    alike than `COPY_SIMILARITY` make a mode of their own, and nothing moves."""
    left_alone = max(left_alone, MIN_LEFT_ALONE_FACES / max(len(nearest), 1))
    if len(nearest) < MIN_NEAREST_FACES or not left_alone < np.mean(nearest < cut) < DENSE:
        return cut, None
    return (float(np.quantile(nearest, left_alone)) if modes.separation < ONE_MODE else cut), modes.separation


def tightened_cut(
    graph: KnnGraph, nearest: np.ndarray, cut: float, modes: NearestModes, read_alone: float
) -> tuple[float, float | None, float | None]:
    """`cut`, tightened to leave the lower mode's share (less `SHARE_SLACK`) of the faces alone where every face's
    nearest similarity (`nearest`, copies of one photo left out, and its `modes`) shows two modes at least `TWO_MODES`
    apart and `cut` leaves fewer alone, unless the link's own reading of the faces with a stranger nearest
    (`read_alone`) is under `ALONE_AGREES` of that share, or at least `BESIDE_A_GROUP` of the faces the tighter cut
    leaves alone (in `graph`) have their nearest two linked to each other; with the modes' separation where read, and
    that share where read."""
    if len(nearest) < MIN_NEAREST_FACES:
        return cut, None, None
    if modes.separation < TWO_MODES or np.mean(nearest < cut) >= modes.lower_share - SHARE_SLACK:
        return cut, modes.separation, None
    if read_alone < ALONE_AGREES * (modes.lower_share - SHARE_SLACK):
        return cut, modes.separation, None
    tighter = float(np.quantile(nearest, modes.lower_share - SHARE_SLACK))
    alone = np.flatnonzero(graph.sims[:, 0] < tighter)
    if len(alone) > MAX_FACES_READ:
        alone = np.sort(np.random.default_rng(0).choice(alone, MAX_FACES_READ, replace=False))
    beside = nearest_two_linked(graph, alone, tighter)
    return (cut if beside >= BESIDE_A_GROUP else tighter), modes.separation, beside


def nearest_two_linked(graph: KnnGraph, faces: np.ndarray, threshold: float) -> float:
    """The share of `faces` whose nearest two neighbours in `graph` are linked to each other (one among the other's
    neighbours at `threshold` or above). `graph` holds every face's neighbours (`graph.indices` are its rows)."""
    first, second = graph.indices[faces, 0], graph.indices[faces, 1]
    found = (first >= 0) & (second >= 0)
    first, second = first[found], second[found]
    return float(np.mean(graph.linked(first, second, threshold))) if len(first) else 0.0
