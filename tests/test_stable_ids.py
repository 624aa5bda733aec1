import numpy as np

from facekit.cluster.stable_ids import match_cluster_ids

C = "unknown_cluster_"


def test_unchanged_groups_keep_their_ids():
    old = [C + "3", C + "3", C + "7", C + "7", None]
    new = match_cluster_ids(np.array([1, 1, 0, 0, -1]), old, np.zeros(5, bool))
    assert new == old


def test_a_split_keeps_the_id_on_the_larger_part_and_never_reuses_ids():
    old = [C + "2"] * 5
    new = match_cluster_ids(np.array([0, 0, 0, 1, 1]), old, np.zeros(5, bool), first_new=10)
    assert new == [C + "2"] * 3 + [C + "10"] * 2


def test_a_group_without_a_majority_gets_a_new_id():
    old = [C + "1", C + "2", C + "3", None]
    new = match_cluster_ids(np.array([0, 0, 0, 0]), old, np.zeros(4, bool))
    assert set(new) == {C + "4"}


def test_pinned_faces_keep_their_cluster_and_pull_their_group():
    old = [C + "5", None, None, C + "6"]
    pinned = np.array([True, False, False, True])
    new = match_cluster_ids(np.array([0, 0, 0, -1]), old, pinned)
    assert new == [C + "5", C + "5", C + "5", C + "6"]
