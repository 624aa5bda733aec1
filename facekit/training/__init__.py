"""Triplet training of a projection head over frozen base embeddings (needs `facekit[torch]`)."""

from facekit.training.data import LabeledFaces, TripletFaceDataset, get_labeled_faces_by_person
from facekit.training.fine_tune import (
    fine_tune_for_person_clustering,
    latest_checkpoint,
    log_iteration,
    reassign,
    training_iteration,
)
from facekit.training.trainer import FaceTrainer, TrainingResult, trainer_from_settings

__all__ = [
    "FaceTrainer",
    "LabeledFaces",
    "TrainingResult",
    "TripletFaceDataset",
    "fine_tune_for_person_clustering",
    "get_labeled_faces_by_person",
    "latest_checkpoint",
    "log_iteration",
    "reassign",
    "trainer_from_settings",
    "training_iteration",
]
