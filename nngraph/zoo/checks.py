"""The zoo's settings, checked before any work or write: each bad one is a single ``ValueError``
that names the setting, its value and what is allowed. A zoo is hours of CPU at scale, so a
setting that would train nonsense (a negative learning rate, a kernel that only ever sees
padding) or end in an empty split is refused up front rather than found out afterwards."""

from __future__ import annotations

import itertools
import math
import os
import shutil
from pathlib import Path

import torch

from nngraph.data.sources import ImageSource
from nngraph.data.store import assign_splits
from nngraph.graph.spec import ArchSpec
from nngraph.zoo.train import HYPERPARAMETERS

__all__ = ["check_zoo_disk", "check_zoo_settings", "run_splits"]

#: Per hyperparameter: (smallest allowed low end, whether it must be above it, largest high end)
_BOUNDS = {
    "lr": (0.0, True, math.inf),
    "weight_decay": (0.0, False, math.inf),
    "init_scale": (0.0, True, math.inf),
    "epochs": (1.0, False, math.inf),
    "label_noise": (0.0, False, 1.0),
    "data_fraction": (0.0, True, 1.0),
}


def check_zoo_settings(
    source: ImageSource, spec: ArchSpec, runs: int, checkpoints: tuple, batch_size: int,
    chunk_runs: int, ranges: dict, test_fraction: float, val_fraction: float, split_seed: int,
) -> None:  # fmt: skip
    """Every setting of :func:`nngraph.zoo.build.build_zoo` in range and consistent."""
    _check_spec(source, spec)
    if runs < 1 or batch_size < 1 or chunk_runs < 1:
        raise ValueError(
            f"need runs, batch_size and chunk_runs >= 1; got {runs}, {batch_size}, {chunk_runs}"
        )
    if not checkpoints or any(not 0 < c <= 1 for c in checkpoints):
        raise ValueError(f"checkpoints are fractions of a run in (0, 1], got {list(checkpoints)}")
    if any(b <= a for a, b in itertools.pairwise(checkpoints)):
        raise ValueError(f"checkpoints must increase (each is kept once), got {list(checkpoints)}")
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise ValueError(f"need 0 < test_fraction < 1, 0 <= val_fraction < 1; got "
                         f"{test_fraction}, {val_fraction}")  # fmt: skip
    _check_ranges(ranges)
    _check_memory(runs, len(checkpoints), spec)
    split = run_splits(runs, test_fraction, val_fraction, split_seed)
    for code, name, wanted in ((0, "train", True), (1, "val", val_fraction > 0), (2, "test", True)):
        if wanted and not bool((split == code).any()):
            raise ValueError(
                f"{runs} runs with test_fraction={test_fraction}, val_fraction={val_fraction} "
                f"leave no {name} run (split_seed={split_seed}); use more runs or a larger fraction"
            )


def run_splits(
    runs: int, test_fraction: float, val_fraction: float, split_seed: int
) -> torch.Tensor:
    """Each run's split (0 train, 1 val, 2 test); every checkpoint of a run shares it."""
    gen = torch.Generator().manual_seed(split_seed)
    run_is_test = torch.rand(runs, generator=gen) < test_fraction
    return assign_splits(run_is_test, val_fraction, split_seed)


def _check_spec(source: ImageSource, spec: ArchSpec) -> None:
    """A CNN whose input and output fit the source, and whose every kernel weight sees pixels."""
    if spec.family != "cnn":
        raise ValueError(f"a zoo trains CNNs; the spec is {spec} (build it with ArchSpec.cnn)")
    channels = source.images.shape[-1]
    if spec.in_dim != channels or spec.out_dim < len(source.class_names):
        raise ValueError(
            f"{spec} takes {spec.in_dim} channels and gives {spec.out_dim} outputs, but "
            f"{source.name} has {channels} channels and {len(source.class_names)} classes"
        )
    size = min(source.images.shape[1:3])
    for layer in range(spec.n_layers):
        if spec.kind_of(layer) != "conv2d":
            break
        k, s, p = spec.kernel_of(layer), spec.stride_of(layer), spec.padding_of(layer)
        if k > 2 * size - 1:  # some kernel offsets would fall outside the input at every position
            raise ValueError(
                f"convolution {layer} has a {k}x{k} kernel on a {size}x{size} input "
                f"(the {source.name} images, after the strides before it): part of every kernel "
                f"would only ever see padding; use kernel_size <= {2 * size - 1} or smaller strides"
            )
        size = (size + 2 * p - k) // s + 1


def _check_ranges(ranges: dict) -> None:
    """Every hyperparameter a finite ``(kind, lo, hi)`` range inside what makes sense for it."""
    unknown = set(ranges) - set(HYPERPARAMETERS)
    missing = set(HYPERPARAMETERS) - set(ranges)
    if unknown or missing:
        raise ValueError(f"zoo hyperparameters: unknown {sorted(unknown)}, missing "
                         f"{sorted(missing)}; expected {sorted(HYPERPARAMETERS)}")  # fmt: skip
    for name, spec_range in ranges.items():
        kind, lo, hi = spec_range
        if kind not in ("log", "uniform", "int") or not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"zoo hyperparameter {name}: {list(spec_range)} is not a range; "
                             "use [log|uniform|int, lo, hi] with finite lo <= hi")  # fmt: skip
        floor, strict, top = _BOUNDS[name]
        low_ok = lo > floor if strict else lo >= floor
        if not lo <= hi or not low_ok or hi > top or (kind == "log" and lo <= 0):
            above = f"> {floor:g}" if strict else f">= {floor:g}"
            limit = f" and <= {top:g}" if top < math.inf else ""
            raise ValueError(f"zoo hyperparameter {name}: {list(spec_range)} is not allowed; "
                             f"it needs lo <= hi, lo {above}{limit}")  # fmt: skip
        if name == "epochs" and (kind != "int" or lo != int(lo) or hi != int(hi)):
            raise ValueError(f"zoo hyperparameter epochs: {list(spec_range)} is not allowed; "
                             "runs last whole epochs: use [int, lo, hi] with integers")  # fmt: skip
        if kind == "int" and (lo != int(lo) or hi != int(hi)):
            raise ValueError(f"zoo hyperparameter {name}: [int, lo, hi] needs integer ends, "
                             f"got {list(spec_range)}")  # fmt: skip


def _check_memory(runs: int, checkpoints: int, spec: ArchSpec) -> None:
    """The kept checkpoints (float32, in memory until the store is written) fit the machine."""
    need = runs * checkpoints * spec.num_params * 4
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on this platform: nothing to compare
        return
    if need > have:
        raise ValueError(
            f"{runs} runs x {checkpoints} checkpoints of {spec.num_params} parameters need "
            f"{need / 2**30:,.1f} GiB, more than this machine's {have / 2**30:,.1f} GiB; "
            "use fewer runs or checkpoints"
        )


def check_zoo_disk(out: Path, runs: int, checkpoints: int, spec: ArchSpec) -> None:
    """Room on ``out``'s disk for the chunks and the store (each about the kept checkpoints), so
    a full disk is found before training, not after the first chunk."""
    need = 2 * runs * checkpoints * spec.num_params * 4
    where = out.parent
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if need > free:
        raise ValueError(
            f"the zoo needs about {need / 2**20:,.0f} MiB on {where} (its chunks, then the store) "
            f"but {free / 2**20:,.0f} MiB are free; free some space or choose another zoo.out"
        )
