"""One training run, any task: data, normalisation, augmentation, model, AdamW with warmup, the
loop with evaluation, checkpoints and resume, then the best checkpoint on the test split.

``run(cfg, run_dir)`` takes the composed Hydra config (see ``nngraph/configs``); inner pieces take
plain arguments, so each is usable from a notebook on its own.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from nngraph.align.template import AlignmentCache, align_to_template, fingerprint
from nngraph.augment import build_augmentation
from nngraph.data.build import build_store, default_store_path
from nngraph.data.loader import GraphBatches, epoch_order
from nngraph.data.normalize import LayerStats, layer_stats, normalize_graph
from nngraph.data.sources import load_source
from nngraph.data.store import INRStore, load_store
from nngraph.graph.spec import ArchSpec
from nngraph.io import atomic_torch_save, load_torch_file
from nngraph.models import MODELS, build_model, check_compatible
from nngraph.tasks import ClassificationTask, SimCLRTask, linear_probe
from nngraph.train.allocator import keep_freed_memory
from nngraph.train.checkpoint import (
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from nngraph.train.distributed import (
    DistInfo,
    mean_across,
    setup_distributed,
    teardown_distributed,
)
from nngraph.train.logging import MetricsLogger, summary_table

__all__ = ["open_store", "pick_device", "run"]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"trainer.device={name} but no CUDA device is visible; use auto or cpu")
    return torch.device(name)


def open_store(cfg: DictConfig, info: DistInfo, progress: bool = True) -> tuple[INRStore, Path]:
    """The configured INR store; the default one (``data.path`` unset) is fitted on first use and
    cached under ``data_dir`` (one process fits, the others wait)."""
    from nngraph.fit import source_options

    views = int(cfg.data.n_views)
    if views < 1:
        raise ValueError(f"data.n_views must be at least 1, got {views}")
    if cfg.data.get("path"):
        return load_store(cfg.data.path), Path(cfg.data.path)
    path = default_store_path(cfg.data_dir, cfg.data.name, views)
    if info.is_main:  # fits on first use; an existing store made with other settings is an error
        if not path.exists():
            print(
                f"nngraph: fitting the {cfg.data.name} INR store once ({views} view(s)) -> {path}"
            )
        spec = ArchSpec.from_dict(OmegaConf.to_container(cfg.data.arch, resolve=True))
        fit = cfg.fit
        build_store(
            load_source(cfg.data.name, **source_options(cfg.data)), spec, path, views=views,
            steps=int(fit.steps), lr=float(fit.lr), target_psnr=fit.target_psnr,
            batch_size=None if fit.batch_size is None else int(fit.batch_size),
            chunk_size=int(fit.chunk_size), seed=int(fit.seed), device=fit.device,
            val_fraction=float(cfg.data.val_fraction), split_seed=int(cfg.data.split_seed),
            progress=progress, init=str(fit.get("init", "dwsnets")), overwrite=bool(fit.overwrite),
        )  # fmt: skip
    if info.enabled:
        torch.distributed.barrier()
    return load_store(path), path


def _cached(path: Path, key: dict, make, info: DistInfo):
    """``make()``'s tensors cached at ``path`` under ``key`` (recomputed when the key differs)."""
    if path.exists():
        payload = load_torch_file(path, what="cache")
        if isinstance(payload, dict) and payload.get("key") == key:
            return payload["value"]
    value = make()
    if info.is_main:
        try:
            atomic_torch_save({"key": key, "value": value}, path)
        except OSError as err:  # a read-only data folder: recompute next time
            print(f"nngraph: cannot cache {path.name} beside the store ({err}); continuing")
    return value


def _alignment(store: INRStore, path: Path, signed: bool, info: DistInfo) -> AlignmentCache:
    cache_path = path.with_name(path.stem + (".align_signed.pt" if signed else ".align.pt"))
    if cache_path.exists():
        cache = AlignmentCache.load(cache_path)
        if cache.fingerprint == fingerprint(store.params, store.spec):
            return cache
    if info.is_main:
        print(f"nngraph: aligning the store to a template once -> {cache_path}")
    cache = align_to_template(store.params, store.spec, signed=signed, progress=info.is_main)
    if info.is_main:
        try:
            cache.save(cache_path)
        except OSError as err:
            print(f"nngraph: cannot cache {cache_path.name} beside the store ({err}); continuing")
    return cache


def _generators(transform) -> list[torch.Generator]:
    steps = getattr(transform, "transforms", [transform])
    return [g for t in steps if (g := getattr(t, "generator", None)) is not None]


def _warmup(steps: int):
    return lambda step: min(1.0, (step + 1) / steps) if steps > 0 else 1.0


def run(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train and evaluate as ``cfg`` says, writing everything of the run under ``run_dir``.
    Returns the summary (test metrics of the best-validation checkpoint)."""
    run_dir = Path(run_dir)
    tr, task_cfg = cfg.trainer, cfg.task
    device = pick_device(str(tr.device))
    info = setup_distributed(device.type)
    try:
        return _run(cfg, run_dir, tr, task_cfg, device, info)
    finally:
        teardown_distributed()


def _run(cfg, run_dir, tr, task_cfg, device, info) -> dict[str, Any]:
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    if device.type == "cpu":
        keep_freed_memory()
    show = bool(tr.progress) and info.is_main
    torch.manual_seed(int(cfg.seed))
    run_dir.mkdir(parents=True, exist_ok=True)
    if info.is_main:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    data = _open_data(cfg, device, info, show)
    augment, task = _build_task(cfg, data, device, info)
    optimizer, scheduler = _build_optimizer(cfg, task, len(data.train))
    if tr.amp and device.type != "cuda" and info.is_main:
        print("nngraph: trainer.amp needs a GPU; training in float32")
    session = _Session(cfg, run_dir, device, info, data, augment, task, optimizer, scheduler)
    if tr.resume:
        session.resume(tr.resume)
    if info.is_main:
        session.logger = MetricsLogger(
            run_dir, OmegaConf.to_container(cfg, resolve=True), dict(cfg.logger)
        )
    session.train(int(tr.epochs), show)
    return session.test() if info.is_main else {}


@dataclass
class _Data:
    """The store and what a run reads from it: rows per split, batch iterators, layer stats."""

    store: INRStore
    path: Path
    views: int
    rows: dict[str, torch.Tensor]
    train: GraphBatches
    evals: dict[str, GraphBatches]
    probe_train: GraphBatches
    stats: LayerStats | None


def _open_data(cfg: DictConfig, device: torch.device, info: DistInfo, show: bool) -> _Data:
    """The store (fitted on first use), checked against the model config, split into batches."""
    tr = cfg.trainer
    store, store_path = open_store(cfg, info, progress=show)
    spec = store.spec
    want = cfg.model.get("arch")
    if want:
        model_spec = ArchSpec.from_dict(OmegaConf.to_container(want, resolve=True))
        try:
            flexible = MODELS[cfg.model.name].any_hidden_width if cfg.model.name in MODELS else True
            check_compatible(model_spec, spec, any_hidden_width=flexible)
        except ValueError as err:
            raise ValueError(f"data/model mismatch: data={cfg.data.name}: {err}") from None
    views = int(cfg.data.n_views)
    if int(store.view.max()) + 1 < views:
        raise ValueError(f"data.n_views={views} but {store_path} holds fewer views per item")
    rows = {
        "train": store.indices("train", views=views),
        "val": store.indices("val", views=1),
        "test": store.indices("test", views=1),
    }
    bs = int(tr.batch_size)
    train = GraphBatches(store, rows["train"], bs, device=device, shard=(info.rank, info.world))
    evals = {s: GraphBatches(store, rows[s], bs, device=device) for s in ("val", "test")}
    probe_train = GraphBatches(store, store.indices("train", views=1), bs, device=device)
    stats = None
    if tr.normalize:
        key = {"views": views, "data": fingerprint(store.params, spec)}
        stats_path = store_path.with_name(f"{store_path.stem}.stats_v{views}.pt")
        made = _cached(
            stats_path, key, lambda: layer_stats(store.params[rows["train"]], spec).to_dict(), info
        )
        stats = LayerStats.from_dict(made)
    return _Data(store, store_path, views, rows, train, evals, probe_train, stats)


def _build_task(cfg: DictConfig, data: _Data, device: torch.device, info: DistInfo) -> tuple:
    """``(augment, task)``: the configured augmentation and the task around the encoder, on
    ``device`` (batch norm synchronised across GPUs under DDP)."""
    task_cfg, store = cfg.task, data.store
    aug_cfg = OmegaConf.to_container(cfg.aug, resolve=True) if cfg.get("aug") else None
    context: dict[str, Any] = {"num_classes": store.num_classes, "seed": int(cfg.seed) + info.rank}
    if task_cfg.name == "simclr":
        context["min_lam"] = float(task_cfg.mixup_min_lam)
    if isinstance(aug_cfg, dict) and "mixup_align" in aug_cfg:
        signed = bool((aug_cfg["mixup_align"] or {}).get("signs", False))
        context["cache"] = _alignment(store, data.path, signed, info)
    augment = build_augmentation(aug_cfg, **context)
    encoder = build_model(
        cfg.model.name, store.spec, **OmegaConf.to_container(cfg.model.kwargs, resolve=True)
    )
    if task_cfg.name == "classification":
        task = ClassificationTask(
            encoder, store.num_classes, tuple(task_cfg.head_hidden), task_cfg.label_smoothing
        )
    elif task_cfg.name == "simclr":
        task = SimCLRTask(
            encoder, int(task_cfg.proj_dim), tuple(task_cfg.proj_hidden), task_cfg.temperature
        )
    else:
        raise ValueError(f"unknown task {task_cfg.name!r}; available: classification, simclr")
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in task.modules())
    if info.enabled and has_bn and device.type == "cuda":  # one set of batch statistics
        task = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task)
    elif info.enabled and has_bn and info.is_main:
        print(
            "nngraph: batch norm under DDP on CPU uses each process's share of the batch for its "
            "statistics (SyncBatchNorm needs GPUs); model.kwargs.norm=false avoids it"
        )
    return augment, task.to(device)


def _build_optimizer(cfg: DictConfig, task: torch.nn.Module, batches_per_epoch: int) -> tuple:
    """AdamW (the trainer's lr / weight decay, else the model's) with linear warmup."""
    tr, optim = cfg.trainer, cfg.model.optim
    lr = float(tr.lr if tr.lr is not None else optim.lr)
    wd = float(tr.weight_decay if tr.weight_decay is not None else optim.weight_decay)
    optimizer = torch.optim.AdamW(task.parameters(), lr=lr, weight_decay=wd)
    epochs = int(tr.epochs)
    if epochs < 1:
        raise ValueError(f"trainer.epochs must be at least 1, got {epochs}")
    warm = tr.warmup_steps
    if warm is None:  # the model's warmup, but never more than a tenth of the run
        warm = min(int(optim.warmup_steps), max(1, epochs * batches_per_epoch // 10))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup(int(warm)))


class _Session:
    """One run's mutable state and the steps that change it: resume, train (with evaluation and
    checkpoints), test the best checkpoint."""

    def __init__(self, cfg, run_dir, device, info, data, augment, task, optimizer, scheduler):
        self.cfg, self.tr, self.run_dir, self.device, self.info = (
            cfg,
            cfg.trainer,
            run_dir,
            device,
            info,
        )
        self.data, self.augment, self.task = data, augment, task
        self.optimizer, self.scheduler = optimizer, scheduler
        self.wrapped = DistributedDataParallel(task) if info.enabled else task
        self.use_amp = bool(self.tr.amp) and device.type == "cuda"
        self.state = {"step": 0, "epoch": 0, "batch": 0, "best": -math.inf, "best_step": -1,
                      "time": 0.0, "last_eval": 0}  # fmt: skip
        self.running: list[float] = []
        self.logger: MetricsLogger | None = None

    def resume(self, where: str) -> None:
        """Restore model, optimiser, scheduler, position and every random state."""
        spec, info = self.data.store.spec, self.info
        ckpt_path = resolve_checkpoint(where)
        ckpt = load_checkpoint(ckpt_path)
        if ckpt["spec"] != spec.to_dict():
            raise ValueError(
                f"data/model mismatch: the checkpoint {where} was trained on "
                f"{ArchSpec.from_dict(ckpt['spec'])}, this data is {spec}"
            )
        if len(ckpt["rng"]) != info.world:
            raise ValueError(
                f"the checkpoint was written by {len(ckpt['rng'])} process(es); resume it with "
                f"the same number (this run has {info.world})"
            )
        try:
            self.task.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise ValueError(
                f"the checkpoint {ckpt_path} does not fit this model config (resume with the "
                f"model settings it was trained with): {str(err).splitlines()[0]}"
            ) from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.state.update(ckpt["state"])
        set_rng_state(ckpt["rng"][info.rank], self.device)
        for g, s in zip(_generators(self.augment), ckpt["aug_rng"][info.rank]):
            g.set_state(s)
        source = ckpt_path.parent
        if info.is_main and source.resolve() != self.run_dir.resolve():
            for name in ("best.pt", "metrics.jsonl"):  # the run continues in the new directory
                if (source / name).exists():
                    shutil.copy2(source / name, self.run_dir / name)
        if info.is_main:
            print(f"nngraph: resumed from {where} at step {self.state['step']}")

    def rank_states(self) -> tuple[list, list]:
        """Every process's RNG and augmentation-generator states (each rank draws its own)."""
        info = self.info
        mine = (rng_state(self.device), [g.get_state().cpu() for g in _generators(self.augment)])
        if not info.enabled:
            return [mine[0]], [mine[1]]
        gathered: list = [None] * info.world
        torch.distributed.all_gather_object(gathered, (
            {k: v.cpu() for k, v in mine[0].items()}, mine[1]
        ))  # fmt: skip
        return [g[0] for g in gathered], [g[1] for g in gathered]

    def checkpoint_state(self, rngs: tuple[list, list]) -> dict[str, Any]:
        return {
            "model": self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": dict(self.state),
            "rng": rngs[0],
            "aug_rng": rngs[1],
            "spec": self.data.store.spec.to_dict(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }

    def prepared(self, batches):
        stats = self.data.stats
        for g in batches:
            yield normalize_graph(g, stats) if stats is not None else g

    def evaluate(self, split: str) -> dict[str, Any]:
        task, data = self.task, self.data
        if isinstance(task, ClassificationTask):
            return task.evaluate(self.prepared(data.evals[split].batches()))
        tx, ty = task.embed(self.prepared(data.probe_train.batches()))
        ex, ey = task.embed(self.prepared(data.evals[split].batches()))
        out = linear_probe(tx, ty, ex, ey, seed=int(self.cfg.seed))
        return {**out, "embedding": ex}

    def eval_and_save(self) -> None:
        """Validation metrics, best/last checkpoints and one metrics line (main process)."""
        info, state, running = self.info, self.state, self.running
        train_loss = mean_across(sum(running) / max(len(running), 1), info, self.device)
        running.clear()
        rngs = self.rank_states()
        state["last_eval"] = state["step"]
        if info.is_main:
            metrics = self.evaluate("val")
            record = {
                "step": state["step"],
                "epoch": state["epoch"] + state["batch"] / max(len(self.data.train), 1),
                "train_loss": train_loss,
                "val_acc": metrics["acc"],
                "lr": self.optimizer.param_groups[0]["lr"],
                "time": state["time"],
            }
            if "loss" in metrics:
                record["val_loss"] = metrics["loss"]
            if metrics["acc"] > state["best"]:
                state["best"], state["best_step"] = metrics["acc"], state["step"]
                save_checkpoint(self.run_dir / "best.pt", self.checkpoint_state(rngs))
            save_checkpoint(self.run_dir / "last.pt", self.checkpoint_state(rngs))
            self.logger.log(record)  # after the checkpoint: a resumed run never repeats a line
        if info.enabled:
            torch.distributed.barrier()

    def step(self, batch) -> float:
        """One optimisation step on ``batch`` (augmented, normalised); its loss."""
        pair = 1 if isinstance(self.task, ClassificationTask) else 2  # SimCLR: two views
        inputs = [self.augment(batch) for _ in range(pair)]
        if self.data.stats is not None:
            inputs = [normalize_graph(v, self.data.stats) for v in inputs]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.use_amp):
            loss, logs = self.wrapped(*inputs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.tr.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.task.parameters(), float(self.tr.clip_grad))
        self.optimizer.step()
        self.scheduler.step()
        return logs["loss"]

    def should_stop(self, max_seconds: float, max_steps: int) -> bool:
        state = self.state
        stop = state["time"] > max_seconds or bool(max_steps and state["step"] >= max_steps)
        if self.info.enabled and max_seconds < math.inf:  # every process must stop at one step
            stop = mean_across(float(stop), self.info, self.device) > 0
        return stop

    def train(self, epochs: int, show: bool) -> None:
        """Epochs from where the state is, evaluating every epoch (or ``eval_every`` steps)."""
        tr, state, data = self.tr, self.state, self.data
        eval_every = int(tr.eval_every) if tr.eval_every else 0
        max_seconds = float(tr.max_minutes) * 60 if tr.max_minutes else math.inf
        max_steps = int(tr.get("max_steps") or 0)
        self.task.train()
        epoch_bar = tqdm(range(epochs), desc="epochs", initial=state["epoch"], disable=not show)
        stopped = False
        while state["epoch"] < epochs and not stopped:
            order = epoch_order(data.rows["train"], int(self.cfg.seed), state["epoch"])
            steps = tqdm(data.train.batches(order, skip=state["batch"]), total=len(data.train),
                         initial=state["batch"], desc=f"epoch {state['epoch'] + 1}",
                         leave=False, disable=not show)  # fmt: skip
            for batch in steps:
                start = time.perf_counter()
                loss = self.step(batch)
                state["step"] += 1
                state["batch"] += 1
                state["time"] += time.perf_counter() - start
                self.running.append(loss)
                steps.set_postfix(loss=f"{loss:.3f}")
                if eval_every and state["step"] % eval_every == 0:
                    self.eval_and_save()
                if self.should_stop(max_seconds, max_steps):
                    stopped = True
                    break
            if not stopped:
                state["epoch"] += 1
                state["batch"] = 0
                epoch_bar.update(1)
            if (not eval_every or stopped) and state["step"] != state["last_eval"]:
                self.eval_and_save()  # (a stop right after an eval_every evaluation: logged once)
        if state["step"] != state["last_eval"]:  # steps since the last evaluation (eval_every)
            self.eval_and_save()
        epoch_bar.close()

    def test(self) -> dict[str, Any]:
        """The best checkpoint on the test split: outputs, ``summary.json``, a printed table."""
        cfg, data, run_dir, task = self.cfg, self.data, self.run_dir, self.task
        best = load_checkpoint(run_dir / "best.pt")
        task.load_state_dict(best["model"])
        test = self.evaluate("test")
        atomic_torch_save(
            {"pred": test["pred"], "target": test["target"], "embedding": test["embedding"],
             "class_names": list(data.store.meta.get("class_names") or [])},
            run_dir / "test_outputs.pt",
        )  # fmt: skip
        aug_cfg = OmegaConf.to_container(cfg.aug, resolve=True) if cfg.get("aug") else None
        summary = {
            "task": cfg.task.name,
            "model": cfg.model.name,
            "aug": ",".join(aug_cfg) if isinstance(aug_cfg, dict) else "none",
            "data": f"{cfg.data.name} ({data.views} view(s), {len(data.rows['train'])} train INRs)",
            "params": sum(p.numel() for p in task.parameters()),
            "steps": self.state["step"],
            "best_step": best["state"]["best_step"],
            "val_acc": best["state"]["best"],
            "test_acc": test["acc"],
            "train_minutes": self.state["time"] / 60,
            "device": str(self.device) + (f" x{self.info.world}" if self.info.enabled else ""),
        }
        if "loss" in test:
            summary["test_loss"] = test["loss"]
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.logger.finish(summary)
        print(summary_table(summary))
        return summary
