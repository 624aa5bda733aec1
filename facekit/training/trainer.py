"""FaceTrainer: triplet training of the projection head on hand-labeled faces.

pytorch-metric-learning supplies the parts, composed here: `TripletMarginLoss` and a
`TripletMarginMiner` (semi-hard by default) over cosine similarity, and `MPerClassSampler` for
P×K batches. Early stopping watches a held-out split of the labels with the measure assignment
cares about: how many held-out photos of known people are matched to the right person at a
threshold that lets only 0.1% of faces of people the head never saw through (DIR at FAR 0.1%, the
false-accept rate assignment works at). Pseudo-labels (`facekit.assign.pseudo_labels`) may join the
training faces; validation uses hand labels only, and a held-out person's pseudo-labels stay out.
Epoch 0, the untrained head, is a candidate too, and an epoch replaces the best one only when it
beats it by more than one standard error of that score (a few hundred held-out photos make small
gains noise: on LFW, "gains" below that did not carry over to the other photos). When training never
beats the base space on held-out labels, the head stays the identity map, and the result says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facekit.errors import TrainingError
from facekit.projection import LAYERS, Projection
from facekit.training.data import TripletFaceDataset
from facekit.training.head import build_head, import_torch

log = logging.getLogger(__name__)

MINERS = ("semihard", "hard", "all", "easy")
VAL_FAR = 0.001  # the operating point of assignment: about one false accept in a thousand strangers


@dataclass
class TrainingResult:
    """What `FaceTrainer.fit` returns: the head's weights (numpy) and how training went."""

    weights: dict[str, np.ndarray]
    epochs_run: int
    best_epoch: int
    train_loss: float | None
    val_metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"


class FaceTrainer:
    """Train a projection head with a triplet loss on labeled faces.

    Parameters
    ----------
    margin : float
        Triplet margin, in cosine similarity (FACE_TRIPLET_MARGIN).
    epochs, batch_size, learning_rate :
        FACE_TRAINING_EPOCHS, FACE_BATCH_SIZE, FACE_LEARNING_RATE. An epoch is one pass over the
        training faces in P×K batches; `batch_size` is rounded down to a multiple of `m_per_class`.
    hidden : int
        Width of the head's hidden layer.
    m_per_class : int
        Faces of each person in a batch (K of P×K).
    miner : str
        Which triplets train: "semihard" (default), "hard", "all" or "easy".
    val_fraction : float
        Share of the labeled people held out as strangers for early stopping; one photo of every
        other person with at least 3 labels is held out too. 0 turns validation off.
    patience : int
        Epochs without a better validation score before training stops.
    seed : int
        Seeds torch and the sampler: the same labels give the same head on CPU.
    device : str or None
        "cuda" or "cpu"; None picks CUDA when torch sees a GPU.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.standard_normal((6, 8))
    >>> x = np.repeat(centres, 4, axis=0) + 0.3 * rng.standard_normal((24, 8))
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> result = FaceTrainer(epochs=2, batch_size=8, hidden=16, val_fraction=0).fit(x, np.repeat(list("abcdef"), 4))
    >>> result.epochs_run, sorted(result.weights)
    (2, ['l1.bias', 'l1.weight', 'l2.bias', 'l2.weight'])
    """

    def __init__(
        self,
        *,
        margin: float = 0.2,
        epochs: int = 20,
        batch_size: int = 32,
        learning_rate: float = 1e-4,
        hidden: int = 256,
        m_per_class: int = 4,
        miner: str = "semihard",
        val_fraction: float = 0.2,
        patience: int = 5,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        self.margin = margin
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.hidden = hidden
        self.m_per_class = m_per_class
        self.miner = miner
        self.val_fraction = val_fraction
        self.patience = patience
        self.seed = seed
        self.device = device

    def hyperparameters(self) -> dict[str, Any]:
        """The arguments, for checkpoints and reports."""
        keys = ("margin", "epochs", "batch_size", "learning_rate", "hidden", "m_per_class", "miner")
        return {k: getattr(self, k) for k in keys} | {"val_fraction": self.val_fraction, "seed": self.seed}

    def _check(self, x: np.ndarray, person_ids: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.miner not in MINERS:
            raise TrainingError(f"miner must be one of {MINERS}, got {self.miner!r}")
        if self.epochs < 1 or self.m_per_class < 1 or self.batch_size < 2 * self.m_per_class:
            raise TrainingError(
                f"need epochs >= 1 and batch_size >= 2 * m_per_class, got epochs={self.epochs}, "
                f"batch_size={self.batch_size}, m_per_class={self.m_per_class}"
            )
        if not 0 <= self.val_fraction < 0.5:
            raise TrainingError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        x = np.asarray(x, dtype=np.float32)
        ids = np.asarray(person_ids, dtype=object).astype(str)
        if x.ndim != 2 or len(x) != len(ids):
            raise TrainingError(f"need (N, d) embeddings and N person ids, got {x.shape} and {len(ids)}")
        people, counts = np.unique(ids, return_counts=True)
        if len(people) < 2 or (counts >= 2).sum() < 1:
            raise TrainingError(
                f"triplet training needs at least 2 labeled people and one with 2+ faces; got {len(people)} "
                f"people and {len(ids)} faces. Label more faces (facekit name-cluster, or the labeling panel)."
            )
        return x, ids

    def split(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks of training faces, held-out photos of known people, and faces of held-out people. People are drawn in
        the order their faces come (the store's: by face id, which the photo fixes), not by their ids: a person's id is
        random, and sorted ids drew other people to hold out on every run of the same labels (bench-training's
        DIR@FAR 0.1% without a head moved 0.70-0.87 between runs, and whether a head was kept with it)."""
        rng = np.random.default_rng(self.seed)
        people = np.array(list(dict.fromkeys(ids.tolist())), dtype=ids.dtype)
        train = np.ones(len(ids), bool)
        queries = np.zeros(len(ids), bool)
        strangers = np.zeros(len(ids), bool)
        n_strangers = round(self.val_fraction * len(people))
        if self.val_fraction == 0 or n_strangers < 1 or len(people) - n_strangers < 2:
            return train, queries, strangers
        held = set(rng.choice(people, n_strangers, replace=False).tolist())
        for person in people:
            rows = np.flatnonzero(ids == person)
            if person in held:
                strangers[rows], train[rows] = True, False
            elif len(rows) >= 3:
                q = rng.choice(rows)
                queries[q], train[q] = True, False
        if not queries.any():
            return np.ones(len(ids), bool), np.zeros(len(ids), bool), np.zeros(len(ids), bool)
        return train, queries, strangers

    def fit(
        self, x: np.ndarray, person_ids: Any, *, pseudo_x: np.ndarray | None = None, pseudo_ids: Any = None
    ) -> TrainingResult:
        """Train on (N, d) base embeddings of hand-labeled faces and their person ids, plus pseudo-labeled
        faces if given (training only); returns weights and metrics."""
        start = time.perf_counter()
        x, ids = self._check(x, person_ids)
        n_hand = len(x)
        train, queries, strangers = self.split(ids)
        if pseudo_x is not None and len(pseudo_x):
            extra_ids = np.asarray(pseudo_ids, dtype=object).astype(str)
            x, ids = np.concatenate([x, np.asarray(pseudo_x, dtype=np.float32)]), np.concatenate([ids, extra_ids])
            held_out = set(ids[:n_hand][strangers].tolist())
            train = np.r_[train, [p not in held_out for p in extra_ids]].astype(bool)
            no = np.zeros(len(extra_ids), bool)
            queries, strangers = np.r_[queries, no], np.r_[strangers, no]
        validate = bool(queries.any())
        history: list[dict[str, float]] = []
        best_epoch, best_score, best_weights = 0, -1.0, None
        head, loss_run = None, float("nan")
        for epoch, weights, loss in self._train(x[train], ids[train], self.epochs):
            row = {"epoch": epoch, "train_loss": loss}
            if validate:
                row.update(_validate(weights, x, ids, train, queries, strangers))
                if row["dir_at_far_0_1pct"] > best_score + _standard_error(best_score, int(queries.sum())):
                    best_epoch, best_score, best_weights = epoch, row["dir_at_far_0_1pct"], weights
                elif epoch - best_epoch >= self.patience:
                    history.append(row)
                    break
            history.append(row)
            head, loss_run = weights, loss
        assert head is not None
        epochs_run = history[-1]["epoch"]
        val_metrics: dict[str, Any] = {}
        if validate:
            baseline = history[0]
            best = next(r for r in history if r["epoch"] == best_epoch)
            val_metrics = {
                "dir_at_far_0_1pct": best["dir_at_far_0_1pct"],
                "rank1": best["rank1"],
                "base_dir_at_far_0_1pct": baseline["dir_at_far_0_1pct"],
                "base_rank1": baseline["rank1"],
                "best_epoch": best_epoch,
                "held_out_photos": int(queries.sum()),
                "held_out_people_faces": int(strangers.sum()),
            }
            if best_epoch == 0:
                log.info("no epoch beat the base embeddings on held-out labels: the head stays the identity")
            # refit on every label for the chosen number of epochs
            head, loss_run = best_weights, history[best_epoch]["train_loss"]
            if best_epoch > 0:
                *_, (_, head, loss_run) = self._train(x, ids, best_epoch)
        device = self._device()
        return TrainingResult(
            weights=head,
            epochs_run=epochs_run,
            best_epoch=best_epoch if validate else epochs_run,
            train_loss=None if np.isnan(loss_run) else round(float(loss_run), 6),
            val_metrics=val_metrics,
            history=history,
            seconds=round(time.perf_counter() - start, 3),
            device=device,
        )

    def _device(self) -> str:
        torch = import_torch()
        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def _train(self, x: np.ndarray, ids: np.ndarray, epochs: int) -> Iterator[tuple[int, dict[str, np.ndarray], float]]:
        """Yield (epoch, weights, mean loss) from epoch 0 (untrained) to `epochs`."""
        torch = import_torch()
        from pytorch_metric_learning import distances, losses, miners, samplers
        from pytorch_metric_learning.utils import common_functions

        torch.manual_seed(self.seed)
        common_functions.NUMPY_RANDOM = np.random.RandomState(self.seed)  # the sampler's generator
        device = self._device()
        data = TripletFaceDataset(x, ids.tolist())
        head = build_head(x.shape[1], self.hidden).to(device)
        similarity = distances.CosineSimilarity()
        loss_fn = losses.TripletMarginLoss(margin=self.margin, distance=similarity)
        miner = miners.TripletMarginMiner(margin=self.margin, type_of_triplets=self.miner, distance=similarity)
        m = min(self.m_per_class, self.batch_size // 2)
        batch = (self.batch_size // m) * m
        people = len(data.people)
        batch = min(batch, m * people)
        sampler = samplers.MPerClassSampler(
            data.labels, m=m, batch_size=batch, length_before_new_iter=max(len(data), batch)
        )
        loader = torch.utils.data.DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True)
        optimizer = torch.optim.AdamW(head.parameters(), lr=self.learning_rate)
        yield 0, _numpy_weights(head), float("nan")
        for epoch in range(1, epochs + 1):
            head.train()
            losses_seen = []
            for emb, labels in loader:
                out = head(emb.to(device))
                labels = labels.to(device)
                loss = loss_fn(out, labels, miner(out, labels))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses_seen.append(float(loss.detach()))
            yield epoch, _numpy_weights(head), float(np.mean(losses_seen)) if losses_seen else 0.0


def trainer_from_settings(
    epochs: int | None = None,
    margin: float | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
) -> FaceTrainer:
    """A FaceTrainer with these options; each one left out comes from the settings (FACE_TRAINING_EPOCHS,
    FACE_TRIPLET_MARGIN, FACE_BATCH_SIZE, FACE_LEARNING_RATE)."""
    from facekit.config import get_settings

    s = get_settings()
    return FaceTrainer(
        epochs=s.training_epochs if epochs is None else epochs,
        margin=s.triplet_margin if margin is None else margin,
        batch_size=s.batch_size if batch_size is None else batch_size,
        learning_rate=s.learning_rate if learning_rate is None else learning_rate,
    )


def _standard_error(rate: float, n: int) -> float:
    """Binomial standard error of a rate measured on n samples (0 before any score)."""
    return float(np.sqrt(rate * (1.0 - rate) / n)) if rate > 0 and n > 0 else 0.0


def _numpy_weights(head: Any) -> dict[str, np.ndarray]:
    state = head.state_dict()
    return {k: state[k].detach().cpu().numpy().copy() for k in LAYERS}


def _validate(
    weights: dict[str, np.ndarray],
    x: np.ndarray,
    ids: np.ndarray,
    train: np.ndarray,
    queries: np.ndarray,
    strangers: np.ndarray,
) -> dict[str, float]:
    """DIR at FAR 0.1% and rank-1 of held-out photos against the training people's centroids."""
    z = Projection(weights, {"dim": x.shape[1], "base_model_id": ""}).transform(x)
    people = np.unique(ids[train])
    centroids = np.stack([z[train & (ids == p)].mean(axis=0) for p in people])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    q_sims = z[queries] @ centroids.T
    best = q_sims.argmax(axis=1)
    right = people[best] == ids[queries]
    q_score = q_sims.max(axis=1)
    if strangers.any():
        s_score = (z[strangers] @ centroids.T).max(axis=1)
        tau = float(np.quantile(s_score, 1.0 - VAL_FAR, method="higher"))
    else:
        tau = -1.0
    return {
        "dir_at_far_0_1pct": round(float(np.mean(right & (q_score > tau))), 4),
        "rank1": round(float(np.mean(right)), 4),
    }
