"""SimCLR on networks (Chen et al. 2020): two independently augmented views of each INR, NT-Xent
between their projections; evaluated by a linear probe on the frozen encoder's embeddings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch

from nngraph.data.store import INRStore
from nngraph.models.base import WeightSpaceModel
from nngraph.models.heads import MLPHead
from nngraph.tasks.base import EvalData, Evaluation, Task

__all__ = ["SimCLRTask", "linear_probe", "nt_xent"]


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """Normalised-temperature cross entropy: each view must pick its partner among the 2B - 1
    other views of the batch."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLRTask(Task):
    """``forward(view1, view2) -> (loss, logs)``; the projection head is dropped for the probe.
    Primary metric: the linear probe's accuracy (train split -> the evaluated split)."""

    name = "simclr"
    views_per_step = 2

    def __init__(
        self,
        encoder: WeightSpaceModel,
        proj_dim: int = 128,
        proj_hidden: Sequence[int] = (256,),
        temperature: float = 0.1,
        mixup_min_lam: float = 0.8,
        class_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.encoder, self.temperature = encoder, float(temperature)
        self.head = MLPHead(encoder.out_dim, int(proj_dim), tuple(proj_hidden))
        self.mixup_min_lam = float(mixup_min_lam)
        self.class_names = list(class_names)

    @classmethod
    def from_store(cls, encoder: WeightSpaceModel, store: INRStore, **options: Any) -> Task:
        return cls(encoder, class_names=store.meta.get("class_names") or (), **options)

    def augment_options(self) -> dict[str, Any]:
        # MixUp partners keep lam >= mixup_min_lam, so a view stays mostly its own INR
        return {"min_lam": self.mixup_min_lam}

    def forward(self, view1: Batch, view2: Batch) -> tuple[Tensor, dict[str, float]]:
        z1 = self.head(self.encoder(view1).graph)
        z2 = self.head(self.encoder(view2).graph)
        loss = nt_xent(z1, z2, self.temperature)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def embed(self, batches: Iterable[Batch]) -> tuple[Tensor, Tensor]:
        """Frozen encoder embeddings and labels of ``batches``."""
        was_training = self.training
        self.eval()
        embs, ys = [], []
        for batch in batches:
            embs.append(self.encoder(batch).graph.cpu())
            ys.append(batch.y.cpu())
        self.train(was_training)
        return torch.cat(embs), torch.cat(ys)

    def evaluate(self, data: EvalData, split: str) -> Evaluation:
        """A linear probe fitted on the training split's embeddings, scored on ``split``."""
        tx, ty = self.embed(data.batches("train"))
        ex, ey = self.embed(data.batches(split))
        probe = linear_probe(tx, ty, ex, ey, seed=data.seed)
        outputs = {"pred": probe["pred"], "target": probe["target"], "embedding": ex,
                   "class_names": self.class_names}  # fmt: skip
        return Evaluation({"acc": probe["acc"]}, outputs)


def linear_probe(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, seed: int = 0
) -> dict[str, object]:
    """Logistic regression on standardised embeddings, train split -> test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(train_x.double().numpy(), train_y.numpy())
    pred = torch.as_tensor(clf.predict(test_x.double().numpy()))
    return {"acc": (pred == test_y).float().mean().item(), "pred": pred, "target": test_y}
