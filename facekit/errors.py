"""One exception tree. Every message says what was wrong and how to fix it."""

from __future__ import annotations


class FacekitError(Exception):
    """Base class of every error facekit raises on purpose."""


class ConfigError(FacekitError, ValueError):
    """A setting (environment variable, `.env` entry or argument) has an invalid value."""


class ModelNotFoundError(FacekitError, FileNotFoundError):
    """An embedding model's files are not where facekit looks for them."""


class ModelLoadError(FacekitError, RuntimeError):
    """An embedding model's files exist but cannot be loaded or do not have the expected shape."""


class ImageError(FacekitError, ValueError):
    """An image cannot be used. `reason` is a short machine-friendly phrase for reports."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StoreError(FacekitError, RuntimeError):
    """The face store cannot do what was asked (missing face, unreachable server, ...)."""


class SchemaMismatchError(StoreError):
    """A collection was made for another embedding model or dimension."""


class NotFoundError(StoreError, KeyError):
    """A face, image or person id is not in the store."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class CheckpointError(FacekitError, ValueError):
    """A training checkpoint is missing, damaged, or made for another embedding model."""


class TrainingError(FacekitError, ValueError):
    """Training cannot run on the labels given (too few people or faces)."""


class ReportError(FacekitError, RuntimeError):
    """A report notebook cannot run (unknown notebook or parameter) or failed while running."""
