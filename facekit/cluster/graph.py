"""Clustering on a k-nearest-neighbour graph: connected components and Chinese Whispers.

sklearn-style estimators: `__init__` stores its arguments, `fit(X)` returns self, `labels_` holds one
label per row, -1 for noise (faces in groups smaller than `min_cluster_size`). Rows of X are
L2-normalised embeddings; an edge joins two faces when their cosine similarity is >= `threshold`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import partial

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.stats import theilslopes

from facekit.cluster.knn import KnnGraph, knn_graph
from facekit.cluster.whisper_pass import whisper_pass
from facekit.embedding.base import fisher_z

# Chain splitting's floor below the threshold, as a fraction of the room above it, where no stranger similarity
# is known (fitted on LFW, dlib).
CHAIN_SLACK = 0.09
# A group is split as a chain only where its mean pairwise similarity (Fisher z) is also this many robust standard
# deviations (1.4826 median absolute deviations) below the median of the collection's groups of >= 3 faces: a chain
# of look-alikes is an outlier among a collection's groups, a person whose photos a weak model spreads widely is not.
# On LFW's sets in dlib's space (also with noise, or with MobileFaceNet's joined) the derived floor lies 1.7-3.9 of
# them below the median; in dlib cut to 16 principal components 0.9-1.5, where it split 3-45 one-person groups a set.
# Of 1.5, 2, 2.5 and 3 only 1.5 leaves every LFW set of the 6 other spaces as it was (bench/results/spaces.md); 2
# gains the weak model 0.004 more (summed) and costs them up to 0.0007. The price is some of the hold chain splitting
# has where a cut lands far too low, where chains are many and pull the median down: 0.2 of the room below the cut,
# dlib on poorer photos, all of LFW, 0.9071 -> 0.8607; 1.0 and 1.25 keep more of it and gain the weak model less
# (0.003, 0.018 against 0.026 summed at its cut; README). Below 10 such groups the floor stands.
CHAIN_OUTLIER_SPREADS = 1.5
MIN_GROUPS_COMPARED = 10
# Where the collection's groups spread below the midway floor (a weak model), a group's mean pairwise similarity is
# compared with the groups of its size: it falls with size, as more photos span more poses and years (MobileFace, all
# of LFW: median 0.557 at 3 faces, 0.457 at >= 100), so a floor read off all groups alike split that model's most
# photographed people (George W Bush's 530 photos, 0.408 against a floor of 0.433). The comparison is a Theil-Sen
# line of Fisher z on log size, fitted to at most this many groups (a seeded sample), the same robust spreads below
# it; the floor goes no lower than the strangers' mode: a group less alike than a face and its look-alike strangers
# is no person. Over the 148 stored sets at their cuts (3 orders): summed over the 43 set groups +0.069, 6 better,
# 2 worse (dlib cut to 16 principal components, people with 2-9 photos -0.0034, its held-out shape -0.0021); MobileFace
# all of LFW 0.8463 -> 0.8586, HSE FaceRes' LFW held-out set +0.021, its first imports +0.026 (one draw 0.618 ->
# 0.825: a 148-face chain of 57 people is split). On LFW's sets of dlib and MobileFaceNet the midway floor holds.
# Without that condition (every collection) dlib's people with 2-9 photos lose 0.005: its chains of tens of people
# lie between the strangers' mode and the midway floor.
MAX_GROUPS_FITTED = 1000
# Two linked groups are one person's photos where their faces lie no further apart between the groups than this many
# times inside the looser one (mean 1 - cosine, half the squared distance of unit vectors), and average over the cut
# between them: faces drawn from one person's cloud lie as far apart between any two parts of it as inside them, two
# people's clouds further by their centres' squared distance. Of the linked pairs of facekit's groups over the 148
# stored sets that average over the cut between them, one person's parts (12) lie 0.99-1.25 times as far apart as
# inside the looser part; two people's (32) 1.16-2.06 times, 6 under 1.3. Over the 148 sets at their cuts (3 orders,
# summed over bench-left-alone's 43 weights): 1.12 +0.006, 1.2 +0.015, 1.3 and 1.5 +0.023 (3 groups better, none
# worse), 2.0 +0.021 (HSE's held-out draws -0.0013). The same test joins again the parts of a group that
# `ChineseWhispers._separate_strangers` finds less alike than look-alike strangers: a weak model's person whose poses a
# stricter cut takes apart lies as one cloud, a look-alike does not. Of the pairs of parts under the stranger
# similarity on the 28 sets of each third model (one visiting order), one person's lie 1.12 times as far apart as inside
# the looser part and up (MobileFace 1.12-1.52), two people's 1.21 and up (8 of 60 under 1.3) and HSE FaceRes's 1.19
# and up (4 of 59); MobileFaceNet's all of LFW holds two such pairs, both two people's (1.77 and 2.06).
# Over the 148 sets at their cuts (3 orders, 43 weights) +0.019, 10 groups better, 2 worse by up to 0.0004.
ONE_PERSON_SPREAD = 1.3


def relabel_by_size(labels: np.ndarray, min_cluster_size: int) -> np.ndarray:
    """Labels 0..C-1 by decreasing size (ties: first seen first); groups smaller than
    `min_cluster_size` (and -1) become -1."""
    labels = np.asarray(labels)
    out = np.full(len(labels), -1, dtype=np.int64)
    valid = labels >= 0
    if not valid.any():
        return out
    _, first, inverse, counts = np.unique(labels[valid], return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    new = rank[inverse]
    new[counts[inverse] < min_cluster_size] = -1
    # ranks of kept groups are already 0..C-1 because small groups sort last
    out[valid] = new
    return out


class GraphClusterer:
    """Base of the clusterers that link faces at cosine >= `threshold` on a kNN graph (`fit(x, graph=)`,
    `labels_`, -1 for noise)."""

    def __init__(self, threshold: float, *, k: int = 30, min_cluster_size: int = 2) -> None:
        self.threshold = threshold
        self.k = k
        self.min_cluster_size = min_cluster_size

    def _validate(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"X must be 2-D (n_faces, dim), got shape {x.shape}")
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.min_cluster_size < 1:
            raise ValueError(f"min_cluster_size must be >= 1, got {self.min_cluster_size}")
        return x

    @property
    def edge_floor(self) -> float:
        """The least similarity of a kNN edge this clusterer reads: any graph whose edges at or above it are
        those of the faces' own kNN graph gives the same groups."""
        return self.threshold

    def _prepare(self, x: np.ndarray, graph: KnnGraph | None) -> np.ndarray:
        """Validate X and set `graph_` (the given graph, or X's own kNN graph)."""
        x = self._validate(x)
        self.graph_ = graph if graph is not None else knn_graph(x, self.k)
        return x

    def fit(self, x: np.ndarray, y: None = None, *, graph: KnnGraph | None = None):
        """Cluster the rows of `x` (or of a precomputed `graph` over them)."""
        self._prepare(x, graph)
        adjacency = self.graph_.adjacency(self.threshold)
        self.labels_ = relabel_by_size(self._partition(adjacency), self.min_cluster_size)
        return self

    def fit_predict(self, x: np.ndarray, y: None = None, **kwargs) -> np.ndarray:
        return self.fit(x, **kwargs).labels_

    def _partition(self, adjacency: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError


class ConnectedComponents(GraphClusterer):
    """Faces joined by any chain of edges form one group (single linkage at `threshold`).

    >>> import numpy as np
    >>> x = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)
    >>> ConnectedComponents(0.9, min_cluster_size=2).fit_predict(x).tolist()
    [0, 0, -1]
    """

    def _partition(self, adjacency: sp.csr_matrix) -> np.ndarray:
        return connected_components(adjacency, directed=False)[1]


class ChineseWhispers(GraphClusterer):
    """Chinese Whispers (Biemann 2006; dlib's face clustering): each face takes the label with the
    largest summed edge weight among its neighbours, in random order, for `iterations` rounds.

    One visiting order can leave a person in two groups or join two: on LFW, F moves by up to 0.4 points
    between orders (up to 2 points on a set of few people with many photos each). With `orders` > 1
    (facekit's default 9) it runs that many orders and keeps an edge where most of them put both faces
    in one group; the groups are the connected faces over the kept edges (a consensus partition). Where the
    orders disagree (a third to a half of them join two groups), the two are joined if their faces are as
    similar on average as a link asks and lie as one cloud (`_join_where_orders_disagree`): a person the orders
    split by chance; or if each of them averages under the threshold: a weak model's person with many photos, whom
    the orders break apart in different places. Two linked groups that every order keeps apart are joined where their
    faces lie nearly as close between the groups as inside the looser one and average over `one_person_floor`
    (`_join_one_person`): a person a tight part of whose photos settles on a label of its own. With
    `look_alike_strangers` (the calibration's two modes lie cleanly apart among each face's nearest few:
    `LinkThreshold.look_alike_strangers`) that floor is `stranger_similarity` itself, else midway.

    With `split_chains` (facekit's default), a group whose mean pairwise similarity falls below `chain_floor`
    is a chain of look-alikes rather than one person: it is clustered again with a threshold `chain_step`
    stricter, until every group is coherent. The floor sits midway between `stranger_similarity` and
    `threshold` where the calibration gives the first; without it, `chain_slack` below the threshold. Slack and
    step are fractions of the room above the threshold, `1 - threshold`, so they scale with the model's
    similarities (dlib links at 0.945, where 0.09 of the room is 0.005; MobileFaceNet at 0.64, where it is
    0.033). On LFW (dlib) this breaks up one 138-face group of different people and lifts BCubed F by ~0.5
    point; on MobileFaceNet it changes F by less than 0.001 (bench/results/clustering.md). The room says
    nothing about how widely one person's photos spread, and on a weaker model they spread more: on dlib's
    embeddings cut to 16 principal components (bench/results/spaces.md) a floor 0.09 of the room down cut that
    model's people apart (held-out shape F 0.8265, all of LFW 0.7383); the midway floor gives 0.8658 and 0.7776,
    and moves LFW's sets of both real models by at most 0.0004. Even the midway floor lies above many of that
    model's one-person groups, so a derived floor is lowered to where a group is an outlier among the collection's
    groups (`CHAIN_OUTLIER_SPREADS`): 0.8817 and 0.7874 there, and no set of a real model moves. Where that lies
    under the midway floor and the calibration gives `stranger_mode` (how alike a face and its nearest look-alike
    strangers typically are), a group is compared with the collection's groups of its size, and never kept below the
    strangers' mode (`MAX_GROUPS_FITTED`): a weak model's person with hundreds of photos is less coherent than its
    people with a few.

    With `stranger_similarity` (the similarity up to which two faces are no closer than look-alike strangers usually
    are; the pass reads it off its link calibration), a group that a cut `split_step` stricter divides is split
    where a part's faces are on average no closer to the rest than that and do not lie as one cloud with it
    (`_separate_strangers`): a look-alike relative that the many links of a person with hundreds of photos pulled in.

    >>> import numpy as np
    >>> x = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.14, 0.99]], dtype=np.float32)
    >>> ChineseWhispers(0.9).fit_predict(x).tolist()
    [0, 0, 1, 1]
    """

    def __init__(
        self,
        threshold: float,
        *,
        k: int = 30,
        min_cluster_size: int = 2,
        iterations: int = 20,
        seed: int = 0,
        orders: int = 9,
        split_chains: bool = True,
        chain_slack: float | None = None,
        chain_step: float = 0.09,
        stranger_similarity: float | None = None,
        stranger_mode: float | None = None,
        look_alike_strangers: bool = False,
        split_step: float = 0.05,
    ) -> None:
        super().__init__(threshold, k=k, min_cluster_size=min_cluster_size)
        self.iterations = iterations
        self.seed = seed
        self.orders = orders
        self.split_chains = split_chains
        self.chain_slack = chain_slack
        self.chain_step = chain_step
        self.stranger_similarity = stranger_similarity
        self.stranger_mode = stranger_mode
        self.look_alike_strangers = look_alike_strangers
        self.split_step = split_step

    def fit(self, x: np.ndarray, y: None = None, *, graph: KnnGraph | None = None):
        x = self._prepare(x, graph)
        adjacency = self.graph_.adjacency(self.threshold)
        if self.orders == 1:
            labels = self._whispers(adjacency, self.seed)
        else:
            labels, contested = self._consensus(adjacency)
            labels = _join_where_orders_disagree(x, labels, contested, self.threshold)
            labels = _join_one_person(x, labels, adjacency, self.one_person_floor)
        self.labels_ = relabel_by_size(labels, self.min_cluster_size)
        if self.split_chains:
            labels = np.full(len(x), -1, dtype=np.int64)
            for label, members in enumerate(_coherent_groups(x, self.labels_, self)):
                labels[members] = label
            self.labels_ = relabel_by_size(labels, self.min_cluster_size)
        if self.stranger_similarity is not None:
            self.labels_ = relabel_by_size(self._separate_strangers(x, self.labels_), self.min_cluster_size)
        return self

    @property
    def midway(self) -> float | None:
        """Midway between the stranger similarity and the threshold, where a calibration gave the first under the
        threshold; else None."""
        strangers = self.stranger_similarity
        return None if strangers is None or strangers >= self.threshold else (self.threshold + strangers) / 2

    @property
    def chain_floor(self) -> float:
        """Mean pairwise similarity below which a group is a chain of look-alikes: `midway` where there is one (and
        no `chain_slack` was given), else `chain_slack` (default `CHAIN_SLACK`) of the room below the threshold."""
        if self.chain_slack is None and self.midway is not None:
            return self.midway
        slack = CHAIN_SLACK if self.chain_slack is None else self.chain_slack
        return self.threshold - slack * (1.0 - self.threshold)

    @property
    def one_person_floor(self) -> float:
        """Mean similarity between two linked groups' faces over which `_join_one_person` joins them where they lie as
        one cloud: where there is a `midway`, the stranger similarity itself if it is how alike a face and its nearest
        look-alike strangers are (`look_alike_strangers`), else midway; without one, the threshold."""
        midway, strangers = self.midway, self.stranger_similarity
        if midway is None or strangers is None:
            return self.threshold
        return strangers if self.look_alike_strangers else midway

    def _separate_strangers(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """`labels` with each group's parts at a cut `split_step` stricter (Chinese Whispers on the group's own
        edges) joined again, largest first, wherever the mean similarity between two parts' faces is at least
        `stranger_similarity`, or where they lie as one cloud (`ONE_PERSON_SPREAD`); parts that stay apart become
        groups of their own. A part must have >= 2 faces:
        a lone face at the stricter cut stays with its group's largest part. The stricter run is one visiting
        order, not a consensus: where it splits a person by chance the join puts the parts back. Over 10 seeds on
        LFW's all, 2-9 and >= 5 photo sets (both models) it gives the consensus's medians, the means within 0.0002
        (dlib, all of LFW: 0.9457 against 0.9459), at a ninth of the cost (a consensus took 50 s more at 1M faces).

        On all of LFW (MobileFaceNet, cut 0.633) Jeb Bush's photos sit in George W Bush's group (each has
        several links to him). At a cut 0.05 of the room stricter 11 of them (and one stranger) are a part of
        their own, whose mean similarity to Bush's 531 photos is 0.49: below the stranger similarity 0.50 (the
        strangers' mode 0.48 plus half its spread), where Bush's photos average 0.79 among themselves. The only
        other split there takes Amram Mitzna's 2 photos out of Mahmoud Abbas' 29 (0.48). A stricter step cuts
        more of one person's photos apart than the join puts back: 0.09 scores up to 0.0009 lower than 0.05 on
        LFW's sets (dlib, the held-out shape: 0.9840 -> 0.9831), 0.03 up to 0.0004.

        A weak model spreads one person's photos as widely as look-alike strangers: MobileFace's strangers' mode sits
        at ~0.39 and its people's photos average ~0.43, and on its held-out draws the stricter cut takes Jennifer
        Capriati, David Beckham or Silvio Berlusconi apart into parts 0.20-0.33 alike, under the stranger similarity
        (0.36). Most such parts lie as one cloud (1.12-1.34 times as far apart between the parts as inside the looser
        one), and those are joined again; a look-alike's part lies further (MobileFaceNet, all of LFW: Amram Mitzna's
        2 photos 2.06 times as far from Mahmoud Abbas' 27 as inside them, Liu Mingkang's 2 from Alejandro Toledo's 41
        1.77 times: both stay apart). MobileFace on all of LFW 0.8582 -> 0.8635, its held-out draws +0.0018 (mean),
        HSE FaceRes's +0.0034, dlib's +0.0007; MobileFace's people with >= 10 photos 0.9199 -> 0.9182
        (bench/results/third_models.md)."""
        strict = self.threshold + self.split_step * (1.0 - self.threshold)
        if strict >= 1.0:
            return labels
        adjacency = self.graph_.adjacency(strict).tocoo()
        inside = (labels[adjacency.row] == labels[adjacency.col]) & (labels[adjacency.row] >= 0)
        adjacency = sp.csr_matrix(
            (adjacency.data[inside], (adjacency.row[inside], adjacency.col[inside])), shape=adjacency.shape
        )
        parts = self._whispers(adjacency, self.seed)  # one order: the join puts back what it splits by chance
        out, next_label, floor = labels.copy(), labels.max() + 1, self.stranger_similarity
        for members in _groups(np.where(np.isin(labels, _groups_in_parts(labels, parts)), labels, -1)):
            pieces = _groups(np.unique(parts[members], return_inverse=True)[1])
            big = sorted((members[p] for p in pieces if len(p) >= 2), key=len, reverse=True)
            counts = [len(p) for p in big]
            order = sorted(itertools.combinations(range(len(big)), 2), key=lambda p: -(counts[p[0]] + counts[p[1]]))
            roots = _join_close_or_one_cloud([x[p].sum(axis=0, dtype=np.float64) for p in big], counts, order, floor)
            for root in sorted(set(roots) - {roots[0]}):  # the largest part's keeps the label
                out[np.concatenate([p for p, r in zip(big, roots, strict=True) if r == root])] = next_label
                next_label += 1
        return out

    def _validate(self, x: np.ndarray) -> np.ndarray:
        if self.orders < 1:
            raise ValueError(f"orders must be >= 1, got {self.orders}")
        return super()._validate(x)

    def _consensus(self, adjacency: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """Groups of the faces joined by edges that most of `orders` visiting orders keep inside one group, and
        the edges (rows of (face, face)) that a third to a half of the orders keep inside one: where they disagree."""
        edges = sp.triu(adjacency, 1).tocoo()
        votes = np.zeros(len(edges.data), dtype=np.int32)
        for seed in range(self.seed, self.seed + self.orders):
            labels = self._whispers(adjacency, seed)
            votes += labels[edges.row] == labels[edges.col]
        kept = 2 * votes > self.orders
        consensus = sp.coo_matrix((edges.data[kept], (edges.row[kept], edges.col[kept])), shape=adjacency.shape)
        contested = ~kept & (3 * votes >= self.orders)
        return connected_components(consensus, directed=False)[1], np.stack([edges.row, edges.col], 1)[contested]

    def _whispers(self, adjacency: sp.csr_matrix, seed: int) -> np.ndarray:
        """One run of Chinese Whispers; `seed` draws the order faces are visited in, each round."""
        rng = np.random.default_rng(seed)
        n = adjacency.shape[0]
        labels = np.arange(n, dtype=np.int64)
        indptr, indices = adjacency.indptr.astype(np.int64), adjacency.indices.astype(np.int64)
        for _ in range(self.iterations):
            if whisper_pass(indptr, indices, adjacency.data, labels, rng.permutation(n)) == 0:
                break
        return labels


def _join_where_orders_disagree(
    x: np.ndarray, labels: np.ndarray, contested: np.ndarray, threshold: float
) -> np.ndarray:
    """`labels` with two groups (of >= 2 faces each) joined where `contested` edges run between them, the mean
    similarity between their faces (each face of one with each of the other) clears `threshold`, as a link
    between two faces must, and they lie as one cloud (`_one_cloud`); the largest pairs are tried first, a joined group
    counting all its faces. Then two such groups are also joined where each, with all it has joined, is spread: its
    faces average under `threshold`.

    Chinese Whispers can settle a person with many photos in one group or in two, by the visiting order, and
    where the orders split evenly their majority decides by chance: on all of LFW (MobileFaceNet, cosine 0.609)
    one order in two splits Colin Powell's 236 photos 160 / 76 (their mean similarity 0.81), and F is 0.9754
    or 0.9715 by the seed. Over 10 seeds (scratch, `bench/clustering.py`'s sets): all of LFW 0.9713-0.9754 ->
    0.9752-0.9754, people with >= 10 photos 0.9804-0.9924 -> 0.9922-0.9924, >= 5 photos 0.9790-0.9874 ->
    0.9874-0.9877; no set's mean goes down, and dlib's are unchanged (no contested pair there clears it).

    A weak model spreads a person with hundreds of photos further: their photos average under the cut, links hold
    them in chains, and the orders break those in different places (MobileFace's family albums: George W Bush's 523
    photos in parts of 417 and 106, each averaging 0.44-0.46 at a cut of 0.49, 0.41 joined). Where a third of the
    orders join two such parts they are one person; a group that averages over the cut is a person the orders'
    majority rightly keeps apart from a look-alike (dlib's people with >= 10 photos: three people of 58, 32 and 9
    photos join at 0.940, over the cut 0.936, if every part a third of the orders join is joined). Chain splitting
    still runs after. Over the 148 stored sets at their cuts (3 orders), summed over bench-left-alone's 43 weights:
    +0.028, 5 groups better, none worse by more than 0.0011 (MobileFace's albums 0.9578 -> 0.9693); LFW's sets of
    dlib and MobileFaceNet move by 0 to +0.0019.

    A cut can lie under how alike two look-alike people are on average, and then averaging over it says nothing: HSE
    FaceRes on bench-dense-sets' 10 older men (sample 4, a weakly separated read's cut 0.594) puts Jacques Chirac's and
    Silvio Berlusconi's photos 0.65 apart on average (0.83 and 0.74 inside), and 2 of 3 seeds joined the two; the
    one-cloud join then took that looser group as the yardstick and joined 4 more people (F 0.6667). Parts a person's
    photos split into by chance lie as one cloud; two people lie 1.35 times as far apart between the groups as inside
    the looser one, so the test keeps them apart: that sample 0.6667 -> 0.9936, sample 5 0.9474 -> 1.0000. Of the 276
    sets of LFW's, bench-spaces', -samples', -third-models', -dense-sets' and the learned metrics', only these two and
    HSE's held-out draws 2 and 4 (+0.0049, +0.0048) score otherwise."""
    labels = _join_linked(x, labels, contested, partial(_join_one_cloud, floor=threshold))
    return _join_linked(x, labels, contested, partial(_join_spread_groups, ceiling=threshold))


def _join_linked(x: np.ndarray, labels: np.ndarray, edges: np.ndarray, join: Callable[..., list[int]]) -> np.ndarray:
    """`labels` with the groups (of >= 2 faces each) that `edges` (rows of (face, face)) run between joined where
    `join` (called with the groups' summed embeddings, sizes and pairs, largest pairs first) joins them."""
    pairs = np.unique(np.sort(labels[edges], axis=1), axis=0) if len(edges) else np.empty((0, 2), int)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    size = np.bincount(labels)
    pairs = pairs[(size[pairs[:, 0]] >= 2) & (size[pairs[:, 1]] >= 2)]
    if len(pairs) == 0:
        return labels
    involved = np.unique(pairs)
    slot = np.full(len(size), -1)
    slot[involved] = np.arange(len(involved))
    rows = np.flatnonzero(slot[labels] >= 0)
    members = sp.csr_matrix((np.ones(len(rows)), (slot[labels[rows]], np.arange(len(rows)))))
    sums = list(members @ x[rows].astype(np.float64))  # each involved group's summed embeddings
    counts = size[involved].tolist()
    order = sorted(slot[pairs].tolist(), key=lambda p: (-(counts[p[0]] + counts[p[1]]), p[0], p[1]))
    joined = np.arange(len(size))
    joined[involved] = involved[join(sums, counts, order)]
    return joined[labels]


def _close(sums: list[np.ndarray], counts: list[int], a: int, b: int, floor: float) -> bool:
    """Whether the mean similarity between groups a and b's faces (each with each: from their summed embeddings
    `sums` and sizes `counts`) is at least `floor`."""
    return bool(sums[a] @ sums[b] >= floor * counts[a] * counts[b])


def _join_spread_groups(sums: list[np.ndarray], counts: list[int], pairs: list[list[int]], ceiling: float) -> list[int]:
    """As `_join_one_cloud`, but two groups are joined where each one's faces average under `ceiling`."""

    def spread(g: int) -> bool:
        return _mean_pairwise(sums[g], counts[g]) < ceiling

    return _join_groups(sums, counts, pairs, lambda a, b: spread(a) and spread(b))


def _join_one_person(x: np.ndarray, labels: np.ndarray, adjacency: sp.csr_matrix, floor: float) -> np.ndarray:
    """`labels` with two groups (of >= 2 faces each) that `adjacency`'s links run between joined where the mean
    similarity between their faces clears `floor` and they lie no further apart between the groups than
    `ONE_PERSON_SPREAD` times inside the looser one (`_join_one_cloud`); the largest pairs are tried first.

    Where a tight part of a person's photos settles on a label of its own, every visiting order splits them alike,
    so no order disagrees: MobileFace's people with >= 10 photos (cut 0.368) keep Colin Powell's 236 photos in parts
    of 187 and 53 (each averaging 0.53 and 0.62, 0.48 between them, with 19 links a face of the smaller part to the
    larger), where connected components keep them whole.

    `ChineseWhispers` passes its `one_person_floor`: the stranger similarity where it reads look-alike strangers (the
    calibration's modes lie cleanly apart among each face's nearest few), midway between it and the cut where not, the
    cut where no calibration gave a stranger similarity under it. A weak model's person spreads so that a tight part
    and the rest can average under the cut; a group joined over midway is no chain that the chain split (the same
    floor) takes apart again. Over the 148 stored sets at their cuts (3 orders), against the cut as the floor, summed
    over bench-left-alone's 43 weights: +0.027, one group worse (HSE FaceRes's people with >= 10 photos, -0.0035);
    MobileFace's all of LFW 0.8635 -> 0.8679, HSE's family albums +0.0098 (mean of 8), dlib's all of LFW +0.0006. The
    stranger similarity itself as the floor everywhere scores -0.013: where the strangers' mode was read deep down
    the neighbours, or is wide, it is typical strangers, not look-alikes, and the join takes in other people (HSE's
    people with >= 10 photos -0.05). Where the calibration's modes lie cleanly apart (neither weakly separated nor a
    wide strangers' mode) the floor is the stranger similarity itself: +0.029 over midway on the same sets, three
    groups worse by at most 0.0019 (HSE's family albums); HSE's all of LFW 0.7941 -> 0.8044, MobileFace's first
    imports +0.0057 (mean of 8), dlib's held-out shape +0.0018. Read deeper than each face's nearest 30, the strangers
    are not look-alikes even there (`calibration.LOOK_ALIKE_RANKS`), and midway stays the floor."""
    edges = sp.triu(adjacency, 1).tocoo()
    between = labels[edges.row] != labels[edges.col]
    linked = np.stack([edges.row[between], edges.col[between]], 1)
    return _join_linked(x, labels, linked, partial(_join_one_cloud, floor=floor))


def _join_one_cloud(sums: list[np.ndarray], counts: list[int], pairs: list[list[int]], floor: float) -> list[int]:
    """Each group's representative once the `pairs` (group numbers) are tried in order: two groups, each with all
    it has joined so far, are joined where the mean similarity between their faces (each face of one with each of
    the other: from their summed embeddings `sums` and sizes `counts`, both updated in place) is at least `floor`
    and they lie as one cloud (`_one_cloud`)."""

    def joinable(a: int, b: int) -> bool:
        return _close(sums, counts, a, b, floor) and _one_cloud(sums, counts, a, b)

    return _join_groups(sums, counts, pairs, joinable)


def _join_close_or_one_cloud(
    sums: list[np.ndarray], counts: list[int], pairs: list[list[int]], floor: float
) -> list[int]:
    """As `_join_one_cloud`, but two groups are joined where the mean similarity between their faces is at least
    `floor` or they lie as one cloud (`_one_cloud`)."""

    def joinable(a: int, b: int) -> bool:
        return _close(sums, counts, a, b, floor) or _one_cloud(sums, counts, a, b)

    return _join_groups(sums, counts, pairs, joinable)


def _one_cloud(sums: list[np.ndarray], counts: list[int], a: int, b: int) -> bool:
    """Whether groups a and b (their summed embeddings `sums`, sizes `counts`) lie as one person's cloud: their mean
    distance (1 - cosine) between the groups under `ONE_PERSON_SPREAD` times the looser group's own."""
    between = sums[a] @ sums[b] / (counts[a] * counts[b])
    looser = min(_mean_pairwise(sums[a], counts[a]), _mean_pairwise(sums[b], counts[b]))
    return bool(1 - between < ONE_PERSON_SPREAD * (1 - looser))


def _join_groups(
    sums: list[np.ndarray], counts: list[int], pairs: list[list[int]], joinable: Callable[[int, int], bool]
) -> list[int]:
    """Each group's representative once the `pairs` are tried in order, two groups (each with all it has joined so
    far: `sums` and `counts` are updated in place) joined where `joinable`."""
    root = list(range(len(sums)))

    def find(g: int) -> int:
        while root[g] != g:
            root[g] = root[root[g]]
            g = root[g]
        return g

    for a, b in pairs:
        a, b = find(a), find(b)
        if a != b and joinable(a, b):
            root[b], sums[a], counts[a] = a, sums[a] + sums[b], counts[a] + counts[b]
    return [find(g) for g in range(len(sums))]


def _groups_in_parts(labels: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """The labels (>= 0) whose faces fall in at least two `parts` of >= 2 faces each."""
    rows = np.flatnonzero(labels >= 0)
    key = labels[rows].astype(np.int64) * len(labels) + parts[rows]
    unique, size = np.unique(key, return_counts=True)
    owners = unique[size >= 2] // len(labels)
    return np.flatnonzero(np.bincount(owners, minlength=int(labels.max()) + 1) >= 2)


def _mean_pairwise_similarity(x: np.ndarray) -> float:
    """The mean cosine similarity of the rows of `x` (unit vectors), each with each other."""
    return _mean_pairwise(x.sum(axis=0), len(x))


def _mean_pairwise(total: np.ndarray, n: int) -> float:
    """The mean similarity of n unit vectors, each with each other, from their sum `total`."""
    return float((total @ total - n) / (n * n - n))


def _outlying_coherence(coherence: np.ndarray) -> float:
    """The mean pairwise similarity `CHAIN_OUTLIER_SPREADS` robust standard deviations (in Fisher z) below the median
    of the groups' `coherence` (their mean pairwise similarities); +inf where fewer than `MIN_GROUPS_COMPARED`."""
    if len(coherence) < MIN_GROUPS_COMPARED:
        return float("inf")
    return float(np.tanh(_below_median(fisher_z(coherence))))


def _below_median(z: np.ndarray) -> float:
    """`CHAIN_OUTLIER_SPREADS` robust standard deviations (1.4826 median absolute deviations) under `z`'s median."""
    median = float(np.median(z))
    return median - CHAIN_OUTLIER_SPREADS * 1.4826 * float(np.median(np.abs(z - median)))


def _outlying_coherence_by_size(coherence: np.ndarray, sizes: np.ndarray) -> Callable[[int], float]:
    """For a group of n faces, the mean pairwise similarity `CHAIN_OUTLIER_SPREADS` robust standard deviations (in
    Fisher z) below the line of the groups' `coherence` on their log `sizes` (Theil-Sen, through the residuals'
    median; at most `MAX_GROUPS_FITTED` groups fitted)."""
    z, log_size = fisher_z(coherence), np.log(np.asarray(sizes, dtype=np.float64))
    fitted = np.arange(len(z))
    if len(z) > MAX_GROUPS_FITTED:
        fitted = np.random.default_rng(0).choice(len(z), MAX_GROUPS_FITTED, replace=False)
    slope = 0.0 if np.ptp(log_size[fitted]) == 0 else float(theilslopes(z[fitted], log_size[fitted])[0])
    below = _below_median(z - slope * log_size)
    return lambda n: float(np.tanh(below + slope * np.log(n)))


def _chain_floor(cw: ChineseWhispers, coherence: np.ndarray, sizes: np.ndarray) -> Callable[[int], float]:
    """The mean pairwise similarity under which a group of n faces is a chain: `cw.chain_floor`, lowered (where `cw`
    derives it, no `chain_slack` given) to where a group is an outlier among the collection's groups of >= 3 faces
    (their `coherence` and `sizes`). Where that lies under the chain floor and `cw.stranger_mode` is known, a group
    is compared with the groups of its size (`_outlying_coherence_by_size`), down to the strangers' mode."""
    floor = cw.chain_floor
    if cw.chain_slack is not None:
        return lambda n: floor
    outlying = _outlying_coherence(coherence)
    if outlying >= floor or cw.stranger_mode is None:
        lowest = min(floor, outlying)
        return lambda n: lowest
    by_size, strangers = _outlying_coherence_by_size(coherence, sizes), cw.stranger_mode
    return lambda n: min(floor, max(by_size(n), strangers))


def _coherent_groups(x: np.ndarray, labels: np.ndarray, cw: ChineseWhispers) -> list[np.ndarray]:
    """Split groups whose mean pairwise similarity is below their chain floor (`_chain_floor`; recursively, each time
    `cw.chain_step` of the room 1 - `cw.threshold` stricter).

    A chain's parts are not joined again where they lie as one cloud (`ONE_PERSON_SPREAD`), as `_separate_strangers`
    joins its parts: over the 148 stored sets and LFW's 8 at their cuts (3 orders) that keeps a weak model's album
    people whole (MobileFace, where a 28-photo person averages 0.373 under the midway floor 0.403: +0.0016, +0.0038)
    but joins look-alikes' parts (dlib's people with 2-9 photos -0.0117, HSE FaceRes's held-out draws -0.05 to -0.14),
    -1.08 summed; joined only where they also average over `cw.one_person_floor`, -0.042 summed, 14 sets better and 16
    worse (HSE's held-out draws down to -0.0083, its first imports -0.0094)."""
    out: list[np.ndarray] = []
    step = cw.chain_step * (1.0 - cw.threshold)
    # each group's mean pairwise similarity, read once for the floor and the first split (None: read when needed)
    stack = [
        (members, cw.threshold, _mean_pairwise_similarity(x[members]) if len(members) >= 3 else None)
        for members in _groups(labels)
    ]
    compared = [(coherence, len(members)) for members, _, coherence in stack if coherence is not None]
    floor = _chain_floor(cw, np.array([c for c, _ in compared]), np.array([n for _, n in compared]))
    while stack:
        members, t, coherence = stack.pop()
        if len(members) < 3 or t + step > 1 or step <= 0:
            out.append(members)
            continue
        if (coherence if coherence is not None else _mean_pairwise_similarity(x[members])) >= floor(len(members)):
            out.append(members)
            continue
        inner = ChineseWhispers(
            t + step,
            k=cw.k,
            min_cluster_size=1,
            iterations=cw.iterations,
            seed=cw.seed,
            orders=cw.orders,
            split_chains=False,
        ).fit_predict(x[members])
        stack.extend((members[group], t + step, None) for group in _groups(inner))
    return out


def _groups(labels: np.ndarray) -> list[np.ndarray]:
    """Row numbers of each label >= 0, by label (one sort: no scan of all rows per label)."""
    rows = np.flatnonzero(labels >= 0)
    rows = rows[np.argsort(labels[rows], kind="stable")]
    _, starts = np.unique(labels[rows], return_index=True)
    return np.split(rows, starts[1:]) if len(rows) else []
