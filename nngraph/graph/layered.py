"""Index templates of layered networks (dense layers and 2-D convolutions alike): neurons or
channels as nodes layer by layer, one edge per (source, target) pair holding that pair's ``k×k``
kernel (a dense weight is a 1×1 kernel), edges target-major as relabeling requires."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from nngraph.graph.spec import ROLE_HIDDEN, ROLE_INPUT, ROLE_OUTPUT, GraphTemplates, index_runs

__all__ = ["layered_templates"]


def layered_templates(sizes: tuple[int, ...], kernels: tuple[int, ...]) -> GraphTemplates:
    """Templates for layers of ``sizes`` neurons joined by ``kernels[l]``-sized kernels, the
    parameters flattened layer by layer as weight ``[n_out, n_in, k, k]`` then bias ``[n_out]``.
    Edge features are ``max(kernels)²`` wide; a smaller kernel sits in their centre and the
    other entries have no parameter."""
    starts = [0]
    for s in sizes:
        starts.append(starts[-1] + s)
    n = starts[-1]
    width = max(kernels)
    layer = torch.cat([torch.full((s,), i, dtype=torch.long) for i, s in enumerate(sizes)])
    role = torch.full((n,), ROLE_HIDDEN, dtype=torch.long)
    role[layer == 0], role[layer == len(sizes) - 1] = ROLE_INPUT, ROLE_OUTPUT
    node_idx = torch.full((n, 1), -1, dtype=torch.long)
    src, dst, eidx, elayer, block, fan = [], [], [], [], [], []
    off = e_off = 0
    for i, (c_in, c_out) in enumerate(itertools.pairwise(sizes)):
        k = kernels[i]
        o, j = torch.arange(c_out).repeat_interleave(c_in), torch.arange(c_in).repeat(c_out)
        src.append(starts[i] + j)
        dst.append(starts[i + 1] + o)
        eidx.append(_kernel_slots(off + (o * c_in + j) * k * k, k, width))
        count = c_out * c_in
        elayer.append(torch.full((count,), i, dtype=torch.long))
        block.append(torch.full((count,), e_off, dtype=torch.long))
        fan.append(torch.full((count,), c_in, dtype=torch.long))
        off, e_off = off + count * k * k, e_off + count
        node_idx[starts[i + 1] : starts[i + 2], 0] = off + torch.arange(c_out)
        off += c_out
    has = node_idx >= 0
    edge_idx = torch.cat(eidx)
    edge_has = edge_idx >= 0
    padded = not bool(edge_has.all())
    return GraphTemplates(
        num_nodes=n,
        num_edges=e_off,
        num_params=off,
        layer_start=tuple(starts),
        edge_index=torch.stack([torch.cat(src), torch.cat(dst)]),
        node_param_idx=node_idx,
        edge_param_idx=edge_idx,
        layer=layer,
        role=role,
        edge_layer=torch.cat(elayer),
        node_local=torch.cat([torch.arange(s) for s in sizes]),
        edge_block_start=torch.cat(block),
        edge_fan_in=torch.cat(fan),
        node_has_param=has,
        node_param_flat=node_idx[has],
        node_param_pos=has.view(-1).nonzero().view(-1),
        node_runs=index_runs(node_idx),
        edge_runs=index_runs(edge_idx),
        edge_param_flat=edge_idx[edge_has] if padded else None,
        edge_param_pos=edge_has.view(-1).nonzero().view(-1) if padded else None,
    )


def _kernel_slots(first: Tensor, k: int, width: int) -> Tensor:
    """``[count, width²]`` parameter indices: each edge's ``k×k`` kernel (row-major, starting at
    ``first``) placed in the centre of a ``width×width`` grid, -1 elsewhere."""
    out = torch.full((len(first), width, width), -1, dtype=torch.long)
    d = (width - k) // 2
    out[:, d : d + k, d : d + k] = first.view(-1, 1, 1) + torch.arange(k * k).view(1, k, k)
    return out.view(len(first), width * width)
