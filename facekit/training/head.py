"""The projection head: a residual MLP over frozen base embeddings, L2-normalised output.

``y = normalize(x + W2 relu(W1 x + b1) + b2)``. W2 and b2 start at zero, so an untrained head is the
identity map: training starts from the base model's own space and early stopping can keep it.
`facekit.projection.Projection` applies the same function in numpy, without torch.
"""

from __future__ import annotations

from typing import Any

from facekit.errors import FacekitError


def import_torch() -> Any:
    """torch, or an ImportError that names the extra to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "training needs torch and pytorch-metric-learning: pip install 'facekit[torch]' "
            "(CPU build; see README for the CUDA build)"
        ) from exc
    return torch


def build_head(dim: int, hidden: int) -> Any:
    """A ProjectionHead module (torch) that starts as the identity map."""
    torch = import_torch()
    if dim < 1 or hidden < 1:
        raise FacekitError(f"dim and hidden must be >= 1, got {dim} and {hidden}")

    class ProjectionHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l1 = torch.nn.Linear(dim, hidden)
            self.l2 = torch.nn.Linear(hidden, dim)
            torch.nn.init.zeros_(self.l2.weight)
            torch.nn.init.zeros_(self.l2.bias)

        def forward(self, x: Any) -> Any:
            return torch.nn.functional.normalize(x + self.l2(torch.relu(self.l1(x))), dim=1)

    return ProjectionHead()
