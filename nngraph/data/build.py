"""Fit an image or shape source into an INR store: chunked, atomic, resumable, splittable.

Work is cut into chunks of whole source items (all views of an item in one chunk). Each finished
chunk is written atomically to ``<store>.parts/``; a re-run with the same settings skips the chunks
already there, so a killed run loses at most the chunk in flight. When every chunk is done the
store is written (atomically) and the parts are removed. Under ``torchrun`` every process fits
its share of the chunks (chunk ``c`` goes to rank ``c % world``) and rank 0 assembles the store:
each chunk's result depends only on its number, so it is the store one process would make.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from nngraph.data.parts import settings_diff, source_fingerprint, start_parts
from nngraph.data.shapes import ShapeSource
from nngraph.data.sources import ImageSource
from nngraph.data.store import INRStore, assign_splits, load_store, save_store
from nngraph.device import pick_device
from nngraph.graph.spec import ArchSpec
from nngraph.inr.fit import FitResult, check_images, fit_inrs
from nngraph.inr.fit_sdf import fit_sdf_inrs
from nngraph.inr.siren import INITS
from nngraph.io import OutputLock, atomic_torch_save, load_torch_file

if TYPE_CHECKING:  # (a runtime import would cycle through nngraph.train's package)
    from nngraph.train.distributed import DistInfo

__all__ = ["build_store", "default_store_path"]


def default_store_path(
    data_dir: str | os.PathLike, source: str, views: int, subset: int | None = None
) -> Path:
    """``<data_dir>/inrs/<source>_views<k>[_n<subset>].pt``."""
    suffix = f"_n{subset}" if subset else ""
    return Path(data_dir).expanduser() / "inrs" / f"{source}_views{views}{suffix}.pt"


def build_store(
    source: ImageSource | ShapeSource,
    spec: ArchSpec,
    out: str | os.PathLike,
    *,
    views: int = 1,
    steps: int = 1000,
    lr: float = 5e-4,
    target_psnr: float | None = 40.0,
    batch_size: int | None = None,
    chunk_size: int = 4096,
    seed: int = 0,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    overwrite: bool = False,
    init: str = "dwsnets",
    points: int = 2048,
    points_per_step: int | None = 512,
    target_sign: float | None = 0.98,
    sign_band: float = 0.01,
    dist: DistInfo | None = None,
) -> INRStore:
    """Fit ``views`` INRs per item of ``source`` (images, or shapes as signed distances) and write
    them as one store at ``out``.

    An existing store made with the same settings is returned as it is (``overwrite`` refits);
    one made with other settings is an error, so a cache never silently serves the wrong data.
    ``init`` is the SIREN init convention (``"dwsnets"``, as the published INR datasets). Image
    INRs stop at ``target_psnr``; SDF INRs are fitted on ``points`` samples per shape (a random
    ``points_per_step`` of them a step; ``None``: all) and stop
    at ``target_sign`` sign agreement (off a ``sign_band`` around the surface). ``dist``: this
    process's place under ``torchrun`` (default: alone).
    """
    out = Path(out).expanduser()
    dist = dist or _alone()
    shapes = isinstance(source, ShapeSource)
    # every check before anything is written: bad input leaves no parts behind
    if shapes:
        _check_shape_settings(spec, points, points_per_step, target_sign, sign_band)
    else:
        check_images(source.images, spec)
    if init not in INITS:
        raise ValueError(f"unknown SIREN init {init!r}; choose one of {', '.join(INITS)}")
    pick_device(device, setting="fit.device")  # a missing GPU fails here, not after the parts
    if views < 1 or steps < 0 or chunk_size < 1 or (batch_size is not None and batch_size < 1):
        raise ValueError(
            f"need views >= 1, steps >= 0, chunk_size >= 1, batch_size >= 1; got views={views}, "
            f"steps={steps}, chunk_size={chunk_size}, batch_size={batch_size}"
        )
    if not lr > 0 or (target_psnr is not None and not target_psnr > 0):
        raise ValueError(f"need lr > 0 and target_psnr > 0 (or None); got {lr}, {target_psnr}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    settings = dict(
        source=source.name, items=len(source), spec=spec.to_dict(), views=views, steps=steps,
        lr=lr, seed=seed, init=init, chunk_size=chunk_size, val_fraction=val_fraction,
        split_seed=split_seed,
    )  # fmt: skip
    fit_options = {"steps": steps, "lr": lr, "batch_size": batch_size, "seed": seed,
                   "device": device, "init": init}  # fmt: skip
    if shapes:
        shape_options = dict(points=points, points_per_step=points_per_step,
                             target_sign=target_sign, sign_band=sign_band)  # fmt: skip
        settings.update(content=source.fingerprint(), **shape_options)
        fit_options.update(shape_options)
    else:
        settings.update(image_shape=list(source.image_shape), content=source_fingerprint(source),
                        target_psnr=target_psnr)  # fmt: skip
        fit_options.update(target_psnr=target_psnr)
    parts = out.with_name(out.name + ".parts")
    if out.exists() and not overwrite and not parts.exists():
        # a finished store (written atomically) is only read: runs sharing it start at once
        return _open_cached(out, settings)
    if dist.enabled:
        return _build_distributed(source, spec, out, parts, settings, fit_options, overwrite,
                                  progress, dist)  # fmt: skip
    with OutputLock(out.with_name(f".{out.name}.lock"), f"the store {out}"):
        return _build_or_open(source, spec, out, parts, settings, fit_options, overwrite, progress)


def _alone() -> DistInfo:
    from nngraph.train.distributed import DistInfo

    return DistInfo()


def _check_shape_settings(
    spec: ArchSpec, points: int, per_step: int | None, target_sign: float | None, sign_band: float
) -> None:
    if spec.in_dim != 3 or spec.out_dim != 1:
        raise ValueError(
            f"SDF INRs map 3-D points to one distance, but {spec} has {spec.in_dim} inputs and "
            f"{spec.out_dim} outputs: use layer sizes [3, ..., 1] (data.arch.layer_sizes)"
        )
    if (
        points < 16
        or (per_step is not None and per_step < 1)
        or not sign_band >= 0
        or (target_sign is not None and not 0 < target_sign <= 1)
    ):
        raise ValueError(
            f"need points >= 16, points_per_step >= 1 (or None), sign_band >= 0 and target_sign "
            f"in (0, 1] (or None); got points={points}, points_per_step={per_step}, "
            f"sign_band={sign_band}, target_sign={target_sign}"
        )


def _open_cached(out: Path, settings: dict) -> INRStore:
    """The store at ``out``, refused unless it was made with ``settings``."""
    store = load_store(out)
    made_with = store.meta.get("fit")
    if made_with != settings:
        raise ValueError(
            f"{out} exists but was made with other settings "
            f"({settings_diff(made_with, settings)}); set fit.overwrite=true to refit it, or "
            "choose another fit.out"
        )
    return store


def _build_or_open(
    source: ImageSource, spec: ArchSpec, out: Path, parts: Path, settings: dict,
    fit_options: dict, overwrite: bool, progress: bool,
) -> INRStore:  # fmt: skip
    """The store at ``out`` when made with ``settings``, else fitted chunk by chunk (resumable)."""
    views, chunk_size = settings["views"], settings["chunk_size"]
    if out.exists() and not overwrite:
        store = _open_cached(out, settings)
        if parts.exists():  # a run that died between writing the store and cleaning up
            shutil.rmtree(parts)
        return store

    start_parts(parts, settings, overwrite)
    chunks = _fit_chunks(source, spec, parts, views, chunk_size, progress, fit_options)
    store = _assemble(source, spec, parts, chunks, views, settings)
    save_store(store, out)
    shutil.rmtree(parts)
    return store


def _build_distributed(
    source: ImageSource | ShapeSource, spec: ArchSpec, out: Path, parts: Path, settings: dict,
    fit_options: dict, overwrite: bool, progress: bool, dist: DistInfo,
) -> INRStore:  # fmt: skip
    """Every process fits its chunks; rank 0 (holding the lock) sets up and assembles."""
    import torch.distributed as tdist

    lock = None
    try:
        if dist.is_main:
            lock = OutputLock(out.with_name(f".{out.name}.lock"), f"the store {out}")
            if out.exists() and not overwrite:
                shutil.rmtree(parts, ignore_errors=True)  # died after writing the store
            else:
                start_parts(parts, settings, overwrite)
        tdist.barrier()
        if not out.exists() or overwrite:
            chunks = _fit_chunks(source, spec, parts, settings["views"], settings["chunk_size"],
                                 progress and dist.is_main, fit_options, dist)  # fmt: skip
            tdist.barrier()
            if dist.is_main:
                store = _assemble(source, spec, parts, chunks, settings["views"], settings)
                save_store(store, out)
                shutil.rmtree(parts)
        tdist.barrier()
    finally:
        if lock is not None:
            lock.release()
    return _open_cached(out, settings)


def _fit_chunks(
    source: ImageSource | ShapeSource, spec: ArchSpec, parts: Path, views: int, chunk_size: int,
    progress: bool, fit_options: dict[str, Any], dist: DistInfo | None = None,
) -> list[tuple[int, range]]:  # fmt: skip
    """Fit every chunk of items not yet written under ``parts`` (each chunk one atomic file) that
    is this process's share; returns all chunks as ``(number, item range)``."""
    dist = dist or _alone()
    m = len(source)
    per_chunk = max(1, chunk_size // views)
    chunks = [(c, range(lo, min(lo + per_chunk, m))) for c, lo in enumerate(range(0, m, per_chunk))]
    mine = [(c, items) for c, items in chunks if c % dist.world == dist.rank]
    done = {c for c, _ in mine if (parts / f"chunk_{c:06d}.pt").is_file()}
    rows_done = sum(len(items) * views for c, items in mine if c in done)
    share = f" (process {dist.rank} of {dist.world})" if dist.enabled else ""
    with tqdm(
        total=sum(len(items) for _, items in mine) * views, initial=rows_done, unit="INR",
        desc=f"fitting {source.name} INRs{share}", disable=not progress, smoothing=0.05,
    ) as bar:  # fmt: skip
        for c, items in mine:
            if c in done:
                continue
            result = _fit_chunk(source, spec, items, views, c, bar, dict(fit_options))
            atomic_torch_save(
                {"params": result.params, "psnr": result.psnr, "steps": result.steps,
                 "seconds": result.seconds},
                parts / f"chunk_{c:06d}.pt",
            )  # fmt: skip
    return chunks


def _fit_chunk(
    source: ImageSource | ShapeSource, spec: ArchSpec, items: range, views: int, chunk: int,
    bar: tqdm, options: dict[str, Any],
) -> FitResult:  # fmt: skip
    """One chunk's INRs; seeded by the chunk number alone (the same on any process)."""
    seed = options.pop("seed") * 1_000_003 + chunk
    if isinstance(source, ShapeSource):
        count = options.pop("points")
        points, sdf = source.sample(torch.arange(items.start, items.stop), count, seed=seed)
        return fit_sdf_inrs(points, sdf, spec, views=views, seed=seed, progress=bar, **options)
    images = source.images[items.start : items.stop]
    return fit_inrs(images, spec, views=views, seed=seed, progress=bar, **options)


def _assemble(
    source: ImageSource | ShapeSource,
    spec: ArchSpec,
    parts: Path,
    chunks: list,
    views: int,
    settings: dict,
) -> INRStore:
    """The store from the chunk files: rows item-major, splits per item, fit metadata (an SDF
    store keeps each INR's sign agreement as the column ``sign_agreement``, no PSNR)."""
    m = len(source)
    shapes = isinstance(source, ShapeSource)
    pieces = [load_torch_file(parts / f"chunk_{c:06d}.pt", what="fit chunk") for c, _ in chunks]
    item_split = assign_splits(source.is_test, settings["val_fraction"], settings["split_seed"])
    metric = torch.cat([p["psnr"] for p in pieces])
    return INRStore(
        params=torch.cat([p["params"] for p in pieces]),
        labels=source.labels.repeat_interleave(views),
        view=torch.arange(views).repeat(m),
        source_index=source.index.repeat_interleave(views),
        split=item_split.repeat_interleave(views),
        psnr=None if shapes else metric,
        columns={"sign_agreement": metric} if shapes else {},
        spec=spec,
        meta={
            "source": source.name,
            "kind": "sdf" if shapes else "image",
            **({} if shapes else {"image_shape": list(source.image_shape)}),
            "class_names": list(source.class_names),
            "fit": settings,
            "fit_seconds": float(sum(p["seconds"] for p in pieces)),
            "fit_steps_mean": float(torch.cat([p["steps"] for p in pieces]).float().mean()),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
