"""MixUp in weight space: interpolate two graphs of one architecture and their labels.

Partners are drawn within the batch (a random permutation of it). ``mixup`` mixes as they are;
``mixup_perm`` first relabels the partner at random; ``mixup_align`` first aligns the partner to the
sample by weight matching, through a cached alignment to a template when one is given (a gather),
or pair by pair otherwise (exact, slower). With hard labels the output's ``y`` is the mixed one-hot
``lam * onehot(y) + (1 - lam) * onehot(y_partner)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nngraph.align.template import AlignmentCache
from nngraph.align.weight_matching import (
    compose_perms,
    compose_signed,
    invert_perms,
    invert_signed,
    node_signs,
    weight_matching_batch,
)
from nngraph.augment.base import GraphAugmentation, check_setting
from nngraph.graph.convert import Graph, to_params
from nngraph.graph.relabel import random_perms, relabel_indices
from nngraph.graph.view import GraphView

__all__ = ["MixUp", "MixUpAlign", "MixUpPerm"]


class MixUp(GraphAugmentation):
    """``lam * sample + (1 - lam) * partner``, ``lam ~ U(0, 1)`` (or ``Beta(alpha, alpha)``, or the
    fixed ``lam``) per graph, rescaled into ``[min_lam, 1]`` (SimCLR uses ``min_lam`` near 1 so a
    view stays mostly its own INR). The last draw is kept in ``last_lam`` and ``last_partner``."""

    def __init__(
        self,
        num_classes: int | None = None,
        alpha: float | None = None,
        lam: float | None = None,
        min_lam: float = 0.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        check_setting("mixup min_lam", min_lam, 0.0, 1.0)
        if alpha is not None:
            check_setting("mixup alpha", alpha, 0.0, above=True)
        if lam is not None:
            check_setting("mixup lam", lam, 0.0, 1.0)
        if num_classes is not None:
            check_setting("mixup num_classes", num_classes, 1, integer=True)
        self.num_classes, self.alpha, self.lam, self.min_lam = num_classes, alpha, lam, min_lam
        self.last_lam: Tensor | None = None
        self.last_partner: Tensor | None = None

    def partner_indices(
        self, data: Graph, view: GraphView, partner: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Gather indices ``(node [B*N], edge [B*E])`` into the batch that give each graph's partner
        (in the frame it is mixed in)."""
        n, e = view.t.num_nodes, view.t.num_edges
        nodes = (partner.unsqueeze(1) * n + torch.arange(n, device=view.device)).reshape(-1)
        edges = (partner.unsqueeze(1) * e + torch.arange(e, device=view.device)).reshape(-1)
        return nodes, edges

    def partner_features(
        self, data: Graph, view: GraphView, partner: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Each graph's partner as dense ``x [B, N, F]`` and ``edge_attr [B, E, F]``."""
        nodes, edges = self.partner_indices(data, view, partner)
        return data.x[nodes].view_as(view.x), data.edge_attr[edges].view_as(view.e)

    def augment(self, data: Graph, view: GraphView) -> Graph:
        b = view.b
        partner = self.permutation(b, view.device)
        lam = self._lambda(b, view.device).to(view.x.dtype)
        lam = self.min_lam + (1.0 - self.min_lam) * lam
        xp, ep = self.partner_features(data, view, partner)
        w = lam.view(b, 1, 1)
        x = torch.lerp(xp, view.x, w)  # w * sample + (1 - w) * partner
        e = torch.lerp(ep, view.e, w)
        fields = {}
        y = getattr(data, "y", None)
        if y is not None:
            soft = self._soft(y)
            fields["y"] = torch.lerp(soft[partner], soft, lam.view(b, 1).to(soft.dtype))
        self.last_lam, self.last_partner = lam, partner
        return self.replace(data, view, x=x, e=e, **fields)

    def _lambda(self, b: int, device: torch.device) -> Tensor:
        if self.lam is not None:
            return torch.full((b,), float(self.lam), device=device)
        u = self.uniform(b, low=0.0, high=1.0, device=device)
        if self.alpha is None:
            return u
        # torch's Beta takes no generator: seed numpy's from this augmentation's draws instead
        seed = int((u * 2**31).long().sum().item())
        draws = np.random.default_rng(seed).beta(self.alpha, self.alpha, size=b)
        return torch.as_tensor(draws, dtype=torch.float32, device=device)

    def _soft(self, y: Tensor) -> Tensor:
        if y.is_floating_point():  # already soft labels [B, C]
            return y
        y = y.view(-1) if y.dim() == 2 and y.shape[1] == 1 else y
        if y.dim() != 1:
            raise ValueError(f"hard labels must have shape [B] (or [B, 1]), got {tuple(y.shape)}")
        if self.num_classes is None:
            raise ValueError(
                "MixUp of hard labels needs num_classes (the one-hot size); pass num_classes="
            )
        if bool(((y < 0) | (y >= self.num_classes)).any()):  # one device sync per batch
            raise ValueError(f"MixUp labels must lie in [0, {self.num_classes}) (num_classes), "
                             f"got {int(y.min())}..{int(y.max())}")  # fmt: skip
        return F.one_hot(y.long(), self.num_classes).float()


class MixUpPerm(MixUp):
    """MixUp after a uniformly random relabeling of each partner."""

    def partner_indices(
        self, data: Graph, view: GraphView, partner: Tensor
    ) -> tuple[Tensor, Tensor]:
        nodes, edges = super().partner_indices(data, view, partner)
        perms = random_perms(view.spec, view.b, generator=self.generator, device=view.device)
        node_idx, edge_idx = relabel_indices(view.spec, perms, view.b, device=view.device,
                                             validate=False)  # fmt: skip
        return nodes[node_idx], edges[edge_idx]


class MixUpAlign(MixUp):
    """MixUp after aligning each partner to its sample by weight matching.

    With ``cache`` (an :class:`AlignmentCache` of the store, see ``align_to_template``) the batch
    must carry its store rows in ``idx`` and alignment is a gather: partner ``j`` goes to sample
    ``i``'s frame by ``pi_j`` then ``pi_i^-1``. Without a cache every pair is weight-matched.
    ``alignment`` (a function ``signed -> AlignmentCache``, what the training builders pass)
    supplies the cache when none is given. ``signs=True`` also matches neuron negations (SIRENs;
    an extension of the paper's permutation matching, see ``signed_weight_matching``); a cache
    must then have been built with signs.
    """

    def __init__(
        self,
        cache: AlignmentCache | None = None,
        max_iter: int = 100,
        signs: bool = False,
        alignment: Callable[[bool], AlignmentCache] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if cache is None and alignment is not None:
            cache = alignment(bool(signs))
        self.cache, self.max_iter, self.signs = cache, max_iter, signs
        if signs and cache is not None and cache.signs is None:
            raise ValueError(
                "MixUpAlign(signs=True) needs a cache built with align_to_template(signed=True)"
            )

    def partner_features(
        self, data: Graph, view: GraphView, partner: Tensor
    ) -> tuple[Tensor, Tensor]:
        nodes, edges = MixUp.partner_indices(self, data, view, partner)
        perms, signs = self._alignment(data, view, partner)
        node_idx, edge_idx = relabel_indices(
            view.spec, [p.to(view.device) for p in perms], view.b, device=view.device,
            validate=False,
        )  # fmt: skip
        xp = data.x[nodes[node_idx]].view_as(view.x)
        ep = data.edge_attr[edges[edge_idx]].view_as(view.e)
        if signs is not None:
            node_sign = node_signs(view.spec, signs, view.b, like=xp)
            src, dst = view.t.edge_index
            xp = xp * node_sign.unsqueeze(2)
            ep = ep * (node_sign[:, src] * node_sign[:, dst]).unsqueeze(2)
        return xp, ep

    def _alignment(
        self, data: Graph, view: GraphView, partner: Tensor
    ) -> tuple[list[Tensor], list[Tensor] | None]:
        partner_cpu = partner.cpu()
        if self.cache is None:
            params = to_params(data).detach().cpu()
            return weight_matching_batch(params, params[partner_cpu], view.spec,
                                         max_iter=self.max_iter, signed=self.signs)  # fmt: skip
        rows = getattr(data, "idx", None)
        if rows is None:
            raise ValueError(
                "MixUpAlign with a cache needs each graph's store row in batch.idx "
                "(to_graph_batch(params, spec, idx=rows))"
            )
        if self.cache.spec != view.spec:
            raise ValueError(
                f"the alignment cache was built for {self.cache.spec}, this batch is {view.spec}"
            )
        to_template = self.cache.perms_for(rows)
        if not self.signs:
            return compose_perms(
                [p[partner_cpu] for p in to_template], invert_perms(to_template)
            ), None
        signs = self.cache.signs_for(rows)
        mine = (to_template, signs)
        theirs = ([p[partner_cpu] for p in to_template], [s[partner_cpu] for s in signs])
        return compose_signed(theirs, invert_signed(*mine))
