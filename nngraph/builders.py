"""Config -> objects: the one place that reads the Hydra config (``configs/``) and builds what the
library takes as plain arguments: the INR store, the batches, the task around its encoder, the
augmentation, the optimiser, the trainer settings. Commands (``train.py``, ``nngraph-train``,
``nngraph-fit``) call these; nothing below them sees a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from torch_geometric.transforms import BaseTransform

from nngraph.align.template import cached_alignment
from nngraph.augment import build_augmentation
from nngraph.data.build import build_store, default_store_path
from nngraph.data.loader import GraphBatches
from nngraph.data.normalize import cached_layer_stats
from nngraph.data.shapes import SHAPE_SOURCES, ShapeSource, load_shape_source
from nngraph.data.sources import SOURCES, ImageSource, load_source
from nngraph.data.store import INRStore, load_store
from nngraph.device import pick_device
from nngraph.graph.spec import ArchSpec
from nngraph.models import MODELS, build_model, check_compatible
from nngraph.tasks import Task, task_class
from nngraph.tasks.regression import store_target
from nngraph.train.distributed import DistInfo
from nngraph.train.trainer import TrainData, TrainerSettings
from nngraph.zoo.build import build_zoo, default_zoo_path

__all__ = [
    "build_augment",
    "build_data",
    "build_optimizer",
    "build_source",
    "build_task",
    "build_zoo_store",
    "check_settings",
    "fit_options",
    "open_store",
    "plain",
    "trainer_settings",
    "zoo_spec",
]


def plain(node: Any) -> Any:
    """A config node as plain Python values (dicts, lists), interpolations resolved."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def _positive(v: Any) -> bool:
    return v > 0


def _at_least(low: float):
    return lambda v: v >= low


def _fraction(v: Any) -> bool:
    return 0 <= v < 1


#: (config key, test, what is allowed): checked before any work; None passes where allowed
_RULES: list[tuple[str, Any, str, bool]] = [
    ("data.views", _at_least(1), "an integer >= 1", False),
    ("fit.views", _at_least(1), "an integer >= 1 or null (data.views)", True),
    ("data.val_fraction", _fraction, "a fraction in [0, 1)", False),
    ("trainer.epochs", _at_least(1), "an integer >= 1", False),
    ("trainer.batch_size", _at_least(1), "an integer >= 1", False),
    ("trainer.lr", _positive, "a positive number or null (the model's)", True),
    ("trainer.weight_decay", _at_least(0), "a number >= 0 or null (the model's)", True),
    ("trainer.warmup_steps", _at_least(0), "an integer >= 0 or null", True),
    ("trainer.clip_grad", _positive, "a positive max norm or null (no clipping)", True),
    ("trainer.eval_every", _at_least(1), "an integer >= 1 or null (every epoch)", True),
    ("trainer.max_steps", _at_least(1), "an integer >= 1 or null (no limit)", True),
    ("trainer.max_minutes", _positive, "a positive number or null (no limit)", True),
    ("task.label_smoothing", _fraction, "a fraction in [0, 1)", False),
    ("task.temperature", _positive, "a positive number", False),
    ("task.mixup_min_lam", lambda v: 0 <= v <= 1, "a number in [0, 1]", False),
    ("fit.steps", _at_least(0), "an integer >= 0 or null (the data's fit_steps)", True),
    ("fit.lr", _positive, "a positive number or null (the data's fit_lr)", True),
    ("fit.target_sign", lambda v: 0 < v <= 1, "a fraction in (0, 1] or null (never early)", True),
    ("fit.sign_band", _at_least(0), "a distance >= 0", False),
    ("data.points", _at_least(16), "an integer >= 16", False),
    ("data.points_per_step", _at_least(1), "an integer >= 1 or null (all points)", True),
    ("fit.target_psnr", _positive, "a positive PSNR in dB or null (never stop early)", True),
    ("fit.batch_size", _at_least(1), "an integer >= 1 or null (automatic)", True),
    ("fit.chunk_size", _at_least(1), "an integer >= 1", False),
    ("fit.subset", _at_least(1), "an integer >= 1 or null (everything)", True),
    ("zoo.runs", _at_least(1), "an integer >= 1", False),
    ("zoo.batch_size", _at_least(1), "an integer >= 1", False),
    ("zoo.kernel_size", _at_least(1), "an integer >= 1", False),
    ("zoo.chunk_runs", _at_least(1), "an integer >= 1", False),
    ("zoo.seed", _at_least(0), "an integer >= 0", False),
    ("zoo.split_seed", _at_least(0), "an integer >= 0", False),
    ("zoo.test_fraction", lambda v: 0 < v < 1, "a fraction in (0, 1)", False),
    ("zoo.val_fraction", _fraction, "a fraction in [0, 1)", False),
]


_SWITCHES = ("trainer.amp", "trainer.compile", "trainer.progress", "trainer.normalize",
             "trainer.resume_changes", "fit.overwrite", "zoo.progress",
             "zoo.overwrite")  # fmt: skip


def check_settings(cfg: DictConfig) -> None:
    """Every numeric setting the config has, checked against its allowed range before any work
    or write: one ``ValueError`` naming the key, the value and what is allowed."""
    for key, ok, allowed, nullable in _RULES:
        node = OmegaConf.select(cfg, key, default="__absent__")
        if node == "__absent__" or (node is None and nullable):
            continue
        try:
            good = node is not None and not isinstance(node, bool) and ok(float(node))
            good = good and (not allowed.startswith("an integer") or float(node).is_integer())
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ValueError(f"{key}={node} is not allowed: it must be {allowed}")
    for key in _SWITCHES:  # true / false only: bool("maybe") would silently mean true
        node = OmegaConf.select(cfg, key, default=None)
        if node is not None and not isinstance(node, bool):
            raise ValueError(f"{key}={node} is not allowed: it must be true or false")
    for key in ("trainer.device", "fit.device", "zoo.device"):
        if OmegaConf.select(cfg, key) is not None:
            pick_device(str(OmegaConf.select(cfg, key)), setting=key)


def data_spec(cfg: DictConfig) -> ArchSpec:
    """The INR architecture of the ``data`` config."""
    return ArchSpec.from_dict(plain(cfg.data.arch))


def build_source(cfg: DictConfig) -> ImageSource | ShapeSource:
    """The image source of the ``data`` config (everything but its name, arch, views, splits and
    path are the loader's options)."""
    data = cfg.data
    try:
        options = OmegaConf.to_container(data, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise ValueError(
            f"data={data.name} needs a value for {err.full_key}: pass it on the command line, "
            f"e.g. data={data.name} {err.full_key}=/path/to/images"
        ) from None
    skip = {"name", "arch", "val_fraction", "split_seed", "views", "path", "points",
            "points_per_step", "fit_steps", "fit_lr"}  # fmt: skip
    options = {k: v for k, v in options.items() if k not in skip}
    if is_shape_source(data.name):
        return load_shape_source(data.name, **options)
    return load_source(data.name, **options)


def is_shape_source(name: str) -> bool:
    """Whether ``data=<name>`` is a 3-D shape source (fitted as signed distances)."""
    import nngraph.data.meshes  # noqa: F401  (registers the mesh sources)

    return name in SHAPE_SOURCES


def fit_options(cfg: DictConfig) -> dict[str, Any]:
    """``build_store`` keyword arguments from the ``fit`` and ``data`` configs (the one conversion
    of the fit settings, for ``nngraph-fit`` and for a store fitted on first use)."""
    fit, data = cfg.fit, cfg.data
    steps = fit.steps if fit.steps is not None else data.get("fit_steps", 1000)
    lr = fit.lr if fit.lr is not None else data.get("fit_lr", 5e-4)
    target_sign = fit.get("target_sign", 0.98)
    views = fit.get("views") if fit.get("views") is not None else data.views
    per_step = data.get("points_per_step")
    return {
        "views": int(views),
        "steps": int(steps),
        "lr": float(lr),
        "target_psnr": None if fit.target_psnr is None else float(fit.target_psnr),
        "points": int(data.get("points", 2048)),
        "points_per_step": None if per_step is None else int(per_step),
        "target_sign": None if target_sign is None else float(target_sign),
        "sign_band": float(fit.get("sign_band", 0.01)),
        "batch_size": None if fit.batch_size is None else int(fit.batch_size),
        "chunk_size": int(fit.chunk_size),
        "seed": int(fit.seed),
        "device": str(fit.device),
        "init": str(fit.init),
        "val_fraction": float(data.val_fraction),
        "split_seed": int(data.split_seed),
        "overwrite": bool(fit.overwrite),
    }


def open_store(cfg: DictConfig, *, is_main: bool = True, progress: bool = True) -> tuple:
    """``(store, path)``: ``data.path`` when set, else the default store of ``data``, fitted on
    first use under ``data_dir`` (only by the main process; a store fitted with other settings is
    an error, never silently reused)."""
    views = int(cfg.data.views)
    if views < 1:
        raise ValueError(f"data.views must be at least 1, got {views}")
    if cfg.data.get("path"):
        store = load_store(cfg.data.path)
        if cfg.data.name == "zoo" and store.meta.get("kind") != "cnn_zoo":
            raise ValueError(f"data=zoo data.path={cfg.data.path} is not a CNN zoo (an INR "
                             "store?); pass a store made by `python -m nngraph.zoo`")  # fmt: skip
        return store, Path(cfg.data.path)
    if cfg.data.name == "zoo":
        return _open_zoo(cfg, is_main, progress)
    path = default_store_path(cfg.data_dir, cfg.data.name, views)
    if is_main:
        if not path.exists():
            print(f"nngraph: fitting the {cfg.data.name} INR store ({views} view(s)) once: {path}")
        build_store(build_source(cfg), data_spec(cfg), path, progress=progress, **fit_options(cfg))
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # the others wait for the main process's fit
    return load_store(path), path


def _open_zoo(cfg: DictConfig, is_main: bool, progress: bool) -> tuple:
    """The default zoo of ``data.source``, trained on first use (by the main process only)."""
    name = str(cfg.data.source)
    path = default_zoo_path(cfg.data_dir, name)
    if is_main:  # the source's files where `python -m nngraph.zoo data=<source>` looks for them
        source = load_source(name, root=str(Path(cfg.data_dir) / name))
        if not path.exists():
            print(f"nngraph: training the {name} CNN zoo once: {path}")
        _build_zoo(cfg, source, path, progress)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return load_store(path), path


def _check_model_fits(cfg: DictConfig, spec: ArchSpec) -> None:
    want = cfg.model.get("arch")
    if not want:
        return
    flexible = MODELS[cfg.model.name].any_hidden_width if cfg.model.name in MODELS else True
    try:
        check_compatible(ArchSpec.from_dict(plain(want)), spec, any_hidden_width=flexible)
    except ValueError as err:
        raise ValueError(f"data/model mismatch: data={cfg.data.name}: {err}") from None


def build_data(
    cfg: DictConfig, store: INRStore, store_path: Path, device: torch.device, dist: DistInfo
) -> TrainData:
    """The store's splits as batches: training rows with ``data.views`` views per item (this
    process's shard of each batch), one view per item for evaluation."""
    _check_model_fits(cfg, store.spec)
    views = int(cfg.data.views)
    if int(store.view.max()) + 1 < views:
        raise ValueError(f"data.views={views} but {store_path} holds fewer views per item")
    rows = store.indices("train", views=views)
    bs = int(cfg.trainer.batch_size)
    target = cfg.task.get("target") if cfg.task.name == "regression" else None
    y = store_target(store, str(target)) if target else None
    if len(rows) == 0:
        raise ValueError(f"{store_path} has no train rows with data.views={views}")
    train = GraphBatches(store, rows, bs, device=device, shard=(dist.rank, dist.world), targets=y)
    # a zoo is scored on every checkpoint of each run whatever data.views trains on, so test
    # figures from different data.views are on one test set; an INR store on view 0
    eval_views = int(store.view.max()) + 1 if store.meta.get("kind") == "cnn_zoo" else 1
    evals = {s: store.indices(s, views=eval_views) for s in ("train", "val", "test")}
    kind = "CNNs" if store.spec.family == "cnn" else "INRs"
    for split, split_rows in evals.items():
        if len(split_rows) == 0:
            raise ValueError(
                f"{store_path} has no {split} {kind}: its splits were fixed when it was made "
                "(zoo.test_fraction / zoo.val_fraction, data.val_fraction); re-create it with "
                "more items or larger fractions"
            )
    evals = {s: GraphBatches(store, r, bs, device=device, targets=y) for s, r in evals.items()}
    description = f"{cfg.data.name} ({views} view(s), {len(rows)} train {kind})"
    return TrainData(store.spec, rows, train, evals, description)


def build_task(
    cfg: DictConfig, store: INRStore, store_path: Path, rows: torch.Tensor, *, write: bool = True
) -> Task:
    """The configured task around the configured encoder (with the training split's per-layer
    input statistics when ``trainer.normalize``)."""
    encoder = build_model(cfg.model.name, store.spec, **plain(cfg.model.kwargs))
    if cfg.trainer.normalize:
        views = int(cfg.data.views)
        encoder.set_input_stats(cached_layer_stats(store, store_path, rows, views, write=write))
    if store.meta.get("kind") == "cnn_zoo" and cfg.task.name != "regression":
        raise ValueError(
            f"data={cfg.data.name} is a CNN zoo: task={cfg.task.name} is not available for it "
            "(its networks have float targets, no classes); use task=regression "
            "(task.target=test_accuracy, ...)"
        )
    options = {k: v for k, v in plain(cfg.task).items() if k != "name"}
    if cfg.task.name == "regression":  # standardise on exactly the rows it trains on
        options["train_rows"] = rows
    try:
        return task_class(str(cfg.task.name)).from_store(encoder, store, **options)
    except TypeError as err:
        raise ValueError(f"bad settings for task {cfg.task.name!r}: {err}") from None


def build_augment(
    cfg: DictConfig, task: Task, store: INRStore, store_path: Path, dist: DistInfo
) -> BaseTransform:
    """The configured augmentation; an aligned MixUp gets the store's cached alignment (signed or
    not, as it asks) without the caller naming it."""

    def alignment(signed: bool):
        return cached_alignment(
            store, store_path, signed=signed, write=dist.is_main, progress=dist.is_main
        )

    context = {"num_classes": store.num_classes, "seed": int(cfg.seed) + dist.rank,
               "alignment": alignment, **task.augment_options()}  # fmt: skip
    return build_augmentation(plain(cfg.get("aug")), **context)


def build_optimizer(cfg: DictConfig, task: Task, batches_per_epoch: int) -> tuple:
    """``(AdamW, warmup scheduler)``: the trainer's lr / weight decay, else the model's; linear
    warmup over ``trainer.warmup_steps``, else the model's, at most a tenth of the run."""
    tr, optim = cfg.trainer, cfg.model.optim
    lr = float(tr.lr if tr.lr is not None else optim.lr)
    wd = float(tr.weight_decay if tr.weight_decay is not None else optim.weight_decay)
    optimizer = torch.optim.AdamW(task.parameters(), lr=lr, weight_decay=wd)
    epochs = int(tr.epochs)
    if epochs < 1:
        raise ValueError(f"trainer.epochs must be at least 1, got {epochs}")
    warm = tr.warmup_steps
    if warm is None:
        warm = min(int(optim.warmup_steps), max(1, epochs * batches_per_epoch // 10))
    warm = int(warm)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warm) if warm > 0 else 1.0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trainer_settings(cfg: DictConfig) -> TrainerSettings:
    """The ``trainer`` config's loop settings as a :class:`TrainerSettings`."""
    tr = cfg.trainer
    return TrainerSettings(
        epochs=int(tr.epochs),
        max_steps=int(tr.max_steps) if tr.get("max_steps") else None,
        max_minutes=float(tr.max_minutes) if tr.max_minutes else None,
        eval_every=int(tr.eval_every) if tr.eval_every else None,
        clip_grad=float(tr.clip_grad) if tr.clip_grad else None,
        amp=bool(tr.amp),
        compile=bool(tr.get("compile", False)),
        progress=bool(tr.progress),
        seed=int(cfg.seed),
        resume_changes=bool(tr.get("resume_changes", False)),
    )


def zoo_spec(cfg: DictConfig, source: ImageSource) -> ArchSpec:
    """The zoo's CNN: ``zoo.channels`` after the source's input channels, ``zoo.head`` dense
    layers and one output per class."""
    z = cfg.zoo
    channels = (int(source.images.shape[-1]), *_numbers(cfg, "zoo.channels", integer=True))
    head = (*_numbers(cfg, "zoo.head", integer=True), len(source.class_names))
    return ArchSpec.cnn(
        channels, head, int(z.kernel_size), stride=_numbers(cfg, "zoo.strides", integer=True),
        activation=str(z.activation), global_pool=str(z.global_pool),
    )  # fmt: skip


def _numbers(cfg: DictConfig, key: str, *, integer: bool) -> list:
    """The list setting ``key`` as numbers (integers >= 1 with ``integer``), or one error."""
    value = plain(OmegaConf.select(cfg, key))
    what = (
        "a list of integers >= 1, e.g. [8, 16]" if integer else "a list of numbers, e.g. [0.5, 1]"
    )
    good = isinstance(value, list) and all(_is_number(v) for v in value)
    if not good or (integer and any(v < 1 or not float(v).is_integer() for v in value)):
        raise ValueError(f"{key}={value} is not allowed: it must be {what}")
    return [int(v) if integer else float(v) for v in value]


def _is_number(value: Any) -> bool:
    """An int or float from a config (YAML's true/false are bools, not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _zoo_ranges(cfg: DictConfig) -> dict[str, tuple]:
    """``zoo.hyperparameters`` as ``{name: (kind, lo, hi)}``, or one error naming the entry."""
    value = plain(cfg.zoo.hyperparameters)
    if not isinstance(value, dict):
        raise ValueError(f"zoo.hyperparameters={value} is not allowed: it must map each hyper"
                         "parameter to [kind, lo, hi], e.g. lr: [log, 0.001, 0.02]")  # fmt: skip
    for name, r in value.items():
        numbers = isinstance(r, list) and len(r) == 3 and all(_is_number(v) for v in r[1:])
        if not numbers or not isinstance(r[0], str):
            raise ValueError(
                f"zoo.hyperparameters.{name}={r} is not allowed: it must be [kind, lo, hi] with "
                "kind log, uniform or int and two numbers, e.g. [log, 0.001, 0.02]"
            )
    return {k: (v[0], *v[1:]) for k, v in value.items()}


def build_zoo_store(cfg: DictConfig) -> tuple[INRStore, Path]:
    """The configured zoo (trained, or opened when made before) and where it is."""
    check_settings(cfg)
    source = build_source(cfg)
    if not isinstance(source, ImageSource):
        raise ValueError(f"data={cfg.data.name} is not an image source; a zoo trains CNNs on "
                         f"images: use data={' / data='.join(sorted(SOURCES))}")  # fmt: skip
    z = cfg.zoo
    out = Path(z.out) if z.out else default_zoo_path(cfg.data_dir, cfg.data.name)
    return _build_zoo(cfg, source, out, bool(z.progress)), out


def _build_zoo(cfg: DictConfig, source: ImageSource, out: Path, progress: bool) -> INRStore:
    z = cfg.zoo
    return build_zoo(
        source, zoo_spec(cfg, source), out, runs=int(z.runs),
        checkpoints=tuple(_numbers(cfg, "zoo.checkpoints", integer=False)),
        batch_size=int(z.batch_size), hyperparameters=_zoo_ranges(cfg),
        chunk_runs=int(z.chunk_runs), seed=int(z.seed),
        test_fraction=float(z.test_fraction), val_fraction=float(z.val_fraction),
        split_seed=int(z.split_seed), device=str(z.device), progress=progress,
        overwrite=bool(z.overwrite),
    )  # fmt: skip
