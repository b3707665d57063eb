"""A batch of one architecture seen as dense per-graph tensors: what augmentations, normalisation
and models read (``x [B, N, F]``, ``e [B, E, F]``, views into the batch, no copies)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from nngraph.graph.convert import Graph, graph_spec, num_graphs
from nngraph.graph.spec import ArchSpec, GraphTemplates

__all__ = ["GraphView"]


@dataclass
class GraphView:
    """A batch of one architecture seen as dense per-graph tensors (views, no copies)."""

    spec: ArchSpec
    t: GraphTemplates  # on the batch's device
    b: int
    x: Tensor  # [B, N, F_node]
    e: Tensor  # [B, E, F_edge]

    @property
    def device(self) -> torch.device:
        return self.x.device

    @classmethod
    def of(cls, g: Graph) -> GraphView:
        spec = graph_spec(g)
        b = num_graphs(g)
        t = spec.templates_on(g.x.device)
        if g.x.shape[0] != b * t.num_nodes or g.edge_attr.shape[0] != b * t.num_edges:
            raise ValueError(
                f"the batch does not have the layout of {spec} x {b}: augmentations need graphs "
                "built by nngraph (to_graph_batch / from_*) of one architecture"
            )
        x = g.x.view(b, t.num_nodes, -1)
        e = g.edge_attr.view(b, t.num_edges, -1)
        return cls(spec, t, b, x, e)

    def first_layer_weights(self) -> Tensor:
        """``W1 [B, n1, n0]`` of dense first layers (a view into ``e``)."""
        n0, n1 = self.spec.layer_sizes[0], self.spec.layer_sizes[1]
        if self.e.shape[-1] != 1:
            raise ValueError(
                f"input-space augmentations need scalar weights; {self.spec} has vectors"
            )
        return self.e[:, : n0 * n1, 0].view(self.b, n1, n0)

    def with_features(self, x: Tensor, e: Tensor) -> GraphView:
        """The same graphs with other dense node / edge features."""
        return replace(self, x=x, e=e)
