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
from nngraph.data.store import INRStore, assign_splits, load_store, save_store
from nngraph.device import pick_device
from nngraph.graph.spec import ArchSpec
from nngraph.io import OutputLock, atomic_torch_save, load_torch_file
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
    _check_settings(source, spec, runs, checkpoints, batch_size, chunk_runs, ranges,
                    test_fraction, val_fraction)  # fmt: skip
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
        start_parts(parts, settings, overwrite)
        hyper = sample_hyperparameters(runs, ranges, seed=seed)
        _train_chunks(source, spec, parts, hyper, settings, device, progress)
        store = _assemble(source, spec, parts, hyper, settings)
        save_store(store, out)
        shutil.rmtree(parts)
        return store


def _check_settings(
    source: ImageSource, spec: ArchSpec, runs: int, checkpoints: tuple, batch_size: int,
    chunk_runs: int, ranges: dict, test_fraction: float, val_fraction: float,
) -> None:  # fmt: skip
    """Every setting in range, before any work or write."""
    if spec.family != "cnn":
        raise ValueError(f"a zoo trains CNNs; the spec is {spec} (build it with ArchSpec.cnn)")
    channels = source.images.shape[-1]
    if spec.in_dim != channels or spec.out_dim < len(source.class_names):
        raise ValueError(
            f"{spec} takes {spec.in_dim} channels and gives {spec.out_dim} outputs, but "
            f"{source.name} has {channels} channels and {len(source.class_names)} classes"
        )
    if runs < 1 or batch_size < 1 or chunk_runs < 1:
        raise ValueError(
            f"need runs, batch_size and chunk_runs >= 1; got {runs}, {batch_size}, {chunk_runs}"
        )
    if not checkpoints or any(not 0 < c <= 1 for c in checkpoints):
        raise ValueError(f"checkpoints are fractions of a run in (0, 1], got {list(checkpoints)}")
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise ValueError(f"need 0 < test_fraction < 1, 0 <= val_fraction < 1; got "
                         f"{test_fraction}, {val_fraction}")  # fmt: skip
    unknown = set(ranges) - set(HYPERPARAMETERS)
    missing = set(HYPERPARAMETERS) - set(ranges)
    if unknown or missing:
        raise ValueError(f"zoo hyperparameters: unknown {sorted(unknown)}, missing "
                         f"{sorted(missing)}; expected {sorted(HYPERPARAMETERS)}")  # fmt: skip
    for name, spec_range in ranges.items():
        kind, lo, hi = spec_range
        bad_log = kind == "log" and not 0 < lo <= hi
        if kind not in ("log", "uniform", "int") or not lo <= hi or bad_log:
            raise ValueError(f"zoo hyperparameter {name}: {list(spec_range)} is not a range")
    for name, top in (("label_noise", 1.0), ("data_fraction", 1.0)):
        if not 0 <= ranges[name][1] <= 1 or ranges[name][2] > top:
            raise ValueError(f"zoo hyperparameter {name} must lie in [0, 1]: {list(ranges[name])}")
    if ranges["epochs"][1] < 1:
        raise ValueError(f"zoo hyperparameter epochs must be >= 1: {list(ranges['epochs'])}")


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


def _assemble(
    source: ImageSource, spec: ArchSpec, parts: Path, hyper: dict, settings: dict
) -> INRStore:
    """One row per checkpoint (run-major); diverged networks (non-finite weights) left out."""
    runs, k = settings["runs"], len(settings["checkpoints"])
    n_chunks = -(-runs // settings["chunk_runs"])
    pieces = [
        load_torch_file(parts / f"chunk_{c:06d}.pt", what="zoo chunk") for c in range(n_chunks)
    ]
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
    gen = torch.Generator().manual_seed(settings["split_seed"])
    run_is_test = torch.rand(runs, generator=gen) < settings["test_fraction"]
    run_split = assign_splits(run_is_test, settings["val_fraction"], settings["split_seed"])
    keep = torch.isfinite(params).all(1) & torch.isfinite(columns["test_loss"])
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
