"""One training run from a composed config: build the pieces (``nngraph.builders``), train them
with the :class:`~nngraph.train.Trainer`, test the best checkpoint.

``run(cfg, run_dir)`` is what ``train.py`` / ``nngraph-train`` call; each piece is also usable on
its own from a notebook (build a task and a ``TrainData``, hand them to ``Trainer``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nngraph.builders import (
    build_augment,
    build_data,
    build_optimizer,
    build_task,
    check_settings,
    open_store,
    plain,
    trainer_settings,
)
from nngraph.device import pick_device
from nngraph.io import atomic_write_text
from nngraph.tasks import Task
from nngraph.train.allocator import keep_freed_memory
from nngraph.train.distributed import DistInfo, setup_distributed, teardown_distributed
from nngraph.train.trainer import Trainer

__all__ = ["open_store", "pick_device", "run"]


def run(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says, writing everything of the run under ``run_dir``.
    Returns the summary (test metrics of the best-validation checkpoint)."""
    check_settings(cfg)  # every setting in range before any work or write
    device = pick_device(str(cfg.trainer.device), setting="trainer.device")
    dist = setup_distributed(device.type)
    try:
        if dist.enabled and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        return _run(cfg, Path(run_dir), device, dist)
    finally:
        teardown_distributed()


def _run(cfg: DictConfig, run_dir: Path, device: torch.device, dist: DistInfo) -> dict[str, Any]:
    if device.type == "cpu":
        keep_freed_memory()
    torch.manual_seed(int(cfg.seed))
    show = bool(cfg.trainer.progress) and dist.is_main
    store, store_path = open_store(cfg, is_main=dist.is_main, progress=show)
    data = build_data(cfg, store, store_path, device, dist)
    task = build_task(cfg, store, store_path, data.rows, write=dist.is_main)
    augment = build_augment(cfg, task, store, store_path, dist)
    task = _place(task, device, dist)
    optimizer, scheduler = build_optimizer(cfg, task, len(data.train))
    if cfg.trainer.amp and device.type != "cuda" and dist.is_main:
        print("nngraph: trainer.amp needs a GPU; training in float32")
    trainer = Trainer(
        task, data, optimizer, scheduler, run_dir, trainer_settings(cfg), augment=augment,
        device=device, dist=dist, config=plain(cfg), logger_options=plain(cfg.logger),
    )  # fmt: skip
    try:  # the trainer holds the run directory's lock from here: nothing was written there before
        if dist.is_main:
            atomic_write_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / "config.yaml")
        if cfg.trainer.resume:
            trainer.resume(cfg.trainer.resume)
        trainer.fit()
        if not dist.is_main:
            return {}
        aug = plain(cfg.get("aug"))
        describe = {"task": str(cfg.task.name), "model": str(cfg.model.name),
                    "aug": ",".join(aug) if isinstance(aug, dict) else "none",
                    "data": data.description}  # fmt: skip
        return trainer.test(describe)
    finally:
        trainer.close()


def _place(task: Task, device: torch.device, dist: DistInfo) -> Task:
    """``task`` on ``device``; batch norm synchronised across GPUs under DDP."""
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in task.modules())
    if dist.enabled and has_bn and device.type == "cuda":  # one set of batch statistics
        task = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task)
    elif dist.enabled and has_bn and dist.is_main:
        print(
            "nngraph: batch norm under DDP on CPU uses each process's share of the batch for its "
            "statistics (SyncBatchNorm needs GPUs); model.kwargs.norm=false avoids it"
        )
    return task.to(device)
