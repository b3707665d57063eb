"""Task heads on graph embeddings: a small MLP (classification logits, SimCLR projections)."""

from __future__ import annotations

import itertools

from torch import Tensor, nn

__all__ = ["MLPHead"]


class MLPHead(nn.Sequential):
    """``[B, in_dim] -> [B, out_dim]`` through ``hidden`` ReLU layers (none: one linear map)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...] = (128,)) -> None:
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"task.head_hidden={list(hidden)} is not allowed: it must be a list "
                             "of integers >= 1 (empty: one linear map)")  # fmt: skip
        dims = [in_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], out_dim))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
