"""The unknown-clustering link threshold: calibrated from the data for any space, fixed when the user says so."""

from __future__ import annotations

import re

import numpy as np
import pytest

from facekit.cluster import ChineseWhispers, KnnGraph, knn_graph
from facekit.cluster.calibration import (
    COPY_SIMILARITY,
    LAST_RESORT_DEPTH,
    LOOK_ALIKE_RANKS,
    MIN_LINK_CLOSURE,
    MIN_SEPARATION_WEAK,
    TAIL_SPREAD,
    LinkThreshold,
    calibrate_link_threshold,
    cut_between_modes,
    cut_ratio,
    known_pairs,
    link_closure,
    linked_precision,
    modes_width,
    sampled_neighbours,
)
from facekit.dual import DualModeClusterer
from facekit.evaluation import evaluate
from facekit.metrics import clustering_scores
from facekit.store import FaceStore
from facekit.types import FaceRecord

from .conftest import DLIB


def space(
    within: float,
    between: float,
    people: int = 120,
    per_person: int = 6,
    dim: int = 64,
    seed: int = 0,
    dense: bool = False,
    between_spread: float = 0.0,
):
    """Identities whose same-person cosines sit near `within` and different-person ones near `between`
    (a shared direction lifts every pair, as dlib's space does); most people have a few faces, some one.
    `dense`: every person has `per_person` faces. `between_spread`: each person shares the direction by a
    different amount (their `between` drawn from `between` +- this), so strangers' cosines spread widely."""
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(dim)
    common /= np.linalg.norm(common)
    own = rng.standard_normal((people, dim))
    own -= np.outer(own @ common, common)
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    # centre = a * common + b * own direction: cos(centre_i, centre_j) ~ a_i * a_j, a^2 = between
    shared = rng.uniform(between - between_spread, between + between_spread, people) if between_spread else between
    centres = np.sqrt(shared)[..., None] * common + np.sqrt(1 - shared)[..., None] * own
    sizes = (
        np.full(people, per_person)
        if dense
        else rng.choice([1, 2, per_person, 2 * per_person], people, p=[0.3, 0.2, 0.3, 0.2])
    )
    who = np.repeat(np.arange(people), sizes)
    # noise scale so that same-person cosine ~ within: cos = 1 / (1 + s^2 * dim) for unit centres
    s = np.sqrt((1 / within - 1) / dim)
    x = centres[who] + s * rng.standard_normal((len(who), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), who


def without_tail_room(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cut rule without the room it takes off where the strangers' mode is wide (`TAIL_SPREAD`): in `space`'s
    isotropic spaces one person's photos spread narrowly, so the strangers' mode is over half as wide as theirs, and a
    test built on the rule's plain cut (a real model's tight strangers' peak) needs it off."""
    monkeypatch.setattr("facekit.cluster.calibration.TAIL_SPREAD", np.inf)


@pytest.mark.parametrize(("within", "between"), [(0.95, 0.85), (0.8, 0.05), (0.6, 0.2)])
def test_calibrated_threshold_separates_people_in_any_space(within, between):
    """A dlib-like space (everything similar), an ArcFace-like one and a flat, noisy one: no table entry."""
    x, who = space(within, between)
    graph = knn_graph(x, 30)
    link = calibrate_link_threshold(graph)
    assert link is not None and between < link.threshold < within
    assert 0.9 <= link.estimated_precision <= 1.0 and "two modes" in link.reason
    assert between < link.stranger_similarity < link.threshold
    assert link.modes_clean and link.ranks <= LOOK_ALIKE_RANKS and link.strangers["look_alike_strangers"]
    calibrated = ChineseWhispers(link.threshold, min_cluster_size=1).fit_predict(x, graph=graph)
    assert clustering_scores(who, calibrated)["bcubed_f"] > 0.95


@pytest.mark.parametrize(("within", "between"), [(0.95, 0.85), (0.8, 0.05), (0.6, 0.2)])
def test_a_dense_collection_is_calibrated_further_down_its_neighbours(within, between):
    """Everyone with 16 photos: the 10 nearest neighbours are all the same person, strangers show in 30."""
    x, who = space(within, between, people=80, per_person=16, dense=True)
    graph = knn_graph(x, 30)
    assert calibrate_link_threshold(graph, ranks=(10,)) is None
    link = calibrate_link_threshold(graph)
    assert link is not None and "30 nearest" in link.reason and between < link.threshold < within
    calibrated = ChineseWhispers(link.threshold, min_cluster_size=1).fit_predict(x, graph=graph)
    assert clustering_scores(who, calibrated)["bcubed_f"] > 0.95
    # every face has ~15 links to its own person that outvote a stranger link: the cut sits lower between the
    # modes than where a stranger link decides a face's group
    assert _ratio(link) < 2.5


@pytest.mark.parametrize(("within", "between"), [(0.95, 0.85), (0.8, 0.05)])
def test_a_collection_of_few_people_with_many_photos_is_read_further_down_a_sample(within, between):
    """20 people with 60 photos each: even the 30 nearest are all the same person. A sample of faces is read
    100 deep among all of them, with pairs of one photo's faces left out."""
    x, who = space(within, between, people=20, per_person=60, dense=True)
    graph = knn_graph(x, 30)
    assert calibrate_link_threshold(graph) is None  # no stranger within anyone's 30 nearest
    images = np.arange(len(x)).astype(str)
    images[1::2] = images[::2][: len(images[1::2])]  # two faces a photo: never each other's neighbours
    deeper = sampled_neighbours(x, images, sample=300)
    link = calibrate_link_threshold(graph, deeper=deeper)
    assert link is not None and "100 nearest" in link.reason and "a sample of 300 faces" in link.reason
    assert between < link.threshold < within
    # strangers read 100 deep are not each face's look-alikes: one person's parts are joined down to midway only
    assert link.modes_clean and not link.look_alike_strangers and not link.strangers["look_alike_strangers"]
    calibrated = ChineseWhispers(link.threshold, min_cluster_size=1).fit_predict(x, graph=graph)
    assert clustering_scores(who, calibrated)["bcubed_f"] > 0.95
    everyone = sampled_neighbours(x, images, sample=len(x))(100)  # the sample is every face, in order
    one_photo = images[everyone.indices] == images[:, None]
    assert one_photo.any(axis=1).mean() > 0.9 and not np.isfinite(everyone.sims[one_photo]).any()


def test_a_collection_smaller_than_the_read_is_read_as_deep_as_it_goes():
    """28 faces of 2 people read 30 deep: each face's read is the 27 others, 13 of them its own person, its nearest
    among those. The reason says so, and cuts as that asks (it said "100% of the faces have a stranger nearest" and cut
    at ratio 5, as if every link decided a face's group)."""
    x, who = space(0.8, 0.05, people=2, per_person=14, dense=True)
    graph = knn_graph(x, 30)
    assert (who[graph.indices[:, 0]] == who).all()
    link = calibrate_link_threshold(graph)
    assert link is not None and "27 nearest neighbours' (all the others) similarities of 28 faces" in link.reason
    assert "0% of the faces have a stranger nearest, the rest ~13.0 links" in link.reason, link.reason
    assert _ratio(link) < 2.5


def _ratio(link) -> float:
    """How many times as many standard deviations the cut sits above the strangers' mode as below the same
    person's, as the reason says."""
    return float(re.search(r"cut (\d+\.\d+) times as many standard deviations", link.reason).group(1))


def test_a_link_needs_more_where_a_stranger_link_decides_more_faces():
    """The share of faces whose nearest neighbour is a stranger, read off the mixture, is the true one; the
    more faces are alone, the further from the strangers a link must be."""
    ratios = []
    for seed, singles in ((0, 0.1), (1, 0.6)):
        x, who = space(0.8, 0.05, seed=seed)
        keep = np.r_[np.flatnonzero(np.bincount(who)[who] > 1), np.flatnonzero(np.bincount(who)[who] == 1)]
        rng = np.random.default_rng(100 + seed)  # not space()'s stream
        # add lone faces (people seen once) until they are `singles` of the collection
        lone = int(singles * len(keep) / (1 - singles))
        extra = rng.standard_normal((lone, x.shape[1])).astype(np.float32)
        x = np.vstack([x[keep], extra / np.linalg.norm(extra, axis=1, keepdims=True)])
        who = np.r_[who[keep], who.max() + 1 + np.arange(lone)]
        graph = knn_graph(x, 30)
        link = calibrate_link_threshold(graph)
        truly_alone = float(np.mean(who[graph.indices[:, 0]] != who))
        told = float(re.search(r"(\d+)% of the faces have a stranger nearest", link.reason).group(1)) / 100
        assert abs(told - truly_alone) < 0.05, link.reason
        ratios.append(_ratio(link))
    assert ratios[0] < ratios[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_estimated_precision_counts_the_strangers_heavy_tail(seed):
    """Neighbour similarities whose strangers' mode has a heavy upper tail, as real faces' do (Student t, 4 degrees
    of freedom, in Fisher z): the reported share of stranger links above the cut is the true one within 1.5 times.
    Gaussian modes put it 8-10 times too low here."""
    rng = np.random.default_rng(seed)
    stranger = np.r_[np.zeros(6000, bool), np.ones(4000, bool)]
    z = np.where(stranger, 0.5 + 0.1 * rng.standard_t(4, 10_000), 1.2 + 0.25 * rng.standard_t(4, 10_000))
    order = rng.permutation(10_000)
    sims, stranger = np.tanh(z[order]).reshape(1000, 10), stranger[order].reshape(1000, 10)
    ranked = np.argsort(-sims, axis=1)
    sims, stranger = np.take_along_axis(sims, ranked, 1), np.take_along_axis(stranger, ranked, 1)
    link = calibrate_link_threshold(KnnGraph(indices=np.zeros(sims.shape, int), sims=sims))
    true_share = stranger[sims >= link.threshold].mean()
    reported_share = 1 - link.estimated_precision
    assert true_share > 0.002 and true_share / 1.5 < reported_share < true_share * 1.5


def _t_tailed_neighbours(rng: np.random.Generator, faces: int, strangers: float) -> tuple[np.ndarray, np.ndarray]:
    """Each face's 10 nearest neighbours' similarities, most similar first, a share `strangers` of them from a
    heavy-tailed strangers' mode (Student t, 4 degrees of freedom, in Fisher z), the rest from a same-person one; and
    which are strangers."""
    values = faces * 10
    stranger = np.arange(values) < round(strangers * values)
    z = np.where(stranger, 0.5 + 0.1 * rng.standard_t(4, values), 1.2 + 0.25 * rng.standard_t(4, values))
    order = rng.permutation(values)
    sims, stranger = np.tanh(z[order]).reshape(faces, 10), stranger[order].reshape(faces, 10)
    ranked = np.argsort(-sims, axis=1)
    return np.take_along_axis(sims, ranked, 1), np.take_along_axis(stranger, ranked, 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_precision_of_the_links_among_the_faces_left_is_read_off_their_own_mix(seed):
    """A collection whose neighbours are 40% strangers, and the faces left once its people are labeled, whose
    neighbours are 95% strangers: the collection's estimate puts 3% stranger links among them where ~45% are;
    the collection's modes with the faces' own mix put the true share within 1.25 times. On the collection
    itself it gives the collection's estimate."""
    rng = np.random.default_rng(seed)
    sims, _ = _t_tailed_neighbours(rng, 1000, 0.4)
    link = calibrate_link_threshold(KnnGraph(indices=np.zeros(sims.shape, int), sims=sims))
    assert link.tail_modes is not None and link.ranks == 10
    left, stranger = _t_tailed_neighbours(rng, 400, 0.95)
    true_share = stranger[left >= link.threshold].mean()
    reported = 1 - linked_precision(KnnGraph(indices=np.zeros(left.shape, int), sims=left), link)
    assert true_share / 1.25 < reported < true_share * 1.25 and 1 - link.estimated_precision < true_share / 5
    itself = linked_precision(KnnGraph(indices=np.zeros(sims.shape, int), sims=sims), link)
    assert abs(itself - link.estimated_precision) < 1e-3
    assert linked_precision(KnnGraph(indices=np.zeros((400, 5), int), sims=left[:, :5]), link) is None  # too shallow
    lone = KnnGraph(indices=np.full((1, 10), -1), sims=np.full((1, 10), -np.inf))  # one face left: no neighbours
    assert linked_precision(lone, link) is None


def test_two_modes_of_one_persons_photos_are_not_cut_between():
    """Near-duplicates above a person's other photos, and no strangers near: two modes as wide as each
    other are no look-alike peak, and a cut between them would split everyone."""
    rng = np.random.default_rng(2)
    sims = np.where(rng.random((500, 10)) < 0.4, rng.normal(0.9, 0.02, (500, 10)), rng.normal(0.6, 0.1, (500, 10)))
    sims = np.sort(np.clip(sims, -1, 1), axis=1)[:, ::-1]
    graph = KnnGraph(indices=np.zeros(sims.shape, int), sims=sims)
    assert calibrate_link_threshold(graph) is None


def bursts(
    seed: int, *, burst: int = 10, within: float = 0.94, tight: float = 0.97, people: int = 10, photos: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """A dense collection in a dlib-like space (`people` with `photos` each, strangers' cosines near 0.85, no one seen
    once) whose people each have a burst: their first `burst` photos near-copies of one shot (cosine ~`tight` to it),
    the rest spread around them (~`within` to their centre)."""
    rng = np.random.default_rng(seed)
    dim = 64
    common = rng.standard_normal(dim)
    common /= np.linalg.norm(common)
    own = rng.standard_normal((people, dim))
    own -= np.outer(own @ common, common)
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    centres = np.sqrt(0.85) * common + np.sqrt(0.15) * own
    spread, copies = np.sqrt((1 / within - 1) / dim), np.sqrt((1 / tight - 1) / dim)
    faces = []
    for centre in centres:
        shot = centre + spread * rng.standard_normal(dim)
        shot /= np.linalg.norm(shot)
        faces += [
            shot + copies * rng.standard_normal((burst, dim)),
            centre + spread * rng.standard_normal((photos - burst, dim)),
        ]
    x = np.vstack(faces)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(people), photos)


def _burst_pass(x: np.ndarray, who: np.ndarray) -> tuple[LinkThreshold, float]:
    graph = knn_graph(x, 30)
    link = calibrate_link_threshold(graph, deeper=sampled_neighbours(x))
    assert link is not None
    return link, clustering_scores(who, ChineseWhispers(link.threshold, **link.strangers).fit_predict(x, graph=graph))[
        "bcubed_f"
    ]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_shallow_read_of_one_persons_photos_in_two_modes_gives_way(seed, monkeypatch):
    """Every face's 10 nearest are its own person, and the bursts' near-copies above the rest of their photos make two
    clean modes there, both one person's, with half the faces read as alone. The 100 nearest show the strangers and
    put the same person under the 10 nearest's cut, with no one alone: that read decides (dlib, 10 of LFW's people
    with 30 photos each: F 0.22 and 0.52 -> 1.0 in 2 of 8 samples), unless its links would not close. Without the
    check the 10 nearest's cut splits everyone."""
    x, who = bursts(seed)
    link, f = _burst_pass(x, who)
    assert link.ranks == 100 and "one person's photos in both their modes" in link.reason
    assert link.alone < 0.05 and f > 0.99
    closure = link_closure
    monkeypatch.setattr(  # as if the deeper read's cut linked strangers (near from far: few people twice)
        "facekit.cluster.calibration.link_closure", lambda g, t, *a: 0.0 if t < 0.93 else closure(g, t, *a)
    )
    assert _burst_pass(x, who)[0].ranks == 10
    monkeypatch.undo()
    monkeypatch.setattr("facekit.cluster.calibration._one_person_not_split", lambda link, *_: link)
    shallow, f = _burst_pass(x, who)
    assert shallow.ranks == 10 and shallow.alone > 0.3 and shallow.threshold > link.threshold + 0.05 and f < 0.5


@pytest.mark.parametrize("seed", [0, 1])
def test_a_burst_is_not_taken_for_faces_with_a_stranger_nearest(seed, monkeypatch):
    """Half of each person's photos a burst: every face's nearest similarity shows two modes, the rest of the photos in
    the lower one. The link's mixture (its 100 nearest) reads no one alone, so that mode is no faces with a stranger
    nearest, and the cut is not tightened to it (MobileFace, 5 of LFW's people with 50 photos each: F 0.13 -> 0.99).
    Tightened anyway, it splits everyone."""
    x, who = bursts(seed, burst=15, within=0.92)
    link, f = _burst_pass(x, who)
    assert link.ranks == 100 and "tightened" not in link.method and f > 0.99
    monkeypatch.setattr("facekit.cluster.nearest_modes.ALONE_AGREES", 0.0)
    tightened, f = _burst_pass(x, who)
    assert "tightened to two modes" in tightened.method and f < 0.5


def _two_kinds_of_strangers(seed: int, faces: int = 300, alone: float = 0.3) -> KnnGraph:
    """Each face's similarities to all the others, sorted: 7 photos of its own person at ~0.75 (none for a share
    `alone`), and strangers of two kinds, half at ~0.55 (its own kind: a model whose features carry age and gender)
    and half at ~0.3."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(faces):
        own = 0 if rng.random() < alone else 7
        kind = (faces - 1 - own) // 2
        values = np.r_[
            rng.normal(0.75, 0.07, own), rng.normal(0.55, 0.06, kind), rng.normal(0.3, 0.05, faces - 1 - own - kind)
        ]
        rows.append(np.sort(values)[::-1])
    sims = np.clip(np.array(rows), -0.99, 0.99).astype(np.float32)
    return KnnGraph(indices=np.zeros(sims.shape, int), sims=sims)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_deeper_read_that_finds_no_one_alone_does_not_overrule_a_shallower_one(seed, monkeypatch):
    """Read to all the others, the two kinds of strangers are two clean modes, and every face's nearest falls in the
    upper one; the 10 nearest show the same person, weakly apart from the look-alikes, with a third of the faces
    alone. Whether a face's nearest is a stranger does not depend on how deep one reads: the shallower read decides
    (the deeper one linked every face to its kind: HSE FaceRes's first imports, F 0.10)."""
    graph = _two_kinds_of_strangers(seed)
    link = calibrate_link_threshold(graph) or calibrate_link_threshold(graph, min_separation=MIN_SEPARATION_WEAK)
    assert link is not None and link.ranks == 10 and "weakly separated" in link.method
    assert 0.6 < link.threshold < 0.75 and link.alone > 0.15
    monkeypatch.setattr("facekit.cluster.calibration.ALONE_KEPT", 0.0)
    deepest = calibrate_link_threshold(graph)
    assert deepest is not None and deepest.alone < 0.01 and deepest.threshold < 0.55  # the kinds, cut between


def _strangers_in_kinds(seed: int, kinds: int = 3, dim: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A first import's shape (25 people with 8 photos, 100 seen once: 300 faces) whose people come in `kinds` (each
    person's centre one kind's axis plus as long a direction of its own): strangers of one kind sit at cosine ~0.5,
    of two ~0, one person's photos at ~0.95."""
    rng = np.random.default_rng(seed)
    axes = rng.standard_normal((kinds, dim))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    sizes = [8] * 25 + [1] * 100
    who = np.repeat(np.arange(len(sizes)), sizes)
    own = rng.standard_normal((len(sizes), dim))
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    centres = axes[np.arange(len(sizes)) % kinds] + own
    noise = rng.standard_normal((len(who), dim))
    x = centres[who] + 0.3 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), who


@pytest.mark.parametrize("seed", [0, 1])
def test_a_read_of_all_the_others_that_splits_strangers_by_kind_gives_way(seed):
    """Read 299 deep, one person's pairs are a few percent of those read and the mixture splits the strangers by kind:
    its "same person", every face with its own kind, lies under the cut of the 100 nearest (whose strangers' mode is
    too wide for a clean pass), and nearly no face is alone where a third are. That read's cut stands, and the reason
    says why (the deep cut linked each kind)."""
    x, who = _strangers_in_kinds(seed)
    graph, deeper = knn_graph(x, 30), sampled_neighbours(x)
    assert calibrate_link_threshold(graph, deeper=deeper) is None
    link = calibrate_link_threshold(graph, deeper=deeper, min_separation=MIN_SEPARATION_WEAK)
    assert link is not None and link.ranks == 100 and link.method.endswith("wide strangers' mode")
    assert "a kind of strangers, not one person's photos" in link.reason
    kept = ChineseWhispers(link.threshold, **link.strangers).fit_predict(x, graph=graph)
    assert clustering_scores(who, kept)["bcubed_f"] > 0.95
    deep = re.search(r"all the others \(299 nearest\) put the same person at ~([0-9.]+)", link.reason)
    assert deep is not None and float(deep.group(1)) < link.threshold
    merged = ChineseWhispers(float(deep.group(1))).fit_predict(x, graph=graph)  # a cut at the deep "same person"
    assert clustering_scores(who, merged)["bcubed_f"] < 0.5


def test_the_generic_constant_fails_where_calibration_does_not():
    """What `import-embeddings` without a model id used to do: link at the generic 0.5."""
    x, who = space(0.95, 0.85)
    generic = ChineseWhispers(0.5, min_cluster_size=1).fit_predict(x)
    assert clustering_scores(who, generic)["bcubed_f"] < 0.3  # everyone merged


def test_no_two_modes_is_no_calibration():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert calibrate_link_threshold(knn_graph(x, 30)) is None  # nobody twice: nothing to separate


def test_where_no_one_appears_twice_only_copies_are_linked(tmp_path):
    """Random faces, no one twice: each face's nearest few still stand above the rest, a weak cut between those two
    modes links strangers, and their links do not close (two faces linked to a third are rarely linked to each other).
    A pass then links only copies of one photo, and says why; a real collection's links close."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((600, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    graph = knn_graph(x, 30)
    none = calibrate_link_threshold(graph, min_separation=MIN_SEPARATION_WEAK)
    assert none is not None and none.method == "kNN similarity mixture, links do not close"
    assert none.threshold == COPY_SIMILARITY and "are linked to each other" in none.reason
    assert none.closure is not None and none.closure < MIN_LINK_CLOSURE
    assert f"only {none.closure:.0%} are linked" in none.reason
    people = knn_graph(space(0.8, 0.7, dim=32)[0], 30)
    weak = calibrate_link_threshold(people, min_separation=MIN_SEPARATION_WEAK)
    assert weak is not None and weak.closure == link_closure(people, weak.threshold) > MIN_LINK_CLOSURE
    with FaceStore(tmp_path / "s", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["unknown_threshold_source"]["method"] == none.method
        assert summary["unknown_clusters"] == 0


def test_a_weak_model_is_cut_between_weakly_separated_modes_before_a_constant(tmp_path, caplog):
    """Modes too close for a clean cut (Ashman's D under 2), as a weak model's are: where no measured value
    applies, the cut between them groups people, where the generic 0.5 merges everyone; and it says so."""
    x, who = space(0.8, 0.7, dim=32)
    graph = knn_graph(x, 30)
    assert calibrate_link_threshold(graph) is None
    weak = calibrate_link_threshold(graph, min_separation=MIN_SEPARATION_WEAK)
    assert weak is not None and weak.method == "kNN similarity mixture, weakly separated" and not weak.modes_clean
    assert "Ashman's D" in weak.reason and "FACE_UNKNOWN_EPS" in weak.reason
    assert 0.7 < weak.threshold < 0.8
    f = clustering_scores(
        who, ChineseWhispers(weak.threshold, stranger_similarity=weak.stranger_similarity).fit_predict(x)
    )
    generic = clustering_scores(who, ChineseWhispers(0.5).fit_predict(x))
    assert f["bcubed_f"] > 0.8 and generic["bcubed_f"] < 0.1
    with FaceStore(tmp_path / "unknown", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        with caplog.at_level("WARNING", logger="facekit.dual"):
            summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["unknown_threshold_source"]["method"] == "kNN similarity mixture, weakly separated"
        assert summary["unknown_threshold"] == pytest.approx(weak.threshold, abs=1e-4)
        assert "weakly separated" in caplog.text
    with FaceStore(tmp_path / "dlib", model_id=DLIB, dim=x.shape[1]) as store:
        fill(store, x)  # a measured value applies: it beats a weak cut
        summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["unknown_threshold_source"]["method"] == "model prior"
        assert summary["unknown_threshold_from_data"] is None


def test_strangers_as_widely_spread_as_one_persons_photos_are_cut_before_a_constant(tmp_path):
    """A model whose strangers spread as widely as one person's photos (HSE FaceRes: all-positive features, strangers
    at cosine 0.44 +- 0.12) shows no tight strangers' peak at any depth. With nothing else known, the deepest read,
    mostly strangers, is cut all the same, and says so, where the generic 0.5 merges people."""
    x, who = space(0.9, 0.55, people=60, per_person=20, dense=True, between_spread=0.25)
    graph, deeper = knn_graph(x, 30), sampled_neighbours(x)
    assert calibrate_link_threshold(graph, deeper=deeper) is None
    last = calibrate_link_threshold(graph, deeper=deeper, min_separation=MIN_SEPARATION_WEAK)
    assert last is not None and last.method.endswith("wide strangers' mode") and last.ranks >= LAST_RESORT_DEPTH
    assert not last.modes_clean
    assert "times as wide as the upper one" in last.reason and "FACE_UNKNOWN_EPS" in last.reason
    f = clustering_scores(who, ChineseWhispers(last.threshold).fit_predict(x, graph=graph))["bcubed_f"]
    generic = clustering_scores(who, ChineseWhispers(0.5).fit_predict(x, graph=graph))["bcubed_f"]
    assert f > 0.98 and generic < 0.95  # 0.918: since db0bd22 the orders-disagree join asks for one cloud
    with FaceStore(tmp_path / "s", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["unknown_threshold_source"]["method"] == last.method
    shallow = calibrate_link_threshold(graph, min_separation=MIN_SEPARATION_WEAK)  # 30 deep: no last resort
    assert shallow is None


def fill(store: FaceStore, x: np.ndarray, people: np.ndarray | None = None, *, first: int = 0) -> None:
    """One face a photo; each photo in its person's folder (`people`), else all in one. Faces and photos are numbered
    from `first` (to add more to a store filled before)."""
    records = [
        FaceRecord(
            face_id=f"00000000-0000-0000-0000-{first + i:012d}",
            image_id=f"img{first + i}",
            image_path=f"/synthetic/{'' if people is None else f'person{people[i]}/'}{first + i}.jpg",
            face_index=0,
            bbox=None,
            det_score=None,
            quality=None,
            model_id=store.model_id,
            embedding=v,
        )
        for i, v in enumerate(x)
    ]
    store.add_faces(records, image_face_counts={f"img{first + i}": 1 for i in range(len(x))})


def test_a_pass_says_what_it_chose_and_why(tmp_path, monkeypatch):
    x, _ = space(0.95, 0.85)
    fitted = []
    fit = ChineseWhispers.fit
    monkeypatch.setattr(ChineseWhispers, "fit", lambda self, *a, **k: fitted.append(self) or fit(self, *a, **k))
    with FaceStore(tmp_path / "s", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        summary = DualModeClusterer(store).cluster_all_faces()
        source = summary["unknown_threshold_source"]
        assert source["method"] == "kNN similarity mixture" and 0.85 < summary["unknown_threshold"] < 0.95
        assert summary["unknown_threshold_from_data"]["threshold"] == summary["unknown_threshold"]
        # the clustering splits off look-alikes at the strangers' similarity the calibration read
        assert 0.85 < source["stranger_similarity"] < source["threshold"]
        assert fitted[-1].stranger_similarity == pytest.approx(source["stranger_similarity"], abs=1e-4)
        # the numbers the cut was computed from are in the summary, and give it back
        (strangers, _), (same, _) = source["modes"]
        assert np.tanh(strangers) < source["threshold"] < np.tanh(same)
        width = modes_width(source["modes"])
        assert source["ratio"] == pytest.approx(cut_ratio(source["decisive_chance"], stranger_spread=width), abs=1e-3)
        # Gaussian strangers as wide as these hold their own upper tail: the ratio leaves less room, and says so
        assert width > TAIL_SPREAD and source["ratio"] < cut_ratio(source["decisive_chance"])
        assert "holds its own upper tail" in source["reason"]
        # a face with a stranger nearest is decided by a stranger link: the chance counts them and more
        assert f"{source['alone']:.0%} of the faces have a stranger nearest" in source["reason"]
        assert 0 <= source["alone"] <= source["decisive_chance"]
        assert cut_between_modes(source["modes"], source["ratio"]) == pytest.approx(source["threshold"], abs=1e-3)
        monkeypatch.setenv("FACE_UNKNOWN_EPS", "0.5")  # set, even to the default value: it wins and says so
        summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["unknown_threshold"] == 0.5 and summary["unknown_threshold_source"]["method"] == "setting"
        assert "FACE_UNKNOWN_EPS" in summary["unknown_threshold_source"]["reason"]
        assert summary["unknown_threshold_from_data"]["threshold"] > 0.85  # still reported, for comparison
        summary = DualModeClusterer(store, unknown_threshold=0.97).cluster_all_faces()
        assert summary["unknown_threshold_source"]["method"] == "argument"
    monkeypatch.delenv("FACE_UNKNOWN_EPS")
    with FaceStore(tmp_path / "small", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x[:40])  # under 100 faces, and no prior for this model: calibrated all the same
        summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["unknown_threshold_source"]["method"] == "kNN similarity mixture"
        assert 0.85 < summary["unknown_threshold"] < 0.95  # where 0.5 would link everyone
    with FaceStore(tmp_path / "tiny", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x[:15])  # 150 neighbour similarities: too few for any mixture
        summary = DualModeClusterer(store).cluster_all_faces()
        assert summary["unknown_threshold_source"]["method"] == "generic fallback"
        assert "FACE_UNKNOWN_EPS" in summary["unknown_threshold_source"]["reason"]


def test_evaluate_measures_the_link_precision_a_pass_estimates(tmp_path):
    """With folder truth, `evaluate` measures what a pass's estimated precision claims: the share of one person's
    pairs among the pairs its threshold links."""
    x, who = space(0.8, 0.3, seed=3)
    with FaceStore(tmp_path / "store", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x, who)
        assert "no finished clustering pass" in evaluate(store)["last_pass"]["measured_link_precision"]["not_measured"]
        summary = DualModeClusterer(store).cluster_all_faces()
        measured = evaluate(store)["last_pass"]["measured_link_precision"]
        assert measured["faces"] == len(x) and measured["threshold"] == summary["unknown_threshold"]
        estimated = summary["unknown_threshold_source"]["estimated_precision"]
        assert (
            measured["pairs"] > len(x)
            and measured["precision"] > 0.95
            and abs(estimated - measured["precision"]) < 0.05
        )
        linked = summary["unknown_link_precision"]  # no one labeled: the links are among all faces
        assert linked["faces"] == len(x) and abs(linked["estimated_precision"] - estimated) < 1e-3
        assert evaluate(store)["last_pass"]["unknown_link_precision"] == linked
        DualModeClusterer(store, unknown_threshold=0.25).cluster_all_faces()  # links strangers too
        loose = evaluate(store)["last_pass"]["measured_link_precision"]
        assert loose["pairs"] > 2 * measured["pairs"] and loose["precision"] < 0.5
        people, sizes = np.unique(who, return_counts=True)
        for p in people[sizes >= 6]:
            person = store.create_person(f"person {p}")
            store.label_faces(
                [f"00000000-0000-0000-0000-{i:012d}" for i in np.flatnonzero(who == p)[:3]], person.person_id
            )
        linked = DualModeClusterer(store).cluster_all_faces()["unknown_link_precision"]
        left = evaluate(store)["last_pass"]["measured_link_precision"]
        assert linked["faces"] == left["faces"] < len(x) and linked["estimated_precision"] > 0.9


def test_hand_labeled_pairs_anchor_the_same_person_mode_only_where_the_data_shows_no_two_modes():
    x, who = space(0.95, 0.85, seed=2)
    first = np.r_[True, who[1:] != who[:-1]]  # each person's first face, labeled by hand (the rest unlabeled)
    second = np.r_[False, first[:-1]] & (who == np.r_[-1, who[:-1]])
    labeled = first | second
    people = np.where(labeled, who.astype(str), None).astype(object)
    same, _ = known_pairs(x, people, np.arange(len(x)))
    assert len(same) >= 50 and np.all(same > 0.85)
    graph = knn_graph(x[~labeled], 30)
    checked = calibrate_link_threshold(graph, same=same)  # two clean modes without them: the labels only check
    assert checked.threshold == calibrate_link_threshold(graph).threshold and checked.method == "kNN similarity mixture"
    assert f"of {len(same)} hand-labeled same-person pairs above it" in checked.reason
    # same person ~0.75, strangers ~0.68: too close to cut between (Ashman's D < 2) unless labels show one mode
    rng = np.random.default_rng(0)
    sims = np.sort(np.hstack([rng.normal(0.75, 0.06, (400, 6)), rng.normal(0.68, 0.035, (400, 4))]), axis=1)[:, ::-1]
    weak = KnnGraph(indices=np.zeros(sims.shape, int), sims=sims)
    labeled_same = rng.normal(0.75, 0.06, 200)
    assert calibrate_link_threshold(weak) is None
    anchored = calibrate_link_threshold(weak, same=labeled_same)
    assert anchored is not None and anchored.method == "kNN similarity mixture + labels"
    assert "anchored by hand-labeled same-person pairs" in anchored.reason and 0.72 < anchored.threshold < 0.85
    assert calibrate_link_threshold(weak, same=labeled_same[:10]) is None  # too few pairs to anchor anything


def test_different_person_pairs_check_a_cut_the_data_gives():
    """Pairs known to be two people (labeled as two, or one photo's faces) are look-alikes, the top of the
    strangers' mode: where the data shows two modes they only check the cut, and do not move it."""
    x, who = space(0.95, 0.85, seed=2)
    graph = knn_graph(x, 30)
    found = graph.indices >= 0
    pairs = graph.sims[found & (who[np.maximum(graph.indices, 0)] != who[:, None])]
    different = np.sort(pairs)[-200:]  # the closest strangers, as labeled neighbours are
    alone = calibrate_link_threshold(graph)
    checked = calibrate_link_threshold(graph, different=different)
    assert checked.threshold == alone.threshold and checked.method == "kNN similarity mixture"
    assert "of 200 known different-person pairs below it" in checked.reason


def test_labels_do_not_change_the_faces_the_threshold_is_read_from(tmp_path):
    """The link is calibrated on every face, not only on those left unknown: labeling people (whose other
    faces are then assigned to them) leaves the collection alone. Where its neighbourhoods separate the modes
    by themselves, the labeled pairs check the cut (in its reason) and do not move it."""
    x, who = space(0.95, 0.85, seed=3)
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(x))]
    with FaceStore(tmp_path / "s", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        before = DualModeClusterer(store).cluster_all_faces()
        people, sizes = np.unique(who, return_counts=True)
        for p in people[sizes >= 6][:10]:
            person = store.create_person(f"person {p}")
            store.label_faces([ids[i] for i in np.flatnonzero(who == p)[:3]], person.person_id)
        after = DualModeClusterer(store).cluster_all_faces()
        store.history.start_run("killed")  # no finished pass to take the threshold from
        later = DualModeClusterer(store)  # a later process adding faces calibrates as the pass did
        assert round(later.link_threshold(), 4) == after["unknown_threshold"]
        assert later.link_.reason == after["unknown_threshold_source"]["reason"]
    assert after["assigned_to_people"] > 0
    assert f"of {len(x)} faces" in after["unknown_threshold_from_data"]["reason"]
    assert "hand-labeled same-person pairs above it" in after["unknown_threshold_source"]["reason"]
    assert after["unknown_threshold"] == before["unknown_threshold"]


def copies_of(x: np.ndarray, share: float, similarity: float) -> np.ndarray:
    """A `share` of the rows of `x` again, each at cosine `similarity` to its original."""
    rng = np.random.default_rng(0)
    originals = x[rng.choice(len(x), int(share * len(x)), replace=False)]
    noise = rng.standard_normal(originals.shape)
    noise -= (noise * originals).sum(axis=1, keepdims=True) * originals
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    return (similarity * originals + np.sqrt(1 - similarity**2) * noise).astype(np.float32)


COPIES = [  # (within, between, a copy's cosine to its photo, share of the photos copied)
    (0.95, 0.85, 1.0, 0.1),
    (0.8, 0.05, 1.0, 0.1),
    (0.6, 0.2, 1.0, 0.1),
    (0.95, 0.85, 0.998, 0.1),
    (0.8, 0.05, 0.99, 0.1),
    (0.6, 0.2, 0.995, 0.1),
    (0.95, 0.85, 0.99, 0.3),
    (0.8, 0.05, 0.98, 0.3),
]


@pytest.mark.parametrize(("within", "between", "similarity", "share"), COPIES)
def test_copies_of_photos_do_not_move_the_cut(within, between, similarity, share):
    """A tenth of the photos twice (imported twice: cosine 1; re-saved: a little less), or more, no evidence of how one
    person's photos spread. They took a mode of their own: no calibration at all here (a precomputed space fell back
    to the generic 0.5); on LFW a cut far too low, or a NaN one where both modes' densities underflowed. Where one
    person's photos spread widely (0.6), near copies took the whole upper mode, the people and the strangers the
    lower one; where they are many (30% of the photos), they widened the same-person mode enough to hide in it."""
    x, who = space(within, between)
    alone = calibrate_link_threshold(knn_graph(x, 30))
    with_copies = np.vstack([x, copies_of(x, share, similarity)])
    graph = knn_graph(with_copies, 30)
    link = calibrate_link_threshold(graph)
    assert link is not None and np.isfinite(link.threshold)
    assert abs(link.threshold - alone.threshold) < 0.05 * (within - between)
    assert "left out as copies of one photo" in link.reason and "copies" not in alone.reason
    labels = ChineseWhispers(link.threshold, min_cluster_size=1).fit_predict(with_copies, graph=graph)
    assert clustering_scores(who, labels[: len(x)])["bcubed_f"] > 0.95


def test_a_well_separated_same_person_mode_is_not_taken_for_copies():
    """A strong model on a dense collection: one person's photos at ~0.99, strangers near 0. A three-mode fit's top
    mode is the same person's, far above the strangers' two; left out as copies, it left no two modes to cut."""
    x, who = space(0.99, 0.0, people=60, per_person=12, dense=True)
    graph = knn_graph(x, 30)
    link = calibrate_link_threshold(graph)
    assert link is not None and link.method == "kNN similarity mixture"
    labels = ChineseWhispers(link.threshold, min_cluster_size=1).fit_predict(x, graph=graph)
    assert clustering_scores(who, labels)["bcubed_f"] > 0.95
