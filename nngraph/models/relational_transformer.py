"""Relational transformer over neural graphs (Zhang et al. 2023; Kofinas et al., ICLR 2024).

Every ordered neuron pair ``(i, j)`` has a state ``e_ij`` and every neuron a state ``h_i``. A layer
is edge-modulated attention (queries and keys from node plus pair states, values modulated by the
pair), a node MLP, and a pair update from ``(e_ij, e_ji, h_i, h_j)``, each with a residual and
layer norm. Two attention modes share every parameter:

- ``dense``: all pairs of a graph, pairs without a weight starting from zero weight features (the
  reference's semantics); memory grows with ``N²``.
- ``sparse``: only the pairs along weights, reversed weights and self loops, with PyG's scatter
  softmax; memory grows with the number of weights, so wide networks fit.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec
from nngraph.models.base import Embeddings, WeightSpaceModel
from nngraph.models.encoders import ProbeFeatures, ScalarEncoder, num_positions, position_ids
from nngraph.models.pooling import pool, pooled_dim
from nngraph.models.tall_linear import TallLinear, tall_linear

__all__ = ["RTLayer", "RelationalTransformer"]

MODES = ("dense", "sparse")


class RTLayer(nn.Module):
    """One relational-transformer layer; ``forward_dense`` and ``forward_sparse`` are the same
    function on different pair sets."""

    def __init__(
        self,
        d_node: int,
        d_edge: int,
        d_attn: int,
        d_node_hidden: int,
        d_edge_hidden: int,
        heads: int,
        dropout: float = 0.0,
        update_edges: bool = True,
    ) -> None:
        super().__init__()
        if d_attn % heads:
            raise ValueError(f"d_attn={d_attn} must be a multiple of heads={heads}")
        self.heads, self.d_head = heads, d_attn // heads
        self.qkv_node = nn.Linear(d_node, 3 * d_attn, bias=False)
        self.qks_edge = TallLinear(d_edge, 3 * d_attn, bias=False)  # q, k, value scale
        # the value shift ``W e_ij`` enters linearly, so it is applied after aggregating
        # ``sum_j alpha_ij e_ij``: the same function without a d_attn-wide tensor per pair
        self.v_edge = nn.Parameter(torch.empty(heads, d_edge, self.d_head))
        nn.init.kaiming_uniform_(self.v_edge.view(heads * d_edge, self.d_head).T, a=math.sqrt(5))
        self.attn_out = nn.Linear(d_attn, d_node)
        self.node_norm0, self.node_norm1 = nn.LayerNorm(d_node), nn.LayerNorm(d_node)
        self.node_mlp = nn.Sequential(
            nn.Linear(d_node, d_node_hidden), nn.GELU(), nn.Linear(d_node_hidden, d_node)
        )
        self.drop = nn.Dropout(dropout)
        self.update_edges = update_edges
        if update_edges:
            self.edge_in = TallLinear(d_edge, d_edge_hidden)  # e_ij
            self.edge_rev = TallLinear(d_edge, d_edge_hidden, bias=False)  # e_ji
            self.edge_src = nn.Linear(d_node, d_edge_hidden, bias=False)
            self.edge_dst = nn.Linear(d_node, d_edge_hidden, bias=False)
            self.edge_out = TallLinear(d_edge_hidden, d_edge)
            self.edge_mlp = nn.Sequential(
                TallLinear(d_edge, d_edge_hidden), nn.GELU(), TallLinear(d_edge_hidden, d_edge)
            )
            self.edge_norm0, self.edge_norm1 = nn.LayerNorm(d_edge), nn.LayerNorm(d_edge)

    def _nodes(self, h: Tensor, attn: Tensor) -> Tensor:
        h = self.node_norm0(h + self.drop(self.attn_out(attn)))
        return self.node_norm1(h + self.drop(self.node_mlp(h)))

    def _edges(self, e: Tensor, rev: Tensor, h_src: Tensor, h_dst: Tensor) -> Tensor:
        """``rev`` is ``edge_rev`` already applied to the reversed pairs."""
        msg = self.edge_in(e) + rev + h_src + h_dst
        e = self.edge_norm0(e + self.drop(self.edge_out(F.gelu(msg))))
        return self.edge_norm1(e + self.drop(self.edge_mlp(e)))

    def forward_dense(
        self, h: Tensor, e: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``h [B, N, Dn]``, ``e [B, N, N, De]`` (pair ``i -> j`` at ``[:, i, j]``); node ``i``
        attends over every ``j`` (or where ``mask [B, N, N]`` is true)."""
        b, n, _ = h.shape
        hd, dh = self.heads, self.d_head
        qn, kn, vn = self.qkv_node(h).view(b, n, 3, hd, dh).unbind(2)
        qe, ke, vs = self.qks_edge(e).view(b, n, n, 3, hd, dh).unbind(3)
        q = qn.unsqueeze(2) + qe  # [B, i, j, H, dh]
        k = kn.unsqueeze(1) + ke
        scores = (q * k).sum(-1) / math.sqrt(dh)  # (an einsum here lowers to tiny bmms)
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        alpha = scores.softmax(dim=2)
        attn = (alpha.unsqueeze(-1) * (vn.unsqueeze(1) * vs)).sum(2)
        shift = torch.einsum("bijh,bijc->bihc", alpha, e)  # sum_j alpha_ij e_ij
        attn = attn + torch.einsum("bihc,hcd->bihd", shift, self.v_edge)
        h = self._nodes(h, attn.reshape(b, n, hd * dh))
        if self.update_edges:
            hs, ht = self.edge_src(h), self.edge_dst(h)
            rev = self.edge_rev(e).transpose(1, 2)
            e = self._edges(e, rev, hs.unsqueeze(2), ht.unsqueeze(1))
        return h, e

    def forward_sparse(
        self, h: Tensor, e: Tensor, query: Tensor, key: Tensor, reverse: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``h [M, Dn]``, ``e [P, De]`` for pairs ``query[p] -> key[p]``; ``reverse[p]`` is the
        pair ``key -> query``. Node ``i`` attends over the pairs whose query is ``i``."""
        m, p = h.shape[0], e.shape[0]
        hd, dh = self.heads, self.d_head
        qn, kn, vn = self.qkv_node(h).view(m, 3, hd, dh).unbind(1)
        # with few pairs per node the value shift ``W e_ij`` is cheaper per pair, in the same
        # matrix product as the pair's query, key and value scale, than aggregated first
        w_shift = self.v_edge.permute(0, 2, 1).reshape(hd * dh, -1)
        pair = tall_linear(e, torch.cat([self.qks_edge.weight, w_shift]))
        qe, ke, vs, ve = pair.view(p, 4, hd, dh).unbind(1)
        q = qn.index_select(0, query) + qe
        k = kn.index_select(0, key) + ke
        scores = (q * k).sum(-1) / math.sqrt(dh)  # [P, H]
        alpha = softmax(scores, query, num_nodes=m)
        values = torch.addcmul(ve, vn.index_select(0, key), vs)
        attn = scatter(alpha.unsqueeze(-1) * values, query, dim=0, dim_size=m, reduce="sum")
        h = self._nodes(h, attn.reshape(m, hd * dh))
        if self.update_edges:
            hs, ht = self.edge_src(h), self.edge_dst(h)
            rev = self.edge_rev(e).index_select(0, reverse)
            e = self._edges(e, rev, hs[query], ht[key])
        return h, e


class RelationalTransformer(WeightSpaceModel):
    """Relational transformer encoder: ``forward(batch) -> Embeddings`` (graph, node, edge).

    Defaults follow the paper (Appendix C) and the reference: 4 layers, node dim 64, edge dim 32,
    8 heads, Fourier features of the raw weights and biases, readout ``cat`` (the output neurons'
    states in order). Works for any hidden widths of the depth and input/output sizes of ``spec``.
    """

    def __init__(
        self,
        spec: ArchSpec,
        *,
        mode: str = "dense",
        n_layers: int = 4,
        d_node: int = 64,
        d_edge: int = 32,
        d_attn: int = 128,
        d_node_hidden: int = 128,
        d_edge_hidden: int = 64,
        heads: int = 8,
        fourier_dim: int = 128,
        fourier_sigma: float = 1.0,
        pooling: str = "cat",
        dropout: float = 0.0,
        probe_points: int = 0,
    ) -> None:
        super().__init__(spec)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose 'dense' or 'sparse'")
        self.mode, self.pooling = mode, pooling
        t = spec.templates
        self.node_encoder = ScalarEncoder(t.node_dim, d_node, fourier_dim, fourier_sigma)
        # a pair's raw features: (w_ij, w_ji), zeros where there is no weight
        self.edge_encoder = ScalarEncoder(2 * t.edge_dim, d_edge, fourier_dim, fourier_sigma)
        self.positions = nn.Embedding(num_positions(spec), d_node)
        if probe_points < 0:
            raise ValueError(
                f"probe_points must be >= 0 (0: no probe features), got {probe_points}"
            )
        self.probes = ProbeFeatures(spec, probe_points, d_node) if probe_points > 0 else None
        self.layers = nn.ModuleList(
            RTLayer(
                d_node,
                d_edge,
                d_attn,
                d_node_hidden,
                d_edge_hidden,
                heads,
                dropout,
                update_edges=i < n_layers - 1,  # the last pair update would feed nothing
            )
            for i in range(n_layers)
        )
        self.out_dim = pooled_dim(pooling, spec, d_node)
        self._compiled = None  # the compiled layer stack, after compile_layers()

    def forward(self, batch: Graph) -> Embeddings:
        v, real = self.views(batch)
        b, n, num_e = v.b, v.t.num_nodes, v.t.num_edges
        h = self.node_encoder(v.x) + self.positions(position_ids(v.spec, v.device))
        if self.probes is not None:
            h = h + self.probes(real.x, real.e, v.spec)
        src, dst = v.t.edge_index
        if self.mode == "dense":
            h, e = self._dense(h, v.e, src, dst)
            edge = e[:, src, dst].reshape(b * num_e, -1)
        else:
            h, e = self._sparse(h, v.e, batch.edge_index)
            edge = e[: b * num_e]
        return Embeddings(pool(h, v.spec, self.pooling), h.reshape(b * n, -1), edge)

    def _encode_dense_pairs(self, w: Tensor, src: Tensor, dst: Tensor, n: int) -> Tensor:
        """Encoded pair states ``[B, N, N, De]`` from raw ``(w_ij, w_ji)``, zero where there is no
        weight. Only weighted pairs differ from the encoding of zeros, so only they are encoded."""
        b, _, f = w.shape
        zeros = torch.zeros_like(w)
        fwd = self.edge_encoder(torch.cat([w, zeros], dim=-1))
        bwd = self.edge_encoder(torch.cat([zeros, w], dim=-1))
        empty = self.edge_encoder(w.new_zeros(2 * f))
        e = empty.expand(b, n, n, -1).clone()
        e[:, src, dst] = fwd
        e[:, dst, src] = bwd
        return e

    def _dense(
        self, h: Tensor, w: Tensor, src: Tensor, dst: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        e = self._encode_dense_pairs(w, src, dst, h.shape[1])
        for layer in self.layers:
            h, e = layer.forward_dense(h, e, mask)
        return h, e

    def _sparse(self, h: Tensor, w: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        b, n, d = h.shape
        m, num_e = b * n, edge_index.shape[1]
        w = w.reshape(num_e, -1)
        zeros = torch.zeros_like(w)
        raw = torch.cat(
            [
                torch.cat([w, zeros], dim=1),  # i -> j along the weight
                torch.cat([zeros, w], dim=1),  # j -> i, against it
                w.new_zeros(m, 2 * w.shape[1]),  # self loops
            ]
        )
        e = self.edge_encoder(raw)
        query, key, reverse = _sparse_pairs(edge_index, m)
        compiled = self._compiled is not None and torch.is_grad_enabled()
        stack = self._compiled if compiled else self._stack
        h, e = stack(h.reshape(m, d), e, query, key, reverse)
        return h.view(b, n, -1), e

    def _stack(
        self, h: Tensor, e: Tensor, query: Tensor, key: Tensor, reverse: Tensor
    ) -> tuple[Tensor, Tensor]:
        for layer in self.layers:
            h, e = layer.forward_sparse(h, e, query, key, reverse)
        return h, e

    def compile_layers(self) -> bool:
        """Compile the sparse layer stack (``torch.compile``) for training steps: one fused
        graph of tensors only, so a run compiles it twice (full and last batch). Evaluation
        stays eager. Returns False in dense mode (not compiled)."""
        if self.mode != "sparse":
            return False
        self._compiled = torch.compile(self._stack)
        return True


def _sparse_pairs(edge_index: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor]:
    """Pairs of the sparse mode: weights, reversed weights, self loops; and each pair's reverse."""
    num_e = edge_index.shape[1]
    loops = torch.arange(m, device=edge_index.device)
    src, dst = edge_index
    arange_e = torch.arange(num_e, device=edge_index.device)
    query = torch.cat([src, dst, loops])
    key = torch.cat([dst, src, loops])
    reverse = torch.cat([arange_e + num_e, arange_e, loops + 2 * num_e])
    return query, key, reverse
