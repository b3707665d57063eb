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
from torch_geometric.utils import scatter

from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec
from nngraph.models.base import Embeddings, WeightSpaceModel

__all__ = ["BlockNorm", "DWSLayer", "DWSNet"]


@dataclass(frozen=True)
class _Layout:
    """Where each object of a graph of ``spec`` lives in ``x [B, N, C]`` / ``e [B, E, C]``."""

    sizes: tuple[int, ...]
    node_start: tuple[int, ...]
    edge_start: tuple[int, ...]
    hidden: tuple[int, ...]  # hidden layers 1..L-1
    inner_blocks: tuple[int, ...]  # weight blocks between two hidden layers
    dst_local: dict[int, Tensor]  # block -> [E_l] target neuron within its layer
    src_local: dict[int, Tensor]


@lru_cache(maxsize=64)
def _layout(spec: ArchSpec, device: str) -> _Layout:
    t = spec.templates_on(device)
    sizes = spec.layer_sizes
    n_w = len(sizes) - 1
    edge_start = [0]
    for a, b in itertools.pairwise(sizes):
        edge_start.append(edge_start[-1] + a * b)
    inner = tuple(range(1, n_w - 1))
    src, dst = t.edge_index
    dst_local, src_local = {}, {}
    for blk in inner:
        s, e = edge_start[blk], edge_start[blk + 1]
        dst_local[blk] = t.node_local[dst[s:e]].contiguous()
        src_local[blk] = t.node_local[src[s:e]].contiguous()
    return _Layout(
        sizes, t.layer_start, tuple(edge_start), tuple(range(1, n_w)), inner, dst_local, src_local
    )


class DWSLayer(nn.Module):
    """Equivariant affine map of weight space, ``(x [B, N, c_in], e [B, E, c_in]) -> (x', e')`` with
    ``c_out`` channels. Parameters depend on depth and input/output sizes only, so one layer serves
    every hidden width. Input neurons carry no parameter: their rows of ``x'`` are zero."""

    def __init__(self, n_in: int, n_out: int, n_weight_layers: int, c_in: int, c_out: int):
        super().__init__()
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
        nodes, edges, graph = _fold(x, e, lay)
        z = {}
        for m in lay.hidden:
            parts = [nodes[m]]
            if m >= 2:  # edges into m (from hidden layer m - 1): mean per target neuron
                blk = m - 1
                parts.append(_mean_at(edges[blk], lay.dst_local[blk], lay.sizes[m]))
            if m <= self.L - 2:  # edges out of m: mean per source neuron
                parts.append(_mean_at(edges[m], lay.src_local[m], lay.sizes[m]))
            z[m] = torch.cat(parts, dim=-1)
        g = torch.cat(
            [z[m].mean(dim=1) for m in lay.hidden] + ([graph] if graph.numel() else []), -1
        )
        new_nodes = {
            m: self.node_self[str(m)](z[m]) + self.node_graph[str(m)](g).unsqueeze(1)
            for m in lay.hidden
        }
        new_edges = {}
        for blk in lay.inner_blocks:
            k = str(blk)
            new_edges[blk] = (
                self.edge_self[k](edges[blk])
                + self.edge_dst[k](z[blk + 1]).index_select(1, lay.dst_local[blk])
                + self.edge_src[k](z[blk]).index_select(1, lay.src_local[blk])
                + self.edge_graph[k](g).unsqueeze(1)
            )
        new_graph = self.graph(g) if self.graph is not None else g.new_zeros(g.shape[0], 0)
        return _unfold(new_nodes, new_edges, new_graph, lay, self.c_out)


def _mean_at(e: Tensor, index: Tensor, size: int) -> Tensor:
    """Mean of edge features ``[B, E_l, C]`` over the edges that share a neuron (``index``)."""
    return scatter(e, index, dim=1, dim_size=size, reduce="mean")


def _fold(x: Tensor, e: Tensor, lay: _Layout) -> tuple[dict, dict, Tensor]:
    """Graph tensors -> objects: hidden-layer neuron sets, inner edge blocks, graph features."""
    b, c = x.shape[0], x.shape[-1]
    sizes, ns, es = lay.sizes, lay.node_start, lay.edge_start
    n_w = len(sizes) - 1
    nodes = {m: [x[:, ns[m] : ns[m + 1]]] for m in lay.hidden}
    edges = {blk: e[:, es[blk] : es[blk + 1]] for blk in lay.inner_blocks}
    out_bias = x[:, ns[n_w] :].reshape(b, -1)
    if n_w == 1:
        return {}, {}, torch.cat([out_bias, e.reshape(b, -1)], dim=1)
    # first weights [B, n1, n0, C] -> per first-hidden neuron; last [B, nL, nL-1, C] -> per source
    nodes[1].append(e[:, es[0] : es[1]].reshape(b, sizes[1], sizes[0] * c))
    last = e[:, es[n_w - 1] :].reshape(b, sizes[n_w], sizes[n_w - 1], c).transpose(1, 2)
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
        ns, es = lay.node_start, lay.edge_start
        c = x.shape[-1]
        nodes = [x[:, : ns[1]]] + [
            _norm(bn, x[:, ns[m + 1] : ns[m + 2]], c) for m, bn in enumerate(self.biases)
        ]
        edges = [_norm(bn, e[:, es[k] : es[k + 1]], c) for k, bn in enumerate(self.weights)]
        return torch.cat(nodes, 1), torch.cat(edges, 1)


def _norm(bn: nn.BatchNorm1d, t: Tensor, c: int) -> Tensor:
    return bn(t.reshape(-1, c)).view_as(t)


class DWSNet(WeightSpaceModel):
    """DWSNets encoder: stacked DWS layers with batch norm per block (``norm``, as DWSNets) and
    ReLU, then an invariant readout (means over each hidden layer's neurons and each inner block,
    the graph-level features) and a linear map. Defaults from the paper: 4 layers of 128
    channels. Without the norm it fits digits' training set about half as fast (RESULTS.md)."""

    def __init__(
        self,
        spec: ArchSpec,
        *,
        n_layers: int = 4,
        hidden: int = 128,
        out_dim: int = 128,
        dropout: float = 0.0,
        norm: bool = True,
    ) -> None:
        super().__init__(spec)
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
            DWSLayer(sizes[0], sizes[-1], n_w, a, b) for a, b in itertools.pairwise(dims)
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
        x, e = v.x, v.e
        for i, layer in enumerate(self.layers):
            x, e = layer(x, e, v.spec)
            if i < len(self.layers) - 1:
                if self.norms:
                    x, e = self.norms[i](x, e, v.spec)
                x, e = self.act(x), self.act(e)
        lay = _layout(v.spec, str(x.device))
        nodes, edges, graph = _fold(x, e, lay)
        parts = [nodes[m].mean(1) for m in lay.hidden] + [
            edges[k].mean(1) for k in lay.inner_blocks
        ]
        graph_emb = self.readout(torch.cat([*parts, graph], dim=-1))
        return Embeddings(graph_emb, x.reshape(v.b * v.t.num_nodes, -1), e.reshape(-1, e.shape[-1]))
