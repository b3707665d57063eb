"""Input-space augmentations: act on the first layer so the INR draws a transformed image.

Each is exact: the augmented INR evaluated at ``x`` equals the original evaluated at the
transformed coordinates (``f(x - t)``, ``f(R x)``, ``f(s x)``). The last draw is kept
(``last_shift``, ``last_rotation``, ``last_scale``) for inspection and plots.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from nngraph.augment.base import GraphAugmentation
from nngraph.graph.convert import Graph
from nngraph.graph.view import GraphView

__all__ = ["Rotate", "Scale", "Translate"]


class Translate(GraphAugmentation):
    """Shift the picture by ``t ~ U(-max_shift, max_shift)`` per input dimension and graph:
    ``b1 -= W1 t``, so the new INR is ``x -> f(x - t)``."""

    families = frozenset({"mlp"})

    def __init__(self, max_shift: float = 0.25, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_shift = max_shift

    def augment(self, data: Graph, view: GraphView) -> Graph:
        w1 = view.first_layer_weights()
        t = self.uniform(view.b, w1.shape[2], 1, low=-self.max_shift, high=self.max_shift,
                         device=view.device)  # fmt: skip
        x = view.x.clone()
        n0, n1 = view.spec.layer_sizes[:2]
        x[:, n0 : n0 + n1, :1] -= torch.bmm(w1, t.to(w1.dtype))
        self.last_shift = t.squeeze(2)  # [B, in_dim]
        return self.replace(data, view, x=x)


class Rotate(GraphAugmentation):
    """Rotate the input coordinates by a random angle in ``[-max_degrees, max_degrees]`` (2-D), or
    about a random axis by such an angle (3-D): ``W1 <- W1 R``, the new INR is ``x -> f(R x)``."""

    families = frozenset({"mlp"})

    def __init__(self, max_degrees: float = 30.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_degrees = max_degrees

    def augment(self, data: Graph, view: GraphView) -> Graph:
        w1 = view.first_layer_weights()
        dim = w1.shape[2]
        limit = math.radians(self.max_degrees)
        angle = self.uniform(view.b, low=-limit, high=limit, device=view.device)
        if dim == 2:
            c, s = torch.cos(angle), torch.sin(angle)
            rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        elif dim == 3:
            axis = self.normal(view.b, 3, device=view.device)
            rot = _axis_angle(axis / axis.norm(dim=1, keepdim=True), angle)
        else:
            raise ValueError(f"rotate needs INRs of 2-D or 3-D inputs; {view.spec} takes {dim}")
        e = view.e.clone()
        n0, n1 = view.spec.layer_sizes[:2]
        e[:, : n0 * n1, 0] = torch.bmm(w1, rot.to(w1.dtype)).reshape(view.b, -1)
        self.last_rotation = rot  # [B, d, d]
        return self.replace(data, view, e=e)


class Scale(GraphAugmentation):
    """Zoom by ``s ~ U(1 - max_scale, 1 + max_scale)`` per graph: ``W1 <- s W1``, the new INR is
    ``x -> f(s x)``."""

    families = frozenset({"mlp"})

    def __init__(self, max_scale: float = 0.2, **kw: Any) -> None:
        super().__init__(**kw)
        self.max_scale = max_scale

    def augment(self, data: Graph, view: GraphView) -> Graph:
        view.first_layer_weights()  # checks the layout
        s = self.uniform(view.b, 1, 1, low=1 - self.max_scale, high=1 + self.max_scale,
                         device=view.device)  # fmt: skip
        e = view.e.clone()
        n0, n1 = view.spec.layer_sizes[:2]
        e[:, : n0 * n1] *= s.to(e.dtype)
        self.last_scale = s.view(-1)  # [B]
        return self.replace(data, view, e=e)


def _axis_angle(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotation matrices ``[B, 3, 3]`` from unit axes ``[B, 3]`` and angles ``[B]`` (Rodrigues)."""
    x, y, z = axis.unbind(1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], 1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device).expand_as(k)
    s, c = torch.sin(angle).view(-1, 1, 1), torch.cos(angle).view(-1, 1, 1)
    return eye + s * k + (1 - c) * torch.bmm(k, k)
