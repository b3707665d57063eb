"""Fit an image source into an INR store: chunked, atomic, resumable.

Work is cut into chunks of whole source items (all views of an item in one chunk). Each finished
chunk is written atomically to ``<store>.parts/``; a re-run with the same settings skips the chunks
already there, so a killed run loses at most the chunk in flight. When every chunk is done the
store is written (atomically) and the parts are removed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from nngraph.data.parts import settings_diff, source_fingerprint, start_parts
from nngraph.data.sources import ImageSource
from nngraph.data.store import INRStore, assign_splits, load_store, save_store
from nngraph.device import pick_device
from nngraph.graph.spec import ArchSpec
from nngraph.inr.fit import check_images, fit_inrs
from nngraph.inr.siren import INITS
from nngraph.io import OutputLock, atomic_torch_save, load_torch_file

__all__ = ["build_store", "default_store_path"]


def default_store_path(
    data_dir: str | os.PathLike, source: str, views: int, subset: int | None = None
) -> Path:
    """``<data_dir>/inrs/<source>_views<k>[_n<subset>].pt``."""
    suffix = f"_n{subset}" if subset else ""
    return Path(data_dir).expanduser() / "inrs" / f"{source}_views{views}{suffix}.pt"


def build_store(
    source: ImageSource,
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
) -> INRStore:
    """Fit ``views`` INRs per image of ``source`` and write them as one store at ``out``.

    An existing store made with the same settings is returned as it is (``overwrite`` refits);
    one made with other settings is an error, so a cache never silently serves the wrong data.
    ``init`` is the SIREN init convention (``"dwsnets"``, as the published INR datasets).
    """
    out = Path(out).expanduser()
    # every check before anything is written: bad input leaves no parts behind
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
        source=source.name, items=len(source.images), image_shape=list(source.image_shape),
        content=source_fingerprint(source), spec=spec.to_dict(), views=views, steps=steps, lr=lr,
        target_psnr=target_psnr, seed=seed, init=init, chunk_size=chunk_size,
        val_fraction=val_fraction, split_seed=split_seed,
    )  # fmt: skip
    fit_options = {"steps": steps, "lr": lr, "target_psnr": target_psnr, "batch_size": batch_size,
                   "seed": seed, "device": device, "init": init}  # fmt: skip
    parts = out.with_name(out.name + ".parts")
    if out.exists() and not overwrite and not parts.exists():
        # a finished store (written atomically) is only read: runs sharing it start at once
        return _open_cached(out, settings)
    with OutputLock(out.with_name(f".{out.name}.lock"), f"the store {out}"):
        return _build_or_open(source, spec, out, parts, settings, fit_options, overwrite, progress)


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


def _fit_chunks(
    source: ImageSource, spec: ArchSpec, parts: Path, views: int, chunk_size: int,
    progress: bool, fit_options: dict[str, Any],
) -> list[tuple[int, range]]:  # fmt: skip
    """Fit every chunk of items not yet written under ``parts`` (each chunk one atomic file);
    returns all chunks as ``(number, item range)``."""
    m = len(source.images)
    per_chunk = max(1, chunk_size // views)
    chunks = [(c, range(lo, min(lo + per_chunk, m))) for c, lo in enumerate(range(0, m, per_chunk))]
    done = {c for c, _ in chunks if (parts / f"chunk_{c:06d}.pt").is_file()}
    rows_done = sum(len(items) * views for c, items in chunks if c in done)
    seed = fit_options.pop("seed")
    with tqdm(
        total=m * views, initial=rows_done, unit="INR", desc=f"fitting {source.name} INRs",
        disable=not progress, smoothing=0.05,
    ) as bar:  # fmt: skip
        for c, items in chunks:
            if c in done:
                continue
            result = fit_inrs(
                source.images[items.start : items.stop], spec, views=views,
                seed=seed * 1_000_003 + c, progress=bar, **fit_options,
            )  # fmt: skip
            atomic_torch_save(
                {"params": result.params, "psnr": result.psnr, "steps": result.steps,
                 "seconds": result.seconds},
                parts / f"chunk_{c:06d}.pt",
            )  # fmt: skip
    return chunks


def _assemble(
    source: ImageSource, spec: ArchSpec, parts: Path, chunks: list, views: int, settings: dict
) -> INRStore:
    """The store from the chunk files: rows image-major, splits per item, fit metadata."""
    m = len(source.images)
    pieces = [load_torch_file(parts / f"chunk_{c:06d}.pt", what="fit chunk") for c, _ in chunks]
    item_split = assign_splits(source.is_test, settings["val_fraction"], settings["split_seed"])
    return INRStore(
        params=torch.cat([p["params"] for p in pieces]),
        labels=source.labels.repeat_interleave(views),
        view=torch.arange(views).repeat(m),
        source_index=source.index.repeat_interleave(views),
        split=item_split.repeat_interleave(views),
        psnr=torch.cat([p["psnr"] for p in pieces]),
        spec=spec,
        meta={
            "source": source.name,
            "image_shape": list(source.image_shape),
            "class_names": list(source.class_names),
            "fit": settings,
            "fit_seconds": float(sum(p["seconds"] for p in pieces)),
            "fit_steps_mean": float(torch.cat([p["steps"] for p in pieces]).float().mean()),
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        },
    )
