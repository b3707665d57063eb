"""Permutations of hidden neurons as node relabelings of neural graphs.

A permutation of the hidden neurons of a layer changes the parameters but not the function. On a
graph it is a relabeling: node features and edge features are gathered so that position ``i`` of
hidden layer ``l`` now holds old neuron ``perms[k][i]``, while ``edge_index`` (and the canonical
edge order) stay as they are. For a batch every graph gets its own permutation.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from nngraph.graph.convert import Graph, graph_spec, num_graphs
from nngraph.graph.spec import ArchSpec

__all__ = ["random_perms", "random_relabel", "relabel", "relabel_indices"]


def relabel(g: Graph, perms: Sequence[Tensor], *, validate: bool = True) -> Graph:
    """Relabel the hidden neurons of ``g`` (a ``Data`` or a ``Batch``).

    ``perms`` holds one tensor per hidden layer, in layer order: ``[n_l]`` (the same permutation
    for every graph) or ``[B, n_l]`` (one per graph). New neuron ``i`` of that layer is old neuron
    ``perms[k][..., i]``. Returns a shallow copy with ``x`` and ``edge_attr`` gathered; the decoded
    network (``to_module``) computes the same function. Other per-node or per-edge fields you add
    are not moved: gather them with :func:`relabel_indices`.
    """
    spec = graph_spec(g)
    b = num_graphs(g)
    node_idx, edge_idx = relabel_indices(spec, perms, b, device=g.x.device, validate=validate)
    out = copy.copy(g)
    out.x = g.x.index_select(0, node_idx)
    out.edge_attr = g.edge_attr.index_select(0, edge_idx)
    return out


def random_relabel(
    g: Graph, generator: torch.Generator | None = None, *, return_perms: bool = False
) -> Graph | tuple[Graph, list[Tensor]]:
    """Relabel every graph of ``g`` by its own uniformly random permutation of each hidden layer."""
    perms = random_perms(graph_spec(g), num_graphs(g), generator=generator, device=g.x.device)
    out = relabel(g, perms, validate=False)
    return (out, perms) if return_perms else out


def random_perms(
    spec: ArchSpec,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Independent uniform permutations ``[batch_size, n_l]`` for each hidden layer of ``spec``."""
    gen_device = generator.device if generator is not None else device
    out = []
    for size in spec.layer_sizes[1:-1]:
        keys = torch.rand(batch_size, size, generator=generator, device=gen_device)
        out.append(keys.argsort(dim=1).to(device))
    return out


def relabel_indices(
    spec: ArchSpec,
    perms: Sequence[Tensor],
    batch_size: int,
    *,
    device: torch.device | str | None = None,
    validate: bool = True,
) -> tuple[Tensor, Tensor]:
    """Global gather indices ``(node_idx [B*N], edge_idx [B*E])`` of a relabeling, so that the
    relabeled batch has ``x = x[node_idx]`` and ``edge_attr = edge_attr[edge_idx]``. Node-level
    outputs of an equivariant model permute the same way."""
    t = spec.templates_on(device if device is not None else "cpu")
    hidden = list(t.hidden_layers)
    if not isinstance(perms, (list, tuple)) or not all(isinstance(p, Tensor) for p in perms):
        raise ValueError(f"perms must be a list of tensors, one per hidden layer, got "
                         f"{type(perms).__name__}")  # fmt: skip
    if len(perms) != len(hidden):
        raise ValueError(
            f"{spec} has {len(hidden)} hidden layers, so relabel needs {len(hidden)} permutations; "
            f"got {len(perms)}"
        )
    n, b = t.num_nodes, batch_size
    sigma = torch.arange(n, device=t.layer.device).repeat(b, 1)  # old node at each position
    for k, layer in enumerate(hidden):
        start, stop = t.layer_start[layer], t.layer_start[layer + 1]
        p = torch.as_tensor(perms[k], device=sigma.device)
        if validate:
            _check_perm(p, stop - start, b, layer)
        sigma[:, start:stop] = start + p.long().expand(b, stop - start)
    # int32 arithmetic where it fits: the index math is memory-bound, so half the bytes is about
    # twice the speed (PyTorch indexes with int32 as well as int64)
    small = b * max(t.num_edges, n) < 2**31
    itype = torch.int32 if small else torch.long
    # within-layer index of the old node at each position (sigma never leaves a layer)
    local = (sigma - (torch.arange(n, device=sigma.device) - t.node_local)).to(itype)  # [B, N]
    # gathered node-major ([N, B] rows are contiguous copies), then turned back to [B, E]
    local_t = local.t().contiguous()
    src, dst = t.edge_index
    edge_local = local_t.index_select(0, dst).mul_(t.edge_fan_in.to(itype).unsqueeze(1))
    edge_local += local_t.index_select(0, src)
    edge_local += t.edge_block_start.to(itype).unsqueeze(1)
    edge_local = edge_local.t()  # [B, E]
    graphs = torch.arange(b, device=sigma.device, dtype=itype).unsqueeze(1)
    node_idx = (sigma.to(itype) + graphs * n).reshape(-1)
    edge_idx = (edge_local + graphs * t.num_edges).reshape(-1)
    return node_idx, edge_idx


def _check_perm(p: Tensor, size: int, batch_size: int, layer: int) -> None:
    if p.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
        raise ValueError(f"permutation of layer {layer} must be an integer tensor, got {p.dtype}")
    if p.shape not in ((size,), (batch_size, size)) and not (p.dim() == 2 and p.shape == (1, size)):
        raise ValueError(
            f"permutation of layer {layer} must have shape [{size}] or [{batch_size}, {size}], "
            f"got {tuple(p.shape)}"
        )
    expected = torch.arange(size, device=p.device)
    bad = (p.sort(dim=-1).values != expected).any(dim=-1)
    if bool(bad.any()):
        row = p if p.dim() == 1 else p[int(bad.nonzero()[0])]
        where = "" if p.dim() == 1 else f" (graph {int(bad.nonzero()[0])})"
        shown = row.tolist() if size <= 16 else f"{row[:16].tolist()[:-1]} ..."
        raise ValueError(
            f"permutation of layer {layer}{where} is not a permutation of 0..{size - 1}: {shown}"
        )
