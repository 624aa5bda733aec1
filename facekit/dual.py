"""DualModeClusterer: assign faces to known people, cluster the rest into unknown groups, save.

Rules every automatic pass follows (and the tests check):

- A hand label is never overwritten: faces labeled by hand (assignment_source "manual") keep their
  person, and faces put in a cluster by hand keep that cluster.
- An automatic assignment that a clustering of every face contradicts (its group holds no hand label of the
  person, and the person's faces are at most half of it) is taken back (`facekit.assign.group_veto`).
- "Not this person": a person listed in a face's `rejected_person_ids` is never given to it.
- Cannot-link: two faces of one photo never end up in the same person or cluster.
- Re-running is safe: unchanged groups keep their cluster ids, only changed faces are written, and a
  run killed midway is spotted (run marker) and completed by the next one.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from facekit.assign.group_veto import contradicted_assignments, unlinked_assignments
from facekit.assign.person_assigner import PersonAssigner
from facekit.assign.pseudo_labels import PSEUDO_SIGMAS, PSEUDO_WEIGHT, stored_pseudo_labels
from facekit.cluster import ConnectedComponents, GraphClusterer, KnnGraph, knn_graph, make_clusterer, match_cluster_ids
from facekit.cluster.calibration import (
    MIN_SEPARATION_WEAK,
    LinkThreshold,
    calibrate_link_threshold,
    known_pairs,
    linked_precision,
    sampled_neighbours,
)
from facekit.cluster.knn import KNN_K, knn_subgraph
from facekit.config import Settings, get_settings
from facekit.embedding import MODEL_DEFAULTS
from facekit.errors import ConfigError
from facekit.projection import Projection, load_projection
from facekit.store import schema as S
from facekit.store.face_store import FaceStore, StoredFaces
from facekit.store.history import DONE, RUNNING

log = logging.getLogger(__name__)

# what a pass reads of each face (less payload to copy: 10K faces read in 0.40 s instead of 0.62 s)
READ_FIELDS = [
    S.PERSON_ID,
    S.CLUSTER_ID,
    S.CLUSTER_CONFIDENCE,
    S.ASSIGNMENT_SOURCE,
    S.IMAGE_ID,
    S.REJECTED_PERSONS,
    S.PSEUDO_PERSON_ID,
]
# Faces whose best-person similarity estimates the share of unknown people (a seeded sample beyond this:
# the estimate's spread is ~0.2% at 100K, and all 1M faces' similarities would cost 2 GB of copies).
RATIO_SAMPLE = 100_000
# Faces matched against the known people at a time (bounds the faces x people similarity matrix).
ASSIGN_BLOCK = 65_536
# Faces whose new labels are checked against the store and written at a time (a million faces' updates and
# re-read payloads held at once were ~1.5 GB).
SAVE_BLOCK = 100_000


@dataclass
class DualModeResult:
    """One decision per face, aligned with the `StoredFaces` it was computed from."""

    person_ids: list[str | None]
    cluster_ids: list[str | None]
    confidences: np.ndarray
    sources: list[str | None]
    calibration: dict[str, Any]


def _is_pinned_cluster(payload: dict[str, Any]) -> bool:
    """Put in a cluster by hand (and not labeled with a person)."""
    return (
        payload.get(S.ASSIGNMENT_SOURCE) == S.SOURCE_MANUAL
        and not payload.get(S.PERSON_ID)
        and S.is_group(payload.get(S.CLUSTER_ID))
    )


IN_MEMORY = "in memory"  # a pass's space when its head was never saved to a file
# Where placing faces one by one puts each (`add_faces_incrementally` counts them)
PLACEMENTS = ("assigned_to_people", "joined_clusters", "new_clusters", "noise", "labeled_by_hand")

# When neither a setting, a measured prior nor the data gives a link threshold (a handful of faces of an
# unknown model): ArcFace-style models' same-person cosines mostly sit above it.
GENERIC_LINK_THRESHOLD = 0.5
# Below this many faces the mixture has too little to go on where the model has a measured prior. A model with none
# is calibrated on fewer (down to the calibration's MIN_EDGES neighbour similarities, ~20 faces): its alternative is
# the generic guess, which links everyone in a dlib-like space. LFW's dlib without a model id, 8 draws each of 20-94
# faces (a few people with 6-8 photos, a third as many seen once): mean BCubed F 0.90-0.98 calibrated, 0.12-0.33 at
# 0.5; MobileFaceNet 0.98-0.99 either way (bench/results/small_sets.md).
MIN_CALIBRATION_FACES = 100
# New faces are placed one by one (`index --cluster`, the index job) at the last pass's link threshold, until the store
# holds this many times the faces that pass clustered: then one full pass clusters them all, at a cut calibrated on all
# of them. The cut a collection needs moves as it grows and changes shape, and placing faces one by one has no stranger
# or chain splitting. LFW grown by batches of 1,000 from a first import of 300 faces (25 people with 8 photos, 100 seen
# once), every batch placed at that import's cut: dlib BCubed F 0.738-0.868 (3 draws), MobileFaceNet 0.934-0.945; with a
# pass at each doubling 0.931-0.932 and 0.975-0.976, where a pass on all of LFW scores 0.948 and 0.981. dlib with no
# model id, from a first import of 38 faces (the generic cut 0.5, kept for every later face): 0.155 -> 0.933
# (bench/results/growth.md). Each pass reads every face, so doubling keeps their cost within twice one at the end.
RECLUSTER_GROWTH = 2.0


def _fixed_link_threshold(given: float | None, settings: Settings) -> LinkThreshold | None:
    """The unknown-clustering threshold when the user fixed one (argument or FACE_UNKNOWN_EPS)."""
    if given is not None:
        return LinkThreshold(given, "argument", "given by the caller (--unknown-threshold or unknown_threshold=)")
    if "unknown_eps" in settings.model_fields_set:
        reason = f"FACE_UNKNOWN_EPS={settings.unknown_eps} (a cosine distance) is set"
        return LinkThreshold(1.0 - settings.unknown_eps, "setting", reason)
    return None


def _prior_link_threshold(model_id: str, projection: Projection | None) -> LinkThreshold | None:
    """The model's measured value, the fallback when the data cannot be calibrated."""
    if model_id not in MODEL_DEFAULTS:
        return None
    threshold = 1.0 - MODEL_DEFAULTS[model_id].unknown_eps
    reason = f"measured for {model_id} on LFW (bench/results/clustering.md)"
    if projection is not None:
        threshold = projection.map_threshold(threshold)
        reason += ", mapped into the trained head's space"
    return LinkThreshold(threshold, "model prior", reason)


class DualModeClusterer:
    """Known people first (supervised), then unknown groups (unsupervised), over one FaceStore.

    Parameters
    ----------
    store : FaceStore
    person_threshold : float, optional
        Fixed cosine a face needs with a person's centroid (the spec's plain rule, no margin).
        Default: FACE_PERSON_MATCH_THRESHOLD if set, else calibrated from the labels to
        `target_precision` with a runner-up margin (see `PersonAssigner`).
    unknown_method : str, optional
        chinese_whispers (default), connected_components, hdbscan, dbscan or agglomerative.
    unknown_min_size : int, optional
        Smallest unknown group; smaller ones are noise (FACE_UNKNOWN_MIN_CLUSTER_SIZE, default 2).
    unknown_threshold : float, optional
        Cosine that links two unknown faces; default 1 - FACE_UNKNOWN_EPS if set, else calibrated
        from the data in each pass (`facekit.cluster.calibration`), else (too few faces, one mode)
        the model's measured prior, else a generic 0.5. The summary says which and why
        (`unknown_threshold_source`). A prior is mapped into a trained head's space
        (`Projection.map_threshold`); a value given here is used as it is.
    projection : Projection, optional
        A trained head (`facekit.training`): assignment and clustering run on projected embeddings;
        the store keeps the base ones. Default: the checkpoint at FACE_MODEL_CHECKPOINT, if set.
    """

    def __init__(
        self,
        store: FaceStore,
        *,
        person_threshold: float | None = None,
        unknown_method: str | None = None,
        unknown_min_size: int | None = None,
        unknown_threshold: float | None = None,
        target_precision: float = 0.995,
        settings: Settings | None = None,
        projection: Projection | None = None,
    ) -> None:
        settings = settings or get_settings()
        if projection is None and settings.model_checkpoint:
            projection = load_projection(settings.model_checkpoint, model_id=store.model_id)
        elif projection is not None:
            projection.check_model(store.model_id)
        self.projection = projection
        if person_threshold is None and "person_match_threshold" in settings.model_fields_set:
            person_threshold = settings.person_match_threshold
        self.store = store
        self.person_threshold = person_threshold
        self.unknown_method = unknown_method or settings.unknown_clustering_method
        self.unknown_min_size = unknown_min_size or settings.unknown_min_cluster_size
        self._link_fixed = _fixed_link_threshold(unknown_threshold, settings)
        self._link_prior = _prior_link_threshold(store.model_id, projection)
        self.link_: LinkThreshold | None = self._link_fixed  # the last one used (a pass may calibrate it)
        self.data_link_: LinkThreshold | None = None  # what the data alone says, from the last pass
        self.linked_precision_: dict[str, Any] | None = None  # of the links the last pass made (`_linked_precision`)
        self.target_precision = target_precision
        try:  # validate early, with the setting's name
            make_clusterer(self.unknown_method, self.unknown_threshold or 0.5, self.unknown_min_size)
        except ValueError as exc:
            raise ConfigError(f"FACE_UNKNOWN_CLUSTERING_METHOD / unknown_method: {exc}") from None
        self.assigner_: PersonAssigner | None = None
        self._fitted = False

    # -- the whole pass ---------------------------------------------------------------------------
    def cluster_all_faces(self, max_faces: int | None = None) -> dict[str, Any]:
        """Assign, cluster and save every face (or the first `max_faces`); returns a summary."""
        start = time.perf_counter()
        faces = self.store.scroll_all(fields=READ_FIELDS)
        self.store.release_read_pages()  # the pass holds every vector itself from here
        if max_faces is not None:
            if max_faces < 1:
                raise ValueError(f"max_faces must be >= 1, got {max_faces}")
            faces = StoredFaces(faces.ids[:max_faces], faces.embeddings[:max_faces], faces.payloads[:max_faces])
        faces = self.project(faces)
        labeled = self.project(self.store.scroll_labeled()) if max_faces is not None else None
        run_id = uuid.uuid4().hex[:12]
        interrupted = self.store.history.start_run(run_id)
        if interrupted:
            log.warning("clustering run %s was interrupted; this run completes it", interrupted)
        result = self.predict(faces, labeled=labeled, overwrite_embeddings=True)  # they are ours, and 2 GB at 1M
        # the embeddings are done with: let go of them before the writes, which grow Edge's mapped segments
        faces = StoredFaces(faces.ids, np.empty((0, faces.embeddings.shape[1]), np.float32), faces.payloads)
        used = max((S.cluster_number(c) for c in result.cluster_ids), default=-1)
        self.store.history.reserve_cluster_numbers(used + 1)
        written = self.save_dual_mode_results(faces, result)
        groups = {c for c in result.cluster_ids if S.is_group(c)}
        summary = {
            # automatic assignments only; faces labeled by hand are counted apart
            "assigned_to_people": sum(
                s == S.SOURCE_AUTO and p is not None for s, p in zip(result.sources, result.person_ids, strict=True)
            ),
            "labeled_by_hand": sum(
                s == S.SOURCE_MANUAL and p is not None for s, p in zip(result.sources, result.person_ids, strict=True)
            ),
            "unknown_clusters": len(groups),
            "noise": sum(c is not None and not S.is_group(c) for c in result.cluster_ids),
            "total_processed": len(faces.ids),
            "faces_written": written,
            "person_calibration": result.calibration,
            "unknown_method": self.unknown_method,
            **self._link_used(),
            "unknown_threshold_from_data": self.data_link_.as_dict() if self.data_link_ else None,
            "unknown_link_precision": self.linked_precision_,
            "unknown_min_size": self.unknown_min_size,
            "completed_interrupted_run": interrupted,
            "projection": self._space(),
            "seconds": round(time.perf_counter() - start, 3),
        }
        self.store.history.finish_run(run_id, summary)
        self.store.warm_search_pages()  # the pass's arrays may have pushed the store's pages out of memory
        return summary

    cluster_all = cluster_all_faces  # the seed's name

    def predict(
        self, faces: StoredFaces, *, labeled: StoredFaces | None = None, overwrite_embeddings: bool = False
    ) -> DualModeResult:
        """Assign and cluster `faces` (in this clusterer's space) without writing anything: what
        `cluster_all_faces` would save. Sweeps and notebooks score settings with it.
        `overwrite_embeddings`: see `cluster_unknown_faces`."""
        result = self.assign_to_known_people(faces, labeled=labeled)
        return self.cluster_unknown_faces(faces, result, overwrite_embeddings=overwrite_embeddings)

    def project(self, faces: StoredFaces) -> StoredFaces:
        """`faces` with embeddings in the space this clusterer works in (projected, if it has a head)."""
        if self.projection is None or len(faces.ids) == 0:
            return faces
        return StoredFaces(faces.ids, self._embed(faces.embeddings), faces.payloads)

    def _embed(self, x: np.ndarray) -> np.ndarray:
        return x if self.projection is None else self.projection.transform(x)

    # -- stage 1: known people ---------------------------------------------------------------------
    def fit_assigner(self, faces: StoredFaces) -> PersonAssigner | None:
        """A PersonAssigner fit on the hand-labeled faces and the pseudo-labels that still count
        (`facekit.assign.pseudo_labels`, weighed less, never tested by the calibration), or None when
        fewer than 2 people are labeled by hand. The other faces tell the calibration how many faces of
        unknown people to expect."""
        self._fitted = True
        manual = np.array([S.is_hand_labeled(p) for p in faces.payloads], dtype=bool)
        hand = np.flatnonzero(manual)
        people = [faces.payloads[i][S.PERSON_ID] for i in hand]
        if len(set(people)) < 2:
            self.assigner_ = None
            return None
        unlabeled = np.flatnonzero(~manual)
        if len(unlabeled) > RATIO_SAMPLE:
            unlabeled = np.sort(np.random.default_rng(0).choice(unlabeled, RATIO_SAMPLE, replace=False))
        pseudo = stored_pseudo_labels(faces)
        rows = np.r_[hand, pseudo].astype(int)
        ids = people + [faces.payloads[i][S.PSEUDO_PERSON_ID] for i in pseudo]
        self.assigner_ = PersonAssigner(
            self.person_threshold, target_precision=self.target_precision, sigmas=PSEUDO_SIGMAS if len(pseudo) else 1.0
        ).fit(
            faces.embeddings[rows],
            ids,
            weights=np.r_[np.ones(len(hand)), np.full(len(pseudo), PSEUDO_WEIGHT)],
            calibrate=np.r_[np.ones(len(hand), bool), np.zeros(len(pseudo), bool)],
            unlabeled=faces.embeddings[unlabeled] if len(unlabeled) else None,
        )
        calibration = self.assigner_.calibration_
        calibration["pseudo_labels"] = len(pseudo)
        calibration["suspect_labels"] = [faces.ids[rows[r]] for r in calibration.get("suspect_labels", [])]
        return self.assigner_

    def assign_to_known_people(self, faces: StoredFaces, *, labeled: StoredFaces | None = None) -> DualModeResult:
        """Hand labels stay; other faces go to the best-matching labeled person or stay unknown.

        The people are learned from the hand-labeled faces among `faces`, or from `labeled` if given.
        """
        n = len(faces.ids)
        persons: list[str | None] = [None] * n
        sources: list[str | None] = [None] * n
        confidences = np.zeros(n, dtype=np.float32)
        for i, p in enumerate(faces.payloads):
            if S.is_hand_labeled(p):
                persons[i], sources[i], confidences[i] = p[S.PERSON_ID], S.SOURCE_MANUAL, 1.0
            elif _is_pinned_cluster(p):
                sources[i] = S.SOURCE_MANUAL
        result = DualModeResult(persons, [None] * n, confidences, sources, {"source": "no labels"})
        assigner = self.fit_assigner(labeled if labeled is not None else faces)
        if assigner is None:
            result.calibration = {"source": "skipped: label faces of at least 2 people to assign automatically"}
            return result
        result.calibration = {
            "threshold": round(assigner.threshold_, 4),
            **assigner.calibration_,
            "margin": round(assigner.margin_, 4),
        }
        candidates = np.array([s is None for s in sources], dtype=bool)
        if not candidates.any():
            return result
        candidates = np.flatnonzero(candidates)
        for start in range(0, len(candidates), ASSIGN_BLOCK):
            idx = candidates[start : start + ASSIGN_BLOCK]
            labels, scores = assigner.predict_with_confidence(faces.embeddings[idx])
            for i, label, score in zip(idx, labels, scores, strict=True):
                if not isinstance(label, str) or label in (faces.payloads[i].get(S.REJECTED_PERSONS) or []):
                    continue  # nobody, or "not this person"
                persons[i], sources[i], confidences[i] = str(label), S.SOURCE_AUTO, float(score)
        self._cannot_link_people(faces, result)
        return result

    @staticmethod
    def _cannot_link_people(faces: StoredFaces, result: DualModeResult) -> None:
        """One face per person and photo: hand labels first, then the most confident automatic one."""
        best: dict[tuple[str, str], int] = {}
        for i, person in enumerate(result.person_ids):
            if person is None:
                continue
            key = (faces.payloads[i].get(S.IMAGE_ID, ""), person)
            j = best.get(key)
            if j is None:
                best[key] = i
                continue
            rank_i = (result.sources[i] == S.SOURCE_MANUAL, result.confidences[i])
            rank_j = (result.sources[j] == S.SOURCE_MANUAL, result.confidences[j])
            loser = j if rank_i > rank_j else i
            if result.sources[loser] == S.SOURCE_AUTO:
                result.person_ids[loser], result.sources[loser], result.confidences[loser] = None, None, 0.0
                if loser == j:
                    best[key] = i

    # -- stage 2: unknown groups -------------------------------------------------------------------
    def cluster_unknown_faces(
        self, faces: StoredFaces, result: DualModeResult, *, overwrite_embeddings: bool = False
    ) -> DualModeResult:
        """Group faces without a person; fills `result.cluster_ids` (groups, noise ids) in place. The link
        threshold is calibrated on every face of `faces`, the collection, not on the unknown ones alone:
        which faces are labeled must not move it (on LFW, calibrated on the unknown faces only, 3 labels a
        person moved MobileFaceNet's from 0.6166 to 0.607 and cost 0.1 point of F). The unknown faces' own
        kNN graph is read off the collection's (`knn_subgraph`): one graph a pass, not two (at 100K faces
        with 30 people labeled, ~8 s less).

        `overwrite_embeddings`: the unknown faces' embeddings are moved to the front of
        `faces.embeddings` instead of copied (the other rows are lost): for a caller that owns them."""
        self.linked_precision_ = {"not_estimated": "no face left unknown"}
        if all(p is not None for p in result.person_ids) and S.SOURCE_AUTO not in result.sources:
            return result
        all_images = np.array([p.get(S.IMAGE_ID, "") for p in faces.payloads], dtype=object)
        same, different = self._labeled_pairs(faces, all_images)  # before the embeddings may be overwritten
        start = time.perf_counter()
        whole = knn_graph(faces.embeddings, KNN_K)
        log.info("kNN graph of %d faces (k=%d): %.1f s", len(faces.ids), KNN_K, time.perf_counter() - start)
        graph = _without_same_image_edges(whole, all_images)
        # the threshold is the whole collection's: labeling some faces must not move it
        link = self._calibrated_link(faces.embeddings, whole, graph, all_images, same, different)
        data = self.data_link_
        strangers = data.stranger_similarity if data is not None else None
        clusterer = make_clusterer(self.unknown_method, link.threshold, self.unknown_min_size, data=data)
        self._revoke_contradicted(faces, result, graph, clusterer, strangers)
        idx = np.flatnonzero([p is None for p in result.person_ids])
        if len(idx) == 0:
            return result
        images = all_images[idx]
        if len(idx) == len(faces.ids):
            x = faces.embeddings
        else:  # the unknown faces' own graph, read off the whole one where it can be
            del graph
            x = _front_rows(faces.embeddings, idx) if overwrite_embeddings else faces.embeddings[idx]
            graph = _without_same_image_edges(knn_subgraph(whole, idx, x, clusterer.edge_floor), images)
        del whole
        self.linked_precision_ = self._linked_precision(graph, link.threshold)
        start = time.perf_counter()
        labels = clusterer.fit(x, graph=graph).labels_
        log.info("%s at cosine %.4f: %.1f s", self.unknown_method, link.threshold, time.perf_counter() - start)
        pinned = np.array([_is_pinned_cluster(faces.payloads[i]) for i in idx], dtype=bool)
        old = [faces.payloads[i].get(S.CLUSTER_ID) for i in idx]
        ids = match_cluster_ids(labels, old, pinned, first_new=self.store.history.next_cluster_number())
        ids, conf = _enforce_cannot_link(x, images, ids, pinned, self.unknown_min_size)
        for j, i in enumerate(idx):
            result.cluster_ids[i] = ids[j] if ids[j] is not None else S.noise_name(faces.ids[i])
            result.confidences[i] = conf[j]
            if result.sources[i] is None:
                result.sources[i] = S.SOURCE_CLUSTER
        return result

    def _revoke_contradicted(
        self,
        faces: StoredFaces,
        result: DualModeResult,
        graph: KnnGraph,
        clusterer: GraphClusterer,
        stranger_similarity: float | None,
    ) -> None:
        """Take back the automatic assignments that a clustering of every face, as if nobody were labeled,
        contradicts (`contradicted_assignments`, with the link calibration's `stranger_similarity` where it gave one),
        counted in `result.calibration["revoked_by_groups"]`, and then those that link to none of their person's faces
        at `clusterer`'s threshold (`unlinked_assignments`; where the person rule was calibrated: a threshold the user
        fixed is their rule), counted in `["revoked_unlinked"]`. Only the faces linked, by any chain of links, to an
        automatically assigned one are clustered where they are at most half the collection: no group reaches past
        them (100K synthetic faces, 30 people labeled: 0.3-0.9 s against 2.0 s for every face)."""
        automatic = np.array([s == S.SOURCE_AUTO for s in result.sources], dtype=bool)
        if not automatic.any():
            return
        start = time.perf_counter()
        x = faces.embeddings
        linked = ConnectedComponents(clusterer.edge_floor, min_cluster_size=1).fit(x, graph=graph).labels_
        rows = np.flatnonzero(np.isin(linked, linked[automatic]))
        if 2 * len(rows) <= len(x):
            groups = np.full(len(x), -1, dtype=np.int64)
            part = x[rows]
            groups[rows] = clusterer.fit(part, graph=knn_subgraph(graph, rows, part, clusterer.edge_floor)).labels_
        else:
            groups = clusterer.fit(x, graph=graph).labels_
        hand = np.array(
            [s == S.SOURCE_MANUAL and p is not None for s, p in zip(result.sources, result.person_ids, strict=True)]
        )
        revoked = contradicted_assignments(groups, result.person_ids, automatic, hand, x, stranger_similarity)
        for i in revoked:
            result.person_ids[i], result.sources[i], result.confidences[i] = None, None, 0.0
        unlinked = (
            unlinked_assignments(graph, result.person_ids, automatic, clusterer.threshold)
            if self._needs_link()
            else np.array([], dtype=int)
        )
        for i in unlinked:
            result.person_ids[i], result.sources[i], result.confidences[i] = None, None, 0.0
        result.calibration["revoked_by_groups"] = len(revoked)
        result.calibration["revoked_unlinked"] = len(unlinked)
        log.info(
            "%d of %d automatic assignments revoked by a clustering of every face, %d linked to none of their "
            "person's faces: %.1f s", len(revoked), automatic.sum(), len(unlinked), time.perf_counter() - start,
        )  # fmt: skip

    def _needs_link(self) -> bool:
        """Whether an automatic assignment must link to one of its person's faces (`unlinked_assignments`): where the
        person rule was calibrated; a person threshold the user fixed is their rule."""
        return self.assigner_ is not None and self.assigner_.calibration_["source"] == "calibrated"

    def _linked_precision(self, graph: KnnGraph, threshold: float) -> dict[str, Any]:
        """The estimated precision of the links `threshold` makes among the unknown faces (`graph`: their kNN graph),
        as the pass's summary reports it (`linked_precision`), or why there is none."""
        if self.data_link_ is None or self.data_link_.tail_modes is None:
            return {"not_estimated": "the pass did not calibrate its link from the data"}
        precision = linked_precision(graph, self.data_link_, threshold)
        if precision is None:
            if graph.sims.shape[1] < (self.data_link_.ranks or 0):
                why = f"the calibration read {self.data_link_.ranks} neighbours deep, the pass's graph fewer"
            else:
                why = "no pair of unknown faces is linked"
            return {"not_estimated": why}
        return {"estimated_precision": round(precision, 4), "faces": graph.n, "threshold": round(threshold, 4)}

    @property
    def unknown_threshold(self) -> float | None:
        """The cosine that links unknown faces (None until a pass has calibrated it from the data)."""
        return self.link_.threshold if self.link_ is not None else None

    def _link_used(self) -> dict[str, Any]:
        """The link threshold unknown faces were linked at, and where it came from (both None before any)."""
        return {
            "unknown_threshold": round(self.link_.threshold, 4) if self.link_ else None,
            "unknown_threshold_source": self.link_.as_dict() if self.link_ else None,
        }

    @staticmethod
    def _labeled_pairs(faces: StoredFaces, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Neighbour similarities known to be one person or two from the hand-labeled faces' neighbours
        (`known_pairs`)."""
        people = np.array([p[S.PERSON_ID] if S.is_hand_labeled(p) else None for p in faces.payloads], dtype=object)
        return known_pairs(faces.embeddings, people, images)

    def _calibrated_link(
        self,
        embeddings: np.ndarray,
        full: KnnGraph,
        graph: KnnGraph,
        images: np.ndarray,
        same: np.ndarray,
        different: np.ndarray,
    ) -> LinkThreshold:
        """`_link_threshold` on `graph` (`full`, the kNN graph of `embeddings`, without same-photo edges), with
        two faces of one photo among `full`'s neighbours as free different-person pairs, and a sample of the
        faces read further down where everyone's nearest are their own person."""
        different = np.concatenate([different, _one_photo_pairs(full, images)])
        return self._link_threshold(graph, same, different, sampled_neighbours(embeddings, images))

    def _link_threshold(
        self,
        graph: KnnGraph,
        same: np.ndarray | None = None,
        different: np.ndarray | None = None,
        deeper: Callable[[int], KnnGraph] | None = None,
    ) -> LinkThreshold:
        """A threshold the user fixed, else one calibrated on `graph` (anchored by pairs known to be
        the `same` person or `different` ones where there are enough; `deeper` as `calibrate_link_threshold`
        takes it), else the model's measured prior, else a cut between weakly separated modes or, at the deepest read,
        around a wide strangers' mode (logged), else a generic one (logged). What the data says is kept in `data_link_`
        either way."""
        enough = graph.n >= MIN_CALIBRATION_FACES or self._link_prior is None
        deeper = functools.cache(deeper) if deeper is not None else None  # read once for both tries below
        self.data_link_ = (
            calibrate_link_threshold(graph, same=same, different=different, deeper=deeper) if enough else None
        )
        if self.data_link_ is None and enough and self._link_fixed is None and self._link_prior is None:
            self.data_link_ = calibrate_link_threshold(
                graph, same=same, different=different, deeper=deeper, min_separation=MIN_SEPARATION_WEAK
            )
            if self.data_link_ is not None:
                log.warning("unknown clustering threshold: %s", self.data_link_.reason)
        if self._link_fixed is not None:
            self.link_ = self._link_fixed
        elif self.data_link_ is not None:
            self.link_ = self.data_link_
        elif self._link_prior is not None:
            few = graph.n < MIN_CALIBRATION_FACES
            why = (
                f"{graph.n} faces"
                if few
                else "no two clean modes in their similarities whose links close and that a shallower read agrees with"
            )
            self.link_ = dataclasses.replace(
                self._link_prior, reason=f"{self._link_prior.reason}; not calibrated: {why}"
            )
        else:
            self.link_ = LinkThreshold(
                GENERIC_LINK_THRESHOLD,
                "generic fallback",
                f"no measured value for {self.store.model_id}, and {graph.n} faces too few or without two modes "
                "in their similarities to calibrate from: set FACE_UNKNOWN_EPS, or cluster again with more faces",
            )
            log.warning("unknown clustering threshold: %s", self.link_.reason)
        return self.link_

    # -- stage 3: save ----------------------------------------------------------------------------
    def save_dual_mode_results(self, faces: StoredFaces, result: DualModeResult) -> int:
        """Write person_id, cluster_id, cluster_confidence and assignment_source where they changed,
        `SAVE_BLOCK` faces at a time.

        Faces labeled by hand since `faces` was read are left alone. Returns how many faces were written.
        """
        return sum(
            self._save_block(faces, result, range(start, min(start + SAVE_BLOCK, len(faces.ids))))
            for start in range(0, len(faces.ids), SAVE_BLOCK)
        )

    def _save_block(self, faces: StoredFaces, result: DualModeResult, rows: range) -> int:
        updates: dict[str, dict[str, Any]] = {}
        read: dict[str, dict[str, Any]] = {}
        for i in rows:
            new = {
                S.PERSON_ID: result.person_ids[i],
                S.CLUSTER_ID: result.cluster_ids[i],
                S.CLUSTER_CONFIDENCE: round(float(result.confidences[i]), 4),
                S.ASSIGNMENT_SOURCE: result.sources[i],
            }
            old = faces.payloads[i]
            if any(old.get(k) != v for k, v in new.items()):
                updates[faces.ids[i]], read[faces.ids[i]] = new, old
        if not updates:
            return 0
        # A face edited by hand while this run computed keeps the edit: skip faces whose labels moved.
        watched = [S.ASSIGNMENT_SOURCE, S.PERSON_ID, S.CLUSTER_ID]
        current = self.store.payloads(list(updates), fields=watched)
        for face_id in list(updates):
            now = current.get(face_id)
            if now is None or any(now.get(k) != read[face_id].get(k) for k in watched):
                del updates[face_id]
        self.store.update_payload(updates, check_exists=False)
        return len(updates)

    # -- incremental ----------------------------------------------------------------------------
    def add_faces_incrementally(self, face_ids: Iterable[str]) -> dict[str, Any]:
        """Place new faces one by one: a known person, else the nearest unknown group, else alone.

        Known people are those of the last fit (the first call, or `cluster_all_faces`, fits them).

        A face goes to the person the assigner picks when one of its 10 nearest stored faces that are at least
        `unknown_threshold` similar (the link) is that person's, as a pass keeps an assignment
        (`unlinked_assignments`; a person threshold the user fixed is their rule, and needs no link). Else it joins a
        group when one of those faces is in that group (and the group holds no face of the same photo); a lone close
        neighbour forms a new group with it. Returns counts per outcome, and the link threshold the faces were placed
        at and where it came from (None where no face was).
        """
        ids = list(face_ids)
        counts = dict.fromkeys(PLACEMENTS, 0)
        if ids:
            if not self._fitted:  # the people as of the last fit (cluster_all_faces refits them)
                self.fit_assigner(self.project(self.store.scroll_labeled()))
            for face_id in ids:
                counts[self._place(face_id)] += 1
        return {**counts, **self._link_used()}

    def link_threshold(self) -> float:
        """The link for faces no pass has seen (placed one by one, pseudo-labels): the last pass's threshold (this
        clusterer's, else the one the store's run marker kept for the same space); with none and nothing fixed,
        calibrated once on the stored faces as a pass would (hand labels and one photo's faces as known pairs; a
        full read and kNN graph: minutes at a million faces)."""
        if self.link_ is None:
            self.link_ = self._stored_link_threshold()
        if self.link_ is None:
            faces = self.project(self.store.scroll_all(fields=[S.IMAGE_ID, S.PERSON_ID, S.ASSIGNMENT_SOURCE]))
            images = np.array([p.get(S.IMAGE_ID, "") for p in faces.payloads], dtype=object)
            same, different = self._labeled_pairs(faces, images)
            full = knn_graph(faces.embeddings, KNN_K)
            graph = _without_same_image_edges(full, images)
            self._calibrated_link(faces.embeddings, full, graph, images, same, different)
        assert self.link_ is not None
        return self.link_.threshold

    def _space(self) -> str | None:
        """The space this clusterer works in: None (the model's own), a head's file, or IN_MEMORY."""
        return None if self.projection is None else self.projection.meta.get("path", IN_MEMORY)

    def _stored_link_threshold(self) -> LinkThreshold | None:
        """The link threshold of the store's last finished pass, when it ran in this clusterer's space."""
        marker = self.store.history.run_marker()
        summary = marker.get("summary") or {}
        source = summary.get("unknown_threshold_source")
        space = self._space()
        if marker.get("status") != DONE or not source or space == IN_MEMORY or summary.get("projection") != space:
            return None
        reason = f"the last pass's ({marker.get('finished_at')}): {source['reason']}"
        modes = source.get("modes")
        return LinkThreshold(
            source["threshold"],
            source["method"],
            reason,
            estimated_precision=source.get("estimated_precision"),
            stranger_similarity=source.get("stranger_similarity"),
            modes=tuple(tuple(mode) for mode in modes) if modes else None,
            decisive_chance=source.get("decisive_chance"),
            ratio=source.get("ratio"),
            tail_modes=tuple(tuple(mode) for mode in tails) if (tails := source.get("tail_modes")) else None,
            ranks=source.get("ranks"),
            closure=source.get("closure"),
            alone=source.get("alone"),
            modes_clean=bool(source.get("modes_clean", False)),
        )

    def cluster_new_faces(self, *, incremental_limit: int = 1000) -> dict[str, Any]:
        """Place faces that have neither person nor cluster (just indexed): one by one when there are
        at most `incremental_limit`, else one full pass; a full pass too where there are some and the last pass did
        not finish, or the store holds `RECLUSTER_GROWTH` times the faces it clustered. Returns the counts and the
        link threshold used, or the full pass's summary with why it ran (`full_pass`)."""
        payloads = self.store.scroll_all(with_embeddings=False, fields=[S.PERSON_ID, S.CLUSTER_ID])
        new = [
            fid
            for fid, p in zip(payloads.ids, payloads.payloads, strict=True)
            if not p.get(S.PERSON_ID) and not p.get(S.CLUSTER_ID)
        ]
        marker = self.store.history.run_marker()
        status, faces = marker.get("status"), len(payloads.ids)
        last = (marker.get("summary") or {}).get("total_processed") if status == DONE else None
        if len(new) > incremental_limit:
            why = f"{len(new)} new faces, over the {incremental_limit} placed one by one"
        elif new and status == RUNNING:
            why = f"the last pass ({marker.get('run_id')}) did not finish: this one completes it"
        elif new and last is not None and faces >= RECLUSTER_GROWTH * max(last, 1):
            why = f"{faces} faces, {faces / max(last, 1):.1f} times the {last} of the last pass"
        else:
            return {"new_faces": len(new), **self.add_faces_incrementally(new)}
        return {"new_faces": len(new), "full_pass": why, **self.cluster_all_faces()}

    add_face_to_cluster = add_faces_incrementally  # the seed's name (takes a list of ids here)

    def _place(self, face_id: str) -> str:
        face = self.store.get_face(face_id)
        emb = face.embedding
        assert emb is not None
        z = self._embed(emb[None])[0]
        fields = [S.REJECTED_PERSONS, S.ASSIGNMENT_SOURCE, S.IMAGE_FACE_COUNT]
        payload = self.store.payloads([face_id], fields=fields).get(face_id, {})
        if payload.get(S.ASSIGNMENT_SOURCE) == S.SOURCE_MANUAL:
            return "labeled_by_hand"  # never moved by an automatic pass
        rejected = set(payload.get(S.REJECTED_PERSONS) or [])
        # cannot-link: the people and clusters of the photo's other faces are off limits. Most photos hold
        # one face (the count is stored at indexing): no scan of the store for those.
        siblings = []
        if payload.get(S.IMAGE_FACE_COUNT) != 1:
            hits = self.store.search(emb, top_k=64, image_id=face.image_id)
            siblings = [h.face for h in hits if h.face.face_id != face_id]
        taken = {f.person_id for f in siblings} | {f.cluster_id for f in siblings}
        hits = self.store.search(emb, top_k=10, with_embeddings=self.projection is not None)
        if self.projection is not None and hits:  # candidates from the store, scored in the projected space
            scores = self._embed(np.stack([h.face.embedding for h in hits])) @ z
            hits = [dataclasses.replace(h, score=float(s)) for h, s in zip(hits, scores, strict=True)]
        threshold = self.link_threshold()
        hits = [
            h for h in hits if h.face.face_id != face_id and h.score >= threshold and h.face.image_id != face.image_id
        ]
        if self.assigner_ is not None:
            labels, scores = self.assigner_.predict_with_confidence(z[None])
            person = labels[0]
            # as a pass does (`unlinked_assignments`): only a face linked to one of the person's faces joins them
            linked = not self._needs_link() or any(h.face.person_id == person for h in hits)
            if isinstance(person, str) and linked and person not in rejected and person not in taken:
                fields = {S.PERSON_ID: person, S.CLUSTER_ID: None, S.ASSIGNMENT_SOURCE: S.SOURCE_AUTO}
                self.store.update_payload({face_id: {**fields, S.CLUSTER_CONFIDENCE: round(float(scores[0]), 4)}})
                return "assigned_to_people"
        votes: dict[str, float] = {}
        for h in hits:
            cluster_id = h.face.cluster_id
            if S.is_group(cluster_id) and not h.face.person_id and cluster_id not in taken:
                votes[cluster_id] = votes.get(cluster_id, 0.0) + h.score
        if votes:
            cluster_id = max(votes, key=votes.__getitem__)
            best = max(h.score for h in hits if h.face.cluster_id == cluster_id)
            self._set_cluster([face_id], cluster_id, best)
            return "joined_clusters"
        lone = [h for h in hits if not h.face.person_id and not S.is_group(h.face.cluster_id)]
        if lone and self.unknown_min_size <= 2:
            number = self.store.history.reserve_cluster_numbers(0, count=1)
            self._set_cluster([face_id, lone[0].face.face_id], S.cluster_name(number), lone[0].score)
            return "new_clusters"
        self._set_cluster([face_id], S.noise_name(face_id), 0.0)
        return "noise"

    def _set_cluster(self, face_ids: list[str], cluster_id: str, confidence: float) -> None:
        fields = {
            S.CLUSTER_ID: cluster_id,
            S.CLUSTER_CONFIDENCE: round(float(confidence), 4),
            S.PERSON_ID: None,
            S.ASSIGNMENT_SOURCE: S.SOURCE_CLUSTER,
        }
        self.store.update_payload(dict.fromkeys(face_ids, fields))


def _without_same_image_edges(graph: KnnGraph, images: np.ndarray) -> KnnGraph:
    """Drop edges between faces of one photo (cannot-link)."""
    valid = graph.indices >= 0
    same = valid & (images[np.where(valid, graph.indices, 0)] == images[:, None])
    if not same.any():
        return graph
    sims = graph.sims.copy()
    sims[same] = -np.inf
    return KnnGraph(graph.indices, sims)


def _one_photo_pairs(graph: KnnGraph, images: np.ndarray) -> np.ndarray:
    """Free different-person pairs: similarities of two faces of one photo among each face's 10 nearest."""
    near = graph.indices[:, :10]
    one_photo = (near >= 0) & (images[np.maximum(near, 0)] == images[:, None])
    return graph.sims[:, :10][one_photo]


def _front_rows(x: np.ndarray, rows: np.ndarray, block: int = 65_536) -> np.ndarray:
    """`x[rows]` without a copy of the selection: the rows (ascending) are moved to the front of `x` block by
    block and a view of them is returned; `x`'s other rows are overwritten. Safe in place because
    rows[j] >= j: a block reads only rows that no earlier block has written."""
    for start in range(0, len(rows), block):
        part = rows[start : start + block]
        x[start : start + len(part)] = x[part]
    return x[: len(rows)]


def _enforce_cannot_link(
    x: np.ndarray, images: np.ndarray, ids: list[str | None], pinned: np.ndarray, min_size: int
) -> tuple[list[str | None], np.ndarray]:
    """At most one face per photo in each cluster (pinned faces win, then the face closest to the
    cluster's centroid); groups left below `min_size` dissolve. Returns ids and centroid cosines."""
    ids = list(ids)
    conf = np.zeros(len(ids), dtype=np.float32)
    members: dict[str, list[int]] = {}
    for j, c in enumerate(ids):
        if c is not None:
            members.setdefault(c, []).append(j)
    for rows in members.values():
        centroid = x[rows].sum(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        sims = x[rows] @ centroid
        order = sorted(range(len(rows)), key=lambda r: (not pinned[rows[r]], -sims[r]))
        seen: set[str] = set()
        kept = []
        for r in order:
            j = rows[r]
            if images[j] in seen and not pinned[j]:
                ids[j] = None
                continue
            seen.add(images[j])
            kept.append(j)
            conf[j] = sims[r]
        if len(kept) < min_size and not pinned[kept].any():
            for j in kept:
                ids[j], conf[j] = None, 0.0
    return ids, conf
