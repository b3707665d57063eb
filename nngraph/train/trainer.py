"""The training loop, for any :class:`~nngraph.tasks.Task`: augmented views, AdamW steps with
clipping and warmup, evaluation with the task's primary metric, best/last checkpoints, exact resume
(every random state), then the best checkpoint on the test split.

It takes objects (task, batches, optimiser, augmentation); ``nngraph.builders`` makes them from a
config. Nothing here knows a task, a model or an augmentation by name.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.data import Batch
from tqdm.auto import tqdm

from nngraph.data.loader import GraphBatches, epoch_order
from nngraph.graph.spec import ArchSpec
from nngraph.io import OutputLock, atomic_torch_save, atomic_write_text, clean_temp_files
from nngraph.tasks.base import EvalData, Evaluation, Task
from nngraph.train.checkpoint import (
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from nngraph.train.distributed import DistInfo, mean_across
from nngraph.train.logging import MetricsLogger, json_safe, summary_table

__all__ = ["TrainData", "Trainer", "TrainerSettings"]


@dataclass
class TrainerSettings:
    """How long to train and how: the ``trainer`` config's loop settings as plain values."""

    epochs: int = 10
    max_steps: int | None = None
    max_minutes: float | None = None
    eval_every: int | None = None  # None: evaluate (and checkpoint) once per epoch
    clip_grad: float | None = 10.0
    amp: bool = False  # bfloat16 autocast, on GPUs only
    compile: bool = False  # torch.compile the encoder's layer stack (where it has one)
    progress: bool = True
    seed: int = 0  # orders the epochs and seeds evaluation (linear probes)
    resume_changes: bool = False  # let a resumed run read other data or another batch size


@dataclass
class TrainData:
    """Batches a run reads: the training rows (shuffled per epoch), their batches (this process's
    shard), and unaugmented batches per evaluation split (``"train"``: one view of each item)."""

    spec: ArchSpec
    rows: torch.Tensor
    train: GraphBatches
    evals: dict[str, GraphBatches]
    description: str = ""


def _generators(transform: Callable) -> list[torch.Generator]:
    steps = getattr(transform, "transforms", [transform])
    return [g for t in steps if (g := getattr(t, "generator", None)) is not None]


def compile_layers(task: Task, announce: bool) -> bool:
    """``trainer.compile``: compile the task's encoder's layer stack; say so when it has none."""
    encoder = getattr(task, "encoder", None)
    done = bool(encoder is not None and encoder.compile_layers())
    if not done and announce:
        name = type(encoder or task).__name__
        print(f"nngraph: trainer.compile: {name} has no compiled layer stack; training eagerly")
    return done


def _identity(batch: Batch) -> Batch:
    return batch


@dataclass
class _State:
    step: int = 0
    epoch: int = 0
    batch: int = 0
    best: float | None = None
    best_step: int = -1
    time: float = 0.0
    last_eval: int = 0
    running: list[float] = field(default_factory=list)

    def saved(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "running"}


class Trainer:
    """Trains ``task`` on ``data`` into ``run_dir``: :meth:`resume` (optional), :meth:`fit`,
    :meth:`test`. ``config`` (a plain dict) is stored in checkpoints and sent to the logger."""

    def __init__(
        self,
        task: Task,
        data: TrainData,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        run_dir: str | Path,
        settings: TrainerSettings,
        *,
        augment: Callable[[Batch], Batch] | None = None,
        device: torch.device | str = "cpu",
        dist: DistInfo | None = None,
        config: dict[str, Any] | None = None,
        logger_options: dict[str, Any] | None = None,
    ) -> None:
        self.task, self.data, self.settings = task, data, settings
        self.optimizer, self.scheduler = optimizer, scheduler
        self.augment = augment or _identity
        self.run_dir, self.device = Path(run_dir), torch.device(device)
        self.dist = dist or DistInfo()
        self.config, self.logger_options = config or {}, logger_options
        self.wrapped = DistributedDataParallel(task) if self.dist.enabled else task
        if settings.compile:
            compile_layers(task, self.dist.is_main)
        self.use_amp = settings.amp and self.device.type == "cuda"
        self.state = _State()
        self.logger: MetricsLogger | None = None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = None
        if self.dist.is_main:  # one run per directory; then the leftovers of a killed write go
            self._lock = OutputLock(self.run_dir / ".lock", f"the run directory {self.run_dir}")
            clean_temp_files(self.run_dir)

    def close(self) -> None:
        """Release the run directory (also released when the process ends)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ---- checkpoints ------------------------------------------------------------------------
    def resume(self, where: str | Path) -> None:
        """Restore model, optimiser, scheduler, position and every random state from a run
        directory (its ``last.pt``) or a checkpoint file."""
        ckpt_path = resolve_checkpoint(str(where))
        ckpt = load_checkpoint(ckpt_path)
        self._check_resumable(ckpt, where, ckpt_path)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        for key, value in ckpt["state"].items():
            setattr(self.state, key, value)
        set_rng_state(ckpt["rng"][self.dist.rank], self.device)
        for g, s in zip(_generators(self.augment), ckpt["aug_rng"][self.dist.rank]):
            g.set_state(s)
        source = ckpt_path.parent
        if self.dist.is_main and source.resolve() != self.run_dir.resolve():
            for name in ("best.pt", "metrics.jsonl"):  # the run continues in the new directory
                if (source / name).exists():
                    shutil.copy2(source / name, self.run_dir / name)
        if self.dist.is_main:
            print(f"nngraph: resumed from {where} at step {self.state.step}")

    def _check_resumable(self, ckpt: dict, where: str | Path, ckpt_path: Path) -> None:
        spec = self.data.spec
        if ckpt["spec"] != spec.to_dict():
            raise ValueError(
                f"data/model mismatch: the checkpoint {where} was trained on "
                f"{ArchSpec.from_dict(ckpt['spec'])}, this data is {spec}"
            )
        if len(ckpt["rng"]) != self.dist.world:
            raise ValueError(
                f"the checkpoint was written by {len(ckpt['rng'])} process(es); resume it with "
                f"the same number (this run has {self.dist.world})"
            )
        saved, now = ckpt.get("data"), self._data_identity()
        changed = [f"{k}: {saved[k]} -> {now[k]}" for k in now if k in (saved or {})
                   and saved[k] != now[k]]  # fmt: skip
        if changed and not self.settings.resume_changes:
            raise ValueError(
                f"the checkpoint {ckpt_path} was trained on other data or batches "
                f"({'; '.join(changed)}); resume with the same settings, or allow it with "
                "trainer.resume_changes=true"
            )
        try:
            self.task.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise ValueError(
                f"the checkpoint {ckpt_path} does not fit this model config (resume with the "
                f"model settings it was trained with): {str(err).splitlines()[0]}"
            ) from None

    def _data_identity(self) -> dict[str, Any]:
        """What a resumed run must read the same: the store's content, the training rows, the
        batch size, and the target a regression predicts (its scaling is in the checkpoint)."""
        train = self.data.train
        identity = {"store_sha256": train.store.digest(), "train_rows": len(self.data.rows),
                    "batch_size": train.batch_size}  # fmt: skip
        target = getattr(self.task, "target", None)
        if isinstance(target, str):  # a regression task's target column
            identity["target"] = target
        return identity

    def _rank_states(self) -> tuple[list, list]:
        """Every process's RNG and augmentation-generator states (each rank draws its own)."""
        mine = (rng_state(self.device), [g.get_state().cpu() for g in _generators(self.augment)])
        if not self.dist.enabled:
            return [mine[0]], [mine[1]]
        gathered: list = [None] * self.dist.world
        torch.distributed.all_gather_object(gathered, (
            {k: v.cpu() for k, v in mine[0].items()}, mine[1]
        ))  # fmt: skip
        return [g[0] for g in gathered], [g[1] for g in gathered]

    def _checkpoint(self, rngs: tuple[list, list]) -> dict[str, Any]:
        return {
            "model": self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": self.state.saved(),
            "rng": rngs[0],
            "aug_rng": rngs[1],
            "spec": self.data.spec.to_dict(),
            "data": self._data_identity(),
            "config": self.config,
        }

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, split: str) -> Evaluation:
        """The task's evaluation of ``split`` (unaugmented)."""
        evals = self.data.evals
        return self.task.evaluate(EvalData(lambda s: evals[s].batches(), self.settings.seed), split)

    def _eval_and_save(self) -> None:
        """Validation metrics, best/last checkpoints and one metrics line (main process)."""
        state, dist, task = self.state, self.dist, self.task
        running = state.running
        train_loss = mean_across(sum(running) / max(len(running), 1), dist, self.device)
        running.clear()
        rngs = self._rank_states()
        state.last_eval = state.step
        if dist.is_main:
            metrics = self.evaluate("val").metrics
            record = {
                "step": state.step,
                "epoch": state.epoch + state.batch / max(len(self.data.train), 1),
                "train_loss": train_loss,
                **{f"val_{k}": v for k, v in metrics.items()},
                "lr": self.optimizer.param_groups[0]["lr"],
                "time": state.time,
            }
            if task.improved(metrics[task.primary], state.best):
                state.best, state.best_step = metrics[task.primary], state.step
                save_checkpoint(self.run_dir / "best.pt", self._checkpoint(rngs))
            save_checkpoint(self.run_dir / "last.pt", self._checkpoint(rngs))
            self.logger.log(record)  # after the checkpoint: a resumed run never repeats a line
        if dist.enabled:
            torch.distributed.barrier()

    # ---- training ---------------------------------------------------------------------------
    def _step(self, batch: Batch) -> float:
        """One optimisation step on the task's augmented views of ``batch``; its loss."""
        views = [self.augment(batch) for _ in range(self.task.views_per_step)]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
            loss, logs = self.wrapped(*views)
        if not math.isfinite(logs["loss"]):
            kept = self.run_dir / "last.pt"
            raise ValueError(
                f"the training loss is {logs['loss']} at step {self.state.step + 1}: check the "
                "data (NaN/Inf inputs) and lower trainer.lr; "
                + (f"the last good checkpoint is {kept}" if kept.exists() else "nothing was saved")
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), float(self.settings.clip_grad))
        self.optimizer.step()
        self.scheduler.step()
        return logs["loss"]

    def _should_stop(self) -> bool:
        s, state = self.settings, self.state
        max_seconds = float(s.max_minutes) * 60 if s.max_minutes else math.inf
        stop = state.time > max_seconds or bool(s.max_steps and state.step >= s.max_steps)
        if self.dist.enabled and max_seconds < math.inf:  # every process must stop at one step
            stop = mean_across(float(stop), self.dist, self.device) > 0
        return stop

    def _run_epoch(self, show: bool) -> bool:
        """The rest of the current epoch; True when a stop condition ended it early."""
        state, data, every = self.state, self.data, self.settings.eval_every or 0
        order = epoch_order(data.rows, self.settings.seed, state.epoch)
        steps = tqdm(data.train.batches(order, skip=state.batch), total=len(data.train),
                     initial=state.batch, desc=f"epoch {state.epoch + 1}", leave=False,
                     disable=not show)  # fmt: skip
        for batch in steps:
            start = time.perf_counter()
            loss = self._step(batch)
            state.step += 1
            state.batch += 1
            state.time += time.perf_counter() - start
            state.running.append(loss)
            steps.set_postfix(loss=f"{loss:.3f}")
            if every and state.step % every == 0:
                self._eval_and_save()
            if self._should_stop():
                return True
        return False

    def fit(self) -> None:
        """Epochs from where the state is, evaluating every epoch (or ``eval_every`` steps)."""
        state, s = self.state, self.settings
        show = s.progress and self.dist.is_main
        if self.dist.is_main and self.logger is None:
            old = self.run_dir / "metrics.jsonl"
            if state.step == 0 and old.exists():  # a new run here replaces the last one's files
                print(f"nngraph: starting a new run in {self.run_dir}: its previous "
                      "metrics.jsonl is replaced (pass trainer.resume to continue it)")  # fmt: skip
                old.unlink()
            self.logger = MetricsLogger(self.run_dir, self.config, self.logger_options)
        self.task.train()
        epoch_bar = tqdm(range(s.epochs), desc="epochs", initial=state.epoch, disable=not show)
        stopped = self._should_stop()  # a run resumed after its last step takes no more
        while state.epoch < s.epochs and not stopped:
            stopped = self._run_epoch(show)
            if not stopped:
                state.epoch += 1
                state.batch = 0
                epoch_bar.update(1)
            if (not s.eval_every or stopped) and state.step != state.last_eval:
                self._eval_and_save()  # (a stop right after an eval_every evaluation: logged once)
        if state.step != state.last_eval:  # steps since the last evaluation (eval_every)
            self._eval_and_save()
        epoch_bar.close()

    # ---- test -------------------------------------------------------------------------------
    def test(self, describe: dict[str, Any] | None = None) -> dict[str, Any]:
        """The best checkpoint on the test split: ``test_outputs.pt``, ``summary.json`` (starting
        with ``describe``), a printed table. Main process only."""
        task, state = self.task, self.state
        best = load_checkpoint(self.run_dir / "best.pt")
        task.load_state_dict(best["model"])
        test = self.evaluate("test")
        atomic_torch_save(test.outputs, self.run_dir / "test_outputs.pt")
        summary = {
            **(describe or {}),
            "params": sum(p.numel() for p in task.parameters()),
            "steps": state.step,
            "best_step": best["state"]["best_step"],
            f"val_{task.primary}": best["state"]["best"],
            **{f"test_{k}": v for k, v in test.metrics.items()},
            "train_minutes": state.time / 60,
            "device": str(self.device) + (f" x{self.dist.world}" if self.dist.enabled else ""),
        }
        text = json.dumps(json_safe(summary), indent=2, allow_nan=False) + "\n"
        atomic_write_text(text, self.run_dir / "summary.json")
        if self.logger is None:
            self.logger = MetricsLogger(self.run_dir, self.config, self.logger_options)
        self.logger.finish(summary)
        print(summary_table(summary))
        return summary
