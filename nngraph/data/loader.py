"""Batches of stored INRs as neural graphs: rows of the store gathered into ``params [B, P]`` and
turned into a graph batch in one step (no per-INR Data objects, no worker processes)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch_geometric.data import Batch

from nngraph.data.store import INRStore, nonfinite_rows
from nngraph.graph.convert import to_graph_batch

__all__ = ["GraphBatches", "epoch_order"]


def epoch_order(rows: Tensor, seed: int, epoch: int) -> Tensor:
    """The shuffled rows of one epoch: a function of (seed, epoch) only, so a resumed run and the
    processes of a distributed run all see the same order."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return rows[torch.randperm(len(rows), generator=gen)]


class GraphBatches:
    """Iterates over ``rows`` of ``store`` in batches of graphs on ``device``.

    ``targets`` (``[N]`` floats over the store's rows) replaces the class ids as ``y`` (``[B, 1]``).
    ``shard=(rank, world)`` gives this process its share of every batch (distributed training:
    each global batch is split across processes; when it splits evenly, the averaged gradient
    equals one process's on the whole batch). A last batch smaller than ``world`` is skipped.
    """

    def __init__(
        self,
        store: INRStore,
        rows: Tensor,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        shard: tuple[int, int] = (0, 1),
        targets: Tensor | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if len(rows) == 0:
            raise ValueError("no networks in this split: check the store's splits and data.views")
        self.store, self.rows, self.batch_size = store, rows, batch_size
        self.device, self.shard = torch.device(device), shard
        self.params = store.params.index_select(0, rows).to(self.device)  # the split, once
        bad = nonfinite_rows(self.params)
        if len(bad):  # e.g. a byte flipped in the file after it was written and checked
            shown = ", ".join(str(int(r)) for r in rows[bad.cpu()][:5])
            raise ValueError(
                f"the store has NaN or Inf parameters (rows {shown}; {len(bad)} in all): "
                "re-create it (nngraph-fit or an importer)"
            )
        # y: the class ids, or (regression) a float target column of the store as [n, 1]
        y = store.labels if targets is None else targets.float().view(-1, 1)
        self.labels = y.index_select(0, rows).to(self.device)
        self._position = torch.full((int(rows.max()) + 1,), -1, dtype=torch.long)
        self._position[rows] = torch.arange(len(rows))

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def batches(self, order: Tensor | None = None, skip: int = 0) -> Iterator[Batch]:
        """Graph batches in ``order`` (store rows; default: as given), skipping the first ``skip``
        batches (a resumed epoch)."""
        order = self.rows if order is None else order
        pos = self._position[order].to(self.device)
        rank, world = self.shard
        for start in range(skip * self.batch_size, len(order), self.batch_size):
            take = pos[start : start + self.batch_size]
            if world > 1:
                if len(take) < world:  # every process must take the same number of steps
                    continue
                take = take[rank::world]
            yield to_graph_batch(
                self.params.index_select(0, take),
                self.store.spec,
                y=self.labels.index_select(0, take),
                idx=self.rows.to(self.device).index_select(0, take),
            )
