"""Weight matching (Ainsworth et al., Git Re-Basin): permutations that bring one network's hidden
neurons into line with another's.

Coordinate descent over hidden layers: holding the other layers' permutations fixed, the best
permutation of one layer is a linear assignment (``scipy.optimize.linear_sum_assignment``) on the
similarity of the neurons' incoming weights, bias and outgoing weights. Starting from the identity,
no step lowers the similarity, so alignment never increases the distance.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from nngraph.graph.convert import to_graph_batch, to_params
from nngraph.graph.relabel import relabel
from nngraph.graph.spec import ArchSpec, edge_layer_starts

__all__ = [
    "apply_perms",
    "compose_perms",
    "invert_perms",
    "weight_matching",
    "weight_matching_batch",
]


def _layers(params: Tensor, spec: ArchSpec) -> tuple[list[Tensor], list[Tensor]]:
    """Weights ``[n_out, n_in, F_e]`` and biases ``[n_out, F_n]`` of one network, from templates."""
    t = spec.templates_on(params.device)
    e = params[t.edge_param_idx]  # [E, F_e]
    x = torch.zeros(t.num_nodes, t.node_dim, dtype=params.dtype, device=params.device)
    x[t.node_has_param] = params[t.node_param_flat]
    starts = edge_layer_starts(spec)
    sizes = spec.layer_sizes
    weights = [
        e[starts[i] : starts[i + 1]].view(sizes[i + 1], sizes[i], -1) for i in range(spec.n_layers)
    ]
    biases = [x[t.layer_start[i + 1] : t.layer_start[i + 2]] for i in range(spec.n_layers)]
    return weights, biases


def weight_matching(
    target: Tensor,
    other: Tensor,
    spec: ArchSpec,
    *,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Permutations (one per hidden layer, relabel's convention) that align ``other`` to
    ``target`` (flat parameters ``[P]``): ``relabel(graph(other), perms)`` is as close to
    ``target`` as coordinate descent finds. The layer order is drawn from ``generator`` (a fixed
    seed when none is given, so the same pair always gets the same answer)."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    wa, ba = _layers(target.detach().double(), spec)
    wb, bb = _layers(other.detach().double(), spec)
    hidden = list(range(1, spec.n_layers))  # node layers whose neurons may move
    sizes = spec.layer_sizes

    def cost(h: int, perms: dict[int, Tensor], outgoing: bool = True) -> Tensor:
        """Similarity of target neuron i and other neuron j of layer h, neighbours fixed."""
        prev = perms.get(h - 1, torch.arange(sizes[h - 1]))
        c = torch.einsum("ikf,jkf->ij", wa[h - 1], wb[h - 1][:, prev])
        c += ba[h - 1] @ bb[h - 1].T
        if outgoing:
            nxt = perms.get(h + 1, torch.arange(sizes[h + 1]))
            c += torch.einsum("mif,mjf->ij", wa[h], wb[h][nxt])
        return c

    def solve(c: Tensor) -> Tensor:
        return torch.as_tensor(linear_sum_assignment(c.numpy(), maximize=True)[1], dtype=torch.long)

    def descend(perms: dict[int, Tensor]) -> dict[int, Tensor]:
        for _ in range(max_iter):
            changed = False
            for h in (hidden[i] for i in torch.randperm(len(hidden), generator=generator).tolist()):
                c = cost(h, perms)
                new = solve(c)
                rows = torch.arange(len(new))
                if c[rows, new].sum() > c[rows, perms[h]].sum() + 1e-12:
                    perms[h], changed = new, True
            if not changed:
                break
        return perms

    def score(perms: dict[int, Tensor]) -> float:
        total = 0.0
        for layer in range(spec.n_layers):
            rows = perms.get(layer + 1, torch.arange(sizes[layer + 1]))
            cols = perms.get(layer, torch.arange(sizes[layer]))
            total += float((wa[layer] * wb[layer][rows][:, cols]).sum())
            total += float((ba[layer] * bb[layer][rows]).sum())
        return total

    # Two starts: the identity, and a pass from the inputs that matches each layer on its incoming
    # weights and bias alone (the layer before it already matched). The better one wins; the
    # identity start keeps the promise that alignment never increases the distance.
    from_identity = descend({h: torch.arange(sizes[h]) for h in hidden})
    forward: dict[int, Tensor] = {}
    for h in hidden:
        forward[h] = solve(cost(h, forward, outgoing=False))
    from_inputs = descend(forward)
    best = max((from_identity, from_inputs), key=score)
    return [best[h] for h in hidden]


def weight_matching_batch(
    target: Tensor, other: Tensor, spec: ArchSpec, *, max_iter: int = 100
) -> list[Tensor]:
    """:func:`weight_matching` for rows ``[B, P]`` pairwise; permutations ``[B, n_l]``."""
    per_pair = [weight_matching(a, b, spec, max_iter=max_iter) for a, b in zip(target, other)]
    return [torch.stack([p[k] for p in per_pair]) for k in range(spec.n_layers - 1)]


def apply_perms(params: Tensor, perms: list[Tensor], spec: ArchSpec) -> Tensor:
    """Relabel flat parameters ``[B, P]`` (or ``[P]``) by ``perms`` (``[B, n]`` or ``[n]``)."""
    rows = params.unsqueeze(0) if params.dim() == 1 else params
    out = to_params(relabel(to_graph_batch(rows, spec), [p.to(rows.device) for p in perms]))
    return out[0] if params.dim() == 1 else out


def invert_perms(perms: list[Tensor]) -> list[Tensor]:
    """The relabeling that undoes ``perms``."""
    return [p.argsort(dim=-1) for p in perms]


def compose_perms(first: list[Tensor], then: list[Tensor]) -> list[Tensor]:
    """``relabel(relabel(g, first), then) == relabel(g, compose_perms(first, then))``."""
    return [f.gather(-1, t) if f.dim() == t.dim() else f[..., t] for f, t in zip(first, then)]
