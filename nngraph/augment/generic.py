"""Generic augmentations: noise and dropout on the parameters (they change the function)."""

from __future__ import annotations

from typing import Any

import torch

from nngraph.augment.base import GraphAugmentation, check_setting
from nngraph.graph.convert import Graph
from nngraph.graph.spec import edge_layer_starts
from nngraph.graph.view import GraphView

__all__ = ["Dropout", "GaussianNoise", "QuantileDropout"]


class GaussianNoise(GraphAugmentation):
    """Add ``N(0, (scale * std)^2)`` noise, ``std`` that of each layer's weights (and, separately,
    biases) in each graph, as the reference implementation does (scale 0.32). A layer with a
    single bias (a 1-output INR's last layer) has std 0, so its bias stays as it is."""

    def __init__(self, scale: float = 0.32, **kw: Any) -> None:
        super().__init__(**kw)
        check_setting("gaussian_noise scale", scale, 0.0)
        self.scale = scale

    def augment(self, data: Graph, view: GraphView) -> Graph:
        e = view.e.clone()
        x = view.x.clone()
        starts = edge_layer_starts(view.spec)
        noise_e = self.normal(*e.shape, device=view.device).to(e.dtype)
        noise_x = self.normal(*x.shape, device=view.device).to(x.dtype)
        real = (view.t.edge_param_idx >= 0).to(e.dtype)  # [E, F_e]: 0 on a CNN's kernel padding
        noise_e *= real
        nodes = view.t.layer_start
        for layer in range(view.spec.n_layers):
            block = slice(starts[layer], starts[layer + 1])
            w = e[:, block]
            w += noise_e[:, block] * _std(w, real[block]) * self.scale
            b = x[:, nodes[layer + 1] : nodes[layer + 2]]
            b += noise_x[:, nodes[layer + 1] : nodes[layer + 2]] * _std(b) * self.scale
        return self.replace(data, view, x=x, e=e)


class Dropout(GraphAugmentation):
    """Zero each parameter with probability ``p`` and rescale the rest by ``1 / (1 - p)``, as
    ``torch.nn.functional.dropout`` (and the reference implementation) do."""

    def __init__(self, p: float = 0.1, rescale: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        check_setting("dropout p", p, 0.0, 1.0)
        if p == 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p, self.rescale = p, rescale

    def augment(self, data: Graph, view: GraphView) -> Graph:
        keep_scale = 1.0 / (1.0 - self.p) if self.rescale else 1.0
        masks = [
            (self.uniform(*v.shape, low=0.0, high=1.0, device=view.device) >= self.p).to(v.dtype)
            * keep_scale
            for v in (view.x, view.e)
        ]
        return self.replace(data, view, x=view.x * masks[0], e=view.e * masks[1])


class QuantileDropout(GraphAugmentation):
    """Zero the parameters whose magnitude is below the ``q``-quantile of that graph's parameter
    magnitudes, ``q ~ U(0, max_quantile)`` per graph."""

    def __init__(self, max_quantile: float = 0.1, **kw: Any) -> None:
        super().__init__(**kw)
        check_setting("quantile_dropout max_quantile", max_quantile, 0.0, 1.0)
        self.max_quantile = max_quantile

    def augment(self, data: Graph, view: GraphView) -> Graph:
        has = view.t.node_param_pos  # node features backed by a parameter (not input neurons)
        flat_x, flat_e = view.x.reshape(view.b, -1), view.e.reshape(view.b, -1)
        if view.t.edge_param_pos is not None:  # leave a CNN's kernel padding out of the ranking
            flat_e = flat_e[:, view.t.edge_param_pos]
        mags = torch.cat([flat_e, flat_x[:, has]], dim=1).abs()
        q = self.uniform(view.b, low=0.0, high=self.max_quantile, device=view.device)
        ranked = mags.sort(dim=1).values
        k = (q * (mags.shape[1] - 1)).long().clamp_(0, mags.shape[1] - 1)
        threshold = ranked.gather(1, k.unsqueeze(1))  # [B, 1]
        e = torch.where(view.e.abs() < threshold.unsqueeze(2), 0.0, view.e)
        x = torch.where(view.x.abs() < threshold.unsqueeze(2), 0.0, view.x)
        return self.replace(data, view, x=x, e=e)


def _std(values: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """Per-graph population std of a ``[B, ...]`` block (0 for one value) as ``[B, 1, 1]``, over
    the entries where ``real`` (broadcast to the block) is 1."""
    if real is None:
        flat = values.reshape(values.shape[0], -1)
        return flat.std(dim=1, correction=0).view(-1, 1, 1) + 1e-8
    mask = real.expand_as(values[0]).reshape(1, -1)
    flat = values.reshape(values.shape[0], -1)
    n = mask.sum()
    mean = (flat * mask).sum(1, keepdim=True) / n
    var = (((flat - mean) * mask) ** 2).sum(1) / n
    return var.sqrt().view(-1, 1, 1) + 1e-8
