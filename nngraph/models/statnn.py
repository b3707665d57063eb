"""StatNN (Unterthiner et al. 2020): a network summarised by statistics of each layer's weights
and biases (mean, standard deviation, quantiles 0/25/50/75/100%). Invariant to every neuron
permutation by construction; the bar a weight-space model must clear on accuracy prediction.

``StatNN`` is the features as an encoder (the task's head learns on them); ``statnn_baseline``
fits scikit-learn's gradient boosting on them, the paper's strongest StatNN variant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nngraph.graph.convert import Graph, params_from_features
from nngraph.graph.spec import ArchSpec
from nngraph.models.base import Embeddings, WeightSpaceModel

__all__ = ["QUANTILES", "StatNN", "layer_statistics", "statnn_baseline"]

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
STATS_PER_TENSOR = 2 + len(QUANTILES)


def layer_statistics(params: Tensor, spec: ArchSpec) -> Tensor:
    """``[B, 2 * n_layers * 7]``: per layer, mean, std and quantiles of its weights, then of its
    biases, for each of ``params [B, P]``."""
    out, offset = [], 0
    q = torch.tensor(QUANTILES, dtype=params.dtype, device=params.device)
    for _, shape in spec.param_shapes:
        size = int(torch.Size(shape).numel())
        block = params[:, offset : offset + size]
        offset += size
        std = block.std(dim=1, correction=0) if size > 1 else torch.zeros_like(block[:, 0])
        out += [block.mean(1, keepdim=True), std.unsqueeze(1), torch.quantile(block, q, dim=1).T]
    return torch.cat(out, dim=1)


class StatNN(WeightSpaceModel):
    """Per-layer weight statistics of the real parameters, standardised (batch statistics while
    training, running ones in evaluation), as the graph embedding."""

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__(spec)
        self.out_dim = len(spec.param_shapes) * STATS_PER_TENSOR
        self.norm = nn.BatchNorm1d(self.out_dim, affine=False)

    def forward(self, batch: Graph) -> Embeddings:
        _, real = self.views(batch)
        stats = layer_statistics(params_from_features(real.x, real.e, real.spec), real.spec)
        if self.training and len(stats) == 1:  # a last batch of one has no batch statistics
            n = self.norm
            return Embeddings(F.batch_norm(stats, n.running_mean, n.running_var, training=False))
        return Embeddings(self.norm(stats))


def statnn_baseline(
    train_params: Tensor, train_y: Tensor, test_params: Tensor, spec: ArchSpec, seed: int = 0
) -> Tensor:
    """Predictions for ``test_params`` of gradient boosting fitted on the layer statistics of
    ``train_params`` against ``train_y`` (scikit-learn's ``HistGradientBoostingRegressor``)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from nngraph.graph.validate import check_finite, check_params_shape

    for name, rows, least in (("train_params", train_params, 2), ("test_params", test_params, 1)):
        check_params_shape(rows, spec)
        check_finite(rows, spec)
        if len(rows) < least:
            raise ValueError(f"statnn_baseline: {name} needs at least {least} network(s), got "
                             f"{len(rows)}")  # fmt: skip
    if train_y.shape != (len(train_params),) or not bool(torch.isfinite(train_y).all()):
        raise ValueError(f"statnn_baseline: train_y must hold {len(train_params)} finite targets, "
                         f"one per train row; got shape {tuple(train_y.shape)}")  # fmt: skip
    model = HistGradientBoostingRegressor(random_state=seed)
    model.fit(layer_statistics(train_params.float(), spec).numpy(), train_y.float().numpy())
    return torch.from_numpy(model.predict(layer_statistics(test_params.float(), spec).numpy()))
