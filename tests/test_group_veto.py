"""Automatic assignments that the collection's own groups contradict, or that link to none of their person's
faces, are taken back."""

from __future__ import annotations

import numpy as np
import pytest

from facekit.assign.group_veto import contradicted_assignments
from facekit.dual import DualModeClusterer
from facekit.store import FaceStore
from facekit.store import schema as S

from .test_calibration import fill, space, without_tail_room


def with_look_alike(seed: int, photos: int = 16, closeness: float = 0.9) -> tuple[np.ndarray, np.ndarray, int, int]:
    """`space`'s people plus one nobody labels, whose photos centre at cosine `closeness` to a person P's
    (with 12 photos) and lie close together (~0.97). Returns the faces, who is who, P and the look-alike."""
    x, who = space(0.95, 0.85, seed=seed)
    rng = np.random.default_rng(seed)
    person = np.flatnonzero(np.bincount(who) == 12)[0]
    centre = x[who == person].mean(axis=0)
    centre /= np.linalg.norm(centre)
    away = rng.standard_normal(x.shape[1])
    away -= (away @ centre) * centre
    away /= np.linalg.norm(away)
    look_alike = closeness * centre + np.sqrt(1 - closeness**2) * away
    spread = np.sqrt((1 / 0.97 - 1) / x.shape[1])
    extra = look_alike + spread * rng.standard_normal((photos, x.shape[1]))
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.vstack([x, extra.astype(np.float32)]), np.r_[who, np.full(photos, who.max() + 1)], person, who.max() + 1


def label_first_three(store: FaceStore, ids: list[str], who: np.ndarray, people: tuple[int, ...]) -> dict[int, str]:
    """Label each of `people`'s first 3 faces by hand as a person of their own; returns each one's person id."""
    named = {}
    for p in people:
        named[p] = store.create_person(f"person {p}").person_id
        store.label_faces([ids[i] for i in np.flatnonzero(who == p)[:3]], named[p])
    return named


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_look_alike_nobody_labeled_keeps_its_photos_together(tmp_path, seed):
    """Without the check, one of the look-alike's photos clears the assigner's threshold for P (each seed)
    and is taken from its own group. A clustering of every face puts it with its own photos, where P has no
    labeled face, so the assignment is revoked; P's own photos stay assigned."""
    x, who, person, look_alike = with_look_alike(seed)
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(x))]
    other = np.flatnonzero(np.bincount(who) == 12)[1]
    with FaceStore(tmp_path / "s", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        named = label_first_three(store, ids, who, (person, other))
        summary = DualModeClusterer(store).cluster_all_faces()
        faces = store.scroll_all(with_embeddings=False)
    payload = dict(zip(faces.ids, faces.payloads, strict=True))
    theirs = [payload[ids[i]] for i in np.flatnonzero(who == look_alike)]
    assert all(p.get(S.PERSON_ID) is None for p in theirs)
    assert len({p[S.CLUSTER_ID] for p in theirs}) == 1 and S.is_group(theirs[0][S.CLUSTER_ID])
    assert all(payload[ids[i]].get(S.PERSON_ID) == named[person] for i in np.flatnonzero(who == person))
    assert summary["person_calibration"]["revoked_by_groups"] >= 1


def stranger_beside(x: np.ndarray, mine: np.ndarray, labeled: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    """A face at `cosine` to the prototype of the `labeled` faces of a person (rows `mine` of `x`) whose other part is
    orthogonal to every face of theirs: its cosine to each of them is `cosine` times theirs to the prototype."""
    prototype = x[labeled].sum(axis=0)
    prototype /= np.linalg.norm(prototype)
    basis = np.linalg.qr(x[mine].T)[0]
    away = np.random.default_rng(seed).standard_normal(x.shape[1])
    away -= basis @ (basis.T @ away)
    away /= np.linalg.norm(away)
    return (cosine * prototype + np.sqrt(1 - cosine**2) * away).astype(np.float32)


@pytest.mark.parametrize(("within", "between", "seed"), [(0.95, 0.85, 2), (0.7, 0.3, 2)])
def test_a_stranger_linked_to_none_of_the_persons_faces_is_not_given_to_them(
    tmp_path, monkeypatch, within, between, seed
):
    """A stranger seen once, built to clear the calibrated rule for a person P (as look-alikes of a demographic the
    model compresses do, whom the few labeled people's impostor tests never meet) while every face of P is further
    from it than the unknown faces' link threshold. The rule alone gives it to P; placed one by one, or in a pass, it
    stays unknown, and P's own faces stay P's. In a dlib-like space and an ArcFace-like one, with seeds that leave room
    between the rule's threshold and the link for such a face, and where no group of the other faces takes it in
    (the older check, `contradicted_assignments`, then revokes it): the cut rule's plain link (`without_tail_room`),
    which in the dlib-like space leaves that room."""
    without_tail_room(monkeypatch)
    x, who = space(within, between, seed=seed)
    ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(x) + 1)]
    person, other = np.flatnonzero(np.bincount(who) == 12)[:2]
    mine = np.flatnonzero(who == person)
    with FaceStore(tmp_path / "s", model_id="precomputed_unknown", dim=x.shape[1]) as store:
        fill(store, x)
        named = label_first_three(store, ids, who, (person, other))
        d = DualModeClusterer(store)
        summary = d.cluster_all_faces()
        rule, link = summary["person_calibration"], summary["unknown_threshold"]
        closest = float((x[mine] @ (x[mine[:3]].sum(axis=0) / np.linalg.norm(x[mine[:3]].sum(axis=0)))).max())
        assert rule["score_weight"] == 0 and rule["threshold"] < link / closest  # room for such a stranger
        stranger = stranger_beside(x, mine, mine[:3], (rule["threshold"] + link / closest) / 2, seed)
        assert (x[mine] @ stranger).max() < link
        assert d.assigner_.predict(stranger[None])[0] == named[person]  # the rule alone takes it for P
        fill(store, stranger[None], first=len(x))
        placed = d.add_faces_incrementally([ids[-1]])
        assert placed["assigned_to_people"] == 0 and store.get_face(ids[-1]).person_id is None
        summary = d.cluster_all_faces()
        faces = store.scroll_all(with_embeddings=False)
    payload = dict(zip(faces.ids, faces.payloads, strict=True))
    assert payload[ids[-1]].get(S.PERSON_ID) is None
    assert summary["person_calibration"]["revoked_unlinked"] >= 1
    assert all(payload[ids[i]].get(S.PERSON_ID) == named[person] for i in mine)


def test_a_group_no_closer_to_the_persons_labels_than_strangers_is_not_given_to_them():
    """An ArcFace-like space (one person's photos at cosine ~0.6 to each other) where 20 labels make a prototype that
    a tight group of a look-alike nobody labeled clears: the whole group is assigned to P, so P holds all of it, yet its
    faces sit at ~0.43 to P's labeled faces, below the strangers' 0.5. P's own photos that cluster apart from the
    labels (~0.6 to them) stay P's. Without the embeddings the group check keeps both."""
    rng = np.random.default_rng(0)
    dim = 256

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def photos(centre: np.ndarray, n: int, within: float) -> np.ndarray:
        return unit(np.sqrt(within) * centre + np.sqrt(1 - within) * unit(rng.standard_normal((n, dim))))

    person = unit(rng.standard_normal(dim))
    away = rng.standard_normal(dim)
    away = unit(away - (away @ person) * person)
    look_alike = 0.585 * person + np.sqrt(1 - 0.585**2) * away
    x = np.vstack([photos(person, 20, 0.6), photos(look_alike, 6, 0.9), photos(person, 6, 0.6)])
    groups = np.r_[np.zeros(20, int), np.ones(6, int), np.full(6, 2)]
    people = ["P"] * len(x)
    automatic = np.r_[np.zeros(20, bool), np.ones(12, bool)]
    hand = ~automatic
    labels_mean = x[:20].mean(axis=0)
    assert np.all(np.abs(x[20:26] @ labels_mean - 0.43) < 0.03) and np.all(x[26:] @ labels_mean > 0.55)
    revoked = contradicted_assignments(groups, people, automatic, hand, x, 0.5)
    assert revoked.tolist() == list(range(20, 26))
    assert len(contradicted_assignments(groups, people, automatic, hand)) == 0
