"""Symmetry augmentations: new parameters, the same function.

All act on hidden neurons only. ``permute`` relabels them; ``siren_neg`` flips the sign of a
neuron (``sin`` is odd); ``siren_bias`` shifts a neuron's phase by ``k pi / w0`` and flips its
outgoing weights for odd ``k``; ``positive_scale`` scales a ReLU neuron's input side by ``c > 0``
and its output side by ``1 / c``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nngraph.augment.base import GraphAugmentation, check_setting
from nngraph.graph.convert import Graph
from nngraph.graph.relabel import random_relabel
from nngraph.graph.spec import ROLE_HIDDEN, ArchSpec
from nngraph.graph.view import GraphView

__all__ = ["Permute", "PositiveScale", "SirenBias", "SirenNegation"]


class Permute(GraphAugmentation):
    """A uniformly random relabeling of each layer's hidden neurons, independent per graph."""

    def augment(self, data: Graph, view: GraphView) -> Graph:
        return random_relabel(data, generator=self.generator)


class SirenNegation(GraphAugmentation):
    """Negate each hidden neuron with probability ``p``: ``x *= s``, ``edge *= s[src] s[dst]``."""

    activations = frozenset({"sine", "tanh", "identity"})  # odd activations

    def check(self, spec: ArchSpec) -> None:
        super().check(spec)
        if spec.has_convolutions and spec.global_pool == "max":
            raise ValueError(
                f"SirenNegation changes the function of {spec}: a global max pooling is not odd "
                "(use global_pool='avg')"
            )

    def __init__(self, p: float = 0.5, **kw: Any) -> None:
        super().__init__(**kw)
        check_setting("siren_neg p", p, 0.0, 1.0)
        self.p = p

    def augment(self, data: Graph, view: GraphView) -> Graph:
        hidden = view.t.role == ROLE_HIDDEN
        flip = self.uniform(view.b, view.t.num_nodes, low=0, high=1, device=view.device) < self.p
        sign = 1.0 - 2.0 * (flip & hidden).to(view.x.dtype)  # [B, N]
        src, dst = view.t.edge_index
        edge_sign = (sign[:, src] * sign[:, dst]).unsqueeze(2)
        return self.replace(data, view, x=view.x * sign.unsqueeze(2), e=view.e * edge_sign)


class SirenBias(GraphAugmentation):
    """Shift each hidden neuron's bias by ``k pi / w0``, ``k`` uniform in ``[-k_max, k_max)``, and
    negate its outgoing weights when ``k`` is odd: ``sin(z + k pi) = (-1)^k sin(z)``."""

    activations = frozenset({"sine"})
    families = frozenset({"mlp"})

    def __init__(self, k_max: int = 4, **kw: Any) -> None:
        super().__init__(**kw)
        check_setting("siren_bias k_max", k_max, 0, integer=True)
        self.k_max = k_max

    def augment(self, data: Graph, view: GraphView) -> Graph:
        hidden = (view.t.role == ROLE_HIDDEN).long()
        k = self.randint(-self.k_max, self.k_max, view.b, view.t.num_nodes, device=view.device)
        k = k * hidden  # [B, N], zero outside hidden layers
        shift = (k.to(view.x.dtype) * (math.pi / view.spec.w0)).unsqueeze(2)
        src = view.t.edge_index[0]
        out_sign = (1 - 2 * (k[:, src] % 2)).to(view.e.dtype).unsqueeze(2)
        return self.replace(data, view, x=view.x + shift, e=view.e * out_sign)


class PositiveScale(GraphAugmentation):
    """Scale each hidden ReLU neuron by ``c``, log-uniform in ``[1 / max_factor, max_factor]``:
    incoming weights and bias ``* c``, outgoing weights ``/ c`` (ReLU is positively homogeneous)."""

    activations = frozenset({"relu", "leaky_relu", "identity"})

    def __init__(self, max_factor: float = 2.0, **kw: Any) -> None:
        super().__init__(**kw)
        check_setting("positive_scale max_factor", max_factor, 1.0)
        self.max_factor = max_factor

    def augment(self, data: Graph, view: GraphView) -> Graph:
        hidden = view.t.role == ROLE_HIDDEN
        limit = math.log(self.max_factor)
        log_c = self.uniform(view.b, view.t.num_nodes, low=-limit, high=limit, device=view.device)
        c = torch.exp(log_c * hidden).to(view.x.dtype)  # 1 outside hidden layers
        src, dst = view.t.edge_index
        edge_scale = (c[:, dst] / c[:, src]).unsqueeze(2)
        return self.replace(data, view, x=view.x * c.unsqueeze(2), e=view.e * edge_scale)
