"""The base of every augmentation: a PyG transform over a neural graph or a batch of them.

An augmentation reads the batch as ``x [B, N, F]`` and ``edge_attr [B, E, F_e]`` (one architecture,
so every graph has the same layout), draws its randomness per graph, and returns a new batch
(shallow copy; the input is left as it was) on the batch's device. A seeded ``torch.Generator``
makes it reproducible. They are meant for collated batches in the training loop, not for per-item
dataset transforms in DataLoader workers (a seeded generator would replay there).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.transforms import BaseTransform

from nngraph.graph.convert import Graph, graph_spec, num_graphs
from nngraph.graph.spec import ArchSpec, GraphTemplates, edge_layer_starts

__all__ = ["GraphAugmentation", "GraphView", "edge_layer_starts"]


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


class GraphAugmentation(BaseTransform):
    """Base class: subclasses implement :meth:`augment` on a :class:`GraphView`.

    ``generator`` (or ``seed``) makes the draws reproducible; without one the global RNG is used.
    """

    #: activations the augmentation is valid for (None: any)
    activations: frozenset[str] | None = None

    def __init__(self, generator: torch.Generator | None = None, seed: int | None = None) -> None:
        if generator is not None and seed is not None:
            raise ValueError("pass generator or seed, not both")
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else generator

    def forward(self, data: Graph) -> Graph:
        if self.generator is not None and torch.utils.data.get_worker_info() is not None:
            warnings.warn(
                f"{type(self).__name__} with a seeded generator runs in a DataLoader worker: every "
                "worker (and every epoch) replays the same draws. Apply augmentations to batches "
                "in the training loop instead.",
                stacklevel=2,
            )
        view = GraphView.of(data)
        if self.activations is not None and view.spec.activation not in self.activations:
            raise ValueError(
                f"{type(self).__name__} preserves the function only for activations "
                f"{sorted(self.activations)}; this batch is {view.spec}"
            )
        return self.augment(data, view)

    def augment(self, data: Graph, view: GraphView) -> Graph:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- results ----------------------------------------------------------------------------
    @staticmethod
    def replace(data: Graph, view: GraphView, x: Tensor | None = None, e: Tensor | None = None,
                **fields: Tensor) -> Graph:  # fmt: skip
        """A shallow copy of ``data`` with new node / edge features (dense ``[B, ...]`` form)."""
        out = copy.copy(data)
        for stale in ("raw_x", "raw_edge_attr"):  # kept by normalize_graph; no longer this batch's
            if stale in out:
                del out[stale]
        if x is not None:
            out.x = x.reshape(view.b * view.t.num_nodes, -1)
        if e is not None:
            out.edge_attr = e.reshape(view.b * view.t.num_edges, -1)
        for key, value in fields.items():
            setattr(out, key, value)
        return out

    # ---- randomness -------------------------------------------------------------------------
    def _draw(self, fn, *shape: int, device: torch.device, **kw) -> Tensor:
        gen = self.generator
        where = gen.device if gen is not None else device
        return fn(*shape, generator=gen, device=where, **kw).to(device)

    def uniform(self, *shape: int, low: float, high: float, device: torch.device) -> Tensor:
        return self._draw(torch.rand, *shape, device=device) * (high - low) + low

    def normal(self, *shape: int, device: torch.device) -> Tensor:
        return self._draw(torch.randn, *shape, device=device)

    def randint(self, low: int, high: int, *shape: int, device: torch.device) -> Tensor:
        gen = self.generator
        where = gen.device if gen is not None else device
        return torch.randint(low, high, shape, generator=gen, device=where).to(device)

    def permutation(self, n: int, device: torch.device) -> Tensor:
        return self._draw(torch.rand, n, device=device).argsort()

    def __repr__(self) -> str:
        args = ", ".join(
            f"{k}={v!r}"
            for k, v in vars(self).items()
            if k != "generator" and not k.startswith("_")
        )
        return f"{type(self).__name__}({args})"
