"""Build a CNN model zoo into a store: chunks of runs trained at once, atomic, resumable.

Hyperparameters of every run are drawn up front (so chunking does not change them); each chunk
of runs is trained together and written atomically to ``<store>.parts/`` with its evaluations; a
re-run with the same settings skips finished chunks. The store has one row per checkpoint: views
of one run (``source_index`` = run, ``view`` = checkpoint) share a split, so no run is in train
and test at once. Targets and hyperparameters are the store's ``columns``.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from nngraph.data.parts import settings_diff, source_fingerprint, start_parts
from nngraph.data.sources import ImageSource
from nngraph.data.store import INRStore, load_store, save_store
from nngraph.device import pick_device
from nngraph.graph.spec import ArchSpec
from nngraph.io import OutputLock, atomic_torch_save, load_torch_file
from nngraph.zoo.checks import check_zoo_disk, check_zoo_settings, run_splits
from nngraph.zoo.train import HYPERPARAMETERS, evaluate, sample_hyperparameters, train_zoo

__all__ = ["TARGETS", "build_zoo", "default_zoo_path"]

#: Per-checkpoint targets a regression task can predict.
TARGETS = ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "generalization_gap")


def default_zoo_path(data_dir: str | os.PathLike, source: str) -> Path:
    """``<data_dir>/zoo/<source>_cnn.pt``."""
    return Path(data_dir).expanduser() / "zoo" / f"{source}_cnn.pt"


def build_zoo(
    source: ImageSource,
    spec: ArchSpec,
    out: str | os.PathLike,
    *,
    runs: int = 400,
    checkpoints: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0),
    batch_size: int = 32,
    hyperparameters: dict[str, tuple] | None = None,
    chunk_runs: int = 200,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    device: str | torch.device | None = "cpu",
    progress: bool = True,
    overwrite: bool = False,
) -> INRStore:
    """Train ``runs`` CNNs of ``spec`` on ``source`` (its train split) and store
    ``len(checkpoints)`` checkpoints of each with their test/train accuracy and loss. An
    existing zoo made with the same settings is returned as it is; one made with other settings
    is an error."""
    out = Path(out).expanduser()
    ranges = dict(hyperparameters or HYPERPARAMETERS)
    check_zoo_settings(source, spec, runs, checkpoints, batch_size, chunk_runs, ranges,
                       test_fraction, val_fraction, split_seed)  # fmt: skip
    pick_device(device, setting="zoo.device")
    settings = dict(
        source=source.name, items=len(source.images), content=source_fingerprint(source),
        spec=spec.to_dict(), runs=runs, checkpoints=list(checkpoints), batch_size=batch_size,
        hyperparameters={k: list(v) for k, v in ranges.items()}, chunk_runs=chunk_runs,
        seed=seed, test_fraction=test_fraction, val_fraction=val_fraction, split_seed=split_seed,
    )  # fmt: skip
    parts = out.with_name(out.name + ".parts")
    if out.exists() and not overwrite and not parts.exists():
        return _open_cached(out, settings)
    with OutputLock(out.with_name(f".{out.name}.lock"), f"the zoo {out}"):
        if out.exists() and not overwrite:
            store = _open_cached(out, settings)
            shutil.rmtree(parts, ignore_errors=True)
            return store
        check_zoo_disk(out, runs, len(checkpoints), spec)
        start_parts(parts, settings, overwrite)
        hyper = sample_hyperparameters(runs, ranges, seed=seed)
        _train_chunks(source, spec, parts, hyper, settings, device, progress)
        store = _assemble(source, spec, parts, hyper, settings)
        save_store(store, out)
        shutil.rmtree(parts)
        return store


def _open_cached(out: Path, settings: dict) -> INRStore:
    store = load_store(out)
    if store.meta.get("zoo") != settings:
        raise ValueError(
            f"{out} exists but was made with other settings "
            f"({settings_diff(store.meta.get('zoo'), settings)}); set zoo.overwrite=true to "
            "rebuild it, or choose another zoo.out"
        )
    return store


def _images(source: ImageSource, test: bool, device: torch.device) -> tuple:
    rows = source.is_test if test else ~source.is_test
    images = source.images[rows].permute(0, 3, 1, 2).contiguous().to(device)
    return images, source.labels[rows].to(device)


def _train_chunks(
    source: ImageSource, spec: ArchSpec, parts: Path, hyper: dict, settings: dict,
    device: str | torch.device | None, progress: bool,
) -> None:  # fmt: skip
    """Train and evaluate every chunk of runs not yet written under ``parts``."""
    dev = pick_device(device, setting="zoo.device")
    runs, per_chunk = settings["runs"], settings["chunk_runs"]
    train_x, train_y = _images(source, False, dev)
    test_x, test_y = _images(source, True, dev)
    chunks = list(enumerate(range(0, runs, per_chunk)))
    todo = [(c, lo) for c, lo in chunks if not (parts / f"chunk_{c:06d}.pt").is_file()]
    for c, _ in sorted(set(chunks) - set(todo)):  # a damaged chunk is found before any training
        _load_chunk(parts, c, settings, spec)
    for c, lo in tqdm(todo, desc=f"zoo of {runs} CNNs on {source.name}", unit="chunk",
                      disable=not progress):  # fmt: skip
        part = {k: v[lo : lo + per_chunk].to(dev) for k, v in hyper.items()}
        result = train_zoo(
            train_x, train_y, spec, part, batch_size=settings["batch_size"],
            checkpoints=tuple(settings["checkpoints"]), seed=settings["seed"] * 1_000_003 + c,
            progress=progress,
        )  # fmt: skip
        flat = result.params.reshape(-1, spec.num_params)
        test = evaluate(flat, test_x, test_y, spec)
        train = evaluate(flat, train_x, train_y, spec)
        atomic_torch_save(
            {"params": flat.cpu(), "epoch": result.epoch.reshape(-1).cpu(),
             "test": {k: v.cpu() for k, v in test.items()},
             "train": {k: v.cpu() for k, v in train.items()}, "seconds": result.seconds},
            parts / f"chunk_{c:06d}.pt",
        )  # fmt: skip


def _load_chunk(parts: Path, c: int, settings: dict, spec: ArchSpec) -> dict:
    """Chunk ``c`` of ``parts``, checked to hold what training it wrote (right keys, shapes)."""
    path = parts / f"chunk_{c:06d}.pt"
    redo = "delete it and re-run the same command to retrain that chunk"
    try:
        piece = load_torch_file(path, what="zoo chunk")
    except ValueError as err:
        raise ValueError(f"{err}; {redo}") from None
    lo = c * settings["chunk_runs"]
    rows = (min(settings["runs"], lo + settings["chunk_runs"]) - lo) * len(settings["checkpoints"])
    shapes = {"params": (rows, spec.num_params), "epoch": (rows,)}
    shapes.update({f"{s}.{k}": (rows,) for s in ("test", "train") for k in ("accuracy", "loss")})
    try:
        got = {k: tuple(_at(piece, k).shape) for k in shapes}
        good = got == shapes and piece["params"].is_floating_point()
        good = good and isinstance(piece["seconds"], float)
    except (KeyError, TypeError, AttributeError):
        good = False
    if not good:
        raise ValueError(
            f"zoo chunk {path} does not hold {rows} checkpoints of {spec.num_params} parameters "
            f"with their evaluations; {redo}"
        )
    return piece


def _at(piece: dict, key: str) -> torch.Tensor:
    """``piece["a"]["b"]`` for ``key = "a.b"``."""
    for part in key.split("."):
        piece = piece[part]
    return piece


def _assemble(
    source: ImageSource, spec: ArchSpec, parts: Path, hyper: dict, settings: dict
) -> INRStore:
    """One row per checkpoint (run-major); diverged networks (non-finite weights) left out."""
    runs, k = settings["runs"], len(settings["checkpoints"])
    n_chunks = -(-runs // settings["chunk_runs"])
    pieces = [_load_chunk(parts, c, settings, spec) for c in range(n_chunks)]
    params = torch.cat([p["params"] for p in pieces])
    columns = {
        "test_accuracy": torch.cat([p["test"]["accuracy"] for p in pieces]),
        "test_loss": torch.cat([p["test"]["loss"] for p in pieces]),
        "train_accuracy": torch.cat([p["train"]["accuracy"] for p in pieces]),
        "train_loss": torch.cat([p["train"]["loss"] for p in pieces]),
        "epoch": torch.cat([p["epoch"] for p in pieces]),
    }
    columns["generalization_gap"] = columns["train_accuracy"] - columns["test_accuracy"]
    columns.update({name: v.repeat_interleave(k) for name, v in hyper.items()})
    run_split = run_splits(runs, settings["test_fraction"], settings["val_fraction"],
                           settings["split_seed"])  # fmt: skip
    keep = torch.isfinite(params).all(1) & torch.isfinite(columns["test_loss"])
    if not bool(keep.any()):
        shutil.rmtree(parts)  # nothing worth resuming; a re-run with new settings starts clean
        raise ValueError(
            f"all {len(keep)} CNN checkpoints diverged (NaN or Inf weights or loss): lower "
            f"zoo.hyperparameters.lr (now {settings['hyperparameters']['lr']}) or init_scale"
        )
    run = torch.arange(runs).repeat_interleave(k)
    return INRStore(
        params=params[keep].float().contiguous(),
        labels=torch.zeros(int(keep.sum()), dtype=torch.long),
        view=torch.arange(k).repeat(runs)[keep],
        source_index=run[keep],
        split=run_split.repeat_interleave(k)[keep],
        spec=spec,
        columns={name: v[keep].contiguous() for name, v in columns.items()},
        meta={
            "kind": "cnn_zoo",
            "source": source.name,
            "image_shape": list(source.image_shape),
            "targets": list(TARGETS),
            "zoo": settings,
            "zoo_seconds": float(sum(p["seconds"] for p in pieces)),
            "diverged": int((~keep).sum()),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
