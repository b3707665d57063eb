"""What a task is to the training loop: a module around an encoder that turns augmented views into a
loss, evaluates a split into metrics with one primary metric, and says what the test outputs hold.

The loop (:class:`nngraph.train.Trainer`) knows nothing else about tasks: a new task is a subclass
of :class:`Task` (and, for ``train.py``, a config in ``configs/task/`` naming it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn
from torch_geometric.data import Batch

from nngraph.data.store import INRStore
from nngraph.models.base import WeightSpaceModel

__all__ = ["EvalData", "Evaluation", "Task"]


@dataclass
class EvalData:
    """What evaluation may read: unaugmented batches of a split (``"train"`` is one view of each
    training item, ``"val"``, ``"test"``), made fresh on each call, and the run's seed."""

    batches: Callable[[str], Iterable[Batch]]
    seed: int = 0


@dataclass
class Evaluation:
    """Metrics of one split (scalars, logged as ``val_<name>`` / ``test_<name>``) and the outputs
    written to ``test_outputs.pt`` for the test split."""

    metrics: dict[str, float]
    outputs: dict[str, Any] = field(default_factory=dict)


class Task(nn.Module):
    """Base of tasks. ``forward(*views) -> (loss, logs)`` takes ``views_per_step`` independently
    augmented copies of a batch; ``logs["loss"]`` is the float the loop averages; ``evaluate``
    returns an :class:`Evaluation` whose ``metrics[primary]`` picks the best checkpoint."""

    name: ClassVar[str]
    views_per_step: ClassVar[int] = 1
    primary: ClassVar[str] = "acc"
    higher_is_better: ClassVar[bool] = True

    encoder: WeightSpaceModel

    @classmethod
    def from_store(cls, encoder: WeightSpaceModel, store: INRStore, **options: Any) -> Task:
        """The task for networks of ``store`` (what it needs of the data: classes, targets),
        with ``options`` from its config."""
        return cls(encoder, **options)

    def augment_options(self) -> dict[str, Any]:
        """Extra keyword arguments for the augmentations that accept them (none by default)."""
        return {}

    def forward(self, *views: Batch) -> tuple[Tensor, dict[str, float]]:  # pragma: no cover
        raise NotImplementedError

    def evaluate(self, data: EvalData, split: str) -> Evaluation:  # pragma: no cover
        raise NotImplementedError

    def improved(self, value: float, best: float | None) -> bool:
        """Whether ``value`` of the primary metric beats ``best`` (None: nothing yet)."""
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best
