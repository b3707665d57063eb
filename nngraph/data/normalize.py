"""Per-layer input normalisation: mean and std of each layer's weights and biases on the training
split, applied to node and edge features after augmentation and just before the model (so
augmentations act on the real function's parameters, models see unit-scale features)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from nngraph.graph.convert import Graph, graph_spec, num_graphs
from nngraph.graph.spec import ArchSpec

__all__ = ["LayerStats", "layer_stats", "normalize_graph"]


@dataclass
class LayerStats:
    """Per weight layer ``l``: mean/std of its weights and of its biases (the neurons of l + 1)."""

    weight_mean: Tensor  # [L]
    weight_std: Tensor
    bias_mean: Tensor
    bias_std: Tensor

    def to_dict(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in ("weight_mean", "weight_std", "bias_mean", "bias_std")}

    @classmethod
    def from_dict(cls, d: dict[str, Tensor]) -> LayerStats:
        return cls(**{k: torch.as_tensor(d[k]) for k in cls.__dataclass_fields__})

    def node_edge_tables(self, spec: ArchSpec, device: torch.device) -> tuple[Tensor, ...]:
        """``(node_mean, node_std [N], edge_mean, edge_std [E])`` of one graph of ``spec``."""
        t = spec.templates_on(device)
        node_layer = (t.layer - 1).clamp(min=0)  # layer l + 1's neurons hold weight layer l's bias
        is_input = t.layer == 0
        nm = torch.where(is_input, 0.0, self.bias_mean.to(device)[node_layer])
        ns = torch.where(is_input, 1.0, self.bias_std.to(device)[node_layer])
        em = self.weight_mean.to(device)[t.edge_layer]
        es = self.weight_std.to(device)[t.edge_layer]
        return nm, ns, em, es


def layer_stats(params: Tensor, spec: ArchSpec, eps: float = 1e-6) -> LayerStats:
    """Statistics of ``params [N, P]`` (the training split) per weight layer."""
    if params.dim() != 2 or params.shape[1] != spec.num_params or len(params) == 0:
        raise ValueError(f"layer_stats needs params [N>0, {spec.num_params}] for {spec}")
    params = params.float()
    wm, ws, bm, bs = [], [], [], []
    offset = 0
    for name, shape in spec.param_shapes:
        size = int(torch.Size(shape).numel())
        block = params[:, offset : offset + size]
        offset += size
        mean, std = block.mean(), block.std().clamp(min=eps)
        if name.endswith("weight"):
            wm.append(mean), ws.append(std)
        else:
            bm.append(mean), bs.append(std)
    return LayerStats(torch.stack(wm), torch.stack(ws), torch.stack(bm), torch.stack(bs))


def normalize_graph(g: Graph, stats: LayerStats) -> Graph:
    """A shallow copy of ``g`` with ``x`` and ``edge_attr`` standardised per layer; the originals
    stay as ``raw_x`` / ``raw_edge_attr`` for features that need the real function (probes)."""
    spec, b = graph_spec(g), num_graphs(g)
    nm, ns, em, es = stats.node_edge_tables(spec, g.x.device)
    out = copy.copy(g)
    out.raw_x, out.raw_edge_attr = g.x, g.edge_attr
    out.x = ((g.x.view(b, -1, g.x.shape[-1]) - nm[:, None]) / ns[:, None]).view_as(g.x)
    e = g.edge_attr.view(b, -1, g.edge_attr.shape[-1])
    out.edge_attr = ((e - em[:, None]) / es[:, None]).view_as(g.edge_attr)
    return out
