"""DWSNets (Navon et al., ICML 2023) as message passing on the neural graph.

The DWS layer is the full linear layer equivariant to permutations of hidden neurons. Input and
output neurons are not permuted, so their index is folded into channels: the first layer's weights
become features of the first hidden layer's neurons (``n0 * C`` each), the last layer's weights
features of the last hidden layer's neurons, the output biases graph-level features. What is left
is exchangeable: per hidden layer a set of neurons, between hidden layers a block of edges. Each
object's output then combines

- itself (a channel mix),
- its neurons' aggregates: per neuron, the mean over the edges sharing it as target and as source,
  so weights of adjacent layers talk through the neurons they share,
- means over every object of the graph (a whole layer, a whole block),

which spans every equivariant linear map (the tests check this against the dense orbit basis).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec
from nngraph.models.base import Embeddings, WeightSpaceModel

__all__ = ["BlockNorm", "DWSLayer", "DWSNet"]


@dataclass(frozen=True)
class _Layout:
    """Where each object of a graph of ``spec`` lives in ``x [B, N, C]`` / ``e [B, E, C]``; every
    weight block is target-major (``W[i, j]`` at ``i * n_src + j``), so a block is a matrix."""

    sizes: tuple[int, ...]
    blocks: tuple[int, ...]  # weights per weight matrix
    hidden: tuple[int, ...]  # hidden layers 1..L-1
    inner_blocks: tuple[int, ...]  # weight blocks between two hidden layers


#: a graph's objects: hidden-layer neuron sets, inner weight blocks, graph-level features
Folded = tuple[dict[int, Tensor], dict[int, Tensor], Tensor]


@lru_cache(maxsize=64)
def _layout(spec: ArchSpec, device: str) -> _Layout:
    t = spec.templates_on(device)
    sizes = spec.layer_sizes
    n_w = len(sizes) - 1
    edge_start = [0]
    for a, b in itertools.pairwise(sizes):
        edge_start.append(edge_start[-1] + a * b)
    src, dst = t.edge_index
    for blk, (a, b) in enumerate(itertools.pairwise(sizes)):  # the matrix view's premise
        s, e = edge_start[blk], edge_start[blk + 1]
        rows = torch.arange(b, device=device).repeat_interleave(a)
        cols = torch.arange(a, device=device).repeat(b)
        local = t.node_local
        if not (torch.equal(local[dst[s:e]], rows) and torch.equal(local[src[s:e]], cols)):
            raise ValueError(f"dws needs each weight block of {spec} stored target-major")
    blocks = tuple(b - a for a, b in itertools.pairwise(edge_start))
    return _Layout(sizes, blocks, tuple(range(1, n_w)), tuple(range(1, n_w - 1)))


class DWSLayer(nn.Module):
    """Equivariant affine map of weight space, ``(x [B, N, c_in], e [B, E, c_in]) -> (x', e')`` with
    ``c_out`` channels. Parameters depend on depth and input/output sizes only, so one layer serves
    every hidden width. Input neurons carry no parameter: their rows of ``x'`` are zero."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        n_weight_layers: int,
        c_in: int,
        c_out: int,
        reduction: str = "mean",
    ):
        super().__init__()
        self.pool = _pool(reduction)
        self.n_in, self.n_out, self.L = n_in, n_out, n_weight_layers
        self.c_in, self.c_out = c_in, c_out
        hidden = range(1, n_weight_layers)
        inner = range(1, n_weight_layers - 1)
        z = {m: self._node_dim(m, c_in) + c_in * ((m >= 2) + (m <= self.L - 2)) for m in hidden}
        g_in = sum(z.values()) + self._graph_dim(c_in)
        self.node_self = nn.ModuleDict(
            {str(m): nn.Linear(z[m], self._node_dim(m, c_out)) for m in hidden}
        )
        self.node_graph = nn.ModuleDict(
            {str(m): nn.Linear(g_in, self._node_dim(m, c_out), bias=False) for m in hidden}
        )
        self.edge_self = nn.ModuleDict({str(b): nn.Linear(c_in, c_out) for b in inner})
        self.edge_dst = nn.ModuleDict(
            {str(b): nn.Linear(z[b + 1], c_out, bias=False) for b in inner}
        )
        self.edge_src = nn.ModuleDict({str(b): nn.Linear(z[b], c_out, bias=False) for b in inner})
        self.edge_graph = nn.ModuleDict({str(b): nn.Linear(g_in, c_out, bias=False) for b in inner})
        g_out = self._graph_dim(c_out)
        self.graph = nn.Linear(g_in, g_out) if g_out else None

    def _node_dim(self, m: int, c: int) -> int:
        """Channels of hidden layer ``m``'s neurons: bias, plus folded first/last weights."""
        return c * (1 + (m == 1) * self.n_in + (m == self.L - 1) * self.n_out)

    def _graph_dim(self, c: int) -> int:
        """Graph-level channels: output biases (and, without hidden layers, all weights)."""
        return c * self.n_out * (1 + (self.L == 1) * self.n_in)

    def forward(self, x: Tensor, e: Tensor, spec: ArchSpec) -> tuple[Tensor, Tensor]:
        lay = _layout(spec, str(x.device))
        return _unfold(*self.forward_folded(*_fold(x, e, lay), lay), lay, self.c_out)

    def forward_folded(self, nodes: dict, edges: dict, graph: Tensor, lay: _Layout) -> Folded:
        """The same map on the objects of :func:`_fold` (what a stack passes between layers:
        folding once, not at every layer, saves a fifth of a training step)."""
        z = {}
        for m in lay.hidden:
            parts = [nodes[m]]
            if m >= 2:  # edges into m (from hidden layer m - 1): mean (or max) per target neuron
                parts.append(self.pool(_matrix(edges[m - 1], lay, m - 1), 2))
            if m <= self.L - 2:  # edges out of m: mean (or max) per source neuron
                parts.append(self.pool(_matrix(edges[m], lay, m), 1))
            z[m] = torch.cat(parts, dim=-1)
        g = torch.cat(
            [self.pool(z[m], 1) for m in lay.hidden] + ([graph] if graph.numel() else []), -1
        )
        new_nodes = {
            m: self.node_self[str(m)](z[m]) + self.node_graph[str(m)](g).unsqueeze(1)
            for m in lay.hidden
        }
        new_edges = {}
        for blk in lay.inner_blocks:
            k = str(blk)
            per_target = self.edge_dst[k](z[blk + 1]) + self.edge_graph[k](g).unsqueeze(1)
            out = (
                self.edge_self[k](_matrix(edges[blk], lay, blk))
                + per_target.unsqueeze(2)  # along rows
                + self.edge_src[k](z[blk]).unsqueeze(1)  # per source: along columns
            )
            new_edges[blk] = out.flatten(1, 2)
        new_graph = self.graph(g) if self.graph is not None else g.new_zeros(g.shape[0], 0)
        return new_nodes, new_edges, new_graph


def _pool(reduction: str):
    """The permutation-invariant pooling over a set of neurons or a row/column of a weight
    block: ``mean`` (the linear equivariant layer) or ``max`` (the official DWSNets default)."""
    pools = {"mean": Tensor.mean, "max": Tensor.amax}
    if reduction not in pools:
        raise ValueError(f"dws reduction must be one of {sorted(pools)}, got {reduction!r}")
    return pools[reduction]


def _matrix(block: Tensor, lay: _Layout, blk: int) -> Tensor:
    """A weight block ``[B, E_l, C]`` as its matrix ``[B, n_target, n_source, C]`` (a view):
    means over rows and columns are what neurons sharing the block see, no scatter needed."""
    return block.unflatten(1, (lay.sizes[blk + 1], lay.sizes[blk]))


def _split(x: Tensor, e: Tensor, lay: _Layout) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """``x`` per layer of neurons, ``e`` per weight matrix (views along dim 1)."""
    return x.split(list(lay.sizes), dim=1), e.split(list(lay.blocks), dim=1)


def _fold(x: Tensor, e: Tensor, lay: _Layout) -> Folded:
    """Graph tensors -> objects: hidden-layer neuron sets, inner edge blocks, graph features."""
    b, c = x.shape[0], x.shape[-1]
    sizes = lay.sizes
    n_w = len(sizes) - 1
    # split, not slices: a split's backward is one concatenation, where each slice's backward
    # fills a zero tensor of the whole input (15% of a training step's profile)
    xs, es = _split(x, e, lay)
    nodes = {m: [xs[m]] for m in lay.hidden}
    edges = {blk: es[blk] for blk in lay.inner_blocks}
    out_bias = xs[n_w].reshape(b, -1)
    if n_w == 1:
        return {}, {}, torch.cat([out_bias, e.reshape(b, -1)], dim=1)
    # first weights [B, n1, n0, C] -> per first-hidden neuron; last [B, nL, nL-1, C] -> per source
    nodes[1].append(es[0].reshape(b, sizes[1], sizes[0] * c))
    last = es[n_w - 1].reshape(b, sizes[n_w], sizes[n_w - 1], c).transpose(1, 2)
    nodes[n_w - 1].append(last.reshape(b, sizes[n_w - 1], sizes[n_w] * c))
    return {m: torch.cat(p, dim=-1) for m, p in nodes.items()}, edges, out_bias


def _unfold(nodes: dict, edges: dict, graph: Tensor, lay: _Layout, c: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`_fold` for ``c`` channels; input neurons get zeros."""
    b = graph.shape[0]
    sizes = lay.sizes
    n_w = len(sizes) - 1
    x_parts = [graph.new_zeros(b, sizes[0], c)]
    if n_w == 1:
        x_parts.append(graph[:, : sizes[1] * c].reshape(b, sizes[1], c))
        return torch.cat(x_parts, 1), graph[:, sizes[1] * c :].reshape(b, -1, c)
    first = last = None
    for m in lay.hidden:
        h = nodes[m]
        x_parts.append(h[..., :c])
        offset = c
        if m == 1:
            first = h[..., offset : offset + sizes[0] * c].reshape(b, -1, c)
            offset += sizes[0] * c
        if m == n_w - 1:
            tail = h[..., offset:].reshape(b, sizes[m], sizes[n_w], c)
            last = tail.transpose(1, 2).reshape(b, -1, c)
    x_parts.append(graph.reshape(b, sizes[n_w], c))
    e_parts = [first] + [edges[blk] for blk in lay.inner_blocks] + [last]
    return torch.cat(x_parts, 1), torch.cat(e_parts, 1)


class BlockNorm(nn.Module):
    """Batch norm per weight matrix and per bias vector (statistics over the batch and the
    matrix's entries, per channel), as DWSNets normalises between its layers. Statistics over
    whole blocks are invariant to relabeling, so the layer stays equivariant; parameters depend
    on depth only, so any hidden width passes."""

    def __init__(self, n_weight_layers: int, channels: int) -> None:
        super().__init__()
        self.weights = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(n_weight_layers))
        self.biases = nn.ModuleList(nn.BatchNorm1d(channels) for _ in range(n_weight_layers))

    def forward(self, x: Tensor, e: Tensor, spec: ArchSpec) -> tuple[Tensor, Tensor]:
        lay = _layout(spec, str(x.device))
        xs, es = _split(x, e, lay)
        c = x.shape[-1]
        nodes = [xs[0]] + [_norm(bn, xs[m + 1], c) for m, bn in enumerate(self.biases)]
        edges = [_norm(bn, es[k], c) for k, bn in enumerate(self.weights)]
        return torch.cat(nodes, 1), torch.cat(edges, 1)

    def forward_folded(self, nodes: dict, edges: dict, graph: Tensor, lay: _Layout) -> Folded:
        """The same normalisation on the objects of :func:`_fold`: a hidden layer's neurons
        carry its biases, then the first (layer 1) and the last (layer L-1) weight matrices."""
        c = self.weights[0].num_features
        sizes, n_w = lay.sizes, len(lay.sizes) - 1
        new_nodes = {}
        for m, h in nodes.items():
            parts = [(self.biases[m - 1], c)]
            if m == 1:
                parts.append((self.weights[0], sizes[0] * c))
            if m == n_w - 1:
                parts.append((self.weights[n_w - 1], sizes[n_w] * c))
            new_nodes[m] = _norm_parts(parts, h, c)
        new_edges = {k: _norm(self.weights[k], t, c) for k, t in edges.items()}
        parts = [(self.biases[n_w - 1], sizes[n_w] * c)]
        if n_w == 1:  # no hidden layer: the weights are graph features too
            parts.append((self.weights[0], graph.shape[-1] - sizes[n_w] * c))
        return new_nodes, new_edges, _norm_parts(parts, graph, c)


def _norm_parts(parts: list[tuple[nn.BatchNorm1d, int]], t: Tensor, c: int) -> Tensor:
    """Each run of ``t``'s last dimension normalised by its own batch norm of ``c`` channels."""
    chunks = t.split([width for _, width in parts], dim=-1)
    return torch.cat(
        [_norm(bn, chunk, c) for (bn, _), chunk in zip(parts, chunks, strict=True)], -1
    )


def _norm(bn: nn.BatchNorm1d, t: Tensor, c: int) -> Tensor:
    return bn(t.reshape(-1, c)).view_as(t)


class DWSNet(WeightSpaceModel):
    """DWSNets encoder: stacked DWS layers with batch norm per block (``norm``, as DWSNets) and
    ReLU, then an invariant readout (means over each hidden layer's neurons and each inner block,
    the graph-level features) and a linear map. ``reduction="max"`` pools with maxima instead, in
    the layers and the readout, as the official DWSNets does by default (it fits digits faster
    and tests worse: BENCHMARKS.md). Defaults from the paper: 4 layers of 128 channels. Without
    the norm it fits digits' training set about half as fast (RESULTS.md)."""

    def __init__(
        self,
        spec: ArchSpec,
        *,
        n_layers: int = 4,
        hidden: int = 128,
        out_dim: int = 128,
        dropout: float = 0.0,
        norm: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__(spec)
        self.pool = _pool(reduction)
        if spec.family != "mlp":
            raise ValueError(
                f"dws is the DWSNets layer for dense networks (family 'mlp'); {spec} has "
                "convolutions: use model=relational_transformer, pna, mlp or statnn"
            )
        t = spec.templates
        if t.node_dim != t.edge_dim:
            raise ValueError("dws needs weights and biases of the same feature size")
        if n_layers < 1:
            raise ValueError(f"dws needs n_layers >= 1, got {n_layers}")
        sizes, n_w = spec.layer_sizes, spec.n_layers
        dims = [t.node_dim] + [hidden] * n_layers
        self.layers = nn.ModuleList(
            DWSLayer(sizes[0], sizes[-1], n_w, a, b, reduction) for a, b in itertools.pairwise(dims)
        )
        self.norms = nn.ModuleList(BlockNorm(n_w, hidden) for _ in range(n_layers - 1) if norm)
        self.act = nn.Sequential(nn.ReLU(), nn.Dropout(dropout))
        last = self.layers[-1]  # its output objects are what the readout averages
        inv = sum(last._node_dim(m, hidden) for m in range(1, n_w)) + last._graph_dim(hidden)
        inv += hidden * max(n_w - 2, 0)
        self.readout = nn.Linear(inv, out_dim)
        self.out_dim = out_dim

    def forward(self, batch: Graph) -> Embeddings:
        v = self.view(batch)
        lay = _layout(v.spec, str(v.x.device))
        nodes, edges, graph = _fold(v.x, v.e, lay)
        for i, layer in enumerate(self.layers):
            nodes, edges, graph = layer.forward_folded(nodes, edges, graph, lay)
            if i < len(self.layers) - 1:
                if self.norms:
                    nodes, edges, graph = self.norms[i].forward_folded(nodes, edges, graph, lay)
                nodes = {m: self.act(t) for m, t in nodes.items()}
                edges = {k: self.act(t) for k, t in edges.items()}
                graph = self.act(graph)
        parts = [self.pool(nodes[m], 1) for m in lay.hidden] + [
            self.pool(edges[k], 1) for k in lay.inner_blocks
        ]
        graph_emb = self.readout(torch.cat([*parts, graph], dim=-1))
        x, e = _unfold(nodes, edges, graph, lay, self.layers[-1].c_out)
        return Embeddings(graph_emb, x.reshape(v.b * v.t.num_nodes, -1), e.reshape(-1, e.shape[-1]))
