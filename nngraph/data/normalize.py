"""Per-layer input normalisation: mean and std of each layer's weights and biases on the training
split, applied to node and edge features after augmentation, inside the model (so augmentations and
probe features act on the real function's parameters, the layers see unit-scale features)."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nngraph.data.store import INRStore
from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec
from nngraph.graph.view import GraphView
from nngraph.io import atomic_torch_save, load_torch_file

__all__ = [
    "LayerStats",
    "cached_layer_stats",
    "layer_stats",
    "normalize_graph",
    "normalize_view",
]


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

    def stacked(self) -> Tensor:
        """``[4, L]``: weight mean, weight std, bias mean, bias std (one tensor for a buffer)."""
        return torch.stack([self.weight_mean, self.weight_std, self.bias_mean, self.bias_std])

    @classmethod
    def from_stacked(cls, t: Tensor) -> LayerStats:
        return cls(*t.unbind(0))

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


def cached_layer_stats(
    store: INRStore, store_path: str | os.PathLike, rows: Tensor, views: int, *, write: bool = True
) -> LayerStats:
    """:func:`layer_stats` of ``store``'s ``rows`` (the training split with ``views`` views),
    cached beside the store (``<store>.stats_v<views>.pt``) and recomputed when the store changed;
    ``write=False`` (non-main processes) never writes, a read-only folder only costs the work."""
    store_path = Path(store_path)
    path = store_path.with_name(f"{store_path.stem}.stats_v{views}.pt")
    key = {"views": views, "data": store.fingerprint()}
    if path.exists():
        payload = load_torch_file(path, what="normalisation statistics")
        if isinstance(payload, dict) and payload.get("key") == key:
            return LayerStats.from_dict(payload["value"])
    stats = layer_stats(store.params[rows], store.spec)
    if write:
        try:
            atomic_torch_save({"key": key, "value": stats.to_dict()}, path)
        except OSError as err:
            print(f"nngraph: cannot cache {path.name} beside the store ({err}); continuing")
    return stats


def normalize_view(v: GraphView, stats: LayerStats) -> GraphView:
    """``v`` with node and edge features standardised per layer (new tensors; ``v`` unchanged)."""
    nm, ns, em, es = stats.node_edge_tables(v.spec, v.device)
    x = (v.x - nm[:, None]) / ns[:, None]
    e = (v.e - em[:, None]) / es[:, None]
    return v.with_features(x, e)


def normalize_graph(g: Graph, stats: LayerStats) -> Graph:
    """A shallow copy of ``g`` with ``x`` and ``edge_attr`` standardised per layer (models do this
    themselves once given the stats: :meth:`~nngraph.models.WeightSpaceModel.set_input_stats`)."""
    v = normalize_view(GraphView.of(g), stats)
    out = copy.copy(g)
    out.x = v.x.reshape(g.x.shape)
    out.edge_attr = v.e.reshape(g.edge_attr.shape)
    return out
