import numpy as np
import pytest
import scipy.sparse as sp

from facekit.cluster.graph import ChineseWhispers, ConnectedComponents, relabel_by_size
from facekit.cluster.knn import exact_knn_graph, ivf_knn_graph, knn_graph, knn_subgraph


def blobs(n_per: int, centers: int, dim: int = 16, spread: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    x = np.repeat(c, n_per, axis=0) + rng.normal(scale=spread, size=(centers * n_per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(centers), n_per)


def test_knn_is_exact_and_excludes_self():
    x, _ = blobs(10, 5)
    g = exact_knn_graph(x, k=4, block=7)  # blocks smaller than N exercise the block edges
    s = x @ x.T
    np.fill_diagonal(s, -np.inf)
    want = np.argsort(-s, axis=1)[:, :4]
    assert (np.sort(g.indices, axis=1) == np.sort(want, axis=1)).all()
    assert np.allclose(g.sims, np.take_along_axis(s, g.indices, axis=1), atol=1e-5)
    assert (np.diff(g.sims, axis=1) <= 1e-6).all()


def test_query_blocks_shrink_with_the_collection(monkeypatch):
    """Few queries against many rows: a block holds at most BLOCK_CELLS similarities, same answers."""
    import facekit.cluster.knn as knn

    assert knn.block_rows(1_000_000, 2048) * 1_000_000 <= knn.BLOCK_CELLS  # 2,000 labels x 1M faces
    assert knn.block_rows(10, 2048) == 2048 and knn.block_rows(10**9, 2048) == 1
    x, _ = blobs(40, 10)
    queries = np.arange(0, 400, 3)
    whole = exact_knn_graph(x, k=5, queries=queries)
    monkeypatch.setattr(knn, "BLOCK_CELLS", 4 * len(x))  # 4 query rows a block
    assert knn.block_rows(len(x), 2048) == 4
    small = knn.exact_knn_graph(x, k=5, queries=queries)
    assert (small.indices == whole.indices).all() and np.allclose(small.sims, whole.sims)
    assert len(small.indices) == len(queries)


def test_knn_with_fewer_rows_than_k():
    x = np.array([[1, 0.1], [0.9, 0.2], [0.8, 0.3]], dtype=np.float32)
    g = knn_graph(x / np.linalg.norm(x, axis=1, keepdims=True), k=5)
    assert (g.indices[:, 2:] == -1).all() and g.adjacency(0.5).nnz == 6


def _edges(graph, min_sim: float) -> set[tuple[int, int]]:
    return set(zip(*graph.adjacency(min_sim).nonzero(), strict=True))


def _assigned_halves(who: np.ndarray, people: int) -> np.ndarray:
    """The rows left unknown when half the faces of the first `people` people are assigned."""
    half_of_first = (who < people) & (np.arange(len(who)) % 2 == 0)
    return np.flatnonzero(~half_of_first)


def test_a_subset_graph_read_off_the_whole_has_the_edges_of_its_own():
    """The unknown faces' graph, read off the collection's: the edges a clusterer reads are those of their own
    graph. Faces that lost neighbours to assigned ones while more than k of theirs still link are searched again:
    without that, the links among the rest of a half-assigned person are missing."""
    x, who = blobs(60, 8, spread=0.3)  # 60 photos a person: every face has more than k linking neighbours
    whole = exact_knn_graph(x, k=10)
    assert (whole.sims[:, -1] > 0.5).all()
    rows = _assigned_halves(who, 2)
    own = exact_knn_graph(x[rows], k=10)
    for floor in (0.5, -np.inf):  # Chinese Whispers at a link of 0.5; HDBSCAN reads every edge
        sub = knn_subgraph(whole, rows, x[rows], floor, block=37)  # blocks smaller than n: their edges too
        assert _edges(sub, max(floor, -1.0)) == _edges(own, max(floor, -1.0))
        assert (np.diff(sub.sims, axis=1) <= 1e-6).all()  # most similar first
    never_again = knn_subgraph(whole, rows, x[rows], 2.0)
    assert _edges(never_again, 0.5) < _edges(own, 0.5)
    everyone = knn_subgraph(whole, np.arange(len(x)), x, 0.5)
    assert (everyone.indices == whole.indices).all()


def test_a_subset_graph_with_many_faces_to_search_again_is_built_anew(monkeypatch, caplog):
    """Past ~4 sqrt(n) rows to search again, exactly, a new (approximate) graph costs less."""
    import facekit.cluster.knn as knn

    x, who = blobs(60, 8, spread=0.3)
    rows = _assigned_halves(who, 6)  # 180 faces lost neighbours: over 4 sqrt(300)
    monkeypatch.setattr(knn, "EXACT_MAX_FACES", 100)
    with caplog.at_level("INFO", logger="facekit.cluster.knn"):
        sub = knn.knn_subgraph(exact_knn_graph(x, k=10), rows, x[rows], 0.5)
    assert "a new graph instead" in caplog.text
    own = exact_knn_graph(x[rows], k=10)
    assert len(_edges(sub, 0.5) & _edges(own, 0.5)) > 0.95 * len(_edges(own, 0.5))


def test_relabel_by_size():
    assert relabel_by_size(np.array([5, 5, 7, 7, 7, 9, -1]), 2).tolist() == [1, 1, 0, 0, 0, -1, -1]


@pytest.mark.parametrize("cls", [ConnectedComponents, ChineseWhispers])
def test_separated_groups_are_found(cls):
    x, y = blobs(8, 6)
    noise = np.random.default_rng(5).normal(size=(3, 16)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    labels = cls(0.8, k=10, min_cluster_size=2).fit_predict(np.vstack([x, noise]))
    assert (labels[-3:] == -1).all()
    for c in range(6):
        assert len(set(labels[:-3][y == c])) == 1 and labels[:-3][y == c][0] >= 0
    assert len(set(labels[:-3])) == 6


def test_chinese_whispers_cuts_a_chain_that_components_join():
    # Two tight groups linked through one bridge face: components merge them, Chinese Whispers does not.
    a, _ = blobs(10, 1, seed=1)
    b, _ = blobs(10, 1, seed=2)
    bridge = (a[0] + b[0]) / np.linalg.norm(a[0] + b[0])
    x = np.vstack([a, b, bridge[None]])
    t = float(min(bridge @ a[0], bridge @ b[0])) - 1e-3
    assert len(set(ConnectedComponents(t, k=12).fit_predict(x))) == 1
    cw = ChineseWhispers(t, k=12).fit_predict(x)
    assert cw[0] != cw[10]


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="threshold"):
        ConnectedComponents(1.5).fit(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="2-D"):
        ConnectedComponents(0.5).fit(np.ones(3, dtype=np.float32))


def test_ivf_graph_finds_the_same_close_neighbours():
    x, _ = blobs(20, 50, dim=32)
    exact, approx = exact_knn_graph(x, k=10), ivf_knn_graph(x, k=10)
    assert (approx.indices != np.arange(len(x))[:, None]).all()  # never its own neighbour
    close = exact.sims > 0.9
    found = [len(set(e[c]) & set(a)) for e, c, a in zip(exact.indices, close, approx.indices, strict=True)]
    assert sum(found) / close.sum() > 0.95
    s = x @ x.T
    assert np.allclose(approx.sims, np.take_along_axis(s, approx.indices, axis=1), atol=1e-5)
    assert (np.diff(approx.sims, axis=1) <= 1e-6).all()  # most similar first


def test_ivf_graph_with_fewer_rows_than_k():
    x, _ = blobs(1, 5, dim=8)
    g = ivf_knn_graph(x, k=10)
    assert (np.sort(g.indices[:, :4], axis=1) == [[j for j in range(5) if j != i] for i in range(5)]).all()
    assert (g.indices[:, 4:] == -1).all() and np.isneginf(g.sims[:, 4:]).all()


def test_chain_splitting_breaks_an_incoherent_group():
    # A line of faces, each close to the next: one group by edges, but its ends are far apart.
    angles = np.linspace(0, 1.2, 13)
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    t = float(np.cos(0.11))
    assert len(set(ChineseWhispers(t, split_chains=False).fit_predict(x))) == 1
    split = ChineseWhispers(t).fit_predict(x)
    assert split[0] == -1 or split[0] != split[-1]
    # with a calibrated stranger similarity the floor is midway up to the threshold: the line is still no person
    split = ChineseWhispers(t, stranger_similarity=0.9).fit_predict(x)
    assert split[0] == -1 or split[0] != split[-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_person_whose_photos_spread_widely_is_not_split_as_a_chain(seed):
    """Two people of 100 photos each, as a weak model places them: each photo has several links at cosine 0.45,
    but a person's photos average only ~0.38 (strangers ~0). A chain floor 0.09 of the room below the threshold
    (0.40) cuts each person apart; the floor midway to the stranger similarity (0.325) keeps them whole."""
    rng = np.random.default_rng(seed)
    x = np.vstack([np.eye(64)[person] + rng.normal(0, 0.16, (100, 64)) for person in (0, 1)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def people(labels: np.ndarray) -> list[int]:  # groups (lone faces aside) each person's photos fall in
        return [len(set(labels[p * 100 : (p + 1) * 100]) - {-1}) for p in (0, 1)]

    assert people(ChineseWhispers(0.45, split_chains=False).fit_predict(x)) == [1, 1]
    assert min(people(ChineseWhispers(0.45, chain_slack=0.09, stranger_similarity=0.2).fit_predict(x))) > 1
    labels = ChineseWhispers(0.45, stranger_similarity=0.2).fit_predict(x)
    assert people(labels) == [1, 1] and labels[0] != labels[100] and (labels == -1).sum() <= 2


def test_a_chain_is_split_where_it_is_an_outlier_among_the_collections_groups():
    """The line of faces of the test above, among 12 tight people: its mean similarity is far below theirs, and
    below the floor, so it is still split where the floor is compared with the collection's groups."""
    angles = np.linspace(0, 1.2, 13)
    line = np.zeros((13, 64))
    line[:, 40], line[:, 41] = np.cos(angles), np.sin(angles)
    rng = np.random.default_rng(0)
    people = np.vstack([np.eye(64)[p] + rng.normal(0, 0.003, (8, 64)) for p in range(12)])
    x = np.vstack([people, line])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    t = float(np.cos(0.11))
    whole = ChineseWhispers(t, split_chains=False).fit_predict(x)
    assert len(set(whole[96:])) <= 2 and len(set(whole[:96])) == 12
    for split in (ChineseWhispers(t).fit_predict(x), ChineseWhispers(t, stranger_similarity=0.9).fit_predict(x)):
        assert (split[96:] == -1).sum() >= 8 and len(set(split[:96])) == 12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_people_a_weak_model_spreads_are_not_split_where_all_spread_alike(seed):
    """12 people of 60 photos each, as a weak model places them: a person's photos average ~0.39 where a link asks
    0.45. The floor midway to the stranger similarity (0.40) lies above most of them and cuts them apart; no one of
    them is an outlier among the 12, so the floor compared with the collection's groups keeps each whole."""
    rng = np.random.default_rng(seed)
    x = np.vstack([np.eye(64)[person] + rng.normal(0, 0.155, (60, 64)) for person in range(12)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def parts(labels: np.ndarray) -> list[int]:  # groups (lone faces aside) each person's photos fall in
        return [len(set(labels[p * 60 : (p + 1) * 60]) - {-1}) for p in range(12)]

    assert parts(ChineseWhispers(0.45, split_chains=False).fit_predict(x)).count(1) >= 11
    midway = ChineseWhispers(0.45, stranger_similarity=0.35, chain_slack=0.05 / 0.55).fit_predict(x)
    assert sum(n > 1 for n in parts(midway)) >= 3
    assert parts(ChineseWhispers(0.45, stranger_similarity=0.35).fit_predict(x)) == [1] * 12


def weak_model_people(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """60 people of 3-5 photos and 4 of 30-200, as a weak model places them: a person's photos average less the more
    of them there are (0.55 - 0.035 ln n: 0.51 at 3, 0.36 at 200; the few-photo people spread 0.06 either side)."""
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 5] * 20 + [30, 60, 100, 200]
    centres = rng.normal(size=(len(sizes), 64))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    rows = []
    for person, n in enumerate(sizes):
        coherence = 0.55 - 0.035 * np.log(n) + (0.06 * (person % 5 - 2) if n < 30 else 0.0)
        rows.append(centres[person] + rng.normal(0, np.sqrt((1 / coherence - 1) / 64), (n, 64)))
    x = np.vstack(rows)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(len(sizes)), sizes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_people_with_many_photos_are_compared_with_groups_of_their_size(seed):
    """Under the midway floor the few-photo people spread, so the floor is compared with the collection's groups; the
    200-photo person's photos average under the outlier floor of them all, and are cut apart. Compared with the
    groups of its size, down to the strangers' mode, every one of the 4 people with many photos stays whole."""
    x, truth = weak_model_people(seed)

    def parts(labels: np.ndarray) -> list[int]:  # groups (lone faces aside) each person with >= 30 photos falls in
        return [len(set(labels[truth == person]) - {-1}) for person in range(60, 64)]

    assert parts(ChineseWhispers(0.45, split_chains=False).fit_predict(x)) == [1] * 4
    assert parts(ChineseWhispers(0.45, stranger_similarity=0.42).fit_predict(x))[-1] > 1
    assert parts(ChineseWhispers(0.45, stranger_similarity=0.42, stranger_mode=0.3).fit_predict(x)) == [1] * 4


def test_the_chain_floor_by_size_stops_at_the_strangers_mode():
    """Groups whose mean similarity falls 0.05 (in Fisher z) for each doubling of their size, 0.02 either side: the
    floor for a group of n faces follows that line, 1.5 robust standard deviations under it, but never under the
    strangers' mode, nor over the midway floor; where the groups do not spread under the midway floor, it stands."""
    from facekit.cluster.graph import _chain_floor

    sizes = np.repeat([3, 6, 12, 24, 48], 8)
    coherence = np.tanh(0.6 - 0.05 * np.log2(sizes / 3) + np.tile([-0.02, -0.01, 0.0, 0.01, 0.02, 0.0, 0.0, 0.0], 5))
    spread = 1.4826 * 0.005  # the residuals' median absolute deviation
    weak = ChineseWhispers(0.6, stranger_similarity=0.5, stranger_mode=0.4)  # midway 0.55
    floor = _chain_floor(weak, coherence, sizes)
    for n in (3, 12, 48):
        line = np.tanh(0.6 - 0.05 * np.log2(n / 3) - 1.5 * spread)
        assert floor(n) == pytest.approx(min(0.55, max(0.4, line)), abs=1e-6)
    assert floor(3) < 0.55 and floor(48) == pytest.approx(0.4)  # the line under the midway floor; the strangers' mode
    z = np.arctanh(coherence)  # no strangers' mode known: the groups of every size alike
    outlying = np.tanh(np.median(z) - 1.5 * 1.4826 * np.median(np.abs(z - np.median(z))))
    assert _chain_floor(ChineseWhispers(0.6, stranger_similarity=0.5), coherence, sizes)(3) == pytest.approx(outlying)
    tight = ChineseWhispers(0.6, stranger_similarity=0.05, stranger_mode=0.0)  # midway 0.325, under every group
    assert _chain_floor(tight, coherence, sizes)(100_000) == pytest.approx(0.325)


def test_the_consensus_of_visiting_orders_does_not_depend_on_the_order():
    """Overlapping people: one Chinese Whispers order differs from the next; the consensus of 9 orders
    comes out the same from any first seed, and scores at least the orders' mean."""
    from facekit.metrics import clustering_scores

    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(60), 12)
    x = rng.normal(size=(60, 32))[truth] + rng.normal(scale=0.8, size=(len(truth), 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    singles = [ChineseWhispers(0.5, orders=1, seed=s, min_cluster_size=1).fit_predict(x) for s in range(12)]
    consensus = [ChineseWhispers(0.5, seed=100 * s, min_cluster_size=1).fit_predict(x) for s in range(4)]
    assert len({tuple(labels) for labels in singles}) > 1
    assert len({tuple(labels) for labels in consensus}) == 1
    f = [clustering_scores(truth, labels)["bcubed_f"] for labels in singles]
    assert clustering_scores(truth, consensus[0])["bcubed_f"] >= np.mean(f)
    with pytest.raises(ValueError, match="orders"):
        ChineseWhispers(0.5, orders=0).fit(x)


def _two_sided_person(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A person photographed two ways (150 and 80 faces, e.g. with and without glasses) and five others."""
    dim = 32

    def faces(center: np.ndarray, n: int) -> np.ndarray:
        return center / np.linalg.norm(center) + 0.5 * rng.normal(size=(n, dim)) / np.sqrt(dim)

    c = rng.normal(size=dim)
    c /= np.linalg.norm(c)
    d = rng.normal(size=dim)
    d -= d @ c * c
    d /= np.linalg.norm(d)
    groups = [faces(c + 0.2 * d, 150), faces(c - 0.2 * d, 80)] + [faces(rng.normal(size=dim), 40) for _ in range(5)]
    x = np.vstack(groups).astype(np.float32)
    truth = np.repeat([0, 0, 1, 2, 3, 4, 5], [len(g) for g in groups])
    return x / np.linalg.norm(x, axis=1, keepdims=True), truth


def test_a_person_the_visiting_orders_split_by_chance_stays_one_group_with_every_seed():
    """Orders disagree on whether the person's two sides are one group (a seed's 9 orders split them or not);
    the two sides are as close as a link, so they are one group from every seed, and the others stay apart."""
    import facekit.cluster.graph as graph

    x, truth = _two_sided_person(np.random.default_rng(0))
    seeds = range(10)
    runs = [ChineseWhispers(0.6, seed=seed).fit_predict(x) for seed in seeds]
    for labels in runs:
        assert len(set(labels[truth == 0])) == 1
        for person in range(1, 6):
            mine = labels[truth == person]
            assert len(set(mine)) == 1 and not np.isin(mine, labels[truth != person]).any()
    # without the joins, some seeds leave the person in two groups: the case this test is about
    joins = graph._join_where_orders_disagree, graph._join_one_person
    try:
        graph._join_where_orders_disagree = graph._join_one_person = lambda x, labels, edges, threshold: labels
        split = [len(set(ChineseWhispers(0.6, seed=seed).fit_predict(x)[truth == 0])) for seed in seeds]
    finally:
        graph._join_where_orders_disagree, graph._join_one_person = joins
    assert 1 in split and 2 in split


def test_groups_the_orders_disagree_on_are_joined_only_when_as_close_as_a_link_and_one_cloud():
    """Two halves of one person's photos (each averaging ~0.81, ~0.82 between them) and a second person (~0.62 from
    the first's faces): at a cut of 0.5 the orders' contested edges join the halves, and the second person, though
    averaging over the cut, lies further apart between the groups than 1.3 times inside either and stays apart."""
    from facekit.cluster.graph import _join_where_orders_disagree

    x = _two_clouds(0, 0.75, 16, (30, 20), (0.12, 0.12))
    labels = np.repeat([0, 1, 2], [15, 15, 20])
    contested = np.array([[0, 15], [20, 40]])  # between the halves, and between half 1 and the second person
    assert float((x[:30] @ x[30:].T).mean()) > 0.5  # as close as a link asks: the case this test is about
    assert _join_where_orders_disagree(x, labels, contested, 0.5).tolist() == [0] * 30 + [2] * 20
    # a lone face stays what the orders' majority made it
    assert _join_where_orders_disagree(x, np.repeat([0, 1, 2], [29, 1, 20]), np.array([[0, 29]]), 0.5).tolist() == (
        np.repeat([0, 1, 2], [29, 1, 20]).tolist()
    )


def test_spread_groups_the_orders_disagree_on_are_joined_where_each_averages_under_the_cut():
    """A weak model's person: two parts whose faces average 0.3 each, under the cut 0.5, and 0 between them (as far
    apart as strangers), are joined where a third of the orders join them. Tight groups (1.0 each) stay apart from
    each other and from a spread group: the orders' majority keeps look-alike people apart."""
    from facekit.cluster.graph import _join_where_orders_disagree

    e = np.eye(8, dtype=np.float32)
    side = float(np.sqrt(1 - 0.3**2))
    x = np.stack([e[0], 0.3 * e[0] + side * e[1], e[2], 0.3 * e[2] + side * e[3], e[4], e[4], e[5], e[5]])
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    contested = np.array([[1, 2], [3, 4], [5, 6]])  # groups 0-1 (both spread), 1-2 (spread, tight), 2-3 (tight)
    assert _join_where_orders_disagree(x, labels, contested, 0.5).tolist() == [0, 0, 0, 0, 2, 2, 3, 3]
    # at a cut of 0.25 the parts average over it: people the orders' majority keeps apart
    assert _join_where_orders_disagree(x, labels, contested, 0.25).tolist() == labels.tolist()


def test_two_linked_parts_of_one_cloud_are_joined_and_two_people_stay_apart():
    """Two halves of one person's photos (each averaging ~0.81, ~0.82 between them) are joined; a second person
    (cosine 0.75 between the centres: ~0.62 between the faces, over the cut 0.5) stays apart, as their faces lie
    further apart between the groups than 1.3 times inside either."""
    from facekit.cluster.graph import _join_one_person

    x = _two_clouds(0, 0.75, 16, (30, 20), (0.12, 0.12))
    labels = np.repeat([0, 1, 2], [15, 15, 20])
    links = [(0, 15), (3, 20), (20, 40), (25, 45)]  # halves 0-1 linked, half 1 and the second person linked
    adjacency = sp.csr_matrix((np.ones(len(links)), tuple(zip(*links, strict=True))), shape=(50, 50))
    assert _join_one_person(x, labels, adjacency, 0.5).tolist() == [0] * 30 + [2] * 20
    # the halves average under 0.85 between them: at that cut no link joins them
    assert _join_one_person(x, labels, adjacency, 0.85).tolist() == labels.tolist()
    # unlinked groups stay apart
    assert _join_one_person(x, labels, sp.csr_matrix((50, 50)), 0.5).tolist() == labels.tolist()


def _two_clouds(seed: int, cosine: float, dim: int, sizes: tuple[int, int], spreads: tuple[float, float]) -> np.ndarray:
    """Unit vectors around two centres `cosine` apart: `sizes[i]` around centre i, with seeded Gaussian noise of
    `spreads[i]` a dimension, the first centre's first."""
    rng = np.random.default_rng(seed)
    first, second = np.eye(dim)[0], cosine * np.eye(dim)[0] + np.sqrt(1 - cosine**2) * np.eye(dim)[1]
    x = np.vstack(
        [first + rng.normal(0, spreads[0], (sizes[0], dim)), second + rng.normal(0, spreads[1], (sizes[1], dim))]
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _pose_joined(labels: np.ndarray) -> bool:
    """Whether the last 20 faces (a pose) share the label most of the first 60 (their person's spread photos) took."""
    person = np.bincount(labels[:60][labels[:60] >= 0]).argmax()
    return bool(np.all(labels[60:] == person))


@pytest.mark.parametrize("seed", [4, 7])
def test_a_pose_less_alike_to_its_person_than_the_cut_is_joined_over_midway(seed, monkeypatch):
    """60 spread photos of a person and 20 of one pose, tight, around centres 0.82 apart: 0.67-0.69 between them,
    under the cut 0.74 but over midway (0.66) between it and the stranger similarity 0.58, and they lie as one cloud.
    The consensus keeps the pose in a group of its own; the join puts it back at the midway floor, and at the cut's
    (the join's floor before) it stays apart."""
    x = _two_clouds(seed, 0.82, 12, (60, 20), (0.2, 0.03))
    clusterer = ChineseWhispers(0.74, stranger_similarity=0.58)
    assert clusterer.one_person_floor == pytest.approx(0.66)
    assert _pose_joined(clusterer.fit_predict(x))
    monkeypatch.setattr(ChineseWhispers, "one_person_floor", property(lambda self: self.threshold))
    assert not _pose_joined(ChineseWhispers(0.74, stranger_similarity=0.58).fit_predict(x))


def test_the_one_person_floor_is_the_cut_without_a_stranger_similarity_under_it():
    assert ChineseWhispers(0.6).one_person_floor == 0.6
    assert ChineseWhispers(0.6, stranger_similarity=0.65).one_person_floor == 0.6
    assert ChineseWhispers(0.6, stranger_similarity=0.65, look_alike_strangers=True).one_person_floor == 0.6
    assert ChineseWhispers(0.6, stranger_similarity=0.4).one_person_floor == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 4])
def test_where_the_strangers_are_look_alikes_a_pose_is_joined_over_the_stranger_similarity(seed):
    """The same person and pose, centres 0.76 apart: 0.64 between them, under midway (0.66) but over the stranger
    similarity 0.58. Where that similarity is how alike a face and its nearest look-alike strangers are (the
    calibration's modes lie cleanly apart among each face's nearest few) the join's floor is the stranger similarity
    and the pose is joined; where it is not (weakly separated modes, a wide strangers' mode, or a read deep down the
    neighbours), midway keeps it apart."""
    x = _two_clouds(seed, 0.76, 12, (60, 20), (0.2, 0.03))
    assert 0.58 < float((x[:60] @ x[60:].T).mean()) < 0.66
    clean = ChineseWhispers(0.74, stranger_similarity=0.58, look_alike_strangers=True)
    assert clean.one_person_floor == 0.58
    assert _pose_joined(clean.fit_predict(x))
    assert not _pose_joined(ChineseWhispers(0.74, stranger_similarity=0.58).fit_predict(x))


def _person_and_look_alike(seed: int) -> np.ndarray:
    """200 photos of one person and, after them, 10 of a look-alike: each look-alike photo has a few links to
    the person at cosine 0.6, and the two sets' mean similarity is ~0.46 (the person's photos: 0.76)."""
    return _two_clouds(seed, 0.55, 32, (200, 10), (0.1, 0.05))


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_a_look_alike_that_a_big_group_pulled_in_is_split_off(seed):
    x = _person_and_look_alike(seed)
    merged = ChineseWhispers(0.6).fit_predict(x)
    assert len(set(merged)) == 1  # the person's many links pull the look-alike in: the case this test is about
    labels = ChineseWhispers(0.6, stranger_similarity=0.5).fit_predict(x)
    assert len(set(labels[:200])) == 1 and len(set(labels[200:])) == 1 and labels[0] != labels[200]
    # no closer than strangers means below 0.5: at 0.45 the two are one group again
    assert len(set(ChineseWhispers(0.6, stranger_similarity=0.45).fit_predict(x))) == 1


def _person_in_two_poses(seed: int) -> np.ndarray:
    """40 photos each of one person in two poses a weak model keeps apart (poses' centres at cosine 0.85): each pose's
    photos average ~0.56, ~0.47 between the poses, 1.2 times as far apart (1 - cosine) as inside either."""
    return _two_clouds(seed, 0.85, 64, (40, 40), (0.11, 0.11))


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_parts_of_one_cloud_less_alike_than_strangers_stay_one_person(seed):
    """A cut 0.05 of the room stricter splits the person by pose, and the poses average under the stranger
    similarity between them; they lie as one cloud, so the parts are joined again."""
    from facekit.cluster.graph import _close

    x = _person_in_two_poses(seed)
    halves = [x[:40].sum(axis=0), x[40:].sum(axis=0)]
    assert not _close(halves, [40, 40], 0, 1, 0.5)  # under the stranger similarity
    assert len(set(ChineseWhispers(0.4, stranger_similarity=0.5).fit_predict(x))) == 1


def test_parts_are_joined_again_where_close_or_one_cloud():
    """Under the floor, two parts are still joined where they lie as one cloud: no further apart between them than
    1.3 times inside the looser one."""
    from facekit.cluster.graph import _join_close_or_one_cloud, _join_one_cloud

    x = np.array([[1, 0, 0], [0, 1, 0], [0.6, 0.8, 0], [0.8, 0.6, 0], [0, 0, 1], [0, 0.6, 0.8]])
    parts = [x[:2], x[2:4], x[4:]]  # inside: 0, 0.96, 0.8; 0.7 between the first two, 0.18 from them to the third
    sums, counts, pairs = [p.sum(axis=0) for p in parts], [2, 2, 2], [[0, 1], [0, 2]]
    assert _join_one_cloud(list(sums), list(counts), pairs, 0.8) == [0, 1, 2]
    # 1 - 0.7 = 0.3 against 1.3 x (1 - 0): the second lies inside the first's cloud; the third lies 0.82 from the
    # two joined, against 1.3 x (1 - 0.63)
    assert _join_close_or_one_cloud(list(sums), list(counts), pairs, 0.8) == [0, 0, 2]
    assert _join_close_or_one_cloud(list(sums), list(counts), pairs, 0.1) == [0, 0, 0]


@pytest.mark.parametrize("method", ["chinese_whispers", "connected_components", "hdbscan", "dbscan", "agglomerative"])
def test_every_method_recovers_separated_groups(method):
    from facekit.cluster import make_clusterer
    from facekit.metrics import clustering_scores

    x, y = blobs(8, 6)
    labels = make_clusterer(method, 0.8, 3).fit_predict(x)
    assert labels.shape == (len(x),) and labels.min() >= -1
    assert clustering_scores(y, labels)["bcubed_f"] > 0.95


def test_unknown_method_is_named():
    from facekit.cluster import make_clusterer

    with pytest.raises(ValueError, match=r"kmeans.*chinese_whispers"):
        make_clusterer("kmeans", 0.5, 2)


def test_the_compiled_whisper_pass_gives_the_python_labels():
    """numba's pass and the plain Python one: the same labels, pass after pass, on a weighted kNN graph with
    ties (equal weights) and nodes without edges."""
    import scipy.sparse as sp

    from facekit.cluster import whisper_pass as wp

    assert wp.compiled_pass() is not None  # numba comes with umap-learn: the suite runs the compiled pass
    rng = np.random.default_rng(3)
    n = 3000
    rows = np.repeat(np.arange(n), 6)
    cols = rng.integers(0, n, size=len(rows))
    weights = rng.choice([0.5, 0.75, 0.9], size=len(rows)).astype(np.float32)  # many exact ties
    keep = (rows != cols) & (rows % 50 != 0)  # every 50th node has no edge of its own
    a = sp.coo_matrix((weights[keep], (rows[keep], cols[keep])), shape=(n, n)).tocsr()
    a = a.maximum(a.T).tocsr()
    indptr, indices = a.indptr.astype(np.int64), a.indices.astype(np.int64)
    fast, slow = np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)
    for _ in range(5):
        order = rng.permutation(n)
        changed = wp.whisper_pass(indptr, indices, a.data, fast, order)
        assert changed == wp._python_pass(indptr, indices, a.data, slow, order)
        assert np.array_equal(fast, slow)
    assert len(np.unique(fast)) < n / 3  # labels really spread


def test_the_worker_warm_up_compiles_the_version_clustering_uses():
    """`facekit worker` warms the pass before it forks job processes: a clustering run afterwards must not
    compile a second version (whatever index dtypes scipy hands it)."""
    from facekit.cluster import whisper_pass as wp

    wp.warm_up()
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    ChineseWhispers(threshold=0.3, min_cluster_size=2).fit(x / np.linalg.norm(x, axis=1, keepdims=True))
    assert len(wp.compiled_pass().signatures) == 1
