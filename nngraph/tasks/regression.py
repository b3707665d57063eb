"""Regression of a per-network target (a CNN's test accuracy, say) from its weights.

MSE on the target standardised with the training split's mean and standard deviation; evaluated
by Kendall's tau (the field's metric for accuracy prediction, Unterthiner et al. 2020), R² and
RMSE in the target's own units. Batches carry the target as ``y [B, 1]`` (float), so MixUp mixes
targets as it mixes weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from scipy.stats import kendalltau
from torch import Tensor
from torch_geometric.data import Batch

from nngraph.data.store import INRStore
from nngraph.models.base import WeightSpaceModel
from nngraph.models.heads import MLPHead
from nngraph.tasks.base import EvalData, Evaluation, Task

__all__ = ["RegressionTask", "regression_metrics", "store_target"]


def store_target(store: INRStore, name: str) -> Tensor:
    """The float32 target column ``name`` of ``store``, or a one-line error naming the columns."""
    if name not in store.columns:
        have = ", ".join(sorted(store.columns)) or "none"
        raise ValueError(
            f"task.target={name} is not a column of this store (columns: {have}); a CNN zoo "
            "from `python -m nngraph.zoo` has test_accuracy, train_accuracy, test_loss, ..."
        )
    column = store.columns[name].float()
    bad = (~torch.isfinite(column)).nonzero().flatten()
    if len(bad):
        rows = ", ".join(str(int(r)) for r in bad[:5])
        raise ValueError(
            f"task.target={name} has NaN or Inf values (rows {rows}; {len(bad)} in all); "
            "re-create the store, or pick another target"
        )
    return column


def regression_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Kendall's tau, R² and RMSE of ``pred`` against ``target`` (both ``[N]``)."""
    pred, target = pred.double().cpu(), target.double().cpu()
    resid = ((pred - target) ** 2).sum()
    total = ((target - target.mean()) ** 2).sum()
    tau = kendalltau(pred.numpy(), target.numpy()).statistic
    return {
        "tau": float(tau) if tau == tau else 0.0,  # NaN (a constant prediction) counts as 0
        "r2": float(1 - resid / total) if total > 0 else 0.0,
        "rmse": float((resid / len(target)).sqrt()),
    }


class RegressionTask(Task):
    """``forward(batch) -> (loss, logs)`` with ``batch.y [B, 1]`` the raw target; primary metric
    Kendall's tau on the split."""

    name = "regression"
    primary = "tau"
    higher_is_better = True

    def __init__(
        self,
        encoder: WeightSpaceModel,
        mean: float,
        std: float,
        head_hidden: Sequence[int] = (128,),
        target: str = "test_accuracy",
    ) -> None:
        super().__init__()
        if not std > 0:
            raise ValueError(f"the target {target!r} is constant on the training split (std 0)")
        self.encoder, self.target = encoder, target
        self.head = MLPHead(encoder.out_dim, 1, tuple(head_hidden))
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    @classmethod
    def from_store(cls, encoder: WeightSpaceModel, store: INRStore, **options: Any) -> Task:
        target = str(options.pop("target", "test_accuracy"))
        rows = options.pop("train_rows", None)  # the rows it trains on (data.views of each item)
        values = store_target(store, target)[store.indices("train") if rows is None else rows]
        return cls(encoder, float(values.mean()), float(values.std()), target=target, **options)

    def predict(self, batch: Batch) -> Tensor:
        """The predicted target ``[B]`` in its own units."""
        return self.head(self.encoder(batch).graph).squeeze(1) * self.std + self.mean

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        z = self.head(self.encoder(batch).graph).squeeze(1)
        y = (batch.y.view(-1).float() - self.mean) / self.std
        loss = F.mse_loss(z, y)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def evaluate(self, data: EvalData, split: str) -> Evaluation:
        was_training = self.training
        self.eval()
        preds, targets = [], []
        for batch in data.batches(split):
            preds.append(self.predict(batch))
            targets.append(batch.y.view(-1).float())
        self.train(was_training)
        pred, y = torch.cat(preds), torch.cat(targets)
        metrics = regression_metrics(pred, y)
        metrics["loss"] = float((((pred - y) / self.std) ** 2).mean())
        return Evaluation(metrics, {"pred": pred.cpu(), "target": y.cpu(), "name": self.target})
