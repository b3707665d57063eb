"""Graph readouts that respect the symmetry: output neurons (ordered) concatenated, or means over
hidden or all neurons (exchangeable)."""

from __future__ import annotations

from torch import Tensor

from nngraph.graph.spec import ROLE_HIDDEN, ArchSpec

__all__ = ["POOLINGS", "pool", "pooled_dim"]

POOLINGS = ("cat", "hidden_mean", "mean")


def pooled_dim(pooling: str, spec: ArchSpec, dim: int) -> int:
    """Size of the pooled vector for node states of size ``dim``."""
    _check(pooling)
    return spec.layer_sizes[-1] * dim if pooling == "cat" else dim


def pool(h: Tensor, spec: ArchSpec, pooling: str) -> Tensor:
    """``h [B, N, D]`` -> ``[B, D']``: ``cat`` joins the output neurons' states in order,
    ``hidden_mean`` averages the hidden neurons, ``mean`` averages all neurons."""
    _check(pooling)
    b = h.shape[0]
    if pooling == "cat":
        return h[:, -spec.layer_sizes[-1] :].reshape(b, -1)
    if pooling == "mean":
        return h.mean(dim=1)
    t = spec.templates_on(h.device)
    if len(t.hidden_layers) == 0:
        raise ValueError(f"pooling='hidden_mean' needs hidden neurons; {spec} has none")
    return h[:, t.role == ROLE_HIDDEN].mean(dim=1)


def _check(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
