"""The base of every augmentation: a PyG transform over a neural graph or a batch of them.

An augmentation reads the batch as ``x [B, N, F]`` and ``edge_attr [B, E, F_e]`` (one architecture,
so every graph has the same layout), draws its randomness per graph, and returns a new batch
(shallow copy; the input is left as it was) on the batch's device. A seeded ``torch.Generator``
makes it reproducible. They are meant for collated batches in the training loop, not for per-item
dataset transforms in DataLoader workers (a seeded generator would replay there).
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import Tensor
from torch_geometric.transforms import BaseTransform

from nngraph.graph.convert import Graph
from nngraph.graph.spec import ArchSpec, edge_layer_starts
from nngraph.graph.view import GraphView

__all__ = ["GraphAugmentation", "GraphView", "check_setting", "edge_layer_starts"]


def check_setting(name: str, value: object, low: float, high: float = math.inf, *,
                  above: bool = False, integer: bool = False) -> None:  # fmt: skip
    """``value`` a finite number in ``[low, high]`` (``(low, high]`` with ``above``), an integer
    with ``integer``; else one ``ValueError`` naming the setting (NaN fails every comparison, so
    a bare ``if value < low`` lets it through)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and math.isfinite(value) and (value > low if above else value >= low)
    ok = ok and value <= high and (not integer or float(value).is_integer())
    if not ok:
        lower = f"> {low:g}" if above else f">= {low:g}"
        upper = f" and <= {high:g}" if high < math.inf else ""
        kind = "an integer" if integer else "a finite number"
        raise ValueError(f"{name}={value!r} is not allowed: it must be {kind} {lower}{upper}")


class GraphAugmentation(BaseTransform):
    """Base class: subclasses implement :meth:`augment` on a :class:`GraphView`.

    ``generator`` (or ``seed``) makes the draws reproducible; without one the global RNG is used.
    """

    #: activations the augmentation is valid for (None: any)
    activations: frozenset[str] | None = None
    #: architecture families it is valid for (None: any); "mlp" alone for what acts on an INR's
    #: input coordinates
    families: frozenset[str] | None = None

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
        self.check(view.spec)
        return self.augment(data, view)

    def check(self, spec: ArchSpec) -> None:
        """Raise ``ValueError`` unless the augmentation is valid for networks of ``spec``."""
        name = type(self).__name__
        if self.families is not None and spec.family not in self.families:
            raise ValueError(
                f"{name} is defined for {sorted(self.families)} networks (it acts on an INR's "
                f"input coordinates or its SIREN structure); this batch is {spec}"
            )
        if self.activations is not None and not spec.activation_names <= self.activations:
            raise ValueError(
                f"{name} preserves the function only for activations "
                f"{sorted(self.activations)}; this batch is {spec}"
            )

    def augment(self, data: Graph, view: GraphView) -> Graph:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- results ----------------------------------------------------------------------------
    @staticmethod
    def replace(data: Graph, view: GraphView, x: Tensor | None = None, e: Tensor | None = None,
                **fields: Tensor) -> Graph:  # fmt: skip
        """A shallow copy of ``data`` with new node / edge features (dense ``[B, ...]`` form)."""
        out = copy.copy(data)
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
