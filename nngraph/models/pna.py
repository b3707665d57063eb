"""The neural-graphs GNN (Kofinas et al., ICLR 2024): PyG's PNA convolution over weights in both
directions, with edge states updated from their endpoints after every layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import PNAConv

from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec
from nngraph.models.base import Embeddings, WeightSpaceModel
from nngraph.models.encoders import ProbeFeatures, ScalarEncoder, num_positions, position_ids
from nngraph.models.pooling import pool, pooled_dim

__all__ = ["PNANet", "degree_histogram"]


def degree_histogram(spec: ArchSpec) -> Tensor:
    """In-degree histogram of a graph of ``spec`` with edges both ways (PNA's scalers need it)."""
    sizes = (0, *spec.layer_sizes, 0)
    degrees = [sizes[i - 1] + sizes[i + 1] for i in range(1, len(sizes) - 1)]
    counts = torch.zeros(max(degrees) + 1, dtype=torch.long)
    for d, n in zip(degrees, spec.layer_sizes):
        counts[d] += n
    return counts


class PNANet(WeightSpaceModel):
    """PNA message passing (mean/min/max/std aggregators, identity/amplification scalers) with
    edge updates; defaults from the reference: 4 layers of 64, Fourier features (sigma 3)."""

    def __init__(
        self,
        spec: ArchSpec,
        *,
        n_layers: int = 4,
        hidden: int = 64,
        fourier_dim: int = 128,
        fourier_sigma: float = 3.0,
        pooling: str = "cat",
        dropout: float = 0.0,
        probe_points: int = 0,
    ) -> None:
        super().__init__(spec)
        t = spec.templates
        self.pooling = pooling
        self.node_encoder = ScalarEncoder(t.node_dim, hidden, fourier_dim, fourier_sigma)
        self.edge_encoder = ScalarEncoder(t.edge_dim, hidden, fourier_dim, fourier_sigma)
        self.positions = nn.Embedding(num_positions(spec), hidden)
        if probe_points < 0:
            raise ValueError(
                f"probe_points must be >= 0 (0: no probe features), got {probe_points}"
            )
        self.probes = ProbeFeatures(spec, probe_points, hidden) if probe_points > 0 else None
        self.backward_edge = nn.Parameter(torch.randn(hidden) * 0.1)  # marks reversed weights
        deg = degree_histogram(spec)
        self.convs = nn.ModuleList(
            PNAConv(
                hidden,
                hidden,
                aggregators=["mean", "min", "max", "std"],
                scalers=["identity", "amplification"],
                deg=deg,
                edge_dim=hidden,
            )
            for _ in range(n_layers)
        )
        self.node_norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_layers))
        self.edge_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(3 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(n_layers - 1)
        )
        self.edge_norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_layers - 1))
        self.drop = nn.Dropout(dropout)
        self.out_dim = pooled_dim(pooling, spec, hidden)

    def forward(self, batch: Graph) -> Embeddings:
        v, real = self.views(batch)
        h = self.node_encoder(v.x) + self.positions(position_ids(v.spec, v.device))
        if self.probes is not None:
            h = h + self.probes(real.x, real.e, v.spec)
        h = h.reshape(v.b * v.t.num_nodes, -1)
        e = self.edge_encoder(v.e.reshape(v.b * v.t.num_edges, -1))
        src, dst = batch.edge_index
        both = torch.cat([batch.edge_index, batch.edge_index.flip(0)], dim=1)
        for i, (conv, nnorm) in enumerate(zip(self.convs, self.node_norms)):
            edge_attr = torch.cat([e, e + self.backward_edge])
            h = nnorm(h + self.drop(F.silu(conv(h, both, edge_attr))))
            if i < len(self.edge_mlps):  # no update after the last layer: nothing would read it
                update = self.edge_mlps[i](torch.cat([e, h[src], h[dst]], dim=-1))
                e = self.edge_norms[i](e + self.drop(update))
        return Embeddings(pool(h.view(v.b, v.t.num_nodes, -1), v.spec, self.pooling), h, e)
