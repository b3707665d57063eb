"""Classification of networks: an encoder, an MLP head, cross entropy with hard or mixed labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch

from nngraph.data.store import INRStore
from nngraph.models.base import WeightSpaceModel
from nngraph.models.heads import MLPHead
from nngraph.tasks.base import EvalData, Evaluation, Task

__all__ = ["ClassificationTask"]


class ClassificationTask(Task):
    """``forward(batch) -> (loss, logs)``; ``batch.y`` is ``[B]`` class ids or ``[B, C]`` soft
    labels (MixUp). Primary metric: accuracy."""

    name = "classification"

    def __init__(
        self,
        encoder: WeightSpaceModel,
        num_classes: int,
        head_hidden: Sequence[int] = (128,),
        label_smoothing: float = 0.0,
        class_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.encoder, self.num_classes = encoder, num_classes
        self.head = MLPHead(encoder.out_dim, num_classes, tuple(head_hidden))
        self.label_smoothing = float(label_smoothing)
        self.class_names = list(class_names)

    @classmethod
    def from_store(cls, encoder: WeightSpaceModel, store: INRStore, **options: Any) -> Task:
        names = store.meta.get("class_names") or ()
        return cls(encoder, store.num_classes, class_names=names, **options)

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
    def evaluate(self, data: EvalData, split: str) -> Evaluation:
        """Accuracy and mean loss on ``split`` (no augmentation); predictions as outputs."""
        was_training = self.training
        self.eval()
        losses, preds, targets, embeddings = [], [], [], []
        for batch in data.batches(split):
            emb = self.encoder(batch).graph
            logits = self.head(emb)
            losses.append(F.cross_entropy(logits, batch.y, reduction="sum"))
            preds.append(logits.argmax(dim=1))
            targets.append(batch.y)
            embeddings.append(emb)
        self.train(was_training)
        pred, y = torch.cat(preds), torch.cat(targets)
        metrics = {
            "acc": (pred == y).float().mean().item(),
            "loss": (torch.stack(losses).sum() / len(y)).item(),
        }
        outputs = {"pred": pred.cpu(), "target": y.cpu(), "embedding": torch.cat(embeddings).cpu(),
                   "class_names": self.class_names}  # fmt: skip
        return Evaluation(metrics, outputs)
