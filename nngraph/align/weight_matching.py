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
    padded = torch.cat([params, params.new_zeros(1)])  # index -1 (no parameter) reads a 0
    e = padded[torch.where(t.edge_param_idx >= 0, t.edge_param_idx, len(params))]  # [E, F_e]
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
    return _match(target, other, spec, max_iter, generator, signed=False)[0]


def signed_weight_matching(
    target: Tensor,
    other: Tensor,
    spec: ArchSpec,
    *,
    max_iter: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Weight matching over permutations *and* neuron negations, the symmetries of odd activations
    (SIREN's sine, tanh): returns ``(perms, signs)``; ``apply_alignment(other, perms, spec, signs)``
    is the aligned network. An extension of Git Re-Basin for SIRENs, not the paper's method."""
    _check_odd(spec)
    return _match(target, other, spec, max_iter, generator, signed=True)


def _check_odd(spec: ArchSpec) -> None:
    """Negating neurons preserves the function only for odd activations and no max pooling."""
    if not spec.activation_names <= {"sine", "tanh", "identity"} or _max_pooled(spec):
        raise ValueError(f"negation is a symmetry of odd activations only; {spec} is not one")


def _check_pair(target: Tensor, other: Tensor, spec: ArchSpec) -> None:
    """Two networks of ``spec`` as flat finite rows ``[P]``: anything else is one clear error."""
    for name, row in (("target", target), ("other", other)):
        if not isinstance(row, Tensor) or row.dim() != 1 or len(row) != spec.num_params:
            shape = tuple(row.shape) if isinstance(row, Tensor) else type(row).__name__
            raise ValueError(
                f"weight matching takes one network per row: {name} must have shape "
                f"[{spec.num_params}] for {spec}, got {shape}"
            )
        if not bool(torch.isfinite(row).all()):
            raise ValueError(f"weight matching: {name} has NaN or Inf weights")


def _max_pooled(spec: ArchSpec) -> bool:
    """A global max pooling is not odd: negating a channel does not negate its max."""
    return spec.has_convolutions and spec.global_pool == "max"


def _match(
    target: Tensor,
    other: Tensor,
    spec: ArchSpec,
    max_iter: int,
    generator: torch.Generator | None,
    signed: bool,
) -> tuple[list[Tensor], list[Tensor]]:
    _check_pair(target, other, spec)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    # scipy's assignment runs on the CPU: small per-pair matrices, so the CPU is the place anyway
    wa, ba = _layers(target.detach().double().cpu(), spec)
    wb, bb = _layers(other.detach().double().cpu(), spec)
    hidden = list(range(1, spec.n_layers))  # node layers whose neurons may move
    sizes = spec.layer_sizes
    State = dict[int, tuple[Tensor, Tensor]]  # layer -> (perm, sign)

    def frame(state: State, h: int) -> tuple[Tensor, Tensor]:
        fixed = (torch.arange(sizes[h]), torch.ones(sizes[h], dtype=torch.float64))
        return state.get(h, fixed)

    def cost(h: int, state: State, outgoing: bool = True) -> Tensor:
        """Similarity of target neuron i and other neuron j of layer h, neighbours fixed."""
        prev, prev_sign = frame(state, h - 1)
        c = torch.einsum("ikf,jkf->ij", wa[h - 1], wb[h - 1][:, prev] * prev_sign[None, :, None])
        c += ba[h - 1] @ bb[h - 1].T
        if outgoing:
            nxt, nxt_sign = frame(state, h + 1)
            c += torch.einsum("mif,mjf->ij", wa[h], wb[h][nxt] * nxt_sign[:, None, None])
        return c

    def solve(c: Tensor) -> tuple[Tensor, Tensor]:
        cols = linear_sum_assignment((c.abs() if signed else c).numpy(), maximize=True)[1]
        perm = torch.as_tensor(cols, dtype=torch.long)
        sign = torch.ones(len(perm), dtype=torch.float64)
        if signed:
            sign = torch.where(c[torch.arange(len(perm)), perm] < 0, -1.0, 1.0).double()
        return perm, sign

    def value(c: Tensor, perm: Tensor, sign: Tensor) -> float:
        return float((c[torch.arange(len(perm)), perm] * sign).sum())

    def descend(state: State) -> State:
        for _ in range(max_iter):
            changed = False
            for h in (hidden[i] for i in torch.randperm(len(hidden), generator=generator).tolist()):
                c = cost(h, state)
                new = solve(c)
                if value(c, *new) > value(c, *state[h]) + 1e-12:
                    state[h], changed = new, True
            if not changed:
                break
        return state

    def score(state: State) -> float:
        total = 0.0
        for layer in range(spec.n_layers):
            rows, row_sign = frame(state, layer + 1)
            cols, col_sign = frame(state, layer)
            moved = wb[layer][rows][:, cols] * row_sign[:, None, None] * col_sign[None, :, None]
            total += float((wa[layer] * moved).sum())
            total += float((ba[layer] * bb[layer][rows] * row_sign[:, None]).sum())
        return total

    # Two starts: the identity, and a pass from the inputs that matches each layer on its incoming
    # weights and bias alone (the layer before it already matched). The better one wins; the
    # identity start keeps the promise that alignment never increases the distance.
    identity = {
        h: (torch.arange(sizes[h]), torch.ones(sizes[h], dtype=torch.float64)) for h in hidden
    }
    from_identity = descend(identity)
    forward: State = {}
    for h in hidden:
        forward[h] = solve(cost(h, forward, outgoing=False))
    from_inputs = descend(forward)
    best = max((from_identity, from_inputs), key=score)
    return [best[h][0] for h in hidden], [best[h][1].float() for h in hidden]


def weight_matching_batch(
    target: Tensor, other: Tensor, spec: ArchSpec, *, max_iter: int = 100, signed: bool = False
) -> tuple[list[Tensor], list[Tensor] | None]:
    """Weight matching of rows ``[B, P]`` pairwise: permutations ``[B, n_l]`` per hidden layer,
    and signs ``[B, n_l]`` when ``signed`` (else ``None``)."""
    if signed:
        _check_odd(spec)
    if target.dim() != 2 or target.shape != other.shape:
        raise ValueError(f"weight_matching_batch pairs rows: target and other must both be "
                         f"[B, {spec.num_params}], got {tuple(target.shape)} and "
                         f"{tuple(other.shape)}")  # fmt: skip
    per_pair = [_match(a, b, spec, max_iter, None, signed=signed) for a, b in zip(target, other)]
    layers = range(spec.n_layers - 1)
    perms = [torch.stack([p[0][k] for p in per_pair]) for k in layers]
    signs = [torch.stack([p[1][k] for p in per_pair]) for k in layers] if signed else None
    return perms, signs


def apply_perms(params: Tensor, perms: list[Tensor], spec: ArchSpec) -> Tensor:
    """Relabel flat parameters ``[B, P]`` (or ``[P]``) by ``perms`` (``[B, n]`` or ``[n]``)."""
    rows = params.unsqueeze(0) if params.dim() == 1 else params
    out = to_params(relabel(to_graph_batch(rows, spec), [p.to(rows.device) for p in perms]))
    return out[0] if params.dim() == 1 else out


def node_signs(spec: ArchSpec, signs: list[Tensor], batch: int, *, like: Tensor) -> Tensor:
    """Per-node signs ``[B, N]`` from per-hidden-layer ``signs`` (1 for input and output nodes)."""
    t = spec.templates_on(like.device)
    out = torch.ones(batch, t.num_nodes, dtype=like.dtype, device=like.device)
    for k, layer in enumerate(t.hidden_layers):
        out[:, t.layer_start[layer] : t.layer_start[layer + 1]] = signs[k].to(like)
    return out


def apply_signs(params: Tensor, signs: list[Tensor], spec: ArchSpec) -> Tensor:
    """Negate hidden neurons of flat parameters ``[B, P]`` (or ``[P]``) where ``signs`` (``[B, n]``
    or ``[n]`` per hidden layer) is -1: bias and incoming weights, and outgoing weights."""
    rows = params.unsqueeze(0) if params.dim() == 1 else params
    g = to_graph_batch(rows, spec)
    t = spec.templates_on(rows.device)
    node_sign = node_signs(spec, signs, len(rows), like=rows)
    src, dst = t.edge_index
    g.x = (g.x.view(len(rows), t.num_nodes, -1) * node_sign.unsqueeze(2)).view_as(g.x)
    edge_sign = (node_sign[:, src] * node_sign[:, dst]).unsqueeze(2)
    g.edge_attr = (g.edge_attr.view(len(rows), t.num_edges, -1) * edge_sign).view_as(g.edge_attr)
    out = to_params(g)
    return out[0] if params.dim() == 1 else out


def apply_alignment(
    params: Tensor, perms: list[Tensor], spec: ArchSpec, signs: list[Tensor] | None = None
) -> Tensor:
    """Relabel by ``perms``, then (signed matching) negate by ``signs`` in the new frame."""
    out = apply_perms(params, perms, spec)
    return apply_signs(out, signs, spec) if signs is not None else out


def compose_signed(
    first: tuple[list[Tensor], list[Tensor]], then: tuple[list[Tensor], list[Tensor]]
) -> tuple[list[Tensor], list[Tensor]]:
    """Signed relabelings: ``first`` then ``then`` as one ``(perms, signs)``."""
    perms = compose_perms(first[0], then[0])
    signs = [s2 * (s1.gather(-1, p2) if s1.dim() == p2.dim() else s1[..., p2])
             for s1, p2, s2 in zip(first[1], then[0], then[1])]  # fmt: skip
    return perms, signs


def invert_signed(perms: list[Tensor], signs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """The signed relabeling that undoes ``(perms, signs)``."""
    inverse = invert_perms(perms)
    return inverse, [s.gather(-1, q) for s, q in zip(signs, inverse)]


def invert_perms(perms: list[Tensor]) -> list[Tensor]:
    """The relabeling that undoes ``perms``."""
    return [p.argsort(dim=-1) for p in perms]


def compose_perms(first: list[Tensor], then: list[Tensor]) -> list[Tensor]:
    """``relabel(relabel(g, first), then) == relabel(g, compose_perms(first, then))``."""
    return [f.gather(-1, t) if f.dim() == t.dim() else f[..., t] for f, t in zip(first, then)]
