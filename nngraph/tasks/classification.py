"""Classification of networks: an encoder, an MLP head, cross entropy with hard or mixed labels."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch

from nngraph.models.base import WeightSpaceModel
from nngraph.models.heads import MLPHead

__all__ = ["ClassificationTask"]


class ClassificationTask(nn.Module):
    """``forward(batch) -> (loss, logs)``; ``batch.y`` is ``[B]`` class ids or ``[B, C]`` soft
    labels (MixUp)."""

    name = "classification"

    def __init__(
        self,
        encoder: WeightSpaceModel,
        num_classes: int,
        head_hidden: tuple[int, ...] = (128,),
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder, self.num_classes = encoder, num_classes
        self.head = MLPHead(encoder.out_dim, num_classes, tuple(head_hidden))
        self.label_smoothing = label_smoothing

    def logits(self, batch: Batch) -> Tensor:
        return self.head(self.encoder(batch).graph)

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        logits = self.logits(batch)
        y = batch.y
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        hard = y if not y.is_floating_point() else y.argmax(dim=1)
        acc = (logits.argmax(dim=1) == hard).float().mean()
        return loss, {"loss": loss.item(), "acc": acc.item()}

    @torch.no_grad()
    def evaluate(self, batches: Iterable[Batch]) -> dict[str, object]:
        """Mean loss and accuracy over ``batches`` (no augmentation), with the predictions."""
        was_training = self.training
        self.eval()
        losses, preds, targets, embeddings = [], [], [], []
        for batch in batches:
            emb = self.encoder(batch).graph
            logits = self.head(emb)
            losses.append(F.cross_entropy(logits, batch.y, reduction="sum"))
            preds.append(logits.argmax(dim=1))
            targets.append(batch.y)
            embeddings.append(emb)
        self.train(was_training)
        pred, y = torch.cat(preds), torch.cat(targets)
        return {
            "loss": (torch.stack(losses).sum() / len(y)).item(),
            "acc": (pred == y).float().mean().item(),
            "pred": pred.cpu(),
            "target": y.cpu(),
            "embedding": torch.cat(embeddings).cpu(),
        }
