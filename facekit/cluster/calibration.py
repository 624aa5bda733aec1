"""The cosine at which unknown faces are linked, read off the data when no measured value applies.

A face's nearest neighbours in a collection are a mix of the same person (a high, wide mode of
similarities) and look-alike strangers (a lower, tight one). A two-component Gaussian mixture on the
Fisher-transformed similarities of each face's 10 nearest neighbours separates them without labels and
without a per-model table: a space whose similarities are shifted or rescaled moves both modes, and the cut
moves with them. Where everyone has many photos the 10 nearest are all the same person (no stranger mode
there), and the mixture reads the 30 nearest instead; where a few people have hundreds of photos even those are,
and a seeded sample of faces is read 100, then 300 deep among all of them (`sampled_neighbours`). The strangers' mode
must be a tight peak (`MAX_STRANGER_SPREAD`); a last resort, for a model with no measured value, cuts the deepest read
whatever its width (`LAST_RESORT_DEPTH`). A cut's links must close as one person's photos do (`link_closure`): where no
one appears twice each face's nearest few still stand above the rest, and a cut between them links strangers. Reading
deeper adds strangers, not a person's photos: a doubtful read of all the others whose same-person mode lies under a
shallower read's cut has split strangers by kind, and the shallower read stands (`_same_person_kept`); a clean read
whose cut lies over a deeper clean read's same-person mode, finding far more faces alone, has split one person's photos
(near-copies of one shot above the rest), and the deeper read stands (`_one_person_not_split`).

The cut sits between the two modes where its distance above the strangers' mode, in their standard deviations,
is `ratio` times its distance below the same-person mode, in theirs. A stranger link costs more the likelier it
is to decide a face's group: a face with no one like it nearby (its nearest neighbour a stranger, a share `alone`
of the faces) goes wherever its stranger link points, while a face with ~`own` links to its own person goes where
most of its links point (Chinese Whispers' vote). So the ratio grows with that chance, alone + (1 - alone) / own,
both read off the same mixture: `ratio` = 2 + 3 x chance. All of LFW (a third of the people seen once): chance
0.37, ratio 3.1; a dense set (~20 own links a face): 0.05, 2.15. That ratio leaves room for the strangers' upper tail,
which a Gaussian fitted to a tight peak misses; a clean read of look-alikes whose strangers' mode is over half as wide
as the same person's holds that tail already, and its ratio shrinks (`TAIL_SPREAD`). The estimated pairwise precision
is the same-person mode's mean posterior over the edges kept, read off two Student t modes rather than the Gaussians
(`TAIL_DF`): a Gaussian's stranger tail falls off far faster than the strangers' real one.

Read in standard deviations, the rule does not depend on how far apart a model puts the modes or how wide it
makes them. On LFW's sets without dense people (all of LFW, people with 2-9 photos) the best cut of facekit's
clusterer sits at a ratio of 2.8-3.4 for both dlib and MobileFaceNet; on dense sets anywhere from 1 to 2.9, with
flat optima. The posterior odds this replaces (99:1 times the chance) cut MobileFaceNet's LFW at a ratio of 2.3
and dlib's people with 2-9 photos at 6.5: the Gaussian's stranger tail falls off far faster than the strangers'
real one (on LFW, MobileFaceNet, ~800 stranger edges above the old cut where the mixture expects 9), so its
posterior said little about where strangers stop.

On LFW's main faces this lands at cosine 0.9471 for dlib (facekit's measured prior 0.945) and 0.635 for
MobileFaceNet (prior 0.64) (bench/results/clustering.md). On LFW crops cut to the inner 85% of the face box
(MobileFaceNet, bench/results/detection.md) it lands at 0.593, F 0.9777; the last sweep of those crops put the best
cut at 0.55 (F 0.9808).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from facekit.cluster.knn import KnnGraph, exact_knn_graph
from facekit.cluster.nearest_modes import (
    LEFT_ALONE,
    LEFT_ALONE_NEAR_STRANGERS,
    MIN_NEAREST_FACES,
    loosened_cut,
    tightened_cut,
    without_copies,
)
from facekit.embedding.base import fisher_z

MIN_EDGES = 200
MAX_EDGES = 200_000  # a seeded sample of the edges beyond this (the mixture needs no more)
# Ashman's D >= 2: the usual bar for two cleanly separated modes. LFW: dlib 2.4, MobileFaceNet 3.2;
# random vectors (no one twice) 1.8.
MIN_SEPARATION = 2.0
# With the same-person mode anchored by hand-labeled pairs, the labels show where it is: a weaker separation
# will do (LFW dlib faces of people with < 10 photos: D = 1.9).
MIN_SEPARATION_ANCHORED = 1.0
# Where no neighbourhood shows two clean modes and nothing better is known (no labels, no measured value for the
# model), a cut between two weakly separated modes still beats a fixed constant: a weak model's faces of people with
# few photos look like faces no one appears in twice (both D ~1.8), and where that model's strangers sit at cosine
# ~0.75 a generic 0.5 links everyone (bench/results/spaces.md: dlib cut to 16 principal components, people with 2-9
# photos). Below D = 1 the means are closer than the modes are wide, and a cut between them says nothing.
MIN_SEPARATION_WEAK = 1.0
# Look-alike strangers among a face's nearest neighbours form a tight peak; the same person's photos spread
# widely (pose, age, light). Fisher-z standard deviation of the lower mode over the upper one: 0.2-0.3 on LFW
# (dlib, MobileFaceNet), 0.45-0.57 in the tests' synthetic spaces. Where it is 0.8 or more, both modes are one
# person's photos (near-duplicates above, the rest below) and a cut between them splits people: MobileFaceNet
# on LFW's people with >= 5 photos cut at 0.87 (ratio 1.06), BCubed F 0.25. A wider bar (0.8) where no read shows
# two clean modes reads HSE FaceRes's first imports' 10 nearest (draws 0 and 2, 0.72 and 0.79 wide: +0.049, +0.054)
# where their 30 nearest cut too low, but also its held-out shape's 30 nearest, one person's photos in both modes (all 8
# draws -0.07 to -0.11), and its albums' 10 nearest (-0.019, -0.024); 0.9 costs more (-2.8 summed over the 148 stored
# sets and LFW's 8; no other set moves). Asked only of reads that find at least a fifth of the faces alone (a lower
# mode of one person's poorer photos is no one's nearest), it keeps the first imports' gain and the albums' loss: one
# model's four sets, no rule.
MAX_STRANGER_SPREAD = 0.7
# The cut's distance above the strangers' mode over its distance below the same-person mode (each in its mode's
# standard deviations): BASE_RATIO where stranger links decide no face's group, and DECISIVE_RATIO more per unit
# of the chance that one does. Fitted on LFW's 14 sets (7 shapes, dlib and MobileFaceNet), where a ratio of 3 is
# within 0.0005 F of the best cut on every set without dense people, for both models. Refitted on 92 other sets (made
# models, new shapes, draws of the held-out shape), they are a grid's best (0.0948 F lost summed over 29 weights; the
# next, (1.5, 4), 0.0955: bench/results/cut_rule.md).
BASE_RATIO = 2.0
DECISIVE_RATIO = 3.0
# The ratio leaves room for the strangers' upper tail, which a Gaussian fitted to their peak misses: look-alikes are the
# top of each face's strangers, skewed up (LFW's people with 2-9 photos, their 10 nearest: strangers' skew +1.1 for
# dlib, +1.4 for MobileFaceNet, 4% of them more than two standard deviations up where a Gaussian puts 2.3%). Where the
# fitted strangers' mode is wide, over TAIL_SPREAD times the same person's, it holds that tail already (a learned
# metric's space, LDA of dlib and MobileFaceNet: skew -0.5, 1.8% past two) and the room is too much: the clean reads of
# look-alikes (at most `LOOK_ALIKE_RANKS` deep) that wide on the stored sets cut best at a ratio of 0.4-1.8 in most
# (bench/results/cut_rule.md, the tails table). So there the ratio shrinks by (TAIL_SPREAD / the width)^TAIL_POWER, to
# no less than MIN_RATIO, the cut as many of each mode's standard deviations from both. A deeper read's strangers are
# not look-alikes, and wide for that (HSE FaceRes's album draw 5, read 100 deep: 0.914 -> 0.820 with the room).
TAIL_SPREAD = 0.5
TAIL_POWER = 4.0
MIN_RATIO = 1.0
# Two sets of faces whose mean similarity is at most this many standard deviations above the strangers' mode
# are no closer than look-alike strangers. On LFW's 14 sets, 0.25 and 0.75 score within 0.0004 of 0.5 on every
# set but one: 0.25 leaves a look-alike in dlib's people with >= 10 photos (0.9799 against 0.9815). At 0 Jeb
# Bush stays in George W Bush's group (MobileFaceNet, all of LFW: 0.2 standard deviations above the mode).
STRANGER_SPREADS = 0.5
# The strangers among each face's nearest this many neighbours at most are its look-alikes: a clean mixture's
# stranger similarity read there is about how alike a face and its nearest stranger are (HSE FaceRes's family albums
# read at 10: 0.69-0.71, where the median face's nearest true stranger is 0.71-0.72). A read further down, where the
# nearest 30 show no strangers' mode, takes in strangers less alike (read at 100: 0.64-0.65 against 0.72), and one
# person's parts are joined down to it only where it reads look-alikes (`LinkThreshold.look_alike_strangers`), else
# down to midway (`ChineseWhispers.one_person_floor`). Of the 148 stored sets 5 clean ones read deeper (3 orders):
# HSE's album draw 5 0.8778 -> 0.9141, draw 6 0.9556 -> 0.9490, dlib cut to 16 principal components' people with >= 10
# photos 0.9208 -> 0.9205; over 5 seeds dlib's people with >= 10 photos 0.9804 -> 0.9796 (bench-clustering). Only the
# first read (10) as look-alikes loses the 30 dense sets read at 30 up to 0.0018 (dlib's held-out draws).
LOOK_ALIKE_RANKS = 30

# Copies of one photo (a file imported twice, re-saved, resized) sit far above the same-person mode: a few percent
# of them widen that mode or take one of their own (bench/results/copies.md: a tenth of LFW's photos imported twice
# moved MobileFaceNet's cut from 0.634 to 0.464, F 0.980 -> 0.703). Pairs at the Fisher transform's clip are copies.
# Re-saved copies are not all exact (JPEG quality 75: dlib's 1% lowest at cosine 0.998, where they had put its cut at
# 0.9995), so the values more than COPY_SPREADS standard deviations above the fitted same-person mode (a Gaussian
# puts 3e-5 of its mass there) are left out too, and the mixture fitted again until none is (at most MAX_REFITS
# times). Copies re-saved at high quality can take a mode of their own that widens the same-person one enough to hide
# in it, or that the two-mode fit makes its upper mode: a tenth of LFW's photos re-saved at JPEG quality 95 (cosine
# 0.99 at their 1%) left MobileFaceNet's 10 nearest neighbours with no two clean modes, and the 30 nearest cut at
# 0.596 where the clean collection's cut is 0.635 (F 0.9705 against 0.9797). So the top mode of a three-Gaussian
# mixture is left out first where the mixture of the rest shows two modes and puts all of it COPY_SPREADS standard
# deviations above its same-person mode, as a copy is. On LFW's 14 sets (7 shapes, 2 models) no such mode is.
COPY_SIMILARITY = 0.9999
COPY_SPREADS = 4.0
MAX_REFITS = 5


Modes = tuple[tuple[float, float], tuple[float, float]]  # (mean, sd) of the strangers' and the same person's modes


@dataclass(frozen=True)
class LinkThreshold:
    """A link threshold and where it came from: `method` is "argument", "setting", "model prior", "kNN similarity
    mixture" (with " + labels" where hand labels anchored it, ", weakly separated" where its modes were not cleanly
    apart, ", wide strangers' mode" for a last resort, ", loosened into one mode" or ", tightened to two modes" where
    every face's nearest similarity moved it; "kNN similarity mixture, links do not close" where the data's
    only cut linked strangers, and copies of one photo are all it links) or "generic fallback"; `reason` says why, in
    words. `stranger_similarity` (from the mixture only): the similarity up to which faces are no closer than
    look-alike strangers, half a standard deviation above the strangers' mode (`ChineseWhispers` splits off parts of
    a group no closer than that to the rest, and splits chains below midway between it and the threshold). `modes`
    (from the mixture only): the strangers' and the same person's mode, each (mean, standard deviation) of the
    Fisher-transformed similarities; `decisive_chance`: the chance that a stranger link decides a face's group, which
    set the cut's `ratio` between them (`cut_between_modes`), and `alone`: the share of faces whose nearest neighbour
    the mixture reads as a stranger, which the chance is made from. `tail_modes` (from the mixture only): the same
    two modes as Student t (`TAIL_DF`), which `estimated_precision` is read off, and `ranks`: how many nearest
    neighbours of each face they were read from (`linked_precision` reads them on other faces). `closure` (from the
    mixture only): of the pairs of faces its cut links to one face, the share linked to each other (`link_closure`;
    at least `MIN_LINK_CLOSURE` unless the method says the links do not close). `modes_clean` (from the mixture
    only): its modes lie cleanly apart: neither weakly separated nor with a wide strangers' mode."""

    threshold: float
    method: str
    reason: str
    estimated_precision: float | None = None
    stranger_similarity: float | None = None
    modes: Modes | None = None
    decisive_chance: float | None = None
    ratio: float | None = None
    tail_modes: Modes | None = None
    ranks: int | None = None
    closure: float | None = None
    alone: float | None = None
    modes_clean: bool = False

    @property
    def strangers(self) -> dict[str, float | bool | None]:
        """What `ChineseWhispers` reads of the strangers here, as its keyword arguments."""
        return {
            "stranger_similarity": self.stranger_similarity,
            "stranger_mode": self.stranger_mode,
            "look_alike_strangers": self.look_alike_strangers,
        }

    @property
    def look_alike_strangers(self) -> bool:
        """Whether `stranger_similarity` is how alike a face and its nearest look-alike strangers are: the modes lie
        cleanly apart among each face's nearest `LOOK_ALIKE_RANKS` at most."""
        return self.modes_clean and self.ranks is not None and self.ranks <= LOOK_ALIKE_RANKS

    @property
    def stranger_mode(self) -> float | None:
        """The strangers' mode as a cosine similarity (from the mixture only): how alike a face and its nearest
        look-alike strangers typically are."""
        return None if self.modes is None else float(np.tanh(self.modes[0][0]))

    def as_dict(self) -> dict:
        out = asdict(self)
        out["threshold"] = round(self.threshold, 4)
        for name in ("estimated_precision", "stranger_similarity", "decisive_chance", "ratio", "closure", "alone"):
            if out[name] is not None:
                out[name] = round(out[name], 4)
        for name in ("modes", "tail_modes"):
            if out[name] is not None:
                out[name] = [[round(float(v), 4) for v in mode] for mode in out[name]]
        return out


def cut_between_modes(modes: Modes, ratio: float) -> float:
    """The cosine whose Fisher transform sits `ratio` times as many standard deviations above the strangers' mode
    as below the same person's (`modes`: each (mean, standard deviation) in Fisher z, the strangers' first).

    >>> round(cut_between_modes(((0.0, 0.1), (1.0, 0.3)), 3.0), 4)
    0.4621
    """
    (low, low_spread), (high, high_spread) = modes
    return float(np.tanh((low * high_spread + ratio * high * low_spread) / (high_spread + ratio * low_spread)))


def cut_ratio(
    chance: float,
    base: float = BASE_RATIO,
    per_chance: float = DECISIVE_RATIO,
    stranger_spread: float | None = None,
    tail_spread: float | None = None,
    tail_power: float | None = None,
) -> float:
    """The cut's ratio between the modes for a chance `chance` that a stranger link decides a face's group (`base` and
    `per_chance`: the rule's constants, facekit's by default), less where a clean read's strangers' mode is wide:
    `stranger_spread`, its standard deviation over the same person's, beyond `tail_spread` (None: not asked), by
    (`tail_spread` / `stranger_spread`)^`tail_power` (`TAIL_SPREAD` and `TAIL_POWER` by default).

    >>> cut_ratio(0.4), round(cut_ratio(0.4, stranger_spread=0.6), 3), cut_ratio(0.4, stranger_spread=0.7)
    (3.2, 1.543, 1.0)
    """
    ratio = base + per_chance * chance
    tail_spread = TAIL_SPREAD if tail_spread is None else tail_spread
    if stranger_spread is None or stranger_spread <= tail_spread:
        return ratio
    power = TAIL_POWER if tail_power is None else tail_power
    return max(min(MIN_RATIO, ratio), ratio * (tail_spread / stranger_spread) ** power)


def calibrate_link_threshold(
    graph: KnnGraph,
    *,
    ranks: tuple[int, ...] = (10, 30, 100, 300),
    same: np.ndarray | None = None,
    different: np.ndarray | None = None,
    deeper: Callable[[int], KnnGraph] | None = None,
    min_separation: float = MIN_SEPARATION,
) -> LinkThreshold | None:
    """The mixture's cut on the similarities of each face's nearest `ranks[0]` neighbours, else of more
    (`ranks[1:]`): in a collection where everyone has many photos, the closest neighbours are all the same
    person and strangers only show further down. Ranks beyond `graph`'s are read from `deeper(max(ranks))`
    (`sampled_neighbours`: a sample of faces, read that far down) when given. None when no neighbourhood shows
    two modes to separate, at least `min_separation` apart (Ashman's D; `MIN_SEPARATION_WEAK` for a last resort),
    whose cut's links close (`MIN_LINK_CLOSURE`); for a last resort whose only cuts' links do not, a link of copies of
    one photo only.

    `same` and `different`: similarities of neighbour pairs known to be one person (both labeled by hand
    as them) or two (labeled as two people, or two faces of one photo), found among the same collection's
    nearest neighbours. Where the neighbourhoods show no two modes without them, and there are at least
    `MIN_LABELED_PAIRS` of a kind, their mode is anchored by them: their responsibilities are fixed in the mixture's
    EM and the unlabeled edges only fill in. Where the data gives a cut by itself they only check it (the reason
    says how many fall on each side): both are biased samples of their mode. Same-person pairs are among the few
    photos a user labeled of each person (often the people with most photos), further down each other's neighbours
    than the person's closest photos, so they widen the same-person mode (LFW, MobileFaceNet, 3 labels a person,
    under the posterior-odds cut this module used before: 0.6091 -> 0.6067, F of the never-labeled faces 0.9766 ->
    0.9757). Different-person pairs are the look-alikes among labeled faces' nearest neighbours, the strangers'
    mode's top (LFW, dlib, 8 labels for each person with >= 10 photos: 0.9466 -> 0.9454, that F 0.9427 -> 0.9421).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> same, other = rng.normal(0.8, 0.05, (300, 5)), rng.normal(0.3, 0.03, (300, 5))
    >>> sims = np.sort(np.hstack([same, other]), axis=1)[:, ::-1]
    >>> g = KnnGraph(indices=np.zeros(sims.shape, int), sims=sims)
    >>> 0.35 < calibrate_link_threshold(g).threshold < 0.7
    True
    """
    deep = functools.cache(deeper) if deeper is not None else None
    link = _first_cut(graph, ranks, None, None, deep, min_separation)
    if link is None:
        if _labeled(same, "")[0] is None and _labeled(different, "")[0] is None:
            return None
        link = _first_cut(graph, ranks, same, different, deep, min_separation)
        return None if link is None else _moved_by_nearest_modes(link, graph, deep, max(ranks))
    link = _moved_by_nearest_modes(link, graph, deep, max(ranks))
    checks = []
    if same is not None and len(same):
        above = np.mean(np.asarray(same) >= link.threshold)
        checks.append(f"{above:.0%} of {len(same)} hand-labeled same-person pairs above it")
    if different is not None and len(different):
        below = np.mean(np.asarray(different) < link.threshold)
        checks.append(f"{below:.0%} of {len(different)} known different-person pairs below it")
    if checks:
        link = replace(link, reason=f"{link.reason}; {' and '.join(checks)} (not needed to find it)")
    return link


def _first_cut(
    graph: KnnGraph,
    ranks: tuple[int, ...],
    same: np.ndarray | None,
    different: np.ndarray | None,
    deeper: Callable[[int], KnnGraph] | None,
    min_separation: float,
) -> LinkThreshold | None:
    """The mixture's cut at the first of `ranks` whose neighbours show two modes (`calibrate_link_threshold`) and
    whose links close (`link_closure`, on `graph`: every face's nearest). As a last resort (`min_separation` at most
    `MIN_SEPARATION_WEAK`), where no rank shows a tight strangers' mode, the deepest neighbourhood read, if at least
    `LAST_RESORT_DEPTH` deep, is cut whatever its lower mode's width. A cut whose links do not close is none (a deeper
    read's lower cut would link strangers more, till its links close by linking everyone): as a last resort, only
    copies of one photo are linked then (`_no_one_twice`). A cut of two clean modes in a read of all the others that
    finds under `ALONE_KEPT` times as many faces alone as a shallower read's weakly separated modes is none too. A weak
    pass's read of all the others whose modes are not clean gives way to a shallower read where its same-person mode
    lies under that read's cut (`_same_person_kept`), and a clean read to a deeper one that shows it read one person's
    photos as two modes (`_one_person_not_split`)."""
    nearest, sampled, deepest, link = graph, False, None, None
    weak = min_separation <= MIN_SEPARATION_WEAK
    shallower = []  # (graph, ranks, sampled) of each read that showed no cut
    for count in ranks:
        if count > graph.sims.shape[1] and deeper is not None:
            graph, deeper, sampled = deeper(max(ranks)), None, True
        deepest = (graph, _read_depth(graph, count), sampled)
        link = _mixture_cut(graph, count, same, different, min_separation, sampled)
        if link is not None or (count >= graph.sims.shape[1] and deeper is None):
            break
        shallower.append((graph, count, sampled))
    whole = deepest is not None and deepest[1] < count  # the last read was of all the others
    if link is not None and not weak and whole:
        splits = [_mixture_cut(g, c, same, different, MIN_SEPARATION_WEAK, s) for g, c, s in shallower]
        if (link.alone or 0.0) < ALONE_KEPT * max((r.alone or 0.0 for r in splits if r is not None), default=0.0):
            return None  # its same-person mode took in a kind of strangers: the weakly separated shallower read decides
    if link is not None and link.modes_clean and not whole:
        later = [c for c in ranks if c > count]
        link = _one_person_not_split(link, nearest, graph, later, deeper, max(ranks), same, different, sampled)
    if link is None and deepest is not None and deepest[1] >= LAST_RESORT_DEPTH and weak:
        graph, count, sampled = deepest
        link = _mixture_cut(graph, count, same, different, min_separation, sampled, max_stranger_spread=None)
    if link is None:
        return None
    if whole and not link.modes_clean:  # a doubtful read of all the others (a weak pass's)
        link = _same_person_kept(link, shallower, same, different)
    closure = link_closure(nearest, link.threshold)
    if closure is not None and closure < MIN_LINK_CLOSURE:
        return _no_one_twice(link, closure) if weak else None
    return replace(link, closure=closure)


def _one_person_not_split(
    link: LinkThreshold,
    nearest: KnnGraph,
    graph: KnnGraph,
    later: list[int],
    deeper: Callable[[int], KnnGraph] | None,
    depth: int,
    same: np.ndarray | None,
    different: np.ndarray | None,
    sampled: bool,
) -> LinkThreshold:
    """`link`, a clean read, unless the first deeper read (`later` ranks, from `graph` or `deeper(depth)`; not one of
    all the others) whose modes lie cleanly apart puts the same person under `link`'s cut, finds under `ALONE_KEPT`
    times as many faces alone, and cuts where links close (`link_closure` on `nearest`, every face's nearest): then
    that read's cut.

    Reading deeper adds strangers to a face's neighbours, not photos of its person: the same person's mode stays where
    a shallower read put it, a little lower as the read takes in more of their poorer photos. A shallower read whose
    cut lies over a deeper read's same person, and that finds many faces alone where the deeper read finds few, has
    read one person's photos as two modes: in a dense set each face's nearest are all its own person, and near-copies
    of one shot (a burst, a photo session) sit above the rest. dlib, 10 of LFW's people with 30 photos each (none
    alone): the 10 nearest showed two clean modes at ~0.96 and ~0.98 with 62% of the faces "alone", where the 100
    nearest put the same person at ~0.95 and strangers at ~0.87 with none alone; the 10 nearest's cut 0.974 scored
    F 0.22 (2 of 8 samples; MobileFace's 30 nearest in one, 0.439 against the same person at ~0.42: F 0.92 -> 0.99;
    bench/results/dense_sets.md). Where few people appear twice a deeper read can split the strangers instead, near
    from far, with few faces alone: its links do not close (MobileFaceNet, 2 of bench-small-sets' 30 random draws of
    120-400 of LFW's faces, 100 or 30 deep: cut 0.13 and 0.21, 29-42% of the pairs linked to one face linked to each
    other), and the shallower read stands. A read of all the others is not asked: its same-person mode can be a kind of
    strangers (`ALONE_KEPT`).

    In a collection of more than `DEEP_SAMPLE` faces the deeper read is screened first on a seeded sample of them:
    a read of every face's 30 nearest took 4-5 s on all of LFW, where the split it looks for is rare."""
    if graph.n > DEEP_SAMPLE:
        rows = np.sort(np.random.default_rng(0).choice(graph.n, DEEP_SAMPLE, replace=False))
        sample = KnnGraph(indices=graph.indices[rows], sims=graph.sims[rows])
        screen = _deeper_clean_read(sample, later, deeper, depth, same, different, True)
        if screen is None or not _splits_one_person(link, screen):
            return link
    read = _deeper_clean_read(graph, later, deeper, depth, same, different, sampled)
    if read is None or not _splits_one_person(link, read):
        return link
    closure = link_closure(nearest, read.threshold)
    if closure is None or closure < MIN_LINK_CLOSURE:
        return link
    return replace(
        read,
        reason=f"{read.reason}; the {link.ranks} nearest cut at {link.threshold:.3f}, over this read's same person, "
        f"with {link.alone or 0.0:.0%} of the faces alone: one person's photos in both their modes",
    )


def _deeper_clean_read(
    graph: KnnGraph,
    later: list[int],
    deeper: Callable[[int], KnnGraph] | None,
    depth: int,
    same: np.ndarray | None,
    different: np.ndarray | None,
    sampled: bool,
) -> LinkThreshold | None:
    """The mixture's cut at the first of `later` ranks (from `graph`, then `deeper(depth)`) whose modes lie cleanly
    apart, short of a read of all the others; None where there is none."""
    for count in later:
        if count > graph.sims.shape[1] and deeper is not None:
            graph, deeper, sampled = deeper(depth), None, True
        if _read_depth(graph, count) < count:
            return None  # all the others
        read = _mixture_cut(graph, count, same, different, MIN_SEPARATION, sampled)
        if read is not None and read.modes_clean:
            return read
    return None


def _splits_one_person(link: LinkThreshold, read: LinkThreshold) -> bool:
    """Whether a deeper `read` puts the same person under `link`'s cut and finds under `ALONE_KEPT` times as many
    faces alone (`_one_person_not_split`)."""
    assert read.modes is not None
    same_person = float(np.tanh(read.modes[1][0]))
    return same_person < link.threshold and (read.alone or 0.0) < ALONE_KEPT * (link.alone or 0.0)


def _same_person_kept(
    link: LinkThreshold,
    shallower: list[tuple[KnnGraph, int, bool]],
    same: np.ndarray | None,
    different: np.ndarray | None,
) -> LinkThreshold:
    """`link`, a read of all the others whose modes are not clean (weakly separated or a wide strangers' mode), unless
    its same-person mode lies under the cut of the deepest `shallower` read (each (graph, ranks, sampled)) whose
    similarities show two cleanly separated modes (`MIN_SEPARATION`), whatever the lower one's width, and it finds at
    least `MISSED_ALONE` of the faces fewer alone than that read: then that read's cut.

    Reading deeper adds strangers to a face's neighbours, not photos of its person, so the same-person mode stays where
    a shallower read put it. In a small collection read to all the others, one person's pairs are a few percent of
    those read, and where strangers come in kinds (a model whose features carry age, gender or a shared direction) the
    mixture can split the strangers instead: its upper mode, every face with its own kind, lies under a shallower
    read's cut, and nearly no face is alone. A first import (300 faces: 25 people with 8 photos, 100 seen once) in a
    learned metric's space (LDA of dlib and MobileFaceNet fitted on half of LFW's people, the other half's faces) read
    299 deep put "the same person" at ~0.77 with 1% of the faces alone, where its 100 nearest put them at ~0.96 with 33%
    alone and cut at 0.93: the deep cut 0.73 linked nearly everyone (F 0.14), the 100 nearest's gives 0.95. Where
    one person's near-duplicates sit above a shallower read's cut and the rest below (a dense set), the deeper read
    finds about as few alone as the shallower one, and stands; so it does where the shallower reads' modes are only
    weakly separated, as such splits' often are (HSE FaceRes, 10 people with 30 photos each: its 100 nearest, D 1.56,
    read 6% alone where none are, and their cut 0.70 scored 0.990 where the read of all the others' 0.54 scores 1.0).
    Neither a clean read (`ALONE_KEPT` checks those) nor one of fewer than all the others is checked: where the nearest
    10 split one person's closest photos from the rest they cut above the deeper read's same-person mode and find a
    third of the faces alone, where it rightly finds none (MobileFaceNet's held-out shape, 30 nearest: 0.82 against
    0.76; 2 people with 14 photos each, read 27 deep)."""
    read = None
    for graph, count, sampled in reversed(shallower):
        read = _mixture_cut(graph, count, same, different, MIN_SEPARATION, sampled, max_stranger_spread=None)
        if read is not None:
            break
    if read is None:
        return link
    assert link.modes is not None  # every mixture cut has its two modes
    same_person = float(np.tanh(link.modes[1][0]))
    if same_person >= read.threshold or (read.alone or 0.0) - (link.alone or 0.0) < MISSED_ALONE:
        return link
    return replace(
        read,
        reason=f"{read.reason}; all the others ({link.ranks} nearest) put the same person at ~{same_person:.2f}, under "
        f"this cut, with {link.alone or 0.0:.0%} of the faces alone: a kind of strangers, not one person's photos",
    )


def _moved_by_nearest_modes(
    link: LinkThreshold, graph: KnnGraph, deep: Callable[[int], KnnGraph] | None, depth: int
) -> LinkThreshold:
    """`link`, its cut loosened where it cuts into the one mode of every face's nearest similarity in `graph`
    (`loosened_cut`) or tightened to leave the lower of two modes alone (`tightened_cut`), unless its links do not
    close at the new cut (`link_closure`); the estimated precision read again there (on `deep(depth)` where the link
    read deeper than `graph`). Faces whose nearest is a copy of their photo (`COPY_SPREADS` standard deviations above
    the same-person mode, as the mixture leaves copies out) are left out where they take a mode of their own
    (`without_copies`). A cut is loosened less where the mixture's strangers' mode is near the same person's (under
    `MIN_SEPARATION` apart: `LEFT_ALONE_NEAR_STRANGERS`)."""
    if link.modes is None or link.threshold >= COPY_SIMILARITY:
        return link
    same, spread = link.modes[1]
    nearest = graph.sims[:, 0]
    nearest = nearest[np.isfinite(nearest) & (nearest < COPY_SIMILARITY)]
    if len(nearest) < MIN_NEAREST_FACES:
        return link
    nearest, modes = without_copies(nearest, float(np.tanh(same + COPY_SPREADS * spread)))  # as the mixture does
    before = float(np.mean(nearest < link.threshold))
    apart = modes_separation(link.modes)
    left_alone = LEFT_ALONE if apart >= MIN_SEPARATION else LEFT_ALONE_NEAR_STRANGERS
    cut, separation = loosened_cut(nearest, link.threshold, modes, left_alone)
    if cut != link.threshold:
        method = "loosened into one mode"
        near = "" if apart >= MIN_SEPARATION else f", {left_alone:.1%} where strangers are this near (D {apart:.2f})"
        why = (
            f"every face's nearest similarity shows one mode (Ashman's D {separation:.2f}), nearly everyone has their "
            f"own person nearest, and the cut left {before:.1%} of the faces alone, a person's poorer photos{near}"
        )
    else:
        cut, separation, beside = tightened_cut(graph, nearest, link.threshold, modes, link.alone or 0.0)
        if cut == link.threshold:
            return link
        method = "tightened to two modes"
        why = (
            f"every face's nearest similarity shows two modes (Ashman's D {separation:.2f}), the cut left {before:.0%} "
            f"of the faces alone where the lower one holds more, and only {beside:.0%} of those it leaves alone have "
            "their nearest two linked to each other, so their nearest are strangers"
        )
    closure = link_closure(graph, cut)
    if closure is None or closure < MIN_LINK_CLOSURE:
        return link
    reads = graph if link.ranks is None or link.ranks <= graph.sims.shape[1] or deep is None else deep(depth)
    return replace(
        link,
        threshold=cut,
        method=f"{link.method}, {method}",
        reason=f"{link.reason}; {method.split()[0]} from {link.threshold:.3f} to {cut:.3f}: {why}; it leaves "
        f"{float(np.mean(nearest < cut)):.1%}",
        estimated_precision=linked_precision(reads, link, cut),
        closure=closure,
    )


# One person's photos link to each other: where a face links to two others and all three are one person, those two
# are linked too. Strangers who happen to be a face's nearest are not: in a collection where no one appears twice, the
# 10 nearest neighbours' similarities still show two modes (each face's nearest few above the rest), and a cut between
# them links strangers. Of the pairs of faces that cut links to one face, 6-24% are linked to each other where no one
# appears twice (LFW's people seen once, 25 to 3,000 of them: dlib, MobileFaceNet, MobileFace; 23-43% for dlib cut to
# 16 principal components), and 55-99% on the 148 sets of bench-spaces, bench-samples and bench-third-models (the
# lowest, 0.547 and 0.549, weak models' faces of people with 2-9 photos). HSE FaceRes's strangers close like people
# (41-70%): its shared direction makes faces that share it much alike to each other. A cut that links nearly everyone
# closes too, so a failed cut ends the search rather than a deeper read's lower one.
MIN_LINK_CLOSURE = 0.5
# Whether a face's nearest neighbour is a stranger does not depend on how deep its neighbours are read. A read of all
# the others (a collection smaller than the read) that finds under this share of the faces alone that a shallower read's
# weakly separated modes found has taken a kind of strangers into its same-person mode: 2 of HSE FaceRes's 8 first
# imports (300 faces of 125 people) showed two clean modes at cosine ~0.36 and ~0.56, both strangers (its features
# carry age and gender), with 0% of the faces alone and ~120 links each to their "own person", where the 10 or 30
# nearest found 14-37% alone: the cut linked nearly everyone (F 0.10). Only a read of the whole collection is checked:
# in a large one a dense set's 10 nearest split one person's closest photos from the rest and read 34-40% alone where
# the 30 nearest rightly read none (dlib's held-out draws 3 and 4 would fall from 0.981 to 0.53). A half is a round
# value, not a fitted one (bench/results/third_models.md).
ALONE_KEPT = 0.5
# A read of all the others gives way to a shallower read whose cut lies over its same-person mode only where it also
# finds at least this share of the faces fewer alone (`_same_person_kept`): a share it misses is linked to strangers.
# A shallower read's own reading of that share runs up to 0.12 over the truth on the 148 stored sets (bench-left-alone)
# and did so where it split HSE FaceRes's dense sets (5 or 10 people with 30-50 photos each, none alone: 0.06-0.10 read
# where the read of all the others read 0-0.02, and 0.05 took their cut from 0.73 to 0.82, F 0.992 -> 0.872); a first
# import's strangers split by kind miss a third of its faces (0.33 against 0.01).
MISSED_ALONE = 0.15
CLOSURE_LINKS = 10  # each face's links read among its nearest this many
CLOSURE_SAMPLE = 2_000  # faces read (a seeded sample beyond this)
MIN_CLOSURE_FACES = 20  # fewer faces with two links or more say nothing


def link_closure(graph: KnnGraph, threshold: float, links: int = CLOSURE_LINKS) -> float | None:
    """Of the pairs of faces linked to one face among its nearest `links` (similarity at least `threshold`), the share
    linked to each other (one among the other's neighbours in `graph` at that similarity), averaged over a seeded sample
    of `CLOSURE_SAMPLE` faces with two links or more. None where fewer than `MIN_CLOSURE_FACES` faces have two.
    `graph` holds every face's neighbours (`graph.indices` are its rows)."""
    found = graph.indices >= 0
    linked = found & (graph.sims >= threshold)
    kept = linked[:, :links]
    faces = np.flatnonzero(kept.sum(axis=1) >= 2)
    if len(faces) < MIN_CLOSURE_FACES:
        return None
    if len(faces) > CLOSURE_SAMPLE:
        faces = np.sort(np.random.default_rng(0).choice(faces, CLOSURE_SAMPLE, replace=False))
    pairs, closed = np.zeros(len(faces)), np.zeros(len(faces))
    width = kept.shape[1]
    for a in range(width):
        for b in range(a + 1, width):
            both = kept[faces, a] & kept[faces, b]
            j, k = graph.indices[faces[both], a], graph.indices[faces[both], b]
            pairs[both] += 1
            closed[both] += graph.linked(j, k, threshold)
    return float(np.mean(closed / pairs))


def _no_one_twice(link: LinkThreshold, closure: float) -> LinkThreshold:
    """What a pass links where the only cut the data gives (`link`) links faces whose links do not close: copies of
    one photo, and nothing else."""
    assert link.modes is not None  # every mixture cut has its two modes
    (strangers, _), (same, _) = link.modes
    return LinkThreshold(
        threshold=COPY_SIMILARITY,
        method="kNN similarity mixture, links do not close",
        reason=f"the cut the data gives ({link.threshold:.3f}, between modes at ~{np.tanh(strangers):.2f} and "
        f"~{np.tanh(same):.2f} in the {link.ranks} nearest neighbours' similarities: {link.method}) links faces whose "
        f"links do not close: of the pairs of faces it links to one face only {closure:.0%} are linked to each other, "
        f"where one person's photos are (at least {MIN_LINK_CLOSURE:.0%}) and strangers who happen to be a face's "
        "nearest are not; no one looks to appear twice, so only copies of one photo are linked (set FACE_UNKNOWN_EPS "
        "if people do)",
        ranks=link.ranks,
        closure=closure,
    )


DEEP_SAMPLE = 1_000  # faces read far down their neighbours when the nearest 30 are all their own person
# A model whose strangers spread as widely as one person's photos shows no tight strangers' peak at any depth (HSE
# FaceRes, a VGGFace2 MobileNet whose features are all positive: strangers at cosine 0.44 +- 0.12; LFW's people with
# >= 10 photos, its lower mode 0.73-0.96 times as wide as the upper one). Where nothing else is known, its deepest
# read, if at least this deep, is cut all the same: that far down most of a face's neighbours are strangers unless
# people have hundreds of photos each. Shallower, both modes can be one person's photos (near-duplicates above).
LAST_RESORT_DEPTH = 100


def _read_depth(graph: KnnGraph, ranks: int) -> int:
    """How deep a read of `ranks` nearest neighbours goes in `graph`: all the others where the collection has fewer."""
    return min(ranks, int(np.isfinite(graph.sims).sum(axis=1).max(initial=0)))


def sampled_neighbours(
    embeddings: np.ndarray, images: np.ndarray | None = None, *, sample: int = DEEP_SAMPLE
) -> Callable[[int], KnnGraph]:
    """`calibrate_link_threshold`'s `deeper`: the k nearest neighbours, among all faces, of a seeded sample of
    `sample` faces, pairs of one photo's faces (`images`) dropped. On LFW's people with >= 20 photos (dlib, 3,016
    faces) the 100 nearest of 1,000 faces cut at 0.931 (F 0.9974) where the model's prior 0.945 gave 0.9945."""

    def neighbours(k: int) -> KnnGraph:
        rows = np.sort(np.random.default_rng(0).choice(len(embeddings), min(sample, len(embeddings)), replace=False))
        graph = exact_knn_graph(embeddings, k, queries=rows)
        if images is not None:
            found = graph.indices >= 0
            graph.sims[found & (images[np.where(found, graph.indices, 0)] == images[rows][:, None])] = -np.inf
        return graph

    return neighbours


def _mixture_cut(
    graph: KnnGraph,
    ranks: int,
    same: np.ndarray | None,
    different: np.ndarray | None,
    min_separation: float,
    sampled: bool = False,
    max_stranger_spread: float | None = MAX_STRANGER_SPREAD,
) -> LinkThreshold | None:
    """The cut of a two-Gaussian mixture on the similarities of each face's `ranks` nearest neighbours (all the others,
    in a collection of fewer faces; `graph`'s faces a `sampled` few of the collection's, or all of them), where its
    modes are at least `min_separation` apart (less where hand-labeled same-person pairs anchor their mode) and its
    lower mode is at most `max_stranger_spread` times as wide as the upper one (None: any width)."""
    depth = _read_depth(graph, ranks)
    s = graph.sims[:, :depth].ravel()
    s = s[np.isfinite(s)]
    exact = s >= COPY_SIMILARITY
    s = s[~exact]  # copies of one photo say nothing of how a person's photos spread
    if len(s) < MIN_EDGES:
        return None
    if len(s) > MAX_EDGES:
        s = np.random.default_rng(0).choice(s, MAX_EDGES, replace=False)
    z, (means, variances, weights) = _mixture_without_copies(fisher_z(s).astype(np.float64))
    copies = 1 - (1 - exact.mean()) * len(z) / len(s)  # the share of the pairs left out as copies
    anchors = [
        _labeled(different, "different-person"),
        _labeled(same, "same-person"),
    ]
    anchored = [name for values, name in anchors if values is not None]
    if anchored:
        means, variances, weights = _anchored_em(z, [values for values, _ in anchors], means, variances, weights)
    clean = MIN_SEPARATION_ANCHORED if anchors[1][0] is not None else MIN_SEPARATION
    if not _two_modes((means, variances, weights), min(clean, min_separation), max_stranger_spread):
        return None
    separation = _separation((means, variances, weights))
    weak = separation < clean
    wide = variances[0] > MAX_STRANGER_SPREAD**2 * variances[1]

    def same_posterior(values: np.ndarray) -> np.ndarray:
        # in logs: far above both modes (a copy of a photo) both densities underflow, and the wider mode wins
        log_density = np.log(weights) - 0.5 * np.log(variances) - (values[:, None] - means) ** 2 / (2 * variances)
        return 1.0 / (1.0 + np.exp(np.clip(log_density[:, 0] - log_density[:, 1], -700, 700)))

    alone, own = _alone_and_own(graph, depth, same_posterior)
    decisive = alone + (1 - alone) / max(own, 1.0)
    spread = np.sqrt(variances)
    modes = ((float(means[0]), float(spread[0])), (float(means[1]), float(spread[1])))
    look_alikes = not weak and not wide and ranks <= LOOK_ALIKE_RANKS  # as `LinkThreshold.look_alike_strangers`
    ratio = cut_ratio(decisive, stranger_spread=modes_width(modes) if look_alikes else None)
    threshold = cut_between_modes(modes, ratio)
    tails = _tail_modes(z, (means, variances, weights))
    precision = _same_person_share(z, tails, threshold)
    how = f", anchored by hand-labeled {' and '.join(anchored)} pairs" if anchored else ""
    if weak:
        how += (
            f", only weakly separated (Ashman's D {separation:.2f}, under the {clean:.1f} a clean cut needs: "
            "a weak model's faces and faces no one appears in twice both look like this; check the groups, or set "
            "FACE_UNKNOWN_EPS)"
        )
    if wide:
        how += (
            f", its lower mode {np.sqrt(variances[0] / variances[1]):.2f} times as wide as the upper one at every "
            f"depth read (a tight strangers' peak is at most {MAX_STRANGER_SPREAD}: a model whose strangers spread "
            "widely, or one person's photos in both modes; check the groups, or set FACE_UNKNOWN_EPS)"
        )
    room = ""
    if ratio < cut_ratio(decisive):
        room = (
            f" (not {cut_ratio(decisive):.2f}: a strangers' mode {modes_width(modes):.2f} times as wide as the same "
            f"person's, over {TAIL_SPREAD}, holds its own upper tail)"
        )
    share = f"{copies:.1%}" if copies >= 0.0005 else "under 0.1%"
    left_out = f", {share} of the pairs left out as copies of one photo" if copies > 0 else ""
    faces = f"a sample of {graph.n} faces" if sampled else f"{graph.n} faces"
    read = f"{ranks} nearest neighbours'" if depth == ranks else f"{depth} nearest neighbours' (all the others)"
    return LinkThreshold(
        threshold=threshold,
        method="kNN similarity mixture"
        + (" + labels" if anchored else "")
        + (", weakly separated" if weak else "")
        + (", wide strangers' mode" if wide else ""),
        reason=f"two modes in the {read} similarities of {faces} "
        f"(same person ~{np.tanh(means[1]):.2f}, strangers ~{np.tanh(means[0]):.2f}){how}{left_out}; "
        f"{alone:.0%} of the faces have a stranger nearest, the rest ~{own:.1f} links to their own person, so a "
        f"stranger link decides a face's group with chance {decisive:.2f}: cut {ratio:.2f} times as many standard "
        f"deviations above the strangers' mode as below the same person's{room}",
        estimated_precision=precision,
        stranger_similarity=float(np.tanh(means[0] + STRANGER_SPREADS * spread[0])),
        modes=modes,
        decisive_chance=float(decisive),
        ratio=float(ratio),
        alone=float(alone),
        tail_modes=tuple((float(m), float(np.sqrt(v))) for m, v in zip(tails[0], tails[1], strict=True)),
        ranks=ranks,
        modes_clean=not weak and not wide,
    )


Mixture = tuple[np.ndarray, np.ndarray, np.ndarray]  # (means, variances, weights), the strangers' mode first

# The share of same-person pairs among the pairs a cut links, as Gaussian modes put it, is far too high: their stranger
# tail falls off faster than the strangers' real one. On 100 sets (LFW's 8, bench-spaces' 20, bench-samples' 72) the
# Gaussians' share of stranger links was a median 6.7 times off the measured one, too low on 84 (LFW, dlib: 0.24% where
# 4.4% are); two Student t modes fitted from them are 1.6 times off, too low on 53 (2.2%; bench/results/
# link_precision.md). 4 degrees of freedom is the usual robust choice (Lange, Little & Taylor 1989); 3 scores alike,
# 10 halfway back to the Gaussians. Fitted by maximum likelihood they come out near-Gaussian (10-30): the likelihood
# is the modes' bulk, the precision their tails. The cut itself stays on the Gaussians its constants were fitted on.
TAIL_DF = 4.0
MAX_TAIL_VALUES = 30_000  # values the t modes are fitted on (a seeded sample beyond this)
TAIL_ITERATIONS = 200


def _t_log_density(z: np.ndarray, mixture: Mixture) -> np.ndarray:
    """Each value's log density under each of `mixture`'s modes as Student t (`TAIL_DF`), weighted, up to a
    constant the modes share: (values, 2)."""
    means, variances, weights = mixture
    distance = (z[:, None] - means) ** 2 / (TAIL_DF * variances)
    return np.log(weights) - 0.5 * np.log(variances) - 0.5 * (TAIL_DF + 1) * np.log1p(distance)


def _tail_modes(z: np.ndarray, gaussians: Mixture) -> Mixture:
    """Two Student t modes (`TAIL_DF`) fitted by EM to `z` (Fisher-transformed similarities; a seeded sample of
    `MAX_TAIL_VALUES` beyond that many), started from the `gaussians`."""
    fit = _tail_sample(z)
    means, variances, weights = (np.asarray(v, dtype=np.float64) for v in gaussians)
    for _ in range(TAIL_ITERATIONS):
        share = _shares(fit, (means, variances, weights))
        pull = (TAIL_DF + 1) / (TAIL_DF + (fit[:, None] - means) ** 2 / variances)  # outliers weigh less
        weights = np.maximum(share.mean(axis=0), 1e-12)
        previous, means = means, (share * pull * fit[:, None]).sum(axis=0) / (share * pull).sum(axis=0)
        variances = np.maximum((share * pull * (fit[:, None] - means) ** 2).sum(axis=0) / share.sum(axis=0), 1e-8)
        if np.abs(means - previous).max() < 1e-7:
            break
    return means, variances, weights


def _tail_sample(z: np.ndarray) -> np.ndarray:
    """`z`, or a seeded sample of `MAX_TAIL_VALUES` of it beyond that many: what t modes and their mix fit on."""
    return z if len(z) <= MAX_TAIL_VALUES else np.random.default_rng(0).choice(z, MAX_TAIL_VALUES, replace=False)


def _shares(z: np.ndarray, mixture: Mixture) -> np.ndarray:
    """Each value's posterior under each of `mixture`'s Student t modes: (values, 2)."""
    log_density = _t_log_density(z, mixture)
    share = np.exp(log_density - log_density.max(axis=1, keepdims=True))
    return share / share.sum(axis=1, keepdims=True)


def _same_person_share(z: np.ndarray, mixture: Mixture, threshold: float) -> float | None:
    """The share of same-person pairs among the values `z` (Fisher-transformed similarities) at or above `threshold`
    (a cosine), as `mixture`'s Student t modes expect it; None when none is kept."""
    kept = z[z >= np.arctanh(threshold)]
    return float(_shares(kept, mixture)[:, 1].mean()) if len(kept) else None


def linked_precision(graph: KnnGraph, link: LinkThreshold, threshold: float | None = None) -> float | None:
    """The share of same-person pairs among the pairs that `threshold` (`link`'s own by default) links among the
    nearest `link.ranks` neighbours of `graph`'s faces, by `link`'s Student t modes with their mix read off those
    faces: the faces a pass links are often not those it calibrated on (once people are labeled, the faces left are
    the harder ones), and the mix of strangers among their neighbours is theirs, while how one person's pairs and
    strangers' pairs spread is the model's: the modes stay the collection's. None where `link` has no t modes, `graph`
    reads fewer ranks than `link` did, or no pair is linked.

    With LFW's people with >= 10 photos assigned (as perfect labels would), the faces left link strangers at a share of
    20.4% (all of LFW, dlib) and 2.0% (MobileFaceNet): the collection's estimate says 2.2% and 0.48%, this one 14.9%
    and 3.5%. In a family album with the family assigned only faces seen once are left, and every link among them is
    wrong: this says 100% (dlib, median of 8 draws), the collection's estimate 0.4% (bench/results/link_precision.md).
    Fitted afresh on the faces left, the two modes took those faces' strangers into the same-person one (the album:
    80-89% precision where none is); with only the same-person mean free to move down, the album's draws read 48-100%
    and dlib's LFW 9.7%. The mix is fitted on a seeded sample of `MAX_TAIL_VALUES` values beyond that many, and the
    share is counted over every value, as the collection's estimate is."""
    if link.tail_modes is None or link.ranks is None or graph.sims.shape[1] < link.ranks:
        return None
    s = graph.sims[:, : link.ranks].ravel()
    z = fisher_z(s[np.isfinite(s) & (s < COPY_SIMILARITY)].astype(np.float64))
    if not len(z):
        return None
    fit = _tail_sample(z)
    means = np.array([mode[0] for mode in link.tail_modes])
    variances = np.array([mode[1] for mode in link.tail_modes]) ** 2
    weights = np.array([0.5, 0.5])
    for _ in range(TAIL_ITERATIONS):  # the mix alone, on the sample: the modes stay the collection's
        previous, weights = weights, np.maximum(_shares(fit, (means, variances, weights)).mean(axis=0), 1e-12)
        if np.abs(weights - previous).max() < 1e-7:
            break
    return _same_person_share(z, (means, variances, weights), link.threshold if threshold is None else threshold)


def _two_modes(
    mixture: Mixture, min_separation: float, max_stranger_spread: float | None = MAX_STRANGER_SPREAD
) -> bool:
    """Whether a mixture shows two modes to cut between: not one skewed mode (faces with no one like them: a
    component under 1% of the values), not two closer than `min_separation` (Ashman's D), and a lower mode that is a
    tight peak of look-alikes, not a second kind of one person's photos (`max_stranger_spread`; None: not asked)."""
    _, variances, weights = mixture
    return (
        min(weights) >= 0.01
        and _separation(mixture) >= min_separation
        and (max_stranger_spread is None or variances[0] <= max_stranger_spread**2 * variances[1])
    )


def modes_separation(modes: Modes) -> float:
    """Ashman's D of two modes, each (mean, standard deviation)."""
    (low, low_spread), (high, high_spread) = modes
    return _separation((np.array([low, high]), np.array([low_spread, high_spread]) ** 2, np.ones(2) / 2))


def modes_width(modes: Modes) -> float:
    """The strangers' mode's standard deviation over the same person's."""
    return modes[0][1] / modes[1][1]


def _separation(mixture: Mixture) -> float:
    """Ashman's D: the distance between the two modes' means over their pooled spread, times sqrt(2)."""
    means, variances, _ = mixture
    return float(np.sqrt(2) * abs(means[1] - means[0]) / np.sqrt(variances.sum()))


def _mixture_without_copies(z: np.ndarray) -> tuple[np.ndarray, Mixture]:
    """A two-Gaussian mixture of `z` (Fisher-transformed similarities) without copies of photos: the values kept,
    and the mixture. Copies are the top mode of a three-Gaussian mixture where the mixture of the other values shows
    two modes and puts all of it more than `COPY_SPREADS` standard deviations above its same-person mode (where the
    top mode is the same person's, the other values are strangers alone: no two modes), and after that the values
    that far above the upper mode (`_mixture_above_copies`)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    with warnings.catch_warnings():  # fewer than 3 distinct values, or no convergence: the checks below decide
        warnings.simplefilter("ignore", ConvergenceWarning)
        three = GaussianMixture(3, random_state=0).fit(z[:, None])
    top = three.predict(z[:, None]) == np.argmax(three.means_.ravel())
    if top.any() and (~top).sum() >= MIN_EDGES:
        rest, mixture = _mixture_above_copies(z[~top])
        means, variances, _ = mixture
        if _two_modes(mixture, MIN_SEPARATION) and z[top].min() > means[1] + COPY_SPREADS * np.sqrt(variances[1]):
            return rest, mixture
    return _mixture_above_copies(z)


def _mixture_above_copies(z: np.ndarray) -> tuple[np.ndarray, Mixture]:
    """A two-Gaussian mixture of `z`, fitted again without the values more than `COPY_SPREADS` standard deviations
    above its upper mode until none is: the values kept, and the mixture."""
    from sklearn.mixture import GaussianMixture

    for _ in range(MAX_REFITS):
        mixture = GaussianMixture(2, random_state=0).fit(z[:, None])
        order = np.argsort(mixture.means_.ravel())
        means, variances = mixture.means_.ravel()[order], mixture.covariances_.ravel()[order]
        copies = z > means[1] + COPY_SPREADS * np.sqrt(variances[1])
        if not copies.any() or len(z) - copies.sum() < MIN_EDGES:
            break
        z = z[~copies]
    return z, (means, variances, mixture.weights_[order])


MAX_FACES_READ = 20_000  # faces whose neighbours are read for `_alone_and_own` (a seeded sample beyond this)


def _alone_and_own(
    graph: KnnGraph, ranks: int, same_posterior: Callable[[np.ndarray], np.ndarray]
) -> tuple[float, float]:
    """The share of faces whose nearest neighbour is a stranger, and how many of its `ranks` nearest are the
    face's own person for the rest, as the mixture's `same_posterior` expects them."""
    sims = graph.sims[:, :ranks]
    rows = np.flatnonzero(np.isfinite(sims).all(axis=1))
    if len(rows) > MAX_FACES_READ:
        rows = np.random.default_rng(0).choice(rows, MAX_FACES_READ, replace=False)
    if len(rows) == 0:
        return 1.0, 1.0
    q = same_posterior(fisher_z(sims[rows].ravel())).reshape(len(rows), ranks)
    alone = float(1 - q[:, 0].mean())
    return alone, float(q.sum(axis=1).mean() / max(1 - alone, 1e-6))


MIN_LABELED_PAIRS = 50


def _labeled(values: np.ndarray | None, name: str) -> tuple[np.ndarray | None, str]:
    """Fisher-transformed labeled similarities, or None when too few to anchor a mode."""
    if values is None:
        return None, name
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values) & (values < COPY_SIMILARITY)]
    return (fisher_z(values) if len(values) >= MIN_LABELED_PAIRS else None), name


def _anchored_em(
    z: np.ndarray,
    labeled: list[np.ndarray | None],
    means: np.ndarray,
    variances: np.ndarray,
    weights: np.ndarray,
    iterations: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for two 1-D Gaussians where labeled values (component 0: different, 1: same) keep their
    component; the mixture weights are those of the unlabeled values alone."""
    fixed = [v for v in labeled if v is not None]
    values = np.concatenate([z, *fixed])
    known = np.concatenate(
        [np.full(len(z), -1.0), *[np.full(len(v), float(c)) for c, v in enumerate(labeled) if v is not None]]
    )
    for _ in range(iterations):
        density = weights * np.exp(-((z[:, None] - means) ** 2) / (2 * variances)) / np.sqrt(variances)
        free = density[:, 1] / np.maximum(density.sum(axis=1), 1e-300)
        r1 = np.where(known < 0, np.r_[free, np.zeros(len(values) - len(z))], known)
        r = np.stack([1 - r1, r1], axis=1)
        totals = r.sum(axis=0)
        means = (r * values[:, None]).sum(axis=0) / totals
        variances = np.maximum((r * (values[:, None] - means) ** 2).sum(axis=0) / totals, 1e-6)
        weights = np.array([1 - free.mean(), free.mean()])
    return means, variances, weights


MAX_LABELED_QUERIES = 2_000  # labeled faces whose neighbours are read (a seeded sample beyond this)


def known_pairs(
    x: np.ndarray, people: np.ndarray, images: np.ndarray, *, ranks: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Similarities of neighbour pairs whose answer is known, at the collection's density: each
    hand-labeled face's `ranks` nearest faces that are labeled too (one person, or two) or in its photo
    (two). `people[i]` is face i's hand-labeled person or None; returns (same, different).

    >>> x = np.array([[1, 0], [0.99, 0.14], [0.98, -0.2], [0, 1]], dtype=np.float32)
    >>> same, different = known_pairs(x, np.array(["a", "a", "b", None], dtype=object), np.arange(4), ranks=1)
    >>> len(same), len(different)
    (2, 1)
    """
    labeled = np.flatnonzero(people != None)  # noqa: E711 (elementwise)
    if len(labeled) > MAX_LABELED_QUERIES:
        labeled = np.sort(np.random.default_rng(0).choice(labeled, MAX_LABELED_QUERIES, replace=False))
    graph = exact_knn_graph(x, ranks, queries=labeled)
    near, sims = np.maximum(graph.indices, 0), graph.sims
    mine, theirs = people[labeled][:, None], people[near]
    found = graph.indices >= 0
    both = found & (theirs != None)  # noqa: E711
    same = sims[both & (theirs == mine)]
    different = sims[(both & (theirs != mine)) | (found & (images[near] == images[labeled][:, None]))]
    return same.astype(np.float32), different.astype(np.float32)
