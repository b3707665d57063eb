"""Batched functional evaluation of many INRs given as flat parameter rows, and coordinate grids."""

from __future__ import annotations

import torch
from torch import Tensor

from nngraph.graph.activations import apply_activation
from nngraph.graph.spec import ArchSpec

__all__ = ["coordinate_grid", "mlp_forward", "siren_forward"]


def coordinate_grid(
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Pixel-centre coordinates in [-1, 1], shape ``[height * width, 2]``, row-major over pixels.

    Each row is ``(x, y)`` = (column, row) coordinate, the convention of DWSNets'
    ``make_coordinates``, so ``out.view(height, width)`` is the image an INR draws.
    """
    ys = torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=-1)


def mlp_forward(params: Tensor, coords: Tensor, spec: ArchSpec) -> Tensor:
    """Evaluate ``B`` networks, flat parameters ``params[B, P]``, at ``coords`` (``[M, in]`` shared
    or ``[B, M, in]`` per network). Returns ``[B, M, out]``; one batched matmul per layer."""
    if spec.family != "mlp":
        raise ValueError(f"mlp_forward evaluates family 'mlp' specs, got {spec}")
    if params.dim() == 1:
        params = params.unsqueeze(0)
    if params.dim() != 2 or params.shape[1] != spec.num_params:
        raise ValueError(
            f"params must have shape [B, {spec.num_params}] for {spec}, got {tuple(params.shape)}"
        )
    if coords.shape[-1] != spec.in_dim or coords.dim() not in (2, 3):
        raise ValueError(
            f"coords must have shape [M, {spec.in_dim}] or [B, M, {spec.in_dim}], "
            f"got {tuple(coords.shape)}"
        )
    batch = params.shape[0]
    h = coords.to(device=params.device, dtype=params.dtype)
    if h.dim() == 2:
        h = h.unsqueeze(0).expand(batch, -1, -1)
    offset, last = 0, spec.n_layers - 1
    for layer, (n_in, n_out) in enumerate(zip(spec.layer_sizes[:-1], spec.layer_sizes[1:])):
        weight = params[:, offset : offset + n_out * n_in].view(batch, n_out, n_in)
        offset += n_out * n_in
        bias = params[:, offset : offset + n_out]
        offset += n_out
        h = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
        if layer < last:
            h = apply_activation(h, spec.activation, spec.w0)
    return h + spec.out_offset if spec.out_offset else h


#: The SIREN case of :func:`mlp_forward` (the same function: the spec carries sine and w0).
siren_forward = mlp_forward
