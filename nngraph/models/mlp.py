"""The flat baseline: all parameters of a network in one vector, through an MLP. Deliberately not
permutation invariant; it shows what the equivariant models buy."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec
from nngraph.models.base import Embeddings, WeightSpaceModel

__all__ = ["FlatMLP"]


class FlatMLP(WeightSpaceModel):
    """``[biases, weights]`` flattened -> MLP. Takes exactly the architecture it was built for."""

    any_hidden_width = False

    def __init__(
        self,
        spec: ArchSpec,
        *,
        hidden: int = 256,
        n_layers: int = 3,
        out_dim: int = 256,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(spec)
        t = spec.templates
        in_dim = t.num_nodes * t.node_dim + t.num_edges * t.edge_dim
        dims = [in_dim] + [hidden] * (n_layers - 1)
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(dims[-1], out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, batch: Graph) -> Embeddings:
        v = self.view(batch)
        flat = [v.x.reshape(v.b, -1), v.e.reshape(v.b, -1)]
        return Embeddings(self.net(torch.cat(flat, dim=1)))
